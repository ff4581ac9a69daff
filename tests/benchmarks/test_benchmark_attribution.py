"""Every shipped benchmark photo is attributed, every attributed file exists, and the copies
match the shared photo set they came from."""

import re
from pathlib import Path

import pytest

from benchmarks.dataset import BENCHMARK_PHOTOS, TEST_PHOTOS, TRAIN_PHOTOS
from engine.training.photo_pool import SHARED_PHOTOS

ASSETS = BENCHMARK_PHOTOS.parent
ROW = re.compile(r"^\| (photos/\S+) \| (train|test) \| (\S+) \| (\S+) \| (licenses/\S+) \|$")


def attribution_rows() -> list[tuple[str, ...]]:
    return [match.groups() for line in (ASSETS / "ATTRIBUTION.md").read_text().splitlines() if (match := ROW.match(line))]


def test_every_listed_file_exists_and_every_shipped_file_is_listed():
    rows = attribution_rows()
    listed = {photo for photo, *_ in rows}
    shipped = {f"photos/{path.name}" for path in BENCHMARK_PHOTOS.iterdir()}
    assert listed == shipped
    for photo, _, package, _, licence in rows:
        assert (ASSETS / photo).is_file() and (ASSETS / licence).is_file()
        assert licence == f"licenses/{package}.copyright"
    assert {path.name for path in (ASSETS / "licenses").iterdir()} == {Path(licence).name for *_, licence in rows}


def test_the_listed_split_matches_the_code_and_only_scikit_image_photos_are_not_shipped():
    splits = {Path(photo).stem: split for photo, split, *_ in attribution_rows()}
    expected = {name: "train" for name in TRAIN_PHOTOS} | {name: "test" for name in TEST_PHOTOS}
    assert splits == {name: split for name, split in expected.items() if not name.startswith("skimage-")}


def test_the_benchmark_assets_stay_small():
    total = sum(path.stat().st_size for path in ASSETS.rglob("*") if path.is_file())
    assert total < 2_000_000


def test_copies_and_sources_match_the_shared_photo_set():
    if not SHARED_PHOTOS.is_dir():
        pytest.skip(f"{SHARED_PHOTOS} is not on this machine")
    sources = (SHARED_PHOTOS / "SOURCES.md").read_text()
    for photo, _, package, source, licence in attribution_rows():
        name = Path(photo).name
        assert f"| {name} | {package} | {source} |" in sources
        assert (ASSETS / photo).read_bytes() == (SHARED_PHOTOS / name).read_bytes()
        assert (ASSETS / licence).read_bytes() == (SHARED_PHOTOS / licence).read_bytes()
