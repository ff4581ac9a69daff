"""Packing spatial tensors into token sequences and back (ViT / FLUX patchify)."""

from __future__ import annotations

import torch


def pack(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """``(B, C, H, W)`` to ``(B, (H/p)*(W/p), C*p*p)``, patches in row-major order."""
    batch, channels, height, width = images.shape
    rows, cols = height // patch_size, width // patch_size
    patches = images.reshape(batch, channels, rows, patch_size, cols, patch_size)
    return patches.permute(0, 2, 4, 1, 3, 5).reshape(batch, rows * cols, channels * patch_size * patch_size)


def unpack(tokens: torch.Tensor, patch_size: int, height: int, width: int) -> torch.Tensor:
    """Inverse of :func:`pack`: ``(B, N, C*p*p)`` to ``(B, C, H, W)``."""
    batch, _, features = tokens.shape
    channels = features // (patch_size * patch_size)
    rows, cols = height // patch_size, width // patch_size
    patches = tokens.reshape(batch, rows, cols, channels, patch_size, patch_size)
    return patches.permute(0, 3, 1, 4, 2, 5).reshape(batch, channels, height, width)


def grid_positions(rows: int, cols: int, first: float = 0.0, device: torch.device | str = "cpu") -> torch.Tensor:
    """FLUX-style position ids ``(rows*cols, 3)``: (``first``, row, column) per token."""
    row_ids = torch.arange(rows, device=device, dtype=torch.float32).repeat_interleave(cols)
    col_ids = torch.arange(cols, device=device, dtype=torch.float32).repeat(rows)
    return torch.stack([torch.full_like(row_ids, first), row_ids, col_ids], dim=1)


def shift_grid(images: torch.Tensor, offset: tuple[int, int], patch_size: int) -> torch.Tensor:
    """Move the patch grid by ``offset = (rows, cols)`` pixels, each in ``[0, patch_size)``:
    edge-pad ``(B, C, H, W)`` by the offset on the top/left and the rest of a patch on the
    bottom/right, so the result is ``(B, C, H + p, W + p)`` along each shifted axis.
    :func:`unshift_grid` crops back. Training and sampling with random offsets means no pixel
    border is always a patch border (the grid-shift remedy for patch seams)."""
    rows, cols = offset
    if not (0 <= rows < patch_size and 0 <= cols < patch_size):
        raise ValueError(f"grid offset {offset} must lie in [0, {patch_size})")
    pad = (cols, (patch_size - cols) % patch_size, rows, (patch_size - rows) % patch_size)
    if not any(pad):
        return images
    return torch.nn.functional.pad(images, pad, mode="replicate")


def unshift_grid(images: torch.Tensor, offset: tuple[int, int], patch_size: int, height: int, width: int) -> torch.Tensor:
    """Inverse of :func:`shift_grid`: the ``(B, C, height, width)`` image under the padding."""
    rows, cols = offset
    return images[..., rows : rows + height, cols : cols + width]
