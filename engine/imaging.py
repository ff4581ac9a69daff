"""Reading photos safely and converting between Pillow images and model tensors."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image


def to_tensor(image: Image.Image) -> torch.Tensor:
    """An RGB Pillow image to a float tensor ``(1, 3, H, W)`` in ``[-1, 1]``."""
    array = np.asarray(image.convert("RGB"), dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0).contiguous()


def to_pil(images: torch.Tensor) -> list[Image.Image]:
    """Float tensors ``(B, 3, H, W)`` in ``[-1, 1]`` to RGB Pillow images (values clamped)."""
    array = ((images.detach().float().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)
    return [Image.fromarray(item.permute(1, 2, 0).cpu().numpy(), mode="RGB") for item in array]


def resize_to(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Resize with a filter that suits the direction: area averaging down, bicubic up."""
    if image.size == size:
        return image
    shrinking = size[0] * size[1] < image.size[0] * image.size[1]
    return image.resize(size, Image.Resampling.BOX if shrinking else Image.Resampling.BICUBIC)
