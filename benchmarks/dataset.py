"""The five-style benchmark's photos, splits and before/after pairs.

Photos: 13 JPEGs shipped in ``assets/benchmark/photos`` (512 px copies from ``../shared/photos``,
attributed in ``assets/benchmark/ATTRIBUTION.md``) and 5 photos scikit-image installs, read
exactly as :func:`engine.training.photo_pool.load_photos` reads them (thumbnail to 512 px).

Splits, fixed here and the same for every style:

* ``train``: 8 whole photos the base model saw in pretraining (a mix of people, an animal,
  objects, a vehicle, nature and architecture), as an artist would give a few examples.
* ``test``: the 10 photos :func:`engine.training.photo_pool.split` holds out of pretraining, so the
  base model never saw them, each cut into two fixed crops (left and right, 65 % of the width,
  at most square) for 20 test pairs.

Each "before" is resized (area-averaged down, bicubic up) to the size a ``size_fn(width,
height)`` gives, e.g. a backbone's ``fit_size``; its "after" is the style applied at that size, so
the pair is exactly consistent at the working resolution.
"""

from __future__ import annotations

import argparse
import functools
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Callable, Literal, NamedTuple

import numpy as np
from PIL import Image

from benchmarks.styles import STYLES, StyleSpec
from engine.core.assets import SHIPPED_PHOTO_MAX_SIDE, SHIPPED_PHOTOS, load_shipped_photo
from engine.core.errors import AtelierError, InputError
from engine.core.imaging import resize_to

BENCHMARK_PHOTOS = SHIPPED_PHOTOS
MAX_SIDE = SHIPPED_PHOTO_MAX_SIDE

TRAIN_PHOTOS = (
    "skimage-astronaut", "skimage-chelsea", "skimage-coffee", "skimage-motorcycle_left",
    "Dune", "Garden", "plasma-ColorfulCups", "plasma-Grey",
)
# Exactly engine.training.photo_pool.split's held-out names for ../shared/photos plus scikit-image;
# tests/benchmarks/test_benchmark_dataset.py checks they still agree.
TEST_PHOTOS = (
    "Float-into-MATE", "TwoWings", "city", "licorice-d", "plasma-BytheWater", "plasma-EveningGlow",
    "plasma-Kay", "plasma-SafeLanding", "skimage-hubble_deep_field", "the-mouse",
)
TEST_CROPS = ("left", "right")
CROP_WIDTH_FRACTION = 0.65
DEFAULT_RESOLUTION = 128  # the embedded model's native area is 128 x 128
DEFAULT_MULTIPLE = 8

Split = Literal["train", "test"]
SizeFunction = Callable[[int, int], tuple[int, int]]


class BenchmarkPair(NamedTuple):
    before: Image.Image
    after: Image.Image
    photo_id: str


def area_fit(resolution: int = DEFAULT_RESOLUTION, multiple: int = DEFAULT_MULTIPLE) -> SizeFunction:
    """A ``size_fn`` like a backbone's ``fit_size``: about ``resolution**2`` pixels, the photo's
    aspect ratio, sides rounded to ``multiple``."""
    if resolution < multiple or multiple < 1:
        raise InputError(f"resolution {resolution} must be at least the multiple {multiple} (>= 1)")

    def fit_size(width: int, height: int) -> tuple[int, int]:
        scale = (resolution**2 / (width * height)) ** 0.5
        return (max(multiple, round(width * scale / multiple) * multiple),
                max(multiple, round(height * scale / multiple) * multiple))

    return fit_size


@functools.lru_cache(maxsize=None)
def _photo_array(name: str, folder: Path) -> np.ndarray:
    if name.startswith("skimage-"):
        import skimage.data

        if name == "skimage-motorcycle_left":
            array = skimage.data.stereo_motorcycle()[0]
        else:
            array = getattr(skimage.data, name.removeprefix("skimage-"))()
        image = Image.fromarray(array).convert("RGB")
    else:
        image = load_shipped_photo(name, folder)
    image.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
    array = np.asarray(image)
    array.flags.writeable = False
    return array


def load_benchmark_photo(name: str, folder: Path = BENCHMARK_PHOTOS) -> Image.Image:
    """A benchmark photo by its pretraining name, at most 512 px on the long side."""
    if name not in TRAIN_PHOTOS + TEST_PHOTOS:
        raise InputError(f"{name!r} is not a benchmark photo; known: {', '.join(TRAIN_PHOTOS + TEST_PHOTOS)}")
    return Image.fromarray(_photo_array(name, folder))


def crop_box(width: int, height: int, side: str) -> tuple[int, int, int, int]:
    """``(left, top, right, bottom)`` of a test crop: ``CROP_WIDTH_FRACTION`` of the width, the
    full height but at most square, vertically centred, at the ``left`` or ``right`` edge."""
    crop_width = round(CROP_WIDTH_FRACTION * width)
    crop_height = min(height, crop_width)
    top = (height - crop_height) // 2
    left = {"left": 0, "right": width - crop_width}[side]
    return left, top, left + crop_width, top + crop_height


def benchmark_photos(split: Split, folder: Path = BENCHMARK_PHOTOS) -> list[tuple[Image.Image, str]]:
    """The split's full-resolution "before" images with their ids (``name`` or ``name-left``)."""
    if split == "train":
        return [(load_benchmark_photo(name, folder), name) for name in TRAIN_PHOTOS]
    if split == "test":
        photos = []
        for name in TEST_PHOTOS:
            photo = load_benchmark_photo(name, folder)
            for side in TEST_CROPS:
                photos.append((photo.crop(crop_box(*photo.size, side)), f"{name}-{side}"))
        return photos
    raise InputError(f"unknown split {split!r}; use train or test")


def style_spec(style: str | StyleSpec) -> StyleSpec:
    if isinstance(style, StyleSpec):
        return style
    if style not in STYLES:
        raise InputError(f"unknown style {style!r}; known: {', '.join(STYLES)}")
    return STYLES[style]


def benchmark_pairs(style: str | StyleSpec, split: Split, size_fn: SizeFunction | None = None,
                    folder: Path = BENCHMARK_PHOTOS) -> list[BenchmarkPair]:
    """``(before, after, photo_id)`` for every photo of ``split``, before resized to
    ``size_fn(width, height)`` (default :func:`area_fit` at 128) and after = style(before)."""
    spec = style_spec(style)
    size_fn = size_fn or area_fit()
    pairs = []
    for photo, photo_id in benchmark_photos(split, folder):
        size = tuple(size_fn(*photo.size))
        if len(size) != 2 or not all(isinstance(side, (int, np.integer)) and side >= 1 for side in size):
            raise InputError(f"size_fn gave {size} for {photo.size}; it must return (width, height) of positive ints")
        size = (int(size[0]), int(size[1]))
        before = resize_to(photo, size)
        pairs.append(BenchmarkPair(before, spec(before), photo_id))
    return pairs


def style_slug(name: str) -> str:
    """A style name as a folder name: ``teal-orange grade`` -> ``teal-orange-grade``."""
    return name.replace(" ", "-")


def write_pairs(style: str | StyleSpec, split: Split, folder: str | Path, size_fn: SizeFunction | None = None) -> Path:
    """Write a style's pairs as ``folder/before/<id>.png`` and ``folder/after/<id>.png`` (the
    matching-names layout of ai-toolkit's control/target folders and SimpleTuner's conditioning
    datasets) plus ``folder/benchmark.json`` naming style, split and sizes. The folder is built
    beside its target and renamed into place, so it appears complete or not at all; an existing
    folder is refused rather than merged."""
    spec = style_spec(style)
    target = Path(folder)
    if target.exists():
        raise InputError(f"{target} already exists; remove it or choose another folder")
    pairs = benchmark_pairs(spec, split, size_fn)
    target.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        (building / "before").mkdir()
        (building / "after").mkdir()
        for before, after, photo_id in pairs:
            before.save(building / "before" / f"{photo_id}.png")
            after.save(building / "after" / f"{photo_id}.png")
        manifest = {"style": spec.name, "description": spec.description, "kind": spec.kind, "split": split,
                    "pairs": [{"id": photo_id, "size": list(before.size)} for before, _, photo_id in pairs]}
        (building / "benchmark.json").write_text(json.dumps(manifest, indent=2) + "\n")
        building.chmod(0o755)  # mkdtemp makes owner-only folders
        building.rename(target)
    finally:
        # Only a failed build is still at the temporary name.
        shutil.rmtree(building, ignore_errors=True)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the five-style benchmark as before/after folders.")
    parser.add_argument("output", type=Path, help="folder to create; gets <style>/<split>/before|after")
    parser.add_argument("--style", choices=list(STYLES), action="append", help="style(s) to write (default: all)")
    parser.add_argument("--split", choices=["train", "test"], action="append", help="split(s) to write (default: both)")
    parser.add_argument("--resolution", type=int, default=DEFAULT_RESOLUTION, help="side of the square working area in pixels")
    arguments = parser.parse_args(argv)
    try:
        size_fn = area_fit(arguments.resolution)
        for name in arguments.style or list(STYLES):
            for split in arguments.split or ["train", "test"]:
                print(write_pairs(name, split, arguments.output / style_slug(name) / split, size_fn))
    except AtelierError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
