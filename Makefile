# Atelier: two commands for a fresh machine.
#   make run    start the studio at http://127.0.0.1:7860
#   make test   run the whole test suite (the browser test uses Debian's chromium)
# The other targets are helpers these two use.

PYTHON ?= python3
VENV := .venv
VENV_PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.requirements-stamp
CHROMIUM := /usr/bin/chromium

.PHONY: run test install chromium

run: install
	$(VENV_PYTHON) app.py

test: install chromium
	HF_HUB_OFFLINE=1 $(VENV_PYTHON) -m pytest -q

# Install the pinned requirements when requirements.txt is newer than the last install.
install: $(STAMP)

$(VENV_PYTHON):
	$(PYTHON) -m venv $(VENV)

$(STAMP): requirements.txt | $(VENV_PYTHON)
	$(VENV_PYTHON) -m pip install -r requirements.txt
	touch $(STAMP)

# Debian's chromium for the browser test (Playwright cannot download its own browser here).
chromium:
	@if [ -x $(CHROMIUM) ]; then \
		true; \
	elif [ "$$(id -u)" = 0 ]; then \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; \
	else \
		echo "$(CHROMIUM) is missing: run 'sudo apt-get install -y chromium' for the browser test"; \
	fi
