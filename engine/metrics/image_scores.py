"""The benchmark's scores of an edited image against its target: PSNR, SSIM, style and
structure distances, for ``(B, 3, H, W)`` tensors in ``[0, 1]`` or Pillow images.

* PSNR: :func:`engine.metrics.image_quality.psnr` (higher is better).
* SSIM: Wang, Bovik, Sheikh & Simoncelli (2004), "Image quality assessment: from error visibility
  to structural similarity", through scikit-image with the paper's settings (11 x 11 Gaussian window
  of sigma 1.5, population covariances), averaged over the RGB channels (higher is better, 1 at
  equality).
* style and structure: :mod:`engine.metrics.perceptual` (lower is better, 0 at equality).
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from engine.core.errors import InputError
from engine.metrics.image_quality import psnr
from engine.metrics.perceptual import RandomFeatures, structure_distance, style_distance

SSIM_WINDOW_SIGMA = 1.5


def to_unit_tensor(images: Image.Image | list[Image.Image]) -> torch.Tensor:
    """Pillow image(s) of one size to ``(B, 3, H, W)`` float32 in ``[0, 1]``."""
    images = [images] if isinstance(images, Image.Image) else images
    arrays = [np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0 for image in images]
    if len({array.shape for array in arrays}) != 1:
        raise InputError("images in one batch must share a size; score them one by one")
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def ssim(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Structural similarity ``(B,)`` of ``(B, 3, H, W)`` images in ``[0, 1]``, sides >= 11 px."""
    from skimage.metrics import structural_similarity

    if prediction.shape != target.shape:
        raise InputError(f"images differ in shape, {tuple(prediction.shape)} vs {tuple(target.shape)}; resize one to the other")
    if min(prediction.shape[-2:]) < 11:
        raise InputError(f"SSIM needs sides of at least 11 px, got {tuple(prediction.shape[-2:])}")
    scores = []
    for a, b in zip(prediction.double(), target.double()):
        scores.append(structural_similarity(a.permute(1, 2, 0).numpy(), b.permute(1, 2, 0).numpy(), channel_axis=-1,
                                            data_range=1.0, gaussian_weights=True, sigma=SSIM_WINDOW_SIGMA,
                                            use_sample_covariance=False))
    return torch.tensor(scores, dtype=torch.float64)


def score_images(prediction: torch.Tensor | Image.Image, target: torch.Tensor | Image.Image,
                features: RandomFeatures | None = None) -> dict[str, torch.Tensor]:
    """All four scores, each ``(B,)``: ``psnr`` (dB), ``ssim``, ``style``, ``structure``."""
    prediction = to_unit_tensor(prediction) if isinstance(prediction, Image.Image) else prediction
    target = to_unit_tensor(target) if isinstance(target, Image.Image) else target
    if prediction.shape != target.shape:
        raise InputError(f"prediction {tuple(prediction.shape)} and target {tuple(target.shape)} differ in shape")
    return {
        "psnr": psnr(prediction, target),
        "ssim": ssim(prediction, target),
        "style": style_distance(prediction, target, features),
        "structure": structure_distance(prediction, target, features),
    }
