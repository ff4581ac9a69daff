"""What the detail-band head could reach, with gains chosen by least squares instead of by a model
(``python -m benchmarks.detail_band_bounds``).

The head of :mod:`engine.models.backbones.embedded.detail_bands` adds ``sum_k gain_k * band_k`` of
the source to the model's colour residual. Three bounds, each on the benchmark's photos at the
model's working size (no model is run):

* ``constant``: one gain per band for a whole pretraining edit (blur, sharpen), fitted on the
  training photos and scored on the test photos: can the head express the edit at all?
* ``style_constant``: one gain per band and a colour offset for a whole benchmark style, fitted on
  its 8 training pairs, scored on its test pairs: how far a style-wide blur or sharpen goes.
* ``style_guided``: the same for version 4's guided gains
  (:func:`~engine.models.backbones.embedded.detail_bands.apply_guided_detail_gains`): one value per
  band for each of its four terms (whole band, dark side, each also times the band's energy guide)
  and a colour offset, for a whole style: what a style-wide setting of the guided head reaches.
* ``patch_oracle``: for every 8x8 patch of every test pair, the best per-channel colour shift, and
  the best shift and three band gains fitted together, against the target itself: what tokens that chose their
  patch's gains perfectly would score (an upper bound, not a result).
Results: ``docs/decisions/2026-12-07-detail-band-head.md``.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from benchmarks.dataset import area_fit, benchmark_pairs, benchmark_photos
from benchmarks.report import add_out_argument, publish
from engine.core.imaging import resize_to
from engine.metrics.image_quality import psnr as image_psnr
from engine.metrics.image_scores import to_unit_tensor
from engine.models.backbones.embedded.detail_bands import BAND_SIGMAS, GUIDED_TERMS, apply_guided_detail_gains, detail_bands
from engine.models.backbones.patches import pack, unpack
from engine.training.generic_edits import GENERIC_EDIT_FUNCTIONS

PATCH = 8


def unit(image) -> torch.Tensor:
    """A Pillow image as ``(1, 3, H, W)`` in ``[0, 1]``, cropped to whole patches."""
    array = to_unit_tensor(image)
    return array[..., : array.shape[-2] // PATCH * PATCH, : array.shape[-1] // PATCH * PATCH]


def psnr(result: torch.Tensor, target: torch.Tensor) -> float:
    """PSNR of a fitted result, clipped to the image range as a written file would be."""
    return float(image_psnr(result.clamp(0, 1), target)[0])


def fit_constant_gains(pairs: list[tuple[torch.Tensor, torch.Tensor]], offset: bool) -> torch.Tensor:
    """Least-squares gains ``(K,)`` (and a last entry for a colour offset when ``offset``) of
    ``after - before`` on the bands of ``before``, over all pixels of all pairs."""
    columns, targets = [], []
    for before, after in pairs:
        bands = detail_bands(before, len(BAND_SIGMAS))[0].reshape(len(BAND_SIGMAS), -1)
        columns.append(torch.cat([bands, torch.ones(1, bands.shape[1])]) if offset else bands)
        targets.append((after - before).reshape(-1))
    return torch.linalg.lstsq(torch.cat(columns, dim=1).T, torch.cat(targets)[:, None]).solution.flatten()


def apply_constant_gains(before: torch.Tensor, gains: torch.Tensor) -> torch.Tensor:
    count = len(BAND_SIGMAS)
    result = before + (detail_bands(before, count)[0] * gains[:count].view(count, 1, 1, 1)).sum(0, keepdim=True)
    return result + gains[count] if len(gains) > count else result


def guided_terms(before: torch.Tensor) -> torch.Tensor:
    """Each guided term of ``before`` ``(1, 3, H, W)`` with a coefficient of 1, as ``(4K, 3, H, W)``
    (the formula is linear in its coefficients, so a style-wide fit is a least-squares problem)."""
    count, terms = len(BAND_SIGMAS), []
    for index in range(GUIDED_TERMS * count):
        coefficients = torch.zeros(1, GUIDED_TERMS * count, *before.shape[-2:])
        coefficients[:, index] = 1.0
        terms.append(apply_guided_detail_gains(torch.zeros_like(before), coefficients, before)[0])
    return torch.stack(terms)


def fit_style_guided(pairs: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """Least-squares style-wide coefficients ``(4K + 3,)``: the guided terms', then a colour offset per channel."""
    columns, targets = [], []
    for before, after in pairs:
        terms = guided_terms(before).reshape(GUIDED_TERMS * len(BAND_SIGMAS), -1)
        offsets = torch.eye(3).repeat_interleave(before[0, 0].numel(), dim=1)
        columns.append(torch.cat([terms, offsets]))
        targets.append((after - before).reshape(-1))
    design, target = torch.cat(columns, dim=1).T.double(), torch.cat(targets)[:, None].double()
    return torch.linalg.lstsq(design, target, driver="gelsd").solution.flatten().float()


def apply_style_guided(before: torch.Tensor, coefficients: torch.Tensor) -> torch.Tensor:
    count = GUIDED_TERMS * len(BAND_SIGMAS)
    terms = (guided_terms(before) * coefficients[:count].view(count, 1, 1, 1)).sum(0, keepdim=True)
    return before + terms + coefficients[count:].view(1, 3, 1, 1)


def patch_oracle(before: torch.Tensor, after: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``before`` with the best colour shift per patch and channel, and with the best shift and band
    gains per patch fitted jointly, both ``(1, 3, H, W)``."""
    height, width = before.shape[-2:]
    pixels = PATCH * PATCH
    difference = pack(after - before, PATCH)[0]  # (N, 3p²), channel-major within a token
    shift = difference.reshape(-1, 3, pixels).mean(-1, keepdim=True).expand(-1, 3, pixels).reshape(1, -1, 3 * pixels)
    shifted = before + unpack(shift, PATCH, height, width)
    bands = detail_bands(before, len(BAND_SIGMAS))[0]
    band_columns = torch.stack([pack(bands[k : k + 1], PATCH)[0] for k in range(len(BAND_SIGMAS))], dim=-1)  # (N, 3p², K)
    channel_columns = torch.eye(3).repeat_interleave(pixels, dim=0).expand(band_columns.shape[0], -1, -1)  # (N, 3p², 3)
    design = torch.cat([band_columns, channel_columns], dim=-1)
    design, target = design.double(), difference[..., None].double()  # flat patches make near-zero band columns
    fitted = (design @ torch.linalg.lstsq(design, target, driver="gelsd").solution).float()
    return shifted, before + unpack(fitted[..., 0][None], PATCH, height, width)


def working_photos(split: str) -> list[torch.Tensor]:
    """The split's photos at the working size the style pairs use (:func:`benchmarks.dataset.area_fit`)."""
    size_fn = area_fit()
    return [unit(resize_to(photo, tuple(size_fn(*photo.size)))) for photo, _ in benchmark_photos(split)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.detail_band_bounds", description=__doc__.splitlines()[0])
    parser.add_argument("--styles", default="cartoon,oil paint", help="Comma-separated benchmark styles.")
    add_out_argument(parser)
    arguments = parser.parse_args(argv)
    report: dict = {"constant": {}, "style_constant": {}, "style_guided": {}, "patch_oracle": {}}
    train, test = working_photos("train"), working_photos("test")
    for edit in ("blur", "sharpen"):
        gains = fit_constant_gains([(photo, GENERIC_EDIT_FUNCTIONS[edit](photo)) for photo in train], offset=False)
        truths = [(photo, GENERIC_EDIT_FUNCTIONS[edit](photo)) for photo in test]
        report["constant"][edit] = {"gains": [round(float(g), 3) for g in gains],
                                    "unedited_psnr": round(float(np.mean([psnr(p, t) for p, t in truths])), 2),
                                    "fitted_psnr": round(float(np.mean([psnr(apply_constant_gains(p, gains), t) for p, t in truths])), 2)}
    for style in (name.strip() for name in arguments.styles.split(",") if name.strip()):
        style_train = [(unit(pair.before), unit(pair.after)) for pair in benchmark_pairs(style, "train")]
        style_test = [(unit(pair.before), unit(pair.after)) for pair in benchmark_pairs(style, "test")]
        gains = fit_constant_gains(style_train, offset=True)
        report["style_constant"][style] = {
            "gains_and_offset": [round(float(g), 3) for g in gains],
            "unedited_psnr": round(float(np.mean([psnr(b, a) for b, a in style_test])), 2),
            "fitted_psnr": round(float(np.mean([psnr(apply_constant_gains(b, gains), a) for b, a in style_test])), 2)}
        guided = fit_style_guided(style_train)
        report["style_guided"][style] = {
            "coefficients_and_offset": [round(float(c), 3) for c in guided],
            "fitted_psnr": round(float(np.mean([psnr(apply_style_guided(b, guided), a) for b, a in style_test])), 2)}
        oracle = [(psnr(b, a), *(psnr(result, a) for result in patch_oracle(b, a))) for b, a in style_test]
        unedited, shifted, with_gains = np.mean(oracle, axis=0)
        report["patch_oracle"][style] = {"unedited_psnr": round(float(unedited), 2), "colour_shift_psnr": round(float(shifted), 2),
                                         "colour_shift_and_gains_psnr": round(float(with_gains), 2)}
    publish(report, arguments.out)


if __name__ == "__main__":
    main()
