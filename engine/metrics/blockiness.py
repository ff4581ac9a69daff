"""How visible a patch grid is: gradient energy across the grid's lines against inside its cells.

A patch-based model that maps each token to its own ``p x p`` block of pixels can leave a step at
every block border. Following the classic blocking measures for block-coded images (e.g. Wang,
Bovik & Evans 2000, "Blind measurement of blocking artifacts in images"), this compares the mean
squared difference between neighbouring pixels that straddle a grid line with the mean over all
other neighbouring pairs, along x and along y:

    blockiness = 1/2 * (E[dx^2 | across a line] / E[dx^2 | inside] + E[dy^2 | across] / E[dy^2 | inside])

About 1 for an image with no grid (a photo's edges fall anywhere), above 1 with a visible grid.
The grid's ``period`` is in pixels of the image measured and may be fractional: a working-size
patch of 8 px lands every ``8 x scale`` px at full resolution, and the lines are rounded to the
nearest pixel border. Compare an edit's value with its target's own, measured alike.
"""

from __future__ import annotations

import torch

from engine.core.errors import InputError


def grid_crossings(length: int, period: float) -> torch.Tensor:
    """``(length - 1,)`` bool: which neighbouring pairs ``(i, i + 1)`` straddle a grid line, the
    lines lying at the pixel borders nearest to ``k * period`` for ``k = 1, 2, ...``."""
    crossings = torch.zeros(max(length - 1, 0), dtype=torch.bool)
    borders = torch.round(torch.arange(1, int(length / period) + 1, dtype=torch.float64) * period).long()
    borders = borders[(borders >= 1) & (borders <= length - 1)]
    crossings[borders - 1] = True
    return crossings


def axis_ratio(differences: torch.Tensor, crossings: torch.Tensor) -> torch.Tensor:
    """``(B,)``: mean squared difference on crossing pairs over the mean on the others, for
    ``differences`` ``(B, C, ..., N)`` along the last dimension."""
    energy = differences.double().pow(2).movedim(-1, 0).flatten(2).mean(dim=2)  # (N, B)
    inside = energy[~crossings].mean(dim=0).clamp(min=1e-12)
    return energy[crossings].mean(dim=0) / inside


def blockiness(images: torch.Tensor, period: float = 8.0) -> torch.Tensor:
    """Blockiness ``(B,)`` of ``(B, C, H, W)`` images for a grid of ``period`` pixels (see the
    module docstring). Each side needs at least two grid lines' worth of pixels."""
    if images.dim() != 4:
        raise InputError(f"blockiness takes (B, C, H, W) images, got {tuple(images.shape)}")
    if period < 2:
        raise InputError(f"the grid period must be at least 2 px, got {period}")
    height, width = images.shape[-2:]
    if min(height, width) < 2 * period + 1:
        raise InputError(f"a {width}x{height} image is too small to measure a {period:g}-px grid; it needs sides of "
                         f"at least {int(2 * period) + 1} px")
    across_x = axis_ratio(images[..., 1:] - images[..., :-1], grid_crossings(width, period))
    across_y = axis_ratio((images[..., 1:, :] - images[..., :-1, :]).transpose(-1, -2), grid_crossings(height, period))
    return (across_x + across_y) / 2
