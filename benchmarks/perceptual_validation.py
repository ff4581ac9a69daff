"""Does the style distance of :mod:`engine.metrics.perceptual` rank obvious cases right?
(``python -m benchmarks.perceptual_validation`` prints the table.)

Three checks on the benchmark's photos at the working size:

1. Self, nudged, unedited: for each style and photo, ``d(target, target) = 0`` and
   ``d(target, style(nudged photo)) < d(target, unedited photo)``, where the nudged photo is the
   photo zoomed by 3 % about its centre (edges move 2 px at 128 px): the same style on nearly the
   same photo must be nearer than the photo before the style.
2. Degradations: ``d(photo, degraded photo)`` rises strictly with Gaussian blur sigma and with the
   level of (seeded) Gaussian noise.
3. Style against content: a style's output on photo A is nearer to the same style on photo B than
   to another style on photo B, counted over all ordered photo pairs and style pairs. Reported
   beside two baselines on the same images, the plain Gram distance of the same random features
   (Ustyuzhaninov et al. 2016) and the pixel RMS difference (after resizing B to A's size).
"""

from __future__ import annotations

import argparse
import itertools
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image

from benchmarks.dataset import SizeFunction, area_fit, benchmark_photos
from benchmarks.styles import STYLES, StyleSpec
from engine.core.imaging import resize_to
from engine.metrics.image_scores import to_unit_tensor
from engine.metrics.perceptual import RandomFeatures, default_features, descriptor_distance, structure_distance, style_distance
from engine.training.generic_edits import gaussian_blur

NUDGE_ZOOM = 1.03
BLUR_SIGMAS = (0.5, 1.0, 1.5, 2.0, 3.0)
NOISE_LEVELS = (0.01, 0.02, 0.05, 0.1, 0.2)
NOISE_SEED = 0


def nudge(image: Image.Image, zoom: float = NUDGE_ZOOM) -> Image.Image:
    """The image enlarged by ``zoom`` (bicubic) and centre-cropped back to its size."""
    width, height = image.size
    enlarged = image.resize((round(width * zoom), round(height * zoom)), Image.Resampling.BICUBIC)
    left, top = (enlarged.width - width) // 2, (enlarged.height - height) // 2
    return enlarged.crop((left, top, left + width, top + height))


@dataclass
class NudgeCheck:
    """Per style: distances from the styled photo to itself, to the styled nudged photo and to
    the unedited photo (one entry per photo), for the style and the structure distance."""

    self_distance: list[float] = field(default_factory=list)
    nudged: list[float] = field(default_factory=list)
    unedited: list[float] = field(default_factory=list)
    structure_nudged: list[float] = field(default_factory=list)
    structure_unedited: list[float] = field(default_factory=list)

    @property
    def ordered(self) -> float:
        """Fraction of photos with ``0 = self < nudged < unedited`` by the style distance."""
        return float(np.mean([s == 0 and s < n < u for s, n, u in zip(self.self_distance, self.nudged, self.unedited)]))

    @property
    def structure_ordered(self) -> float:
        return float(np.mean([n < u for n, u in zip(self.structure_nudged, self.structure_unedited)]))


def nudge_check(photos: list[Image.Image], styles: dict[str, StyleSpec], features: RandomFeatures) -> dict[str, NudgeCheck]:
    results = {}
    for name, style in styles.items():
        check = NudgeCheck()
        for photo in photos:
            target = to_unit_tensor(style(photo))
            nudged, unedited = to_unit_tensor(style(nudge(photo))), to_unit_tensor(photo)
            described = {key: features.describe(image)
                         for key, image in (("target", target), ("nudged", nudged), ("unedited", unedited))}
            weight = features.config.energy_weight
            check.self_distance.append(descriptor_distance(described["target"], described["target"], weight).item())
            check.nudged.append(descriptor_distance(described["target"], described["nudged"], weight).item())
            check.unedited.append(descriptor_distance(described["target"], described["unedited"], weight).item())
            check.structure_nudged.append(structure_distance(target, nudged, features).item())
            check.structure_unedited.append(structure_distance(target, unedited, features).item())
        results[name] = check
    return results


def degradation_curves(photos: list[Image.Image], features: RandomFeatures) -> dict[str, np.ndarray]:
    """``(photos, levels)`` style and structure distances from each photo to its blurred and its
    noisy copies, keyed ``blur style``, ``blur structure``, ``noise style``, ``noise structure``."""
    curves: dict[str, list[list[float]]] = {key: [] for key in ("blur style", "blur structure", "noise style", "noise structure")}
    for photo in photos:
        clean = to_unit_tensor(photo)
        noise = torch.randn(clean.shape, generator=torch.Generator().manual_seed(NOISE_SEED))
        blurred = [gaussian_blur(clean, sigma) for sigma in BLUR_SIGMAS]
        noisy = [(clean + level * noise).clamp(0, 1) for level in NOISE_LEVELS]
        for kind, degraded in (("blur", blurred), ("noise", noisy)):
            curves[f"{kind} style"].append([style_distance(clean, image, features).item() for image in degraded])
            curves[f"{kind} structure"].append([structure_distance(clean, image, features).item() for image in degraded])
    return {key: np.array(rows) for key, rows in curves.items()}


def increasing_fraction(curves: np.ndarray) -> float:
    """Fraction of rows that rise strictly from each level to the next."""
    return float(np.mean(np.all(np.diff(curves, axis=1) > 0, axis=1)))


def _grams(image: torch.Tensor, features: RandomFeatures) -> list[torch.Tensor]:
    grams = []
    for response in features.features(image):
        flat = response.flatten(2)
        grams.append(flat @ flat.transpose(1, 2) / flat.shape[-1])
    return grams


def _gram_distance(grams_a: list[torch.Tensor], grams_b: list[torch.Tensor]) -> float:
    """The plain random-feature Gram distance (baseline): RMS of the Gram difference per level."""
    return float(np.mean([(a - b).pow(2).mean().sqrt().item() for a, b in zip(grams_a, grams_b)]))


def _pixel_distance(a: Image.Image, b: Image.Image) -> float:
    a_array = np.asarray(a, dtype=np.float32) / 255
    b_array = np.asarray(resize_to(b, a.size), dtype=np.float32) / 255
    return float(np.sqrt(((a_array - b_array) ** 2).mean()))


@dataclass
class CrossStyleCheck:
    """Fractions of (photo A, photo B, style s, style t) with d(s(A), s(B)) < d(s(A), t(B)), per
    method, and the style distance's fractions per (s, t) (rows s, columns t)."""

    fractions: dict[str, float]
    by_style_pair: np.ndarray
    comparisons: int


def cross_style_check(photos: list[Image.Image], styles: dict[str, StyleSpec], features: RandomFeatures) -> CrossStyleCheck:
    names = list(styles)
    styled = {(name, index): styles[name](photo) for name in names for index, photo in enumerate(photos)}
    tensors = {key: to_unit_tensor(image) for key, image in styled.items()}
    descriptors = {key: features.describe(tensor) for key, tensor in tensors.items()}
    grams = {key: _grams(tensor, features) for key, tensor in tensors.items()}
    methods = {
        "style distance": lambda a, b: descriptor_distance(descriptors[a], descriptors[b], features.config.energy_weight).item(),
        "plain Gram": lambda a, b: _gram_distance(grams[a], grams[b]),
        "pixel RMS": lambda a, b: _pixel_distance(styled[a], styled[b]),
    }
    wins = {method: [] for method in methods}
    by_pair = np.zeros((len(names), len(names)))
    for (s, style), (t, other) in itertools.permutations(enumerate(names), 2):
        for a, b in itertools.permutations(range(len(photos)), 2):
            for method, distance in methods.items():
                won = distance((style, a), (style, b)) < distance((style, a), (other, b))
                wins[method].append(won)
                if method == "style distance":
                    by_pair[s, t] += won
    comparisons = len(wins["style distance"])
    by_pair /= max(1, len(photos) * (len(photos) - 1))
    return CrossStyleCheck({method: float(np.mean(won)) for method, won in wins.items()}, by_pair, comparisons)


@dataclass
class ValidationReport:
    nudge: dict[str, NudgeCheck]
    degradation: dict[str, np.ndarray]
    cross_style: dict[str, CrossStyleCheck]  # by photo set


def working_photos(split: str, size_fn: SizeFunction, every: int = 1) -> list[Image.Image]:
    """The split's "before" images at the working size (every ``every``-th)."""
    return [resize_to(photo, tuple(size_fn(*photo.size))) for photo, _ in benchmark_photos(split)[::every]]


def validate(size_fn: SizeFunction | None = None, features: RandomFeatures | None = None) -> ValidationReport:
    """All three checks: nudges and degradations on the 20 test crops; style against content on
    one crop of each of the 10 held-out photos and on the 8 training photos."""
    size_fn = size_fn or area_fit()
    features = features or default_features()
    test_crops = working_photos("test", size_fn)
    one_crop_each = test_crops[::2]
    return ValidationReport(
        nudge=nudge_check(test_crops, STYLES, features),
        degradation=degradation_curves(test_crops, features),
        cross_style={"held-out photos (left crops)": cross_style_check(one_crop_each, STYLES, features),
                     "training photos": cross_style_check(working_photos("train", size_fn), STYLES, features)},
    )


def format_report(report: ValidationReport) -> str:
    lines = ["1. d(target, .) for target = style(photo); mean over photos; "
             "'ordered' = share with 0 = self < nudged < unedited",
             f"   {'style':18s} {'self':>5s} {'nudged':>8s} {'unedited':>9s} {'ordered':>8s} | "
             f"structure: {'nudged':>7s} {'unedited':>9s} {'ordered':>8s}"]
    for name, check in report.nudge.items():
        lines.append(f"   {name:18s} {np.mean(check.self_distance):5.3f} {np.mean(check.nudged):8.4f} "
                     f"{np.mean(check.unedited):9.4f} {check.ordered:8.2f} |            "
                     f"{np.mean(check.structure_nudged):7.4f} {np.mean(check.structure_unedited):9.4f} "
                     f"{check.structure_ordered:8.2f}")
    lines.append(f"2. d(photo, degraded); mean over photos per level; 'rising' = share of photos rising strictly")
    for key, curves in report.degradation.items():
        levels = BLUR_SIGMAS if key.startswith("blur") else NOISE_LEVELS
        means = "  ".join(f"{level:g}: {value:.4f}" for level, value in zip(levels, curves.mean(axis=0)))
        lines.append(f"   {key:16s} {means}  rising {increasing_fraction(curves):.2f}")
    lines.append("3. share of (A, B, s, t) with d(s(A), s(B)) < d(s(A), t(B))")
    for photo_set, check in report.cross_style.items():
        shares = ", ".join(f"{method} {share:.3f}" for method, share in check.fractions.items())
        lines.append(f"   {photo_set} ({check.comparisons} comparisons): {shares}")
        lines.append(f"   style distance by (row s, column t): {', '.join(STYLES)}")
        for name, row in zip(STYLES, check.by_style_pair):
            lines.append(f"     {name:18s} " + " ".join(f"{value:5.2f}" for value in row))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Validate the random-feature style distance on the benchmark.")
    parser.add_argument("--resolution", type=int, default=128, help="side of the square working area in pixels")
    arguments = parser.parse_args(argv)
    print(format_report(validate(area_fit(arguments.resolution))))


if __name__ == "__main__":
    main()
