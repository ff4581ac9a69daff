"""The pretraining photos and their random crops (the data recipe of the embedded model).

Sources: every image in ``../shared/photos`` (73 wallpapers and photos, 512 px on the long side)
and the colour photos scikit-image ships. A fixed, name-sorted split holds back every eighth
photo for evaluation. Training crops take a random scale (35-100 % of the largest crop of the
bucket's aspect ratio), a random position and a random horizontal flip, and are resized with
antialiasing to one of a few buckets of about ``native_resolution**2`` pixels, so the model sees
several aspect ratios (RoPE positions make any grid valid).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from engine.core.errors import InputError

SHARED_PHOTOS = Path(__file__).resolve().parents[3] / "shared" / "photos"
SKIMAGE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "retina")
PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}
HOLD_OUT_EVERY = 8
HOLDOUT_LIST = SHARED_PHOTOS.parent / "holdout.txt"


def held_out_stems(listing: Path = HOLDOUT_LIST) -> set[str]:
    """Case-folded file stems that must never be trained on (``../shared/holdout.txt``; ``#`` starts a
    comment). A missing list holds nothing back."""
    if not listing.is_file():
        return set()
    lines = (line.split("#", 1)[0].strip() for line in listing.read_text().splitlines())
    return {line.casefold() for line in lines if line}


def skimage_photos() -> dict[str, np.ndarray]:
    """scikit-image's bundled colour photos, plus both motorcycle views, as ``(H, W, 3)`` uint8."""
    import skimage.data

    photos = {f"skimage-{name}": getattr(skimage.data, name)() for name in SKIMAGE_PHOTOS}
    left, right, _ = skimage.data.stereo_motorcycle()
    photos["skimage-motorcycle_left"], photos["skimage-motorcycle_right"] = left, right
    return photos


def load_photos(folder: Path = SHARED_PHOTOS, include_skimage: bool = True, max_side: int = 512) -> dict[str, np.ndarray]:
    """All photos by name, as RGB uint8 arrays no larger than ``max_side`` on the long side."""
    if not folder.is_dir():
        raise InputError(f"photo folder {folder} not found; pass --photos DIR")
    photos: dict[str, np.ndarray] = {}
    never = held_out_stems()
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() in PHOTO_SUFFIXES and path.stem.casefold() not in never:
            with Image.open(path) as image:
                image = image.convert("RGB")
                image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
                photos[path.stem] = np.asarray(image)
    if include_skimage:
        for name, array in skimage_photos().items():
            image = Image.fromarray(array)
            image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
            photos[name] = np.asarray(image)
    if len(photos) < 2 * HOLD_OUT_EVERY:
        raise InputError(f"{folder} has only {len(photos)} photos; pretraining needs at least {2 * HOLD_OUT_EVERY}")
    return photos


def split(names: list[str]) -> tuple[list[str], list[str]]:
    """(training names, held-out names): every ``HOLD_OUT_EVERY``-th name in sorted order is held out."""
    ordered = sorted(names)
    held_out = ordered[HOLD_OUT_EVERY // 2 :: HOLD_OUT_EVERY]
    return [name for name in ordered if name not in held_out], held_out


def buckets(native_resolution: int, multiple: int) -> list[tuple[int, int]]:
    """(width, height) sizes of about ``native_resolution**2`` pixels for aspect ratios 1, 4:3, 3:4, 16:9 and 9:16."""
    sizes = []
    for aspect in (1.0, 4 / 3, 3 / 4, 16 / 9, 9 / 16):
        width = round(native_resolution * math.sqrt(aspect) / multiple) * multiple
        height = round(native_resolution / math.sqrt(aspect) / multiple) * multiple
        sizes.append((width, height))
    return sizes


@dataclass
class CropSampler:
    """Random crops of a set of photos, as float tensors in ``[0, 1]``."""

    photos: list[torch.Tensor]  # each (3, H, W) float in [0, 1]
    min_scale: float = 0.35
    weights: torch.Tensor | None = None  # (N,) chance of each photo per crop; None draws evenly

    @classmethod
    def from_arrays(cls, arrays: list[np.ndarray], weights: list[float] | None = None) -> "CropSampler":
        return cls([torch.from_numpy(np.array(array)).permute(2, 0, 1).float() / 255.0 for array in arrays],
                   weights=None if weights is None else torch.tensor(weights, dtype=torch.float64))

    def pick(self, generator: torch.Generator) -> torch.Tensor:
        if self.weights is None:
            return self.photos[int(torch.randint(len(self.photos), (1,), generator=generator))]
        return self.photos[int(torch.multinomial(self.weights, 1, generator=generator))]

    def batch(self, size: tuple[int, int], batch_size: int, generator: torch.Generator) -> torch.Tensor:
        """``(batch_size, 3, height, width)`` crops for ``size = (width, height)``."""
        width, height = size
        crops = []
        for _ in range(batch_size):
            photo = self.pick(generator)
            _, photo_height, photo_width = photo.shape
            largest = min(photo_width / width, photo_height / height)
            scale = self.min_scale + (1 - self.min_scale) * float(torch.rand((), generator=generator))
            crop_width = max(8, int(width * largest * math.sqrt(scale)))
            crop_height = max(8, int(height * largest * math.sqrt(scale)))
            left = int(torch.randint(photo_width - crop_width + 1, (1,), generator=generator))
            top = int(torch.randint(photo_height - crop_height + 1, (1,), generator=generator))
            crop = photo[:, top : top + crop_height, left : left + crop_width]
            if float(torch.rand((), generator=generator)) < 0.5:
                crop = crop.flip(-1)
            crops.append(F.interpolate(crop[None], size=(height, width), mode="bilinear", antialias=True, align_corners=False)[0])
        return torch.stack(crops).clamp(0, 1)


def fit_photo(array: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """A whole photo resized (area-averaged) to ``size = (width, height)``: ``(1, 3, H, W)`` in ``[0, 1]``."""
    image = Image.fromarray(array).resize(size, Image.Resampling.BOX)
    return torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float() / 255.0
