"""The held-back styles check (benchmarks/held_back.py): folders, the user's commands, scoring
and the missing-OpenCV message without OpenCV; the OpenCV filters themselves when it is installed.

The CLI runs use a tiny random model folder and ``--steps 2``, so they test the plumbing, not the
gain (the random model's edits equal the photo, which the identity score shows)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmarks import held_back
from benchmarks.dataset import TEST_PHOTOS, TRAIN_PHOTOS, area_fit, benchmark_pairs
from benchmarks.held_back import (
    HELD_BACK_STYLES,
    INSTALL_COMMAND,
    CommandFailed,
    OpenCVMissing,
    edit_command,
    held_out_ids,
    import_opencv,
    markdown_table,
    run_command,
    run_style,
    score_edits,
    train_command,
    write_style_folders,
)
from benchmarks.styles import StyleSpec
from engine.core.errors import InputError
from engine.core.imaging import load_photo
from engine.metrics.image_scores import score_images
from engine.models.backbones.embedded.backbone import EmbeddedBackbone

HAVE_OPENCV = importlib.util.find_spec("cv2") is not None
needs_opencv = pytest.mark.skipif(not HAVE_OPENCV, reason=f"OpenCV is not installed; install it with: {INSTALL_COMMAND}")
SMALL = area_fit(32)  # the tiny model's working area, so the folders stay small


def inverted(image: Image.Image) -> Image.Image:
    """A stand-in for an OpenCV filter: deterministic and far from the photo."""
    return Image.fromarray(255 - np.asarray(image.convert("RGB")))


STAND_IN = StyleSpec("stand-in invert", "colours inverted, for tests", inverted, "global")


@pytest.fixture(scope="module")
def tiny_model_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """As tests/studio/conftest.py: the random 'tiny' preset saved where ``--model`` loads it."""
    folder = tmp_path_factory.mktemp("tiny-embedded")
    EmbeddedBackbone.from_config("tiny").save_pretrained(folder)
    return folder


def without_opencv(monkeypatch: pytest.MonkeyPatch) -> None:
    # A None entry in sys.modules makes `import cv2` raise ImportError, as if it were not installed.
    monkeypatch.setitem(sys.modules, "cv2", None)


# -- without OpenCV ---------------------------------------------------------------------------

def test_missing_opencv_names_the_pip_command(monkeypatch):
    without_opencv(monkeypatch)
    with pytest.raises(OpenCVMissing, match="pip install opencv-python-headless"):
        import_opencv()
    with pytest.raises(OpenCVMissing):
        HELD_BACK_STYLES["opencv stylization"](Image.new("RGB", (32, 32)))


def test_main_without_opencv_exits_with_one_line_before_any_work(monkeypatch, tmp_path, capsys):
    without_opencv(monkeypatch)
    assert held_back.main(["--work", str(tmp_path / "work"), "--out", str(tmp_path / "report.json")]) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and INSTALL_COMMAND in error
    assert not (tmp_path / "work").exists() and not (tmp_path / "report.json").exists()


def test_the_module_runs_as_a_script_without_opencv():
    # A fresh interpreter where `import cv2` fails, as on a machine without it.
    code = ("import sys; sys.modules['cv2'] = None; from benchmarks.held_back import main; sys.exit(main(['--test-pairs', '1']))")
    finished = subprocess.run([sys.executable, "-c", code], cwd=held_back.REPOSITORY, capture_output=True, text=True)
    assert finished.returncode == 1
    assert finished.stderr.strip().splitlines() == [f"error: OpenCV is not installed (the held-back styles need it, "
                                                    f"Atelier does not); install it with: {INSTALL_COMMAND}"]


def test_commands_are_the_users_and_pass_steps_and_model_only_when_given(tmp_path):
    pairs, library, photo, out = tmp_path / "pairs", tmp_path / "library", tmp_path / "in.png", tmp_path / "out.png"
    assert train_command(pairs, "my style", library) == [
        sys.executable, "-m", "engine", "train", "--pairs", str(pairs), "--style", "my style", "--library", str(library)]
    assert train_command(pairs, "s", library, "/models/tiny", 2)[-4:] == ["--model", "/models/tiny", "--steps", "2"]
    assert edit_command(photo, out, style="my style", library=library) == [
        sys.executable, "-m", "engine", "edit", "--input", str(photo), "--out", str(out), "--style", "my style", "--library", str(library)]
    # The plain base edit at float32, as style_metrics scores it (the CLI's auto picks bfloat16).
    assert edit_command(photo, out)[-2:] == ["--dtype", "float32"]


def test_style_folders_hold_the_benchmark_splits_with_the_filter_applied(tmp_path):
    train, test = write_style_folders(STAND_IN, tmp_path, SMALL)
    assert train == tmp_path / "stand-in-invert" / "train" and test == tmp_path / "stand-in-invert" / "test"
    assert sorted(path.stem for path in (train / "before").iterdir()) == sorted(TRAIN_PHOTOS)
    assert sorted(path.stem for path in (train / "after").iterdir()) == sorted(TRAIN_PHOTOS)
    ids = held_out_ids(test, 20)
    assert len(ids) == 20 and {photo_id.rsplit("-", 1)[0] for photo_id in ids} == set(TEST_PHOTOS)
    assert held_out_ids(test, 3) == ids[:3]
    for folder, photo_id in ((train, TRAIN_PHOTOS[0]), (test, ids[0])):
        before, after = load_photo(folder / "before" / f"{photo_id}.png"), load_photo(folder / "after" / f"{photo_id}.png")
        assert before.size == after.size and before.width * before.height == pytest.approx(32 * 32, rel=0.3)
        assert np.array_equal(np.asarray(after), np.asarray(inverted(before)))
    with pytest.raises(InputError, match="already exists"):
        write_style_folders(STAND_IN, tmp_path, SMALL)


def test_scores_put_identity_base_and_styled_edits_against_the_after_images(tmp_path):
    _, test = write_style_folders(STAND_IN, tmp_path, SMALL)
    ids = held_out_ids(test, 2)
    base, styled = tmp_path / "base", tmp_path / "styled"
    base.mkdir(), styled.mkdir()
    for photo_id in ids:
        # The base "edit" is the photo itself; the styled one the after-image, slightly off.
        load_photo(test / "before" / f"{photo_id}.png").save(base / f"{photo_id}.png")
        after = np.asarray(load_photo(test / "after" / f"{photo_id}.png")).astype(int)
        Image.fromarray(np.clip(after + 4, 0, 255).astype(np.uint8)).save(styled / f"{photo_id}.png")
    report = score_edits(test, ids, styled, base)
    assert [pair["id"] for pair in report["pairs"]] == ids
    assert report["base"] == report["identity"]
    assert report["styled"]["psnr"] > report["identity"]["psnr"] + 20
    assert report["styled"]["ssim"] > report["identity"]["ssim"] and report["styled"]["style"] < report["identity"]["style"]
    assert report["gain_over_base_db"] == pytest.approx(report["styled"]["psnr"] - report["base"]["psnr"], abs=1e-3)
    expected = score_images(load_photo(styled / f"{ids[0]}.png"), load_photo(test / "after" / f"{ids[0]}.png"))
    assert report["pairs"][0]["styled"]["psnr"] == pytest.approx(float(expected["psnr"][0]), abs=1e-4)
    mean = sum(pair["styled"]["ssim"] for pair in report["pairs"]) / 2
    assert report["styled"]["ssim"] == pytest.approx(mean, abs=1e-4)


def test_markdown_table_has_a_row_per_style_with_every_figure():
    scores = {"identity": {"psnr": 15.0, "ssim": 0.5, "style": 0.3}, "base": {"psnr": 15.5, "ssim": 0.55, "style": 0.28},
              "styled": {"psnr": 21.25, "ssim": 0.75, "style": 0.1}}
    table = markdown_table({"a": {**scores, "gain_over_base_db": 5.75, "training_seconds": 201.4}})
    header, rule, row = table.splitlines()
    assert header.count("|") == rule.count("|") == row.count("|") == 7
    assert row == "| a | 15.00 / 15.50 / 21.25 | +5.75 | 0.500 / 0.550 / 0.750 | 0.3000 / 0.2800 / 0.1000 | 201 |"


def test_a_failing_command_is_reported_with_its_error_line(tmp_path):
    command = edit_command(tmp_path / "missing.png", tmp_path / "out.png")
    with pytest.raises(CommandFailed, match=r"python -m engine edit .*exit code 2: error: .*missing\.png"):
        run_command(command)


def test_run_style_trains_and_edits_through_the_cli(tmp_path, tiny_model_folder):
    library = tmp_path / "library"
    report = run_style(STAND_IN, tmp_path / "work", library, str(tiny_model_folder), steps=2, test_pairs=1, size_fn=SMALL)
    photo_id = held_out_ids(tmp_path / "work" / "stand-in-invert" / "test", 1)[0]
    assert (tmp_path / "work" / "base-edits" / f"{photo_id}.png").is_file()
    styled = load_photo(tmp_path / "work" / "stand-in-invert" / "edits" / f"{photo_id}.png")
    assert styled.size == (32, 32)  # the tiny model's working size
    assert report["train_command"].startswith("python -m engine train --pairs ") and "--steps 2" in report["train_command"]
    assert report["training_output"].startswith("trained stand-in invert:")
    assert [pair["id"] for pair in report["pairs"]] == [photo_id]
    # Inverting is far from the photo: the identity scores low, far below the 40+ dB of a near match.
    assert 0 < report["identity"]["psnr"] < 15 and report["training_seconds"] > 0
    listed = subprocess.run([sys.executable, "-m", "engine", "styles", "list", "--library", str(library)],
                            cwd=held_back.REPOSITORY, capture_output=True, text=True, check=True).stdout
    assert "stand-in invert" in listed


# -- with OpenCV ------------------------------------------------------------------------------

@needs_opencv
@pytest.mark.parametrize("name", list(HELD_BACK_STYLES))
def test_each_opencv_filter_is_deterministic_and_changes_the_photo(name):
    pair = benchmark_pairs(HELD_BACK_STYLES[name], "train")[1]
    again = HELD_BACK_STYLES[name](pair.before)
    assert pair.after.size == pair.before.size and pair.after.mode == "RGB"
    assert np.array_equal(np.asarray(pair.after), np.asarray(again))
    difference = np.abs(np.asarray(pair.after, dtype=np.float32) - np.asarray(pair.before, dtype=np.float32)).mean()
    assert difference > 8  # of 255: a visible change, not rounding


@needs_opencv
def test_the_three_opencv_styles_differ_from_each_other():
    pairs = [benchmark_pairs(spec, "train", SMALL)[0].after for spec in HELD_BACK_STYLES.values()]
    arrays = [np.asarray(image, dtype=np.float32) for image in pairs]
    for first in range(len(arrays)):
        for second in range(first + 1, len(arrays)):
            assert np.abs(arrays[first] - arrays[second]).mean() > 8


@needs_opencv
def test_main_writes_the_table_and_json(tmp_path, tiny_model_folder, capsys):
    out = tmp_path / "report.json"
    assert held_back.main(["--styles", "opencv detail enhance", "--test-pairs", "1", "--steps", "2", "--model",
                           str(tiny_model_folder), "--resolution", "32", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert list(report["styles"]) == ["opencv detail enhance"] and report["steps"] == 2 and report["test_pairs"] == 1
    assert report["parameters"] == {"opencv detail enhance": {"sigma_s": 10.0, "sigma_r": 0.15}}
    assert "| opencv detail enhance |" in capsys.readouterr().out


@needs_opencv
def test_main_refuses_unknown_styles_and_test_pair_counts(capsys):
    assert held_back.main(["--styles", "watercolour"]) == 1
    assert "unknown held-back style(s) watercolour" in capsys.readouterr().err
    assert held_back.main(["--test-pairs", "21"]) == 1
    assert "--test-pairs must lie between 1 and 20" in capsys.readouterr().err
