"""``python -m engine subjects``: train a subject from a zip of photos, list it, generate it, and
the one-line errors for bad input, on a tiny random model and a temporary library."""

import sys
import zipfile
from pathlib import Path

import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))
from subject_fixtures import tiny_backbone, write_photos  # noqa: E402

from engine.cli import main  # noqa: E402


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model")
    tiny_backbone().save_pretrained(folder)
    return str(folder)


def run(*argv):
    return main([str(item) for item in argv])


def test_train_list_and_sample_a_subject(tmp_path, tiny_model, capsys):
    photos = write_photos(tmp_path / "photos", 3)
    archive = tmp_path / "photos.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        for path in sorted(photos.iterdir()):
            handle.write(path, path.name)
    common = ("--library", tmp_path / "library", "--model", tiny_model)
    assert run("subjects", "train", "--images", archive, "--name", "Red disc", "--trigger", "sks disc", "--steps", 4,
               "--batch-size", 2, "--rank", 2, *common) == 0
    assert "trained subject Red disc from 3 photos" in capsys.readouterr().out
    assert run("subjects", "list", "--library", tmp_path / "library") == 0
    listing = capsys.readouterr().out
    assert "Red disc" in listing and "3 photos" in listing and "sks disc" in listing and "1 subject(s)" in listing
    assert run("subjects", "sample", "Red disc", "--out", tmp_path / "sample.png", "--seed", 2, *common) == 0
    assert Image.open(tmp_path / "sample.png").size == (32, 32)
    assert run("edit", "--input", photos / "view0.png", "--out", tmp_path / "edited.png", "--style", "Red disc", *common) == 2
    assert "is a subject, not a style" in capsys.readouterr().err


def test_errors_are_one_line_and_name_the_file(tmp_path, tiny_model, capsys):
    photos = write_photos(tmp_path / "photos", 3)
    (photos / "notes.txt").write_text("not a photo")
    assert run("subjects", "train", "--images", photos, "--name", "Rex", "--library", tmp_path / "library", "--model", tiny_model) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: notes.txt is a .txt file, not a photo") and error.count("\n") == 1
    assert run("subjects", "train", "--images", photos, "--name", "a/b", "--library", tmp_path / "library") == 2
    assert "contains '/'" in capsys.readouterr().err
    assert run("subjects", "sample", "Nobody", "--out", tmp_path / "x.png", "--library", tmp_path / "library", "--model", tiny_model) == 2
    assert "there is no style 'Nobody'" in capsys.readouterr().err
    assert not list((tmp_path / "library").rglob("*.safetensors"))
