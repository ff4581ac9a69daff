"""The load part of the reliability suite, small: the real studio as a subprocess on a tiny
model, three edits at once through gradio_client while a style trains in the same app."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import reliability_load
from engine.models.backbones.embedded.backbone import EmbeddedBackbone

pytestmark = pytest.mark.timeout(900)


def test_three_concurrent_edits_are_all_served_while_a_style_trains(tmp_path: Path) -> None:
    model = tmp_path / "model"
    EmbeddedBackbone.from_config("tiny", seed=0).save_pretrained(model)
    work = tmp_path / "work"
    work.mkdir()
    report = reliability_load.run_load(work, str(model), edits=3, train_steps=5000)
    assert report["served"] == 3 and report["failed"] == 0, report["errors"]
    assert report["training"]["status_after_edits"] == "running"
    assert report["training"]["steps_after_edits"] >= report["training"]["steps_before_edits"] >= 1
    assert 0 < report["latency_seconds"]["p50"] <= report["latency_seconds"]["p90"] <= report["latency_seconds"]["max"]
    assert report["rss_mib"]["peak"] >= report["rss_mib"]["idle"] > 0


def test_percentiles() -> None:
    assert reliability_load.percentile([3.0, 1.0, 2.0], 0.5) == 2.0
    assert reliability_load.percentile([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0], 0.9) == 9.0
