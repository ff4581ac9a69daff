"""Sorting uploaded before/after photos into pairs as they arrive, naming what is wrong with each.

The studio's Train page takes the photos as two lists of files (or a zip with ``before/`` and
``after/``). Files pair up by name without extension, as in :func:`engine.training.pairs.read_pairs`.
This is the quick check made on upload (image headers and a small thumbnail), so the page can
show every pair and mark the ones that cannot be used; :func:`read_pairs` still makes the full
check when training starts. Every problem names the file and says what to do.
"""

from __future__ import annotations

import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from PIL import Image, ImageOps

from engine.core.errors import InputError
from engine.core.files import atomic_path
from engine.core.imaging import DECODE_ERRORS
from engine.training.pairs import ASPECT_TOLERANCE, MIN_PAIRS

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp")
# The model trains on crops near its native size (well under one megapixel), so a bigger photo
# only costs memory and load time; 4096 x 4096 leaves room for any reasonable crop of a photo.
MAX_PAIR_PIXELS = 4096 * 4096
THUMBNAIL_SIDE = 192
ORIENTATION_TAG = 0x0112
TURNED = (5, 6, 7, 8)  # EXIF orientations that swap width and height


@dataclass(frozen=True)
class UploadedImage:
    """One uploaded file: its upright size and thumbnail, or the problem that makes it unusable."""

    path: Path
    size: tuple[int, int] | None = None
    thumbnail: Image.Image | None = None
    problem: str = ""


@dataclass(frozen=True)
class UploadedPair:
    """The files uploaded under one name; ``problem`` says why the pair cannot be used (empty if it can)."""

    name: str
    before: Path | None
    after: Path | None
    problem: str = ""

    @property
    def usable(self) -> bool:
        return not self.problem


def inspect_image(path: Path, thumbnail_side: int = THUMBNAIL_SIDE) -> UploadedImage:
    """Check an uploaded file is a photo within :data:`MAX_PAIR_PIXELS` and make its thumbnail."""
    path = Path(path)
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        kind = f"a {path.suffix.lower()} file" if path.suffix else "a file without an extension"
        return UploadedImage(path, problem=f"{path.name} is {kind}, not a photo; upload PNG, JPEG, WebP or TIFF images")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
                if width * height > MAX_PAIR_PIXELS:
                    return UploadedImage(path, problem=too_large(path.name, width, height))
                turned = image.getexif().get(ORIENTATION_TAG) in TURNED
                image.draft("RGB", (thumbnail_side, thumbnail_side))  # JPEG decodes at a fraction of its size
                thumbnail = ImageOps.exif_transpose(image).convert("RGB")
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        return UploadedImage(path, problem=f"{path.name} is too large to decode safely; downscale it to at most "
                                           f"{pixel_limit()} first")
    except DECODE_ERRORS as error:
        return UploadedImage(path, problem=f"{path.name} cannot be read as an image ({type(error).__name__}); "
                                           "save it again as PNG or JPEG")
    thumbnail.thumbnail((thumbnail_side, thumbnail_side))
    return UploadedImage(path, (height, width) if turned else (width, height), thumbnail)


def sort_pairs(befores: Sequence[UploadedImage], afters: Sequence[UploadedImage]) -> list[UploadedPair]:
    """Pair the inspected files by name, by name order; every name gets a pair, with its problem."""
    sides = {"before": _by_name(befores), "after": _by_name(afters)}
    pairs = []
    for name in sorted(set(sides["before"]) | set(sides["after"])):
        before, after = sides["before"].get(name, []), sides["after"].get(name, [])
        problems = []
        for side, images in (("before", before), ("after", after)):
            if not images:
                problems.append(f"no {side} photo is named {name!r}")
            elif len(images) > 1:
                problems.append(f"{len(images)} {side} photos are named {name!r} "
                                f"({', '.join(image.path.name for image in images)}); keep one")
            problems += [image.problem for image in images if image.problem]
        if not problems:
            problems += _aspect_problem(before[0], after[0])
        pairs.append(UploadedPair(name, before[0].path if before else None, after[0].path if after else None, "; ".join(problems)))
    return pairs


def check_ready(pairs: Sequence[UploadedPair]) -> list[UploadedPair]:
    """The pairs to train on; refuses while any pair has a problem or fewer than two are left."""
    broken = [pair for pair in pairs if not pair.usable]
    if broken:
        listed = "; ".join(f"{pair.name}: {pair.problem}" for pair in broken[:3])
        more = f" (and {len(broken) - 3} more)" if len(broken) > 3 else ""
        raise InputError(f"{len(broken)} pair(s) cannot be used — {listed}{more}. Fix the uploads or remove those pairs")
    if len(pairs) < MIN_PAIRS:
        raise InputError(f"{len(pairs)} pair(s) uploaded; a style needs at least {MIN_PAIRS} before/after pairs (about 8 is best)")
    return list(pairs)


def write_pairs_folder(pairs: Sequence[UploadedPair], folder: Path) -> Path:
    """Copy usable pairs into ``folder/before`` and ``folder/after`` (the layout
    :func:`engine.training.pairs.read_pairs` reads); returns ``folder``."""
    for pair in check_ready(pairs):
        for side, source in (("before", pair.before), ("after", pair.after)):
            with atomic_path(folder / side / f"{pair.name}{source.suffix.lower()}") as temporary:
                shutil.copyfile(source, temporary)
    return folder


def too_large(file_name: str, width: int, height: int) -> str:
    return (f"{file_name} is {width}×{height} px ({width * height / 1e6:.1f} megapixels); the limit is "
            f"{pixel_limit()}: downscale it")


def pixel_limit() -> str:
    """The size limit as the page says it."""
    side = int(MAX_PAIR_PIXELS ** 0.5)
    return f"{MAX_PAIR_PIXELS / 1e6:.1f} megapixels ({side}×{side})"


def _by_name(images: Sequence[UploadedImage]) -> dict[str, list[UploadedImage]]:
    named: dict[str, list[UploadedImage]] = {}
    for image in images:
        named.setdefault(image.path.stem, []).append(image)
    return named


def _aspect_problem(before: UploadedImage, after: UploadedImage) -> list[str]:
    (before_width, before_height), (after_width, after_height) = before.size, after.size
    if abs((before_width / before_height) / (after_width / after_height) - 1) <= ASPECT_TOLERANCE:
        return []
    return [f"{before.path.name} ({before_width}×{before_height}) and {after.path.name} ({after_width}×{after_height}) "
            "have different aspect ratios; crop them alike"]
