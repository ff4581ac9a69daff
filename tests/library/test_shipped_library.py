"""The default library in styles/ ships the five benchmark styles, trained on the shipped model."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from benchmarks.dataset import benchmark_pairs
from benchmarks.styles import STYLES
from engine.library import StyleLibrary
from engine.models.backbones.registry import load_backbone
from engine.services.style_edit import StyleEditor

SHIPPED = Path(__file__).resolve().parents[2] / "styles"


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory):
    """A copy, so the tests never write to the tracked files."""
    copy = tmp_path_factory.mktemp("shipped") / "styles"
    shutil.copytree(SHIPPED, copy, ignore=shutil.ignore_patterns(".lock", "*.db-wal", "*.db-shm", "checkpoints"))
    with StyleLibrary.open(copy) as opened:
        yield opened


def test_the_five_benchmark_styles_ship_whole_in_one_shared_adapter(library: StyleLibrary) -> None:
    records = [record for record in library.list_styles() if record.adapter.kind == "moe"]
    assert sorted(record.name for record in records) == sorted(STYLES)
    assert library.check(deep=True) == []
    assert {record.adapter.id for record in records} == {records[0].adapter.id}
    for record in records:
        assert record.backbone == load_backbone("embedded").name and record.adapter.kind == "moe"
        assert record.description == STYLES[record.name].description
        assert len(record.pairs) == 8 and "holdout" in record.metrics


def test_a_shipped_style_changes_a_held_out_photo_towards_its_after_image(library: StyleLibrary) -> None:
    backbone = load_backbone("embedded")
    editor = StyleEditor(backbone, library)
    before, after, _ = benchmark_pairs("ink sketch", "test", backbone.fit_size)[0]
    plain = np.asarray(editor.edit(before, {}), dtype=np.float64)
    styled = np.asarray(editor.edit(before, {"ink sketch": 1.0}), dtype=np.float64)
    target = np.asarray(after.resize(before.size), dtype=np.float64)
    editor.release()
    assert np.mean((styled - target) ** 2) < 0.5 * np.mean((plain - target) ** 2)


def test_the_example_subject_ships_beside_the_styles(library: StyleLibrary) -> None:
    subjects = [record for record in library.list_styles() if record.adapter.kind == "subject"]
    assert [record.name for record in subjects] == ["Chelsea"]
    assert subjects[0].backbone == load_backbone("embedded").name
