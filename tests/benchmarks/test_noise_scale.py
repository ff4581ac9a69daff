"""The noise-scale benchmark on a tiny random model and a library with random, non-zero styles."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.noise_scale import main, score_styles
from engine.library import StyleLibrary
from engine.services.style_edit import StyleEditor
from tests.adapters.moe.moe_fixtures import base_backbone
from tests.studio.studio_fixtures import add_random_styles


def test_each_style_is_scored_at_each_scale_beside_the_unedited_photo(tmp_path: Path) -> None:
    backbone = base_backbone()
    with StyleLibrary.open(tmp_path / "library") as library:
        add_random_styles(library, backbone, ["vintage", "cartoon"], tmp_path / "pairs")
        editor = StyleEditor(backbone, library)
        report = score_styles(editor, ["vintage", "cartoon"], [1.0, 0.0], test_pairs=1)
        editor.release()
    assert set(report) == {"vintage", "cartoon", "mean"}
    for rows in report.values():
        assert set(rows) == {"identity", "1", "0"}
        assert all(set(row) == {"psnr", "ssim", "style"} for row in rows.values())
    # A non-identity model reads the noise, so the two scales give different edits and scores.
    assert report["vintage"]["1"] != report["vintage"]["0"]
    assert report["mean"]["0"]["psnr"] == pytest.approx((report["vintage"]["0"]["psnr"] + report["cartoon"]["0"]["psnr"]) / 2, abs=1e-3)


@pytest.mark.parametrize("arguments, message", [(["--scales", "2"], "scale"), (["--scales", "a,b"], "numbers"),
                                                (["--styles", "neon"], "unknown"), (["--test-pairs", "0"], "test-pairs")])
def test_bad_arguments_are_refused_before_any_work(arguments, message, capsys) -> None:
    with pytest.raises(SystemExit):
        main(arguments)
    assert message in capsys.readouterr().err
