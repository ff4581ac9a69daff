"""The generic photo edits the embedded model is pretrained on, selected by an instruction.

Tone, colour, exposure, blur, sharpen and grey only: global or very local operations a photo
editor's basic panel has. Nothing here resembles a style a benchmark might use (no lines,
posterising, sepia, paint or halftone), so styles learned later are new to the model.
All functions map images ``(B, 3, H, W)`` in ``[0, 1]`` to the same shape, deterministically.
"""

from __future__ import annotations

from typing import Callable

import torch

from engine.core.filters import gaussian_blur

LUMA = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)


def luminance(images: torch.Tensor) -> torch.Tensor:
    """ITU-R BT.601 luma ``(B, 1, H, W)``."""
    return (images * LUMA.to(images)).sum(dim=1, keepdim=True)


def exposure(images: torch.Tensor, stops: float) -> torch.Tensor:
    """Scale linear light by ``2**stops`` (sRGB approximated by a 2.2 gamma)."""
    linear = images.clamp(0, 1) ** 2.2
    return (linear * 2.0**stops).clamp(0, 1) ** (1 / 2.2)


def contrast(images: torch.Tensor, factor: float) -> torch.Tensor:
    return ((images - 0.5) * factor + 0.5).clamp(0, 1)


def white_balance(images: torch.Tensor, warmth: float) -> torch.Tensor:
    """Warm (``warmth > 0``) or cool a photo by scaling red against blue."""
    gains = torch.tensor([1 + warmth, 1.0, 1 - warmth], dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    return (images * gains).clamp(0, 1)


def saturation(images: torch.Tensor, factor: float) -> torch.Tensor:
    grey = luminance(images)
    return (grey + (images - grey) * factor).clamp(0, 1)


def sharpen(images: torch.Tensor) -> torch.Tensor:
    """Unsharp mask: add back the detail a 1-pixel blur removes."""
    return (images + 1.0 * (images - gaussian_blur(images, 1.0))).clamp(0, 1)


GENERIC_EDIT_FUNCTIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "brighter": lambda images: exposure(images, 0.7),
    "darker": lambda images: exposure(images, -0.7),
    "more contrast": lambda images: contrast(images, 1.4),
    "less contrast": lambda images: contrast(images, 0.65),
    "warmer": lambda images: white_balance(images, 0.12),
    "cooler": lambda images: white_balance(images, -0.12),
    "more saturated": lambda images: saturation(images, 1.6),
    "grey": lambda images: luminance(images).expand_as(images),
    "blur": lambda images: gaussian_blur(images, 1.2),
    "sharpen": sharpen,
}
