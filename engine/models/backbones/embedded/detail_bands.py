"""A detail-band head: the transformer sets a gain per pixel for each frequency band of the source.

A token carries ``C * p * p`` numbers for its own patch, fewer than the noisy image and the source
bring in, so a residual that has to copy the source's fine detail (a blur removes it, a sharpen
doubles it, an edge-preserving smoothing removes it in flat areas only) is out of its reach; version
1 does blur and sharpen no better than the unedited photo (``assets/base/MODEL_CARD.md``). This head
hands that detail over directly: the source is split into difference-of-Gaussians bands

    band_1 = source - G_{s_1} * source,   band_k = G_{s_{k-1}} * source - G_{s_k} * source,

and the transformer, besides its colour residual, predicts one gain map per band (shared by the
three colour channels), so

    residual = colour + sum_k gain_k * band_k.

A gain of -1 on every band is a Gaussian blur of ``s_K``, +1 on the first band an unsharp mask,
and gains that go to -1 in flat areas and stay 0 at edges an edge-preserving smoothing: the local
Laplacian idea (Paris et al. 2011, "Local Laplacian Filters") with the gains read from the
transformer instead of set by hand. The gains start at zero (the ``proj_out`` rows that make them
are zero-initialised or grown as zeros), so the head adds nothing until it is trained.
"""

from __future__ import annotations

import torch

from engine.core.filters import gaussian_blur

BAND_SIGMAS = (1.0, 2.0, 4.0)


def detail_bands(source: torch.Tensor, count: int) -> torch.Tensor:
    """The first ``count`` bands of ``source`` ``(B, 3, H, W)`` as ``(B, count, 3, H, W)``; their
    sum is ``source - G_{s_count} * source``."""
    if not 1 <= count <= len(BAND_SIGMAS):
        raise ValueError(f"detail bands must number 1 to {len(BAND_SIGMAS)}, got {count}")
    bands, finer = [], source
    for sigma in BAND_SIGMAS[:count]:
        coarser = gaussian_blur(source, sigma)
        bands.append(finer - coarser)
        finer = coarser
    return torch.stack(bands, dim=1)


def apply_detail_gains(colour: torch.Tensor, gains: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    """``colour`` ``(B, 3, H, W)`` plus ``gains`` ``(B, K, H, W)`` times the source's K bands."""
    bands = detail_bands(source.to(gains.dtype), gains.shape[1])
    return colour + (gains.unsqueeze(2) * bands).sum(dim=1)
