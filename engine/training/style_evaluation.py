"""Measuring a style on pairs: how close edits come to the after-images.

For each pair, the before-image is edited at the backbone's working size for its aspect ratio
(default steps, seed 0) and compared with the after-image resized alike, with the benchmark's
scores (:func:`engine.metrics.image_scores.score_images`: PSNR, SSIM, style distance). The same
numbers for the before-image itself ("identity") give the scale.
"""

from __future__ import annotations

from typing import Callable

import torch
from PIL import Image

from engine.core.imaging import resize_to
from engine.metrics.image_scores import score_images
from engine.models.backbones.base import Backbone
from engine.models.editing import edit_photo
from engine.models.sampling.sampler import SamplerSettings


def evaluate_on_pairs(backbone: Backbone, pairs: list[tuple[Image.Image, Image.Image]],
                edit: Callable[[Image.Image], Image.Image] | None = None) -> dict[str, float]:
    """Mean ``psnr``, ``ssim`` and ``style`` of ``edit(before)`` (default: a plain edit) against
    the after-images, and ``identity_*`` of the before-images themselves."""
    edit = edit or (lambda photo: edit_photo(backbone, photo, SamplerSettings()))
    totals: dict[str, float] = {}
    with torch.inference_mode():
        for before, after in pairs:
            result = edit(before)
            target = resize_to(after.convert("RGB"), result.size)
            source = resize_to(before.convert("RGB"), result.size)
            for prefix, image in (("", result), ("identity_", source)):
                for name, value in score_images(image, target).items():
                    if name != "structure":
                        totals[prefix + name] = totals.get(prefix + name, 0.0) + float(value[0])
    return {name: round(value / len(pairs), 4) for name, value in totals.items()}
