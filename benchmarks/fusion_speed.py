"""Per-image cost of subject/style LoRA fusion, as ratios measured side by side
(``python -m benchmarks.fusion_speed``).

Two random non-zero rank-``--rank`` LoRAs on every adaptable linear layer of the model stand in
for a subject and a style (the cost does not depend on what they learned). Each variant runs on
its own copy of the model with its fusion installed once, the steady state of a session that
renders several images of one pair, and one image per variant is generated in turn
(:func:`benchmarks.timing.interleaved_medians`), so machine noise hits all alike:

* ``single LoRA``: one LoRA folded into the weights (what an imported LoRA costs; the reference);
* ``merge``: the weighted sum folded (also a static fold);
* ``EST``: EST-LoRA with the choice of all layers computed once per step and folded into the
  layers whose choice changed (:mod:`engine.fusion.folding`, the default mechanism);
* ``EST unfused``: the same choices, each layer running its chosen LoRA beside it from stacked
  factors (the alternative mechanism; what the default is measured against);
* ``EST as its code does``: both ``B A`` products and their norms rebuilt at every layer call;
* ``K-LoRA as its code does``: both products and their top-K rebuilt at every layer call;
* ``K-LoRA cached``: top-K sums computed once, then the same switch and folding as EST.

``EST unfused`` and the two "as its code does" variants are benchmark baselines
(:mod:`benchmarks.fusion_baselines`); the other variants fold, as the product does.

Also reported: the one-off cost of preparing each plan (scores and gamma, :func:`plan_fusion`),
of measuring EST's beta (two extra images and the embedding), and how many layer folds EST
makes per image.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from benchmarks.fusion_baselines import Baseline
from benchmarks.timing import interleaved_medians
from engine.adapters.lora.files import LoraLayer
from engine.adapters.lora.patch import applied_lora
from engine.fusion import FusionConfig, FusionPlan, applied_fusion, measure_beta, plan_fusion
from engine.models.backbones.base import Backbone
from engine.models.backbones.registry import load_backbone
from engine.models.editing import generate_image
from engine.models.sampling.sampler import SamplerSettings

# beta for the timed runs: the switch then moves during sampling, as with a measured beta.
BETA = 0.5
VARIANTS = {
    "single LoRA": None,
    "merge": FusionConfig(method="merge"),
    "EST": FusionConfig(method="est", beta=BETA),
    "EST unfused": Baseline(FusionConfig(method="est", beta=BETA), "unfused"),
    "EST as its code does": Baseline(FusionConfig(method="est", beta=BETA), "per_call"),
    "K-LoRA as its code does": Baseline(FusionConfig(method="klora"), "per_call"),
    "K-LoRA cached": FusionConfig(method="klora"),
}


def random_lora(backbone: Backbone, rank: int, seed: int) -> dict[str, LoraLayer]:
    """Rank-``rank`` factors on every adapter target, scaled like a trained LoRA's update (small
    against the weights: ``|dW|`` about 1 % of ``|W|``)."""
    generator = torch.Generator().manual_seed(seed)
    modules = dict(backbone.transformer.named_modules())
    layers = {}
    for name in backbone.adapter_targets():
        linear = modules[name]
        down = torch.randn(rank, linear.in_features, generator=generator) / linear.in_features**0.5
        up = torch.randn(linear.out_features, rank, generator=generator) * 0.01
        layers[name] = LoraLayer(down, up, 1.0)
    return layers


def make_plan(backbone: Backbone, subject: dict[str, LoraLayer], style: dict[str, LoraLayer],
              variant: FusionConfig | Baseline) -> FusionPlan:
    """The variant's plan: the product's for a fusion setting, the baseline's own for a baseline."""
    if isinstance(variant, Baseline):
        return variant.plan(backbone, subject, style)
    return plan_fusion(backbone, subject, style, variant)


def applied(backbone: Backbone, plan: FusionPlan, variant: FusionConfig | Baseline):
    """The context manager installing ``plan`` on ``backbone`` by the variant's mechanism."""
    return variant.applied(backbone, plan) if isinstance(variant, Baseline) else applied_fusion(backbone, plan)


def measure(model: str, rank: int, steps: int, repeats: int) -> dict:
    reference = load_backbone(model)
    subject, style = random_lora(reference, rank, seed=1), random_lora(reference, rank, seed=2)
    settings = SamplerSettings(steps=steps, seed=0)
    size = (reference.native_resolution, reference.native_resolution)
    contexts, calls, fusions = [], {}, {}
    try:
        for name, config in VARIANTS.items():
            backbone = load_backbone(model)
            if config is None:
                contexts.append(applied_lora(backbone, subject))
                contexts[-1].__enter__()
                calls[name] = lambda backbone=backbone: generate_image(backbone, size, settings)
                continue
            contexts.append(applied(backbone, make_plan(backbone, subject, style, config), config))
            fusion = contexts[-1].__enter__()
            fusions[name] = fusion
            calls[name] = lambda backbone=backbone, fusion=fusion: generate_image(backbone, size, settings,
                                                                                  before_step=fusion.before_step)
        folds_before = fusions["EST"].folds
        seconds = interleaved_medians(calls, repeats)
        folds_per_image = (fusions["EST"].folds - folds_before) / (repeats + 1)  # the warm-up call folds too
    finally:
        for context in reversed(contexts):
            context.__exit__(None, None, None)
    reference_seconds = seconds["single LoRA"]
    setup = interleaved_medians({
        "EST plan (energies, gamma)": lambda: make_plan(reference, subject, style, VARIANTS["EST"]),
        "K-LoRA cached plan (top-K sums, gamma)": lambda: make_plan(reference, subject, style, VARIANTS["K-LoRA cached"]),
        "K-LoRA as its code does plan (gamma)": lambda: make_plan(reference, subject, style, VARIANTS["K-LoRA as its code does"]),
    }, max(3, repeats // 2))
    began = time.perf_counter()
    beta = measure_beta(reference, plan_fusion(reference, subject, style, FusionConfig(method="est")), settings, size=size).beta
    beta_seconds = time.perf_counter() - began
    return {
        "model": model, "rank": rank, "layers": len(subject), "steps": steps or reference.default_steps,
        "threads": torch.get_num_threads(), "repeats": repeats,
        "seconds_per_image": seconds,
        "ratio_to_single_lora": {name: value / reference_seconds for name, value in seconds.items()},
        "est_layer_folds_per_image": folds_per_image,
        "setup_seconds": setup,
        "beta_measurement_seconds": beta_seconds, "measured_beta": beta,
    }


def format_report(report: dict) -> str:
    lines = [f"{report['model']} model, {report['layers']} layers, rank {report['rank']}, {report['steps']} steps, "
             f"{report['threads']} thread(s), median of {report['repeats']} interleaved images",
             f"{'variant':<26}{'s/image':>9}{'x single LoRA':>15}"]
    for name, seconds in report["seconds_per_image"].items():
        lines.append(f"{name:<26}{seconds:>9.3f}{report['ratio_to_single_lora'][name]:>15.2f}")
    lines.append(f"EST layer folds per image: {report['est_layer_folds_per_image']:.1f} of {report['layers']} layers")
    for name, seconds in report["setup_seconds"].items():
        lines.append(f"one-off {name}: {seconds * 1000:.1f} ms")
    lines.append(f"one-off EST beta measurement (2 images + embedding): {report['beta_measurement_seconds']:.2f} s "
                 f"(beta {report['measured_beta']:.3f})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fusion_speed", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="embedded", help="Backbone to measure (default: the shipped model).")
    parser.add_argument("--rank", type=int, default=8, help="Rank of both random LoRAs.")
    parser.add_argument("--steps", type=int, default=0, help="Sampling steps per image (0: the model's default).")
    parser.add_argument("--repeats", type=int, default=7, help="Interleaved images per variant.")
    parser.add_argument("--json", action="store_true", help="Print the report as JSON instead of a table.")
    arguments = parser.parse_args(argv)
    report = measure(arguments.model, arguments.rank, arguments.steps, arguments.repeats)
    print(json.dumps(report, indent=2) if arguments.json else format_report(report))


if __name__ == "__main__":
    main()
