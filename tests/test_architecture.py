"""The layering contract of docs/architecture.md (``.importlinter``), checked with import-linter:
on the repository as it is, and on a copy with one upward import added, which it must refuse."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[1]
PACKAGES = ("engine", "studio", "benchmarks")


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())",
               "--config", str(root / ".importlinter"), "--no-cache"]
    return subprocess.run(command, cwd=root, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(root)})


def test_the_repository_keeps_every_contract():
    result = lint_imports(REPOSITORY)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 3 kept, 0 broken." in result.stdout


@pytest.mark.parametrize(("module", "upward_import", "contract"), [
    ("engine/core/files.py", "import engine.library", "The product's layers import downward only"),
    ("engine/adapters/lora/files.py", "from engine.metrics import image_quality", "The product's layers import downward only"),
    ("engine/services/style_edit.py", "import benchmarks.timing", "Nothing in the product imports the benchmarks"),
    ("engine/fusion/fuse.py", "import gradio", "The engine never imports the UI"),
])
def test_an_upward_import_breaks_the_contract(tmp_path, module, upward_import, contract):
    for package in PACKAGES:
        shutil.copytree(REPOSITORY / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPOSITORY / ".importlinter", tmp_path / ".importlinter")
    with (tmp_path / module).open("a") as file:
        file.write(f"\n{upward_import}  # noqa\n")
    result = lint_imports(tmp_path)
    assert result.returncode != 0
    assert f"{contract} BROKEN" in result.stdout
    assert "Contracts: 2 kept, 1 broken." in result.stdout
