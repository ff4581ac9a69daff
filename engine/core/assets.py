"""Files the engine ships with, under the repository's ``assets/`` folder.

* ``assets/base``: the embedded model (:mod:`engine.models.backbones.embedded`).
* ``assets/benchmark/photos``: 512 px photos with their licences (``assets/benchmark/ATTRIBUTION.md``);
  the benchmarks use them all, the product one of them as the sample an imported LoRA is shown on.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from engine.core.errors import InputError
from engine.core.imaging import load_photo

REPOSITORY = Path(__file__).resolve().parents[2]
ASSETS = REPOSITORY / "assets"
BASE_MODEL = ASSETS / "base"
SHIPPED_PHOTOS = ASSETS / "benchmark" / "photos"
SHIPPED_PHOTO_MAX_SIDE = 512  # as engine.training.photo_pool.load_photos reads every photo


def load_shipped_photo(name: str, folder: Path = SHIPPED_PHOTOS) -> Image.Image:
    """The shipped photo ``folder/NAME.jpg``, thumbnailed (Lanczos) to at most 512 px on the long side."""
    path = folder / f"{name}.jpg"
    if not path.is_file():
        raise InputError(f"shipped photo {path} is missing; restore assets/benchmark/photos from the repository")
    image = load_photo(path)
    image.thumbnail((SHIPPED_PHOTO_MAX_SIDE, SHIPPED_PHOTO_MAX_SIDE), Image.Resampling.LANCZOS)
    return image
