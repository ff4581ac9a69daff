"""How much of the cartoon style each of its parts explains (``python -m benchmarks.cartoon_parts``).

The benchmark's ``cartoon`` (:func:`benchmarks.styles.cartoon`) is a bilateral filter, a k-means
palette of the smoothed photo and difference-of-Gaussians outlines over it. This scores partial
versions of it against the full target on the held-out test pairs at the model's working size,
as the five-style benchmark scores a model: the unedited photo, the smoothing alone, smoothing
and outlines (no palette), the palette without outlines, and the palette of the unsmoothed
photo with outlines. A part that scores far above the unedited photo is a gain a model could
reach by learning that part alone.
"""

from __future__ import annotations

import argparse

import numpy as np
from skimage.restoration import denoise_bilateral

from benchmarks import styles
from benchmarks.dataset import benchmark_pairs
from benchmarks.report import add_out_argument, publish
from engine.models.backbones.registry import load_backbone


def psnr(result: np.ndarray, target: np.ndarray) -> float:
    """PSNR in dB of two ``(H, W, 3)`` float arrays in ``[0, 1]``."""
    return float(10 * np.log10(1.0 / np.mean((result - target) ** 2)))


def parts(photo: np.ndarray) -> dict[str, np.ndarray]:
    """Partial cartoons of a ``(H, W, 3)`` float photo, each ``(H, W, 3)``, made as
    :func:`benchmarks.styles.cartoon` makes the whole."""
    scale = styles.size_scale(*photo.shape[:2])
    smooth = denoise_bilateral(photo, sigma_color=0.1, sigma_spatial=max(1.0, 2.0 * scale), channel_axis=-1,
                               mode="reflect").astype(np.float32)
    uninked = styles.dog_lines(styles._luma(photo), scale)[..., None]

    def ink(image: np.ndarray) -> np.ndarray:
        return styles.CARTOON_OUTLINE + (image - styles.CARTOON_OUTLINE) * uninked

    palette = styles.palette_quantise(smooth, styles.CARTOON_COLOURS)
    return {"unedited photo": photo, "smoothing": smooth, "smoothing and outlines": ink(smooth),
            "palette without outlines": palette,
            "palette of the unsmoothed photo, with outlines": ink(styles.palette_quantise(photo.copy(), styles.CARTOON_COLOURS)),
            "the whole style": ink(palette)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cartoon_parts", description=__doc__.splitlines()[0])
    parser.add_argument("--test-pairs", type=int, default=20, help="Held-out test pairs scored (1 to 20).")
    add_out_argument(parser)
    arguments = parser.parse_args(argv)
    if not 1 <= arguments.test_pairs <= 20:
        parser.error("--test-pairs must lie between 1 and 20")
    backbone = load_backbone()
    scores: dict[str, list[float]] = {}
    for pair in benchmark_pairs("cartoon", "test", backbone.fit_size)[:arguments.test_pairs]:
        target = styles._to_float(pair.after)
        for name, image in parts(styles._to_float(pair.before)).items():
            scores.setdefault(name, []).append(psnr(image, target))
    publish({"test_pairs": arguments.test_pairs, "mean_psnr_db": {name: round(sum(values) / len(values), 2)
                                                                   for name, values in scores.items()}}, arguments.out)


if __name__ == "__main__":
    main()
