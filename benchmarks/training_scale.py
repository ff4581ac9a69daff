"""At which scale a style should train on pairs larger than the working size, judged on the
full-size results the user downloads (``python -m benchmarks.training_scale``).

Training resizes each pair to a ``training_scale`` (``working``: the size an edit of the photo
works at; ``native``: the short side at the model's native side) times ``crop_margin``, then takes
square crops (:mod:`engine.training.style_data`); edits run on the whole photo at the native area
and are carried to the photo's size (:mod:`engine.rendering.full_resolution`). A larger margin
trains on finer crops of the pair (strokes seen larger), a margin near 1 on nearly the whole pair
(global effects such as a vignette seen whole). For each style and setting this trains one style from the benchmark's
training pairs at a ``--pair-resolution`` area (default 512 px, larger than the working size)
into a fresh library, exactly as ``python -m engine train`` does (the render choice is made
at the end of training from the held-out pair), then scores it at full resolution on the test
originals as :mod:`benchmarks.full_resolution` does, with its stored render choice.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.dataset import area_fit, write_pairs
from benchmarks.full_resolution import STORED, target_style
from benchmarks.full_resolution import run as score_at_full_resolution
from benchmarks.originals import DEFAULT_CACHE
from benchmarks.report import add_out_argument, publish
from engine.library import StyleLibrary
from engine.models.backbones.registry import load_backbone
from engine.training.add_style import StyleRequest, train_style
from engine.training.style_trainer import StyleTrainingConfig


def train_and_score(style: str, scale: str, margin: float, steps: int, pair_resolution: int, folder: Path) -> dict:
    """One style trained at one training scale and crop margin, then its full-size scores
    (unedited and stored render)."""
    pairs = write_pairs(target_style(style), "train", folder / "pairs", area_fit(pair_resolution))
    library_folder = folder / "library"
    config = dataclasses.replace(StyleTrainingConfig(), steps=steps, training_scale=scale, crop_margin=margin)
    started = time.perf_counter()
    with StyleLibrary.open(library_folder) as library:
        record = train_style(library, load_backbone(), StyleRequest(style, pairs), config)
        render = record.render.describe() if record.render is not None else "defaults"
    seconds = time.perf_counter() - started
    scores = score_at_full_resolution([style], [STORED], 1024, library_folder, DEFAULT_CACHE)["styles"][style]
    return {"scale": scale, "margin": margin, "train_seconds": round(seconds, 1), "render": render,
            "unedited": scores["unedited"], "stored": scores[STORED], "target_blockiness": scores["target"]["blockiness"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.training_scale", description=__doc__.splitlines()[0])
    parser.add_argument("--styles", default="oil paint,vintage",
                        help="Comma-separated benchmark styles, or held-back ones made by OpenCV (e.g. 'opencv stylization').")
    parser.add_argument("--settings", default="native:1.15,working:1.0",
                        help="Comma-separated SCALE:MARGIN settings to train at (StyleTrainingConfig.training_scale and crop_margin).")
    parser.add_argument("--steps", type=int, default=150, help="Training steps per style.")
    parser.add_argument("--pair-resolution", type=int, default=512, help="Side of the square area the training pairs have.")
    parser.add_argument("--threads", type=int, default=1, help="torch threads.")
    add_out_argument(parser)
    arguments = parser.parse_args(argv)
    torch.set_num_threads(arguments.threads)
    rows = []
    for style in [text for text in arguments.styles.split(",") if text]:
        for setting in [text for text in arguments.settings.split(",") if text]:
            scale, _, margin = setting.partition(":")
            with tempfile.TemporaryDirectory(prefix="atelier-training-scale-") as folder:
                row = {"style": style, **train_and_score(style, scale, float(margin or 1.0), arguments.steps,
                                                         arguments.pair_resolution, Path(folder))}
            rows.append(row)
            stored = row["stored"]
            print(f"{style} {setting}: {stored['psnr']:.2f} dB, SSIM {stored['ssim']:.3f}, style {stored['style']:.4f}, "
                  f"blockiness {stored['blockiness']:.3f} ({row['render']}; {row['train_seconds']:.0f} s)", flush=True)
    publish({"steps": arguments.steps, "pair_resolution": arguments.pair_resolution, "rows": rows}, arguments.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
