"""The five-style benchmark run: ``python -m engine bench`` (``--fast`` for a smoke run).

For every benchmark style (:mod:`benchmarks.styles`), on the fixed splits of
:mod:`benchmarks.dataset` at the backbone's working size:

* ``identity``: the before-photo itself, against the after;
* ``base``: the unadapted backbone's edit;
* ``moe``: one multi-style MoE LoRA trained jointly on all styles (style experts plus shared
  experts), the style folded into the weights;
* ``lora``: an independent plain LoRA per style, the same trainer with no shared experts (which
  equals a peft LoRA, ``tests/adapters/moe``), trained for the same steps per style as the joint run
  spends per style, with the rank of the MoE's style expert plus its shared experts.

Scores on the held-out test pairs: PSNR and SSIM (higher is better) and the random-filter style
distance (lower is better; :mod:`engine.metrics.perceptual`), with each method's adapter size.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass

import torch

from benchmarks.dataset import benchmark_pairs
from benchmarks.styles import STYLES
from engine.adapters.moe.adapter import MoELoraAdapter
from engine.adapters.moe.config import TARGET_PRESETS, MoELoraConfig
from engine.core.configuration import option, require, to_dict
from engine.models.backbones.base import Backbone
from engine.models.editing import edit_photo
from engine.models.sampling.sampler import SamplerSettings
from engine.training.pairs import Pair
from engine.training.pruning import PruningConfig, prune
from engine.training.style_data import prepare_style
from engine.training.style_evaluation import evaluate_on_pairs
from engine.training.style_trainer import StyleTrainer, StyleTrainingConfig


@dataclass
class BenchmarkConfig:
    """What the benchmark run covers."""

    steps_per_style: int = option(150, "Training steps per style (the joint run takes this times the style count).")
    test_pairs: int = option(20, "Held-out test pairs per style (at most 20).")
    styles: str = option(",".join(STYLES), "Comma-separated benchmark styles to run.")
    baselines: bool = option(True, "Also train independent plain LoRAs per style.")
    prune_keep_fraction: float = option(0.0, "If positive: also prune the trained MoE LoRA to this fraction of its rank-1 "
                                             "components (engine.training.pruning), fine-tune it, and score it as 'moe-pruned'.")
    prune_finetune_steps: int = option(100, "Fine-tuning steps after pruning.")
    seed: int = option(0, "Seed of training and sampling.")
    training_scale: str = option(StyleTrainingConfig.training_scale, "The scale pairs are learned at "
                                 "(StyleTrainingConfig.training_scale): 'working' or 'native'.")
    crop_margin: float = option(StyleTrainingConfig.crop_margin, "Enlargement before cropping (StyleTrainingConfig.crop_margin).")
    targets: str = option(MoELoraConfig.targets, "Where the LoRA goes (MoELoraConfig.targets): one of "
                                                 f"{', '.join(TARGET_PRESETS)}; the MoE and the per-style LoRAs alike.")

    def __post_init__(self) -> None:
        require(self.targets in TARGET_PRESETS, f"targets must be one of {', '.join(TARGET_PRESETS)}")
        require(self.steps_per_style >= 1, "steps_per_style must be at least 1")
        require(1 <= self.test_pairs <= 20, "test_pairs must lie between 1 and 20")
        require(0 <= self.prune_keep_fraction < 1, "prune_keep_fraction must lie in [0, 1): 0 turns pruning off")
        require(self.prune_finetune_steps >= 0, "prune_finetune_steps must be non-negative")
        unknown = [name for name in self.style_names if name not in STYLES]
        require(not unknown, f"unknown benchmark style(s) {', '.join(unknown)}; known: {', '.join(STYLES)}")

    @property
    def style_names(self) -> list[str]:
        return [name.strip() for name in self.styles.split(",") if name.strip()]


FAST = BenchmarkConfig(steps_per_style=4, test_pairs=2, styles="ink sketch,vintage", baselines=True,
                       prune_keep_fraction=0.5, prune_finetune_steps=2)


def as_pairs(items) -> list[Pair]:
    return [Pair(photo_id, before, after, None, None) for before, after, photo_id in items]


def train_adapter(backbone: Backbone, moe: MoELoraConfig, styles: dict[str, list[Pair]], steps: int, seed: int,
           training: StyleTrainingConfig | None = None, callback=None):
    adapter = MoELoraAdapter(backbone, moe)
    base = training or StyleTrainingConfig()
    data = [prepare_style(backbone, adapter.add_style(), name, pairs, base.crop_margin, base.training_scale) for name, pairs in styles.items()]
    training = dataclasses.replace(base, steps=steps, seed=seed, checkpoint_every=0, sample_every=0)
    began = time.perf_counter()
    trainer = StyleTrainer(backbone, adapter, data, training)
    trainer.train(callback=callback)
    return adapter, {style.name: style.key for style in data}, time.perf_counter() - began, trainer


def evaluate_style(backbone: Backbone, adapter: MoELoraAdapter | None, key: str | None, pairs: list[Pair]) -> dict:
    images = [(pair.before, pair.after) for pair in pairs]
    if adapter is None:
        return evaluate_on_pairs(backbone, images)

    def styled(photo):
        if adapter.config.foldable:
            with adapter.folded({key: 1.0}):
                return edit_photo(backbone, photo, SamplerSettings())
        adapter.route({key: 1.0})
        try:
            return edit_photo(backbone, photo, SamplerSettings())
        finally:
            adapter.clear_routing()

    return evaluate_on_pairs(backbone, images, styled)


def run_benchmark(backbone: Backbone, config: BenchmarkConfig, moe: MoELoraConfig | None = None,
                  training: StyleTrainingConfig | None = None, log=print) -> dict:
    """Train and score every method; returns a JSON-ready report. ``training`` overrides the
    trainer's defaults (its steps and seed come from ``config``); ``moe`` overrides the adapter's,
    and must then agree with ``config.targets``."""
    moe = moe or MoELoraConfig(targets=config.targets)
    if moe.targets != config.targets:
        raise ValueError(f"the MoE config puts LoRA on {moe.targets!r} but the benchmark config on {config.targets!r}")
    training = dataclasses.replace(training or StyleTrainingConfig(), training_scale=config.training_scale,
                                   crop_margin=config.crop_margin)
    torch.manual_seed(config.seed)
    names = config.style_names
    train = {name: as_pairs(benchmark_pairs(name, "train", backbone.fit_size)) for name in names}
    test = {name: as_pairs(benchmark_pairs(name, "test", backbone.fit_size)[: config.test_pairs]) for name in names}
    report: dict = {"config": to_dict(config), "moe": to_dict(moe), "backbone": backbone.name, "styles": {}}

    log(f"training one MoE LoRA on {len(names)} styles for {config.steps_per_style * len(names)} steps")
    adapter, keys, seconds, trainer = train_adapter(backbone, moe, train, config.steps_per_style * len(names), config.seed, training)
    report["moe_training_seconds"] = round(seconds, 1)
    report["moe_parameters"] = adapter.parameter_count()
    for name in names:
        log(f"scoring {name}")
        base = evaluate_style(backbone, None, None, test[name])
        report["styles"][name] = {
            "identity": {k[len("identity_"):]: v for k, v in base.items() if k.startswith("identity_")},
            "base": {k: v for k, v in base.items() if not k.startswith("identity_")},
            "moe": {k: v for k, v in evaluate_style(backbone, adapter, keys[name], test[name]).items() if not k.startswith("identity_")},
        }
    if config.prune_keep_fraction:
        log(f"pruning the MoE LoRA to {config.prune_keep_fraction:.0%} of its components, then {config.prune_finetune_steps} fine-tuning steps")
        began = time.perf_counter()
        pruning = prune(trainer, PruningConfig(keep_fraction=config.prune_keep_fraction, finetune_steps=config.prune_finetune_steps))
        report["pruning"] = {"parameters_before": pruning.parameters_before, "parameters_after": pruning.parameters_after,
                             "scoring_psnr_before": round(pruning.psnr_before, 3), "scoring_psnr_after": round(pruning.psnr_after, 3),
                             "scoring_psnr_finetuned": round(pruning.psnr_finetuned, 3) if pruning.psnr_finetuned is not None else None,
                             "seconds": round(time.perf_counter() - began, 1),
                             "layer_ranks": pruning.layer_ranks(pruning.ranks_after)}
        report["moe_pruned_parameters"] = adapter.parameter_count()
        for name in names:
            scores = evaluate_style(backbone, adapter, keys[name], test[name])
            report["styles"][name]["moe-pruned"] = {k: v for k, v in scores.items() if not k.startswith("identity_")}
    adapter.remove()

    if config.baselines:
        lora = MoELoraConfig(targets=moe.targets, rank=moe.rank * (1 + moe.num_shared_experts), alpha=moe.alpha * (1 + moe.num_shared_experts),
                             num_shared_experts=0)
        total_parameters, total_seconds = 0, 0.0
        for name in names:
            log(f"training a plain LoRA on {name} for {config.steps_per_style} steps")
            single, single_keys, seconds, _ = train_adapter(backbone, lora, {name: train[name]}, config.steps_per_style, config.seed, training)
            total_parameters += single.parameter_count()
            total_seconds += seconds
            scores = evaluate_style(backbone, single, single_keys[name], test[name])
            report["styles"][name]["lora"] = {k: v for k, v in scores.items() if not k.startswith("identity_")}
            single.remove()
        report["lora_parameters"] = total_parameters
        report["lora_training_seconds"] = round(total_seconds, 1)
    report["mean"] = {
        method: {metric: round(sum(report["styles"][name][method][metric] for name in names) / len(names), 4)
                 for metric in ("psnr", "ssim", "style")}
        for method in report["styles"][names[0]]
    }
    return report


def markdown_table(report: dict) -> str:
    """The report as a Markdown table: one row per style and method."""
    lines = ["| style | method | PSNR (dB) | SSIM | style distance |", "|---|---|---|---|---|"]
    for name, methods in list(report["styles"].items()) + [("mean", report["mean"])]:
        for method, scores in methods.items():
            lines.append(f"| {name} | {method} | {scores['psnr']:.2f} | {scores['ssim']:.3f} | {scores['style']:.4f} |")
    return "\n".join(lines)


def dumps(report: dict) -> str:
    return json.dumps(report, indent=2)
