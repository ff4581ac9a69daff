"""Measuring a style on pairs: how close edits come to the after-images.

For each pair, the before-image is edited at the backbone's working size for its aspect ratio
(default steps, seed 0) and compared with the after-image resized alike: PSNR and SSIM. The same
numbers for the unadapted base and for the before-image itself ("identity") give the scale.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from skimage.metrics import structural_similarity

from engine.backbones.base import Backbone
from engine.bench.metrics import psnr
from engine.edit import edit_photo
from engine.imaging import resize_to, to_tensor
from engine.sampling.sampler import SamplerSettings


def ssim(prediction: Image.Image, target: Image.Image) -> float:
    """Structural similarity of two RGB images of one size (Wang et al. 2004; scikit-image)."""
    return float(structural_similarity(np.asarray(prediction), np.asarray(target), channel_axis=2, data_range=255))


def image_psnr(prediction: Image.Image, target: Image.Image) -> float:
    return float(psnr((to_tensor(prediction) + 1) / 2, (to_tensor(target) + 1) / 2)[0])


def score_pairs(backbone: Backbone, pairs: list[tuple[Image.Image, Image.Image]], edit=None) -> dict[str, float]:
    """Mean PSNR/SSIM of ``edit(before)`` (default: a plain edit) against the after-images, and
    of the before-images themselves."""
    edit = edit or (lambda photo: edit_photo(backbone, photo, SamplerSettings()))
    scores = {"psnr": [], "ssim": [], "identity_psnr": [], "identity_ssim": []}
    with torch.inference_mode():
        for before, after in pairs:
            result = edit(before)
            target = resize_to(after.convert("RGB"), result.size)
            source = resize_to(before.convert("RGB"), result.size)
            scores["psnr"].append(image_psnr(result, target))
            scores["ssim"].append(ssim(result, target))
            scores["identity_psnr"].append(image_psnr(source, target))
            scores["identity_ssim"].append(ssim(source, target))
    return {name: round(sum(values) / len(values), 4) for name, values in scores.items()}
