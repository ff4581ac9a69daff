"""Which sampling schedule draws the embedded model's generations closest to photos
(``python -m benchmarks.generation_schedule``).

A generation (no photo; subject LoRAs and the Fuse page's Generate mode stand on it) walks from
pure noise, where an edit walks from the photo's side of the flow. This command samples
``--seeds`` generations for every pair of ``--steps`` and ``--shifts`` (the timestep shift of
diffusers' ``FlowMatchEulerDiscreteScheduler``, ``sigma' = s * sigma / (1 + (s - 1) * sigma)``:
above 1 spends more steps at high noise) and scores each set as the model card does
(:func:`engine.training.base_eval.score_generation`): the colour Fréchet distance to held-out
photo crops, beside training crops (a perfect generator) and grey noise (a failing one), plus
the samples' blockiness and the seconds per sample. ``--grid DIR`` writes each set's first 12
samples as one PNG to look at.

The result chooses ``generation_steps`` and ``generation_shift`` in a model's ``config.json``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from benchmarks.report import add_out_argument, publish
from engine.core.imaging import to_pil
from engine.models.backbones.registry import load_backbone
from engine.training.base_eval import mean_blockiness, score_generation
from engine.training.photo_pool import SHARED_PHOTOS, load_photos, split

GRID_COLUMNS, GRID_ROWS = 6, 2


def sample_grid(samples: list[torch.Tensor]) -> torch.Tensor:
    """The first ``GRID_ROWS x GRID_COLUMNS`` samples ``(1, 3, N, N)`` tiled as one ``(3, rows N, columns N)`` image."""
    rows = [torch.cat([image[0] for image in samples[row * GRID_COLUMNS:(row + 1) * GRID_COLUMNS]], dim=2)
            for row in range(min(GRID_ROWS, len(samples) // GRID_COLUMNS))]
    return torch.cat(rows, dim=1)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.generation_schedule", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="embedded", help="The embedded model folder to sample ('embedded': the shipped one).")
    parser.add_argument("--steps", default="8,16,32", help="Comma-separated Euler step counts.")
    parser.add_argument("--shifts", default="1,3,6", help="Comma-separated timestep shifts (above 0).")
    parser.add_argument("--seeds", type=int, default=48, help="Generations per schedule (seeds 0 to N-1), and as many photo crops.")
    parser.add_argument("--photos", type=Path, default=SHARED_PHOTOS, help="The photo folder whose held-out split the samples are compared with.")
    parser.add_argument("--grid", type=Path, default=None, help="Write each schedule's first 12 samples as a PNG in this folder.")
    add_out_argument(parser)
    arguments = parser.parse_args(argv)
    try:
        steps = [int(value) for value in arguments.steps.split(",")]
        shifts = [float(value) for value in arguments.shifts.split(",")]
    except ValueError:
        parser.error("--steps takes whole numbers and --shifts numbers, separated by commas")
    if not all(1 <= value <= 1000 for value in steps) or not all(value > 0 for value in shifts):
        parser.error("every step count must lie in [1, 1000] and every shift above 0")
    if arguments.seeds < 4:
        parser.error("--seeds must be at least 4 (a Gaussian fit of nine colour statistics needs several samples)")

    backbone = load_backbone(arguments.model)
    photos = load_photos(arguments.photos)
    train_names, held_out = split(list(photos))
    rows = []
    for shift in shifts:
        backbone.generation_shift = shift
        for count in steps:
            began = time.perf_counter()
            scores, samples, _ = score_generation(backbone, photos, train_names, held_out, arguments.seeds, steps=count)
            seconds = (time.perf_counter() - began) / arguments.seeds
            row = {"steps": count, "shift": shift, "colour_frechet": scores["generated_vs_held_out"],
                   "blockiness": mean_blockiness(samples, backbone), "seconds_per_sample": round(seconds, 3)}
            rows.append(row)
            print(row, flush=True)
            if arguments.grid:
                arguments.grid.mkdir(parents=True, exist_ok=True)
                to_pil(sample_grid(samples)[None] * 2 - 1)[0].save(arguments.grid / f"steps{count}-shift{shift:g}.png")
    references = {key: scores[key] for key in ("training_photos_vs_held_out", "grey_noise_vs_held_out")}
    publish({"model": arguments.model, "seeds": arguments.seeds, "references": references, "schedules": rows}, arguments.out)


if __name__ == "__main__":
    main()
