"""Benchmark photos, splits and before/after folders."""

import json

import numpy as np
import pytest
import skimage.data
from PIL import Image

from benchmarks import dataset
from benchmarks.dataset import (
    TEST_PHOTOS,
    TRAIN_PHOTOS,
    area_fit,
    benchmark_pairs,
    crop_box,
    load_benchmark_photo,
    style_slug,
    write_pairs,
)
from benchmarks.styles import STYLES, StyleSpec
from engine.core.errors import InputError
from engine.training import photo_pool


def pretraining_names() -> list[str]:
    """The names load_photos gives, without decoding any photo."""
    if not photo_pool.SHARED_PHOTOS.is_dir():
        pytest.skip(f"{photo_pool.SHARED_PHOTOS} is not on this machine")
    names = [path.stem for path in photo_pool.SHARED_PHOTOS.iterdir() if path.suffix.lower() in photo_pool.PHOTO_SUFFIXES]
    names += [f"skimage-{name}" for name in photo_pool.SKIMAGE_PHOTOS]
    return names + ["skimage-motorcycle_left", "skimage-motorcycle_right"]


def test_test_photos_are_exactly_the_photos_pretraining_held_out():
    training, held_out = photo_pool.split(pretraining_names())
    assert sorted(TEST_PHOTOS) == sorted(held_out)
    assert "skimage-hubble_deep_field" in TEST_PHOTOS
    assert set(TRAIN_PHOTOS) <= set(training)


def test_splits_have_8_training_and_20_test_pairs_with_disjoint_photos():
    train = benchmark_pairs("vintage", "train")
    test = benchmark_pairs("vintage", "test")
    assert len(train) == 8 and len(test) == 20
    assert len({pair.photo_id for pair in train + test}) == 28
    test_sources = {pair.photo_id.rsplit("-", 1)[0] for pair in test}
    assert test_sources == set(TEST_PHOTOS) and not test_sources & {pair.photo_id for pair in train}


def test_the_two_test_crops_of_a_photo_differ_and_lie_at_its_edges():
    assert crop_box(512, 320, "left") == (0, 0, 333, 320)
    assert crop_box(512, 320, "right") == (179, 0, 512, 320)
    assert crop_box(512, 512, "right") == (179, 89, 512, 422)  # at most square, centred
    for name in ("licorice-d", "city"):
        photo = load_benchmark_photo(name)
        left, right = (photo.crop(crop_box(*photo.size, side)) for side in ("left", "right"))
        assert left.tobytes() != right.tobytes()


def test_skimage_photos_load_as_in_pretraining():
    expected = Image.fromarray(skimage.data.chelsea())
    expected.thumbnail((512, 512), Image.Resampling.LANCZOS)
    assert np.array_equal(np.asarray(load_benchmark_photo("skimage-chelsea")), np.asarray(expected))


def test_area_fit_matches_the_backbone_rule():
    fit = area_fit(128, 8)
    assert fit(512, 512) == (128, 128)
    assert fit(512, 320) == (160, 104)  # 128 * sqrt(1.6) = 161.9 -> 160; 128 / sqrt(1.6) = 101.2 -> 104
    with pytest.raises(InputError):
        area_fit(4, 8)


def test_pairs_are_at_the_working_size_and_after_is_the_style_of_before():
    fit = area_fit(96)
    for before, after, photo_id in benchmark_pairs("teal-orange grade", "train", fit):
        assert before.size == after.size and before.size[0] % 8 == 0 and before.size[1] % 8 == 0
        assert abs(before.size[0] * before.size[1] / 96**2 - 1) < 0.2, photo_id
        assert after.tobytes() == STYLES["teal-orange grade"](before).tobytes()


def test_pairs_take_a_backbone_style_size_function():
    pairs = benchmark_pairs("vintage", "test", lambda width, height: (64, 48))
    assert {pair.before.size for pair in pairs} == {(64, 48)}


@pytest.mark.parametrize("bad", [("no such style", "train"), ("vintage", "validation")])
def test_unknown_style_or_split_is_refused(bad):
    with pytest.raises(InputError, match="unknown"):
        benchmark_pairs(*bad)


def test_written_folder_has_matching_before_and_after_names(tmp_path):
    target = write_pairs("cartoon", "test", tmp_path / "cartoon" / "test", area_fit(64))
    before = sorted(path.name for path in (target / "before").iterdir())
    after = sorted(path.name for path in (target / "after").iterdir())
    assert before == after and len(before) == 20
    manifest = json.loads((target / "benchmark.json").read_text())
    assert manifest["style"] == "cartoon" and manifest["split"] == "test"
    assert sorted(f"{pair['id']}.png" for pair in manifest["pairs"]) == before
    for pair in manifest["pairs"]:
        with Image.open(target / "before" / f"{pair['id']}.png") as image:
            assert list(image.size) == pair["size"]
    assert [path.name for path in tmp_path.joinpath("cartoon").iterdir()] == ["test"]  # no temporary left


def test_writing_refuses_an_existing_folder(tmp_path):
    (tmp_path / "exists").mkdir()
    with pytest.raises(InputError, match="already exists"):
        write_pairs("vintage", "train", tmp_path / "exists")


def test_a_failing_write_leaves_nothing_behind(tmp_path, monkeypatch):
    def broken_save(self, *args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        write_pairs("vintage", "train", tmp_path / "out", area_fit(64))
    assert list(tmp_path.iterdir()) == []


def test_style_spec_objects_and_slugs_work_too():
    spec = StyleSpec("inverted", "negative", lambda image: Image.eval(image, lambda value: 255 - value), "global")
    pairs = benchmark_pairs(spec, "train", area_fit(32))
    assert np.array_equal(np.asarray(pairs[0].after), 255 - np.asarray(pairs[0].before))
    assert style_slug("teal-orange grade") == "teal-orange-grade"


def test_a_missing_shipped_photo_is_a_one_line_error(tmp_path):
    with pytest.raises(InputError, match="missing"):
        dataset._photo_array("Dune", tmp_path)


def test_the_trainer_reads_a_written_folder(tmp_path):
    from engine.training.pairs import read_pairs

    target = write_pairs("oil paint", "train", tmp_path / "oil", area_fit(64))
    pairs = read_pairs(target)
    assert sorted(pair.name for pair in pairs) == sorted(TRAIN_PHOTOS)
    assert all(pair.before.size == pair.after.size for pair in pairs)


def test_a_size_function_giving_non_integers_is_refused():
    with pytest.raises(InputError, match="positive ints"):
        benchmark_pairs("vintage", "train", lambda width, height: (width / 4, height / 4))


def test_the_command_line_writes_folders_and_reports_errors_in_one_line(tmp_path, capsys):
    arguments = [str(tmp_path), "--style", "vintage", "--split", "train", "--resolution", "48"]
    assert dataset.main(arguments) == 0
    assert sorted(path.name for path in (tmp_path / "vintage" / "train" / "after").iterdir()) == sorted(
        f"{name}.png" for name in TRAIN_PHOTOS)
    assert dataset.main(arguments) == 1
    assert capsys.readouterr().err.strip().endswith("already exists; remove it or choose another folder")
