"""Design decisions of the MoE LoRA, measured on the benchmark
(``python -m benchmarks.ablations``): each variant trains one joint MoE LoRA on the benchmark
styles and is scored on the held-out pairs, all else equal.

* router: 'style' (foldable) against 'token';
* gate: softmax against top-1;
* where LoRA goes: attention, feed-forward, double-stream blocks, single-stream blocks, all;
* shared experts: 0 against 2 against 4;
* adversarial loss: off against on (weight 0.05 from step 100);
* flow-loss weighting: the clean-image error (the default) against the plain velocity loss.
"""

from __future__ import annotations

import argparse
import dataclasses

from benchmarks.report import add_out_argument, publish
from benchmarks.style_benchmark import BenchmarkConfig, run_benchmark
from engine.adapters.moe.config import TARGET_PRESETS, MoELoraConfig
from engine.models.backbones.registry import load_backbone
from engine.training.style_trainer import StyleTrainingConfig

BASE = MoELoraConfig()
VARIANTS: dict[str, tuple[MoELoraConfig, StyleTrainingConfig]] = {
    "default": (BASE, StyleTrainingConfig()),  # style router, softmax gate, every block layer, 2 shared experts
    "token router": (dataclasses.replace(BASE, router="token"), StyleTrainingConfig()),
    "top-1 gate": (dataclasses.replace(BASE, gate="top_k", top_k=1), StyleTrainingConfig()),
    "no shared experts": (dataclasses.replace(BASE, num_shared_experts=0), StyleTrainingConfig()),
    "4 shared experts": (dataclasses.replace(BASE, num_shared_experts=4), StyleTrainingConfig()),
    **{f"targets={name}": (dataclasses.replace(BASE, targets=name), StyleTrainingConfig()) for name in TARGET_PRESETS if name != BASE.targets},
    "adversarial 0.05": (BASE, StyleTrainingConfig(adversarial_weight=0.05, adversarial_start=100)),
    "velocity loss": (BASE, StyleTrainingConfig(loss_weighting="velocity")),
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ablations", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--steps-per-style", type=int, default=150)
    parser.add_argument("--test-pairs", type=int, default=10)
    parser.add_argument("--variants", default="", help="Comma-separated variant names (default: all).")
    parser.add_argument("--seed", type=int, default=0, help="Seed of training and sampling.")
    add_out_argument(parser)
    arguments = parser.parse_args(argv)
    chosen = [name.strip() for name in arguments.variants.split(",") if name.strip()] or list(VARIANTS)
    backbone = load_backbone(arguments.model)
    results = {}
    for name in chosen:
        moe, training = VARIANTS[name]
        config = BenchmarkConfig(steps_per_style=arguments.steps_per_style, test_pairs=arguments.test_pairs, baselines=False,
                                 seed=arguments.seed, targets=moe.targets)
        report = run_benchmark(backbone, config, moe, training, log=lambda message: None)
        results[name] = {"mean": report["mean"]["moe"], "parameters": report["moe_parameters"], "seconds": report["moe_training_seconds"]}
        print(f"| {name} | {results[name]['mean']['psnr']:.2f} | {results[name]['mean']['ssim']:.3f} | "
              f"{results[name]['mean']['style']:.4f} | {results[name]['parameters']:,} | {results[name]['seconds']:.0f} |", flush=True)
    publish(results, arguments.out)


if __name__ == "__main__":
    main()
