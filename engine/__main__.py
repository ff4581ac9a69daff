"""``python -m engine``: the command-line face of the engine (see :mod:`engine.cli`)."""

import sys

from engine.cli import main

if __name__ == "__main__":
    sys.exit(main())
