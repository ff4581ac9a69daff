"""The generation-schedule benchmark on a tiny random model and photos of the test's own."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmarks.generation_schedule import main
from engine.models.backbones.embedded.backbone import EmbeddedBackbone


def test_every_schedule_is_scored_and_drawn(tmp_path: Path, capsys) -> None:
    EmbeddedBackbone.from_config("tiny").save_pretrained(tmp_path / "model")
    photos = tmp_path / "photos"
    photos.mkdir()
    for index in range(8):
        array = np.random.default_rng(index).integers(0, 256, (48, 64, 3), dtype=np.uint8)
        Image.fromarray(array, mode="RGB").save(photos / f"photo{index}.png")
    main(["--model", str(tmp_path / "model"), "--photos", str(photos), "--steps", "2,3", "--shifts", "1,4", "--seeds", "6",
          "--grid", str(tmp_path / "grids"), "--out", str(tmp_path / "report.json")])
    report = json.loads((tmp_path / "report.json").read_text())
    assert [(row["steps"], row["shift"]) for row in report["schedules"]] == [(2, 1.0), (3, 1.0), (2, 4.0), (3, 4.0)]
    assert all(row["colour_frechet"] >= 0 and row["seconds_per_sample"] > 0 for row in report["schedules"])
    assert set(report["references"]) == {"training_photos_vs_held_out", "grey_noise_vs_held_out"}
    with Image.open(tmp_path / "grids" / "steps3-shift4.png") as grid:
        assert grid.size == (6 * 32, 32)  # six 32-px samples, one row of six


@pytest.mark.parametrize("arguments, message", [(["--steps", "0"], "step count"), (["--shifts", "x"], "numbers"),
                                                (["--seeds", "2"], "seeds")])
def test_bad_arguments_are_refused_before_any_work(arguments, message, capsys) -> None:
    with pytest.raises(SystemExit):
        main(arguments)
    assert message in capsys.readouterr().err
