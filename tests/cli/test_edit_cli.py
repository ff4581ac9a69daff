"""``python -m engine edit`` run in-process against a tiny random embedded model."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from engine.cli import main
from engine.core.configuration import help_of
from engine.models.backbones.embedded.backbone import EmbeddedBackbone
from engine.models.backbones.registry import load_backbone
from engine.models.editing import edit_photo
from engine.models.sampling.sampler import SamplerSettings
from engine.rendering import tiling
from engine.rendering.full_resolution import RenderSettings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tiny-model")
    EmbeddedBackbone.from_config("tiny").save_pretrained(folder)
    return folder


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    """A 64x32 (2:1) photo with a horizontal gradient."""
    path = tmp_path / "photo.png"
    Image.linear_gradient("L").resize((64, 32)).convert("RGB").save(path)
    return path


def edit(*arguments: str | Path) -> int:
    return main(["edit", *map(str, arguments)])


def one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ")
    return lines[0]


@pytest.mark.parametrize("render", ["guided", "resize", "tiled"])
def test_edit_writes_the_result_at_the_photos_size(model: Path, photo: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
                                                   render: str) -> None:
    # The model works at 48x24 for this 64x32 photo; the file has the photo's own size.
    assert load_backbone(str(model)).fit_size(64, 32) == (48, 24)
    out = tmp_path / "results" / "edited.png"
    assert edit("--input", photo, "--out", out, "--steps", 2, "--seed", 3, "--model", model, "--render", render) == 0
    with Image.open(out) as result:
        size = result.size
        assert result.format == "PNG"
    assert size == (64, 32)
    assert f"{out} (64x32)" in capsys.readouterr().out
    assert sorted(p.name for p in out.parent.iterdir()) == ["edited.png"]


def test_working_size_sets_the_area_the_model_edits_at(model: Path, photo: Path, tmp_path: Path) -> None:
    backbone = load_backbone(str(model))
    assert backbone.fit_size(64, 32, 16) == (24, 8) and backbone.fit_size(64, 32, 32) == backbone.fit_size(64, 32)
    seen = []
    with Image.open(photo) as opened:
        small = edit_photo(backbone, opened, SamplerSettings(steps=1, working_size=16), callback=lambda *a: seen.append(a[2].size))
    assert small.size == seen[-1] == (24, 8)
    out = tmp_path / "small.png"
    assert edit("--input", photo, "--out", out, "--steps", 1, "--working-size", 16, "--model", model) == 0
    with Image.open(out) as result:
        assert result.size == (64, 32)  # still the photo's own size


def test_edit_refuses_a_photo_over_the_full_resolution_cap(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    big = tmp_path / "big.png"
    Image.new("RGB", (6000, 4001)).save(big)
    assert edit("--input", big, "--out", tmp_path / "out.png") == 2
    assert "up to 24 MP: downscale it first" in one_error_line(capsys.readouterr().err)


@pytest.mark.parametrize(("arguments", "steps_run"), [(["--steps", "3"], 3), ([], 4), (["--steps", "4", "--strength", "0.5"], 2)],
                         ids=["steps", "model-default", "strength"])
def test_progress_bar_reaches_the_step_count(model: Path, photo: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
                                             arguments: list[str], steps_run: int) -> None:
    assert edit("--input", photo, "--out", tmp_path / "out.jpg", "--model", model, *arguments) == 0
    stderr = capsys.readouterr().err
    assert "editing" in stderr
    assert f"{steps_run}/{steps_run}" in stderr
    assert f"{steps_run + 1}/" not in stderr


def test_edit_help_shows_the_sampler_help_texts(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["edit", "--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    for name in ("steps", "seed", "strength"):
        assert f"--{name}" in text
        assert " ".join(help_of(SamplerSettings, name).split()) in text


def test_edit_help_shows_the_tiled_render_options(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        main(["edit", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for name in ("tiled_size", "tile_overlap"):
        assert f"--{name.replace('_', '-')}" in text
        assert " ".join(help_of(RenderSettings, name).split()) in text
    assert "'tiled'" in text


@pytest.mark.parametrize(("batch_tokens", "progress"), [(4096, "2/2"), (32, "8/8")])
def test_tiled_edit_reports_every_batchs_steps(model: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
                                               monkeypatch: pytest.MonkeyPatch, batch_tokens: int, progress: str) -> None:
    # 100x50 photo: a 96x48 tiled copy in 32-px tiles of 16 tokens overlapping by 8 (4 by 2 tiles), 2 steps each:
    # one batch of 8 tiles, or 4 batches of 2.
    monkeypatch.setattr(tiling, "TILE_BATCH_TOKENS", batch_tokens)
    path = tmp_path / "wide.png"
    Image.linear_gradient("L").resize((100, 50)).convert("RGB").save(path)
    out = tmp_path / "tiled.png"
    assert edit("--input", path, "--out", out, "--model", model, "--steps", 2, "--render", "tiled", "--tiled-size", 96,
                "--tile-overlap", 8) == 0
    with Image.open(out) as result:
        assert result.size == (100, 50)
    assert progress in capsys.readouterr().err


def test_python_dash_m_engine_help_lists_edit() -> None:
    completed = subprocess.run([sys.executable, "-m", "engine", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr
    assert "usage: python -m engine" in completed.stdout
    assert "edit" in completed.stdout


def bad_photos(tmp_path: Path) -> dict[str, Path]:
    (tmp_path / "folder.png").mkdir()
    (tmp_path / "text.png").write_text("not an image\n" * 10)
    whole = tmp_path / "whole.png"
    Image.effect_noise((64, 64), 60).convert("RGB").save(whole)
    (tmp_path / "truncated.png").write_bytes(whole.read_bytes()[:400])
    return {
        "missing": tmp_path / "missing.png",
        "folder": tmp_path / "folder.png",
        "not-an-image": tmp_path / "text.png",
        "truncated": tmp_path / "truncated.png",
    }


@pytest.mark.parametrize("case", ["missing", "folder", "not-an-image", "truncated"])
def test_bad_photo_fails_fast_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture, case: str) -> None:
    photo = bad_photos(tmp_path)[case]
    out = tmp_path / "out.png"
    # A model that does not exist: the photo must be refused before the model is looked at.
    code = edit("--input", photo, "--out", out, "--model", tmp_path / "no-model-here")
    line = one_error_line(capsys.readouterr().err)
    assert code == 2
    assert str(photo) in line and "no-model-here" not in line
    assert not out.exists()


@pytest.mark.parametrize("name", ["out.gif", "out"])
def test_unknown_output_extension_is_refused_before_anything_runs(photo: Path, tmp_path: Path, capsys: pytest.CaptureFixture, name: str) -> None:
    out = tmp_path / name
    code = edit("--input", photo, "--out", out, "--model", tmp_path / "no-model-here")
    line = one_error_line(capsys.readouterr().err)
    assert code == 2 and str(out) in line and ".png" in line
    assert not out.exists()


def test_output_that_is_a_folder_is_refused(photo: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "already.png"
    out.mkdir()
    assert edit("--input", photo, "--out", out, "--model", tmp_path / "no-model-here") == 2
    assert str(out) in one_error_line(capsys.readouterr().err)


def test_unwritable_output_gives_one_line(model: Path, photo: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder should be")
    out = blocker / "out.png"
    assert edit("--input", photo, "--out", out, "--steps", 1, "--model", model) == 2
    line = one_error_line(capsys.readouterr().err.splitlines()[-1])  # the progress bar came first
    assert f"cannot write {out}" in line
    assert blocker.read_text() == "a file where a folder should be"


@pytest.mark.parametrize(("arguments", "fragment"), [(["--steps", "-1"], "steps"), (["--strength", "0"], "strength"),
                                                     (["--seed", "-5"], "seed"), (["--working-size", "8"], "working_size")])
def test_out_of_range_settings_are_refused(photo: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
                                           arguments: list[str], fragment: str) -> None:
    code = edit("--input", photo, "--out", tmp_path / "out.png", "--model", tmp_path / "no-model-here", *arguments)
    assert code == 2 and fragment in one_error_line(capsys.readouterr().err)


def test_folder_without_a_model_is_refused(photo: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    empty = tmp_path / "empty-model"
    empty.mkdir()
    assert edit("--input", photo, "--out", tmp_path / "out.png", "--model", empty) == 2
    assert str(empty) in one_error_line(capsys.readouterr().err)


def test_unknown_instruction_is_refused(model: Path, photo: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out.png"
    assert edit("--input", photo, "--out", out, "--prompt", "make it a watercolour", "--model", model) == 2
    assert "make it a watercolour" in one_error_line(capsys.readouterr().err)
    assert not out.exists()


@pytest.mark.parametrize("argv", [["edit", "--out", "x.png"], ["edit", "--input", "a.png", "--out", "x.png", "--steps", "many"], []],
                         ids=["missing-input", "steps-not-a-number", "no-command"])
def test_usage_errors_keep_argparse_behaviour(capsys: pytest.CaptureFixture, argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert "usage: python -m engine" in capsys.readouterr().err
