"""Fixtures for the style library tests: an open library in a temporary folder, and pair photos."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest
from library_fixtures import write_pairs

from engine.library import StyleLibrary


@pytest.fixture
def library(tmp_path: Path) -> Iterator[StyleLibrary]:
    opened = StyleLibrary.open(tmp_path / "styles")
    yield opened
    opened.close()


@pytest.fixture
def pairs(tmp_path: Path) -> list[tuple[Path, Path, str]]:
    return write_pairs(tmp_path / "photos", count=2)
