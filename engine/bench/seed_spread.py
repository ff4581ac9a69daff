"""How much a styled edit depends on its starting noise, per flow-loss weighting
(``python -m engine.bench.seed_spread``).

A benchmark style is a deterministic function of the photo, so a good styled edit should not
depend on the sampler's seed: the unadapted model's edits of two seeds differ by a few thousandths RMS
(on ``[0, 1]``). Styled edits of the shipped model differ far more, and show it as an 8 x 8 grid
of per-patch colour offsets (one patch is one token). For each ``--loss-weighting``, a new style
is trained from its 8 training pairs with the default settings of ``python -m engine train``
otherwise, then scored on held-out pairs: PSNR and SSIM of the seed-0 edit against the target,
and the *seed spread*, the RMS difference between the seed-0 and seed-1 edits.
"""

from __future__ import annotations

import argparse
import json

import torch

from engine.backbones.registry import load_backbone
from engine.bench.dataset import SizeFunction, benchmark_pairs
from engine.bench.pair_scores import score_pairs, to_unit_tensor
from engine.bench.style_benchmark import _as_pairs, _train
from engine.edit import edit_photo
from engine.files import write_text_atomic
from engine.moe_lora.config import MoELoraConfig
from engine.sampling.sampler import SamplerSettings
from engine.train.style_trainer import LOSS_WEIGHTINGS, StyleTrainingConfig


def seed_spread(first: torch.Tensor, second: torch.Tensor) -> float:
    """RMS difference of two ``(1, 3, H, W)`` images in ``[0, 1]``."""
    return float(((first - second) ** 2).mean().sqrt())


def score_edits(edit, pairs) -> dict[str, float]:
    """Mean PSNR, SSIM (seed 0 against the target) and seed spread (seeds 0 and 1) of ``edit``."""
    totals = {"psnr": 0.0, "ssim": 0.0, "seed_spread": 0.0}
    for pair in pairs:
        first, second = (edit(pair.before, SamplerSettings(seed=seed)) for seed in (0, 1))
        scores = score_pairs(first, pair.after)
        totals["psnr"] += float(scores["psnr"][0])
        totals["ssim"] += float(scores["ssim"][0])
        totals["seed_spread"] += seed_spread(to_unit_tensor(first), to_unit_tensor(second))
    return {name: round(value / len(pairs), 4) for name, value in totals.items()}


def run(backbone, style: str, weightings: list[str], steps: int | None, test_pairs: int,
        size_fn: SizeFunction | None = None) -> dict:
    size_fn = size_fn or backbone.fit_size
    train = _as_pairs(benchmark_pairs(style, "train", size_fn))
    test = _as_pairs(benchmark_pairs(style, "test", size_fn)[:test_pairs])
    def edit(photo, settings):  # with whatever adapter is folded into the backbone at the time
        return edit_photo(backbone, photo, settings)

    report = {"style": style, "base": score_edits(edit, test)}
    for weighting in weightings:
        torch.manual_seed(0)
        config = StyleTrainingConfig(loss_weighting=weighting)
        adapter, keys, seconds, _ = _train(backbone, MoELoraConfig(), {style: train}, steps or config.steps, config.seed, config)
        with adapter.folded({keys[style]: 1.0}):
            report[weighting] = score_edits(edit, test)
        report[weighting]["training_seconds"] = round(seconds, 1)
        adapter.remove()
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m engine.bench.seed_spread", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--style", default="vintage", help="The benchmark style to train.")
    parser.add_argument("--loss-weighting", default=",".join(LOSS_WEIGHTINGS),
                        help=f"Comma-separated weightings to compare ({', '.join(LOSS_WEIGHTINGS)}).")
    parser.add_argument("--steps", type=int, default=0, help="Training steps (0: the trainer's default).")
    parser.add_argument("--test-pairs", type=int, default=8)
    parser.add_argument("--out", default=None, help="Write the JSON report here too.")
    arguments = parser.parse_args(argv)
    weightings = [name.strip() for name in arguments.loss_weighting.split(",") if name.strip()]
    unknown = [name for name in weightings if name not in LOSS_WEIGHTINGS]
    if unknown:
        parser.error(f"unknown loss weighting(s) {', '.join(unknown)}; choose from {', '.join(LOSS_WEIGHTINGS)}")
    report = run(load_backbone(arguments.model), arguments.style, weightings, arguments.steps or None, arguments.test_pairs)
    text = json.dumps(report, indent=2)
    print(text)
    if arguments.out:
        write_text_atomic(arguments.out, text + "\n")


if __name__ == "__main__":
    main()
