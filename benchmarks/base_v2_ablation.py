"""``python -m benchmarks.base_v2_ablation``: what each change of the embedded model's version 2 buys.

Each variant continues version 1 (``assets/base-v1``; ``assets/base`` ships version 4 since 2026-12-07) for the same short run on the same photos and
batches, then is measured by the model card's own evaluation
(:func:`engine.training.base_eval.evaluate_base`): identity and generic-edit PSNR, generation's
colour Fréchet distance, and blockiness of each. Variants: the growth alone (two more blocks,
linear patch head), the growth with a random grid shift, and the pixel head with the shift (time per step too);
version 3's detail-band head and its control, version 1 continued alone; ``--sampling-shift`` re-measures a
finished variant with the grid moved at every sampling step too. Each variant's model is written
to ``RUNS/NAME/model`` for style probes (``benchmarks.train_speed --model``). Results:
``docs/decisions/2026-12-04-embedded-v2.md`` and ``docs/decisions/2026-12-07-detail-band-head.md``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from benchmarks.report import add_out_argument, publish
from engine.core.assets import ASSETS
from engine.core.configuration import to_dict as config_dict
from engine.training.base_eval import evaluate_base
from engine.training.pretrain import PretrainConfig, pretrain

VERSION_ONE = ASSETS / "base-v1"
VARIANTS = {
    "linear": dict(preset="small-v2-linear", grid_shift=False),  # the growth alone, linear patch head
    "linear-shift": dict(preset="small-v2-linear", grid_shift=True),
    "pixel-head-shift": dict(preset="small-v2", grid_shift=True),
    "v1-continued": dict(preset="small", grid_shift=False),  # the control of the detail-band head: the same run, no head
    "detail-bands": dict(preset="small-v3", grid_shift=False),  # version 3: the detail-band head and denoise on version 1
    "denoise": dict(preset="small-v3-no-bands", grid_shift=False),  # version 3 without the head
}


def run_variant(name: str, options: dict, steps: int, photos: str, run_root: Path, sampling_shift: bool = False) -> dict:
    folder = run_root / name
    config = PretrainConfig(steps=steps, learning_rate=2e-4, warmup_steps=max(1, steps // 10), checkpoint_every=min(steps, 250),
                            init_from=str(VERSION_ONE), photos=photos, run_folder=str(folder), **options)
    began = time.perf_counter()
    backbone = pretrain(config, log=lambda line: None)
    seconds = time.perf_counter() - began
    backbone.save_pretrained(folder / "model", extra={"pretrain": config_dict(config)})  # for style probes (train_speed --model)
    backbone.config.grid_shift = sampling_shift
    metrics = evaluate_base(backbone, Path(photos))
    label = f"{name} + sampling shift" if sampling_shift else name
    return {"variant": label, "seconds_per_step": round(seconds / steps, 3), **metrics}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.base_v2_ablation", description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=150, help="Steps of each variant's run.")
    parser.add_argument("--photos", default=PretrainConfig.photos, help="Training photos (the model card's split).")
    parser.add_argument("--runs", default="runs/v2-ablation", help="Folder for the variants' checkpoints.")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="Comma-separated variant names to run.")
    parser.add_argument("--sampling-shift", action="store_true",
                        help="Also move the patch grid at every sampling step when measuring (a finished run is only re-measured).")
    add_out_argument(parser)
    arguments = parser.parse_args(argv)
    rows = []
    for name in arguments.variants.split(","):
        row = run_variant(name, VARIANTS[name], arguments.steps, arguments.photos, Path(arguments.runs), arguments.sampling_shift)
        rows.append(row)
        print(json.dumps({key: row[key] for key in ("variant", "seconds_per_step", "blockiness", "generation_colour_frechet")}), flush=True)
    publish({"steps": arguments.steps, "variants": rows}, arguments.out)


if __name__ == "__main__":
    main()
