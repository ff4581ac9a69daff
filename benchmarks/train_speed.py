"""How fast a new style trains: held-out PSNR against training time
(``python -m benchmarks.train_speed``).

For each chosen benchmark style, a new MoE LoRA is trained from the style's 8 training pairs
with the default :class:`StyleTrainingConfig` (as ``python -m engine train`` does), pausing every
``--every`` steps to score held-out test pairs (the pauses are not counted as training time).
The report gives the gain over the unedited photo at each point and the training time at which
the gain first reaches 90 % of its final value (the target: 5 minutes or less).
"""

from __future__ import annotations

import argparse
import time

from benchmarks.dataset import benchmark_pairs
from benchmarks.report import add_out_argument, publish
from benchmarks.style_benchmark import as_pairs, evaluate_style
from engine.adapters.moe.adapter import MoELoraAdapter
from engine.adapters.moe.config import MoELoraConfig
from engine.models.backbones.registry import load_backbone
from engine.training.style_data import prepare_style
from engine.training.style_trainer import StyleTrainer, StyleTrainingConfig


def style_curve(backbone, style: str, every: int, test_pairs: int) -> dict:
    config = StyleTrainingConfig(checkpoint_every=0, sample_every=0)
    train = as_pairs(benchmark_pairs(style, "train", backbone.fit_size))
    test = as_pairs(benchmark_pairs(style, "test", backbone.fit_size)[:test_pairs])
    adapter = MoELoraAdapter(backbone, MoELoraConfig())
    key = adapter.add_style()
    trainer = StyleTrainer(backbone, adapter, [prepare_style(backbone, key, style, train, config.crop_margin, config.training_scale)], config)
    identity = evaluate_style(backbone, None, None, test)["identity_psnr"]
    points, trained_seconds = [], 0.0
    for step in range(config.steps + 1):
        if step % every == 0 or step == config.steps:
            scores = evaluate_style(backbone, adapter, key, test)
            points.append({"step": step, "seconds": round(trained_seconds, 1), "psnr": scores["psnr"], "gain_db": round(scores["psnr"] - identity, 3)})
        if step < config.steps:
            began = time.perf_counter()
            trainer.step(step)
            trained_seconds += time.perf_counter() - began
    adapter.remove()
    final = points[-1]["gain_db"]
    reached = next((point for point in points if final > 0 and point["gain_db"] >= 0.9 * final), None)
    return {"identity_psnr": identity, "points": points, "final_gain_db": final,
            "seconds_to_90_percent": reached["seconds"] if reached else None, "total_seconds": round(trained_seconds, 1)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.train_speed", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--styles", default="ink sketch,teal-orange grade", help="Comma-separated benchmark styles.")
    parser.add_argument("--every", type=int, default=50, help="Steps between held-out scorings.")
    parser.add_argument("--test-pairs", type=int, default=8, help="Held-out pairs scored at each point.")
    add_out_argument(parser)
    arguments = parser.parse_args(argv)
    backbone = load_backbone(arguments.model)
    report = {name.strip(): style_curve(backbone, name.strip(), arguments.every, arguments.test_pairs)
              for name in arguments.styles.split(",") if name.strip()}
    publish(report, arguments.out)


if __name__ == "__main__":
    main()
