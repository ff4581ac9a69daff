"""Carrying a low-resolution edit to the photo's full resolution with local affine colour maps.

The model edits a small working-size copy of the photo. Upscaling that result throws away every
pixel of the photo's own detail; instead, this fits how the edit changed the colours, locally,
and applies that change to the full-resolution photo (the idea of bilateral guided upsampling,
Chen, Adams, Wadhwa & Hasinoff 2016, and HDRnet, Gharbi et al. 2017, here in the form of the fast
guided filter, He & Sun 2015, "Fast Guided Filter", with the photo as a colour guide):

1. At working size, for every window of ``(2 radius + 1)^2`` pixels, the least-squares affine map
   ``edit ≈ A source + b`` (``A`` 3 x 3, ``b`` 3), ridge-regularised by ``epsilon`` (He, Sun &
   Tang 2013, "Guided Image Filtering", eq. 14 for a colour guide):
   ``A = cov(edit, source) (cov(source, source) + epsilon I)^-1``, ``b = mean(edit) - A mean(source)``.
   With ``prior="identity"`` the ridge pulls ``A`` towards the identity instead of zero (the same
   fit of the edit's change ``edit - source``): ``A = (cov(edit, source) + epsilon I)
   (cov(source, source) + epsilon I)^-1``, so an edit that changes nothing is carried exactly and a
   flat window keeps the photo's own texture under its mean colour change.
2. The coefficients of all windows covering a pixel are averaged (the guided filter's second box).
3. The ``(12, h, w)`` coefficient maps are upsampled bilinearly to the photo's size and applied,
   ``out = A(x) photo(x) + b(x)``, a few rows at a time (:func:`apply_local_affine`).

A global affine colour transform is recovered exactly wherever a window's colours are not flat
(the closed form ``tests/rendering/test_guided_upsampling.py`` checks); flat windows fall back to
their mean colour (prior ``"flat"``) or to the photo shifted by their mean colour change
(``"identity"``). Structure the edit draws (lines, strokes) is not an affine function of the
photo's colours, so it is blurred to the window size: such styles need a larger working size.

Peak memory is bounded by the strip: a few ``3 x strip_rows x width`` float temporaries beside the
photo and the result, whatever the photo's height.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from engine.core.errors import InputError

COEFFICIENTS = 12  # A (3 x 3, row-major) then b (3)
PRIORS = ("identity", "flat")  # what the ridge pulls each window's A towards: the identity, or zero


def box_mean(images: torch.Tensor, radius: int) -> torch.Tensor:
    """Mean over the ``(2 radius + 1)^2`` window around each pixel, shrunk at the borders to the
    pixels that exist. ``images``: ``(C, h, w)``; returns the same shape."""
    if radius == 0:
        return images
    return F.avg_pool2d(images.unsqueeze(0), 2 * radius + 1, stride=1, padding=radius, count_include_pad=False)[0]


def fit_local_affine(source: torch.Tensor, edit: torch.Tensor, radius: int = 1, epsilon: float = 1e-4,
                     prior: str = "identity") -> torch.Tensor:
    """Per-pixel affine colour maps from ``source`` to ``edit``, both ``(3, h, w)`` in ``[0, 1]``.

    Returns ``(12, h, w)`` float32: ``A`` row-major in channels 0-8, ``b`` in 9-11, averaged over
    the windows covering each pixel (steps 1 and 2 of the module docstring)."""
    if source.shape != edit.shape or source.dim() != 3 or source.shape[0] != 3:
        raise InputError(f"source {tuple(source.shape)} and edit {tuple(edit.shape)} must both be (3, h, w) images")
    if radius < 0 or epsilon <= 0:
        raise InputError(f"the guided fit needs radius >= 0 and epsilon > 0, got {radius} and {epsilon}")
    if prior not in PRIORS:
        raise InputError(f"the guided fit's prior must be one of {', '.join(PRIORS)}, not {prior!r}")
    source, edit = source.double(), edit.double()
    height, width = source.shape[1:]
    mean_source, mean_edit = box_mean(source, radius), box_mean(edit, radius)
    # (3, 3, h, w) second moments, centred: cov[i, j] = E[s_i s_j] - E[s_i] E[s_j].
    products = (source.unsqueeze(1) * source.unsqueeze(0)).reshape(9, height, width)
    covariance = box_mean(products, radius).reshape(3, 3, height, width) - mean_source.unsqueeze(1) * mean_source.unsqueeze(0)
    cross = (edit.unsqueeze(1) * source.unsqueeze(0)).reshape(9, height, width)
    cross_covariance = box_mean(cross, radius).reshape(3, 3, height, width) - mean_edit.unsqueeze(1) * mean_source.unsqueeze(0)
    ridge = epsilon * torch.eye(3, dtype=torch.float64)
    regularised = covariance.permute(2, 3, 0, 1) + ridge
    target = cross_covariance.permute(2, 3, 0, 1) + (ridge if prior == "identity" else 0)
    # A (cov + eps I) = target  <=>  (cov + eps I) A^T = target^T  (cov is symmetric).
    transform = torch.linalg.solve(regularised, target.transpose(-1, -2)).transpose(-1, -2)  # (h, w, 3, 3)
    offset = mean_edit.permute(1, 2, 0) - (transform @ mean_source.permute(1, 2, 0).unsqueeze(-1)).squeeze(-1)  # (h, w, 3)
    coefficients = torch.cat([transform.reshape(height, width, 9), offset], dim=-1).permute(2, 0, 1)
    return box_mean(coefficients, radius).float()


def source_positions(low: int, high: int, start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For output pixels ``start..stop-1`` of a side of ``high`` pixels sampled from ``low``: the
    two neighbouring low-resolution indices and the weight of the second, as bilinear
    interpolation with ``align_corners=False`` places them (``F.interpolate``'s convention)."""
    centres = (torch.arange(start, stop, dtype=torch.float64) + 0.5) * (low / high) - 0.5
    centres = centres.clamp(min=0.0)
    first = centres.floor().long().clamp(max=low - 1)
    second = (first + 1).clamp(max=low - 1)
    return first, second, (centres - first).float()


def upsample_columns(coefficients: torch.Tensor, width: int) -> torch.Tensor:
    """``(C, h, w)`` to ``(C, h, width)``, bilinear along x (the first, cheap half of the
    separable upsampling; rows are interpolated per strip in :func:`apply_local_affine`)."""
    first, second, weight = source_positions(coefficients.shape[2], width, 0, width)
    return torch.lerp(coefficients[:, :, first], coefficients[:, :, second], weight)


def affine_rows(transform: torch.Tensor, offset: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
    """``transform @ pixel + offset`` for coefficients that vary along x only: ``transform``
    ``(3, 3, W)``, ``offset`` ``(3, W)``, ``pixels`` ``(3, rows, W)``; returns ``(3, rows, W)``."""
    out = torch.addcmul(offset[:, None, :], transform[:, 0, None, :], pixels[0])
    out.addcmul_(transform[:, 1, None, :], pixels[1])
    return out.addcmul_(transform[:, 2, None, :], pixels[2])


def apply_local_affine(coefficients: torch.Tensor, photo: torch.Tensor, strip_rows: int = 256) -> torch.Tensor:
    """Apply ``(12, h, w)`` coefficient maps, upsampled bilinearly (``align_corners=False``), to a
    full-resolution ``photo`` ``(3, H, W)``: float in ``[0, 1]`` (returns float32 clamped to
    ``[0, 1]``) or uint8 (returns uint8, rounded).

    Output rows between the same two coefficient rows ``i`` and ``i + 1`` share them, so with
    ``C = (1 - t) C_i + t C_{i+1}`` the result is ``(A_i p + b_i) + t ((A_{i+1} - A_i) p + (b_{i+1} - b_i))``:
    two 3-channel affine maps whose coefficients vary along x only. So no 12-channel map is ever
    made at full resolution; work goes at most ``strip_rows`` rows at a time, which bounds the
    temporaries (and a uint8 photo's float copy) whatever the photo's height."""
    if coefficients.dim() != 3 or coefficients.shape[0] != COEFFICIENTS:
        raise InputError(f"coefficients must be (12, h, w), got {tuple(coefficients.shape)}")
    if photo.dim() != 3 or photo.shape[0] != 3:
        raise InputError(f"the photo must be a (3, H, W) image, got {tuple(photo.shape)}")
    height, width = photo.shape[1:]
    columns = upsample_columns(coefficients.float(), width)  # (12, h, W)
    steps = torch.diff(columns, dim=1, append=columns[:, -1:])  # C_{i+1} - C_i, zero past the last row
    first, _, weight = source_positions(coefficients.shape[1], height, 0, height)
    eight_bit = photo.dtype == torch.uint8
    result = torch.empty(3, height, width, dtype=torch.uint8 if eight_bit else torch.float32)
    start = 0
    while start < height:
        # A run of rows with the same first coefficient row, at most strip_rows long.
        row = int(first[start])
        stop = min(start + strip_rows, height, start + int((first[start:] == row).sum()))
        pixels = photo[:, start:stop].float()
        if eight_bit:
            pixels /= 255.0
        base, step = columns[:, row], steps[:, row]  # (12, W) each
        out = affine_rows(base[:9].view(3, 3, width), base[9:], pixels)
        change = affine_rows(step[:9].view(3, 3, width), step[9:], pixels)
        out.addcmul_(weight[start:stop, None], change).clamp_(0.0, 1.0)
        result[:, start:stop] = out.mul_(255.0).round_() if eight_bit else out
        start = stop
    return result


def guided_upsample(source: torch.Tensor, edit: torch.Tensor, photo: torch.Tensor, radius: int = 1,
                    epsilon: float = 1e-4, strip_rows: int = 256, prior: str = "identity") -> torch.Tensor:
    """The whole method: fit on the working-size ``source``/``edit`` ``(3, h, w)``, apply to
    ``photo`` ``(3, H, W)``; all in ``[0, 1]``. Returns ``(3, H, W)`` float32."""
    return apply_local_affine(fit_local_affine(source, edit, radius, epsilon, prior), photo, strip_rows)
