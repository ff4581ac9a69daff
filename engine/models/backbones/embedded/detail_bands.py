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

Guided gains (version 4). A token sets its gains per 8x8 patch, and the cartoon study found that
gains which must follow the image inside a patch (smooth the flat pixels, keep or darken the edge
pixels) are what a style cannot learn through it. Bilateral guided upsampling and HDRnet (Chen et
al. 2016; Gharbi et al. 2017) solve the same problem by letting the network set coefficients and a
per-pixel guide map read them. Here the guide of band ``k`` is its local energy

    phi_k = E_k / (E_k + tau),   E_k = G_{2 s_k} * sum_c band_k^2,

near 0 in flat areas and near 1 at edges and texture, and each band has four coefficient maps,

    (a_k + b_k phi_k) band_k + (c_k + e_k phi_k) min(band_k, 0),

a gain on the whole band and one on its dark side, each with a part that grows with the energy.
With ``b = c = e = 0`` this is the unguided head, so a version-3 model grows into it exactly (its
gain rows become the ``a`` rows). Fitting these four terms, with one value per term for a whole
style, on the cartoon style's 8 training pairs lifts its held-out pairs well above the photo, where
style-wide unguided gains barely move them (``python -m benchmarks.detail_band_bounds``; figures in
docs/decisions/2026-12-07-guided-detail-gains.md).
"""

from __future__ import annotations

import torch

from engine.core.filters import gaussian_blur

BAND_SIGMAS = (1.0, 2.0, 4.0)
GUIDED_TERMS = 4  # coefficient maps per band with guides: whole band, dark side, each also times the guide
ENERGY_SOFTNESS = 0.01  # tau: the band energy (in [0, 1]^2 units, summed over colour) at which the guide is 1/2


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


def band_guides(bands: torch.Tensor) -> torch.Tensor:
    """The guide ``phi_k`` in ``[0, 1)`` of each band ``(B, K, 3, H, W)``, as ``(B, K, H, W)``."""
    energy = (bands**2).sum(dim=2)
    smoothed = torch.cat([gaussian_blur(energy[:, k : k + 1], 2 * BAND_SIGMAS[k]) for k in range(bands.shape[1])], dim=1)
    return smoothed / (smoothed + ENERGY_SOFTNESS)


def apply_guided_detail_gains(colour: torch.Tensor, coefficients: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    """``colour`` ``(B, 3, H, W)`` plus the guided band terms of the source; ``coefficients`` is
    ``(B, 4K, H, W)``: the maps ``a``, ``b``, ``c``, ``e`` of the module's formula, K each, in that order."""
    count = coefficients.shape[1] // GUIDED_TERMS
    bands = detail_bands(source.to(coefficients.dtype), count)
    guides = band_guides(bands)
    whole, whole_guided, dark, dark_guided = coefficients.split(count, dim=1)
    whole_gain = (whole + whole_guided * guides).unsqueeze(2)
    dark_gain = (dark + dark_guided * guides).unsqueeze(2)
    return colour + (whole_gain * bands + dark_gain * bands.clamp(max=0)).sum(dim=1)
