"""Automatic per-layer ranks: score every rank-1 component with an image-quality metric, prune globally.

The paper (Cao et al. 2025, "Parameter-Efficient MoE LoRA for Few-Shot Multi-Style Editing",
arXiv 2511.11236) chooses each layer's rank by estimating an importance score for every rank-1
component with an image-quality metric and pruning the low-importance ones. Its formula is not
public; this is ours.

* Metric: PSNR (dB) of the one-step clean estimate ``x0_hat = x_t - t v``, decoded and mapped
  to ``[0, 1]``, against the after-image, on deterministic crops of every scored style at fixed
  ``t``. Nothing is clamped, so the metric is differentiable everywhere.
* Each component ``b_i a_i^T`` is multiplied by its mask entry ``m_i`` (1 when live, see
  :mod:`engine.adapters.moe.layer`). Treating ``m_i`` as a continuous gate, masking the component is
  the step ``m_i -> 0``, so the first-order (Taylor) estimate of the PSNR it costs is
  ``d_i = dPSNR/dm_i * m_i`` (Molchanov et al. 2019, "Importance Estimation for Neural Network
  Pruning"; AdaLoRA's sensitivity ``|w dL/dw|``, Zhang et al. 2023, is the parameter-level
  analogue). One backward pass per batch and timestep scores every component at once.
* Score: ``mean over batches and timesteps of |d_i|``, the absolute value taken per batch and
  timestep (as the brief's ``|dPSNR/dm_i * m_i|``; Molchanov et al. square it instead, which
  ranked the same here). It lost less than random pruning, ``|mean d_i|`` (averaging first:
  effects that cancel over batches look unimportant, yet removing many such components together
  moves the output) and the signed drop ``mean d_i`` (which prunes first the components balancing
  others); the measurements are in docs/decisions/2026-11-23-rank-importance-score.md.
* :func:`exact_importance` measures the same quantity without the Taylor approximation, the
  mean over batches and timesteps of ``|PSNR(all) - PSNR(without i)|``, one forward sweep per
  component; it checks the estimate (the rank correlation is in the same record) and is far too
  slow to drive pruning on a real model, so :func:`prune` uses :func:`taylor_importance`.
* Selection is global across layers and experts, so layers end with different ranks: the
  scores are all in dB of the same output, hence comparable without per-layer normalisation.
  With a parameter budget a component's score is divided by its cost ``in + out`` (the greedy
  knapsack rule), since a component of a wide layer costs more. At least
  ``min_rank_per_expert`` components of every expert stay live, so no style is switched off.
* Pruning only zeroes mask entries; ``a_i`` and ``b_i`` are kept, so :func:`unprune` restores a
  component, and a pruned component gets zero gradient during the optional fine-tune (Adam
  without weight decay leaves it as it was).

AdaLoRA's EMA of the sensitivity is not used: it smooths scores taken on changing training
batches, while ours are taken once, on a fixed set of batches and timesteps.
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterator

import torch
from torch import nn

from engine.adapters.moe.adapter import MoELoraAdapter
from engine.core.configuration import option, require
from engine.core.errors import InputError
from engine.metrics.image_quality import psnr
from engine.models.backbones.base import Backbone
from engine.training.style_data import StyleData, crop_side, sample_batch

if TYPE_CHECKING:
    from engine.training.style_trainer import StyleTrainer

Component = tuple[str, str, int]  # (layer name, expert label, index of the component in the expert)


def shared_label(expert: int) -> str:
    """The label of shared expert ``expert`` in ranks and components (style experts use their key)."""
    return f"shared:{expert}"


@dataclass
class PruningConfig:
    """Settings of rank pruning by rank-1 importance."""

    keep_fraction: float = option(0.5, "Fraction of the live prunable rank-1 components to keep (when parameter_budget is 0).")
    parameter_budget: int = option(0, "If positive: keep components while adapter.parameter_count() stays within this many parameters, instead of keep_fraction.")
    batches: int = option(2, "Deterministic scoring batches.")
    samples_per_style: int = option(2, "Crops of each style per scoring batch, so every style's experts are scored on as many samples.")
    timesteps: tuple[float, ...] = option((0.25, 0.5, 0.75), "Fixed noise levels t of the clean estimate x0 = x_t - t v.")
    min_rank_per_expert: int = option(1, "Live components every expert keeps, so no style or shared expert is switched off.")
    styles: tuple[str, ...] = option((), "Keys of the style experts that may be pruned (empty: every style being scored).")
    shared: bool = option(True, "Whether the shared experts' components may be pruned.")
    finetune_steps: int = option(0, "Training steps after pruning, flow loss only, at the trainer's settings (0: none).")
    seed: int = option(0, "Seed of the scoring crops and noise.")

    def __post_init__(self) -> None:
        require(0 < self.keep_fraction <= 1, "keep_fraction must lie in (0, 1]")
        require(self.parameter_budget >= 0, "parameter_budget must be non-negative")
        require(self.batches >= 1 and self.samples_per_style >= 1, "batches and samples_per_style must be at least 1")
        require(len(self.timesteps) >= 1 and all(0 < t <= 1 for t in self.timesteps), "timesteps must be values in (0, 1]")
        require(self.min_rank_per_expert >= 0, "min_rank_per_expert must be non-negative")
        require(self.finetune_steps >= 0, "finetune_steps must be non-negative")


@dataclass
class ScoringBatch:
    """Crops of every scored style: latents ``source``, ``target`` and ``noise`` ``(B, C, h, w)``,
    the after-image ``after`` ``(B, 3, H, W)`` in ``[-1, 1]``, and the style key per sample."""

    source: torch.Tensor
    target: torch.Tensor
    noise: torch.Tensor
    after: torch.Tensor
    keys: list[str]


@dataclass
class PruningReport:
    """What pruning did. Ranks are live components per layer and expert label; PSNR is the mean
    over the scoring batches and timesteps of the clean estimate's PSNR, in dB."""

    ranks_before: dict[str, dict[str, int]]
    ranks_after: dict[str, dict[str, int]]
    parameters_before: int
    parameters_after: int
    psnr_before: float
    psnr_after: float
    pruned: list[Component]
    scores: dict[Component, float] = field(repr=False)
    psnr_finetuned: float | None = None

    @staticmethod
    def layer_ranks(ranks: dict[str, dict[str, int]]) -> dict[str, int]:
        """Live components per layer, over all its experts."""
        return {layer: sum(per_expert.values()) for layer, per_expert in ranks.items()}


@dataclass
class _Expert:
    """One expert's mask entries: ``mask`` is the layer's style mask ``(r,)`` or, for a shared
    expert, ``shared_mask`` ``(K, r)`` with ``row`` picking the expert."""

    layer: str
    label: str
    mask: nn.Parameter
    row: int | None
    cost: int  # parameters of one component: a_i (in) plus b_i (out)

    @property
    def values(self) -> torch.Tensor:
        return self.mask if self.row is None else self.mask[self.row]


def _experts(adapter: MoELoraAdapter, styles: list[str], shared: bool) -> list[_Expert]:
    experts = []
    for name, layer in adapter.layers.items():
        cost = layer.in_features + layer.out_features
        experts += [_Expert(name, key, layer.style_mask[key], None, cost) for key in styles]
        if shared:
            experts += [_Expert(name, shared_label(k), layer.shared_mask, k, cost) for k in range(layer.shared_mask.shape[0])]
    return experts


def live_ranks(adapter: MoELoraAdapter) -> dict[str, dict[str, int]]:
    """Live (unmasked) components per layer and expert label, over every expert."""
    return {name: {**{key: int(layer.style_mask[key].sum()) for key in adapter.style_keys},
                   **{shared_label(k): int(row.sum()) for k, row in enumerate(layer.shared_mask)}}
            for name, layer in adapter.layers.items()}


@contextlib.contextmanager
def _kept_routing(adapter: MoELoraAdapter) -> Iterator[None]:
    keys, weights = list(adapter.routing.keys), adapter.routing.weights
    try:
        yield
    finally:
        adapter.routing.keys, adapter.routing.weights = keys, weights


def scoring_batches(backbone: Backbone, styles: list[StyleData], config: PruningConfig) -> list[ScoringBatch]:
    """``config.batches`` batches of ``samples_per_style`` crops of each style, with noise, all
    drawn from ``config.seed`` (the same crops on every call and every process)."""
    generator = torch.Generator().manual_seed(config.seed)
    batches, side = [], crop_side(styles, backbone.native_resolution, backbone.resolution_multiple)
    for _ in range(config.batches):
        parts = [sample_batch([style], side, config.samples_per_style, generator) for style in styles]
        before, after = torch.cat([part[0] for part in parts]), torch.cat([part[1] for part in parts])
        with torch.no_grad():
            source, target = backbone.encode(before), backbone.encode(after)
        noise = torch.randn(target.shape, generator=generator).to(target.device)
        batches.append(ScoringBatch(source, target, noise, after.to(target.device), [key for part in parts for key in part[2]]))
    return batches


def clean_psnr(adapter: MoELoraAdapter, backbone: Backbone, batch: ScoringBatch, time: float) -> torch.Tensor:
    """Mean PSNR (dB, a differentiable scalar) of ``x0_hat = x_t - t v`` at noise level ``time``,
    each sample routed to its own style."""
    count = len(batch.keys)
    noisy = (1 - time) * batch.target + time * batch.noise
    adapter.route_batch(batch.keys)
    timesteps = torch.full((count,), time, device=noisy.device)
    condition = backbone.encode_prompt([""] * count)  # the default instruction, as in training
    velocity = backbone.predict_velocity(noisy, timesteps, batch.source, condition).float()
    images = (backbone.decode(noisy - time * velocity).float() + 1) / 2
    return psnr(images, (batch.after.float() + 1) / 2).mean()


def mean_psnr(adapter: MoELoraAdapter, backbone: Backbone, batches: list[ScoringBatch], timesteps: tuple[float, ...]) -> float:
    """:func:`clean_psnr` averaged over batches and timesteps (no gradient)."""
    with torch.no_grad(), _kept_routing(adapter):
        values = [clean_psnr(adapter, backbone, batch, time).item() for batch in batches for time in timesteps]
    return sum(values) / len(values)


def _scored_styles(batches: list[ScoringBatch], config: PruningConfig) -> list[str]:
    present = sorted({key for batch in batches for key in batch.keys})
    missing = [key for key in config.styles if key not in present]
    if missing:
        raise InputError(f"no scoring data for style {', '.join(missing)}; styles scored: {', '.join(present)}")
    return list(config.styles) or present


def taylor_importance(adapter: MoELoraAdapter, backbone: Backbone, batches: list[ScoringBatch],
                      config: PruningConfig) -> dict[Component, float]:
    """First-order estimate of the PSNR (dB) lost by masking each prunable component.

    Returns ``mean_{batch, t} |dPSNR/dm_i * m_i|`` per component (0 for one already masked).
    Masks get ``requires_grad`` only for the duration, their values stay as they are, and the
    gradients are taken with :func:`torch.autograd.grad`, so no ``.grad`` of the adapter or the
    backbone is touched.
    """
    experts = _experts(adapter, _scored_styles(batches, config), config.shared)
    masks = list({id(expert.mask): expert.mask for expert in experts}.values())
    totals = {id(mask): torch.zeros_like(mask, dtype=torch.float32) for mask in masks}
    flags = [mask.requires_grad for mask in masks]
    try:
        for mask in masks:
            mask.requires_grad_(True)
        with _kept_routing(adapter):
            for batch in batches:
                for time in config.timesteps:
                    value = clean_psnr(adapter, backbone, batch, time)
                    gradients = torch.autograd.grad(value, masks, allow_unused=True)
                    for mask, gradient in zip(masks, gradients):
                        if gradient is not None:  # None: a style absent from this batch
                            totals[id(mask)] += (gradient.float() * mask.detach().float()).abs()
    finally:
        for mask, flag in zip(masks, flags):
            mask.requires_grad_(flag)
    evaluations = len(batches) * len(config.timesteps)
    scores = {}
    for expert in experts:
        total = totals[id(expert.mask)] if expert.row is None else totals[id(expert.mask)][expert.row]
        for index, value in enumerate((total / evaluations).tolist()):
            scores[(expert.layer, expert.label, index)] = value
    return scores


def exact_importance(adapter: MoELoraAdapter, backbone: Backbone, batches: list[ScoringBatch],
                     config: PruningConfig, components: list[Component]) -> dict[Component, float]:
    """What :func:`taylor_importance` estimates, measured: masking each component alone, the
    mean over batches and timesteps of ``|PSNR(all) - PSNR(without i)|`` in dB.

    One full sweep over the batches and timesteps per component: a check of the estimate, too
    slow to drive pruning (which uses :func:`taylor_importance`).
    """
    experts = {(expert.layer, expert.label): expert for expert in _experts(adapter, adapter.style_keys, True)}

    def sweep() -> torch.Tensor:  # (batches * timesteps,) PSNR values
        with torch.no_grad(), _kept_routing(adapter):
            return torch.tensor([clean_psnr(adapter, backbone, batch, time).item()
                                 for batch in batches for time in config.timesteps])

    full = sweep()
    drops = {}
    for layer, label, index in components:
        values = experts[(layer, label)].values
        with torch.no_grad():
            kept = values[index].clone()
            values[index] = 0.0
        try:
            drops[(layer, label, index)] = (full - sweep()).abs().mean().item()
        finally:
            with torch.no_grad():
                values[index] = kept
    return drops


def choose_pruned(adapter: MoELoraAdapter, scores: dict[Component, float], config: PruningConfig) -> list[Component]:
    """The live components of ``scores`` to mask: all but the best of each expert
    (``min_rank_per_expert``), then the globally lowest to the budget."""
    experts = {(expert.layer, expert.label): expert for expert in _experts(adapter, adapter.style_keys, True)}
    live = [c for c in scores if float(experts[c[:2]].values[c[2]]) != 0.0]
    by_expert: dict[tuple[str, str], list[Component]] = {}
    for component in live:
        by_expert.setdefault(component[:2], []).append(component)
    protected: set[Component] = set()
    for members in by_expert.values():
        protected.update(sorted(members, key=lambda c: -scores[c])[: config.min_rank_per_expert])
    candidates = [c for c in live if c not in protected]
    cost = {c: experts[c[:2]].cost for c in live}
    if config.parameter_budget:
        # Score per parameter, greedily: the knapsack rule when components differ in size.
        total = adapter.parameter_count() - sum(cost[c] for c in candidates)
        if total > config.parameter_budget:
            raise InputError(f"a parameter budget of {config.parameter_budget} is below the {total} "
                             "that the minimum ranks and the other tensors need")
        kept = set()
        for component in sorted(candidates, key=lambda c: -scores[c] / cost[c]):
            if total + cost[component] <= config.parameter_budget:
                kept.add(component)
                total += cost[component]
    else:
        keep = max(0, round(config.keep_fraction * len(live)) - len(protected))
        kept = set(sorted(candidates, key=lambda c: -scores[c])[:keep])
    return [c for c in candidates if c not in kept]


def set_masks(adapter: MoELoraAdapter, components: list[Component], value: float) -> None:
    """Set the mask entries of ``components`` to ``value`` (0: pruned, 1: live); nothing else changes."""
    experts = {(expert.layer, expert.label): expert for expert in _experts(adapter, adapter.style_keys, True)}
    with torch.no_grad():
        for layer, label, index in components:
            experts[(layer, label)].values[index] = value


def unprune(adapter: MoELoraAdapter, report: PruningReport) -> None:
    """Make the components ``report`` pruned live again (their ``a_i``, ``b_i`` were kept)."""
    set_masks(adapter, report.pruned, 1.0)


def prune_adapter(adapter: MoELoraAdapter, backbone: Backbone, batches: list[ScoringBatch],
                  config: PruningConfig) -> PruningReport:
    """Score the prunable components on ``batches``, mask the least important, report."""
    if any(layer.folded_weight is not None for layer in adapter.layers.values()):
        raise InputError("the adapter is folded into the base weights; prune it unfolded")
    ranks_before, parameters_before = live_ranks(adapter), adapter.parameter_count()
    psnr_before = mean_psnr(adapter, backbone, batches, config.timesteps)
    scores = taylor_importance(adapter, backbone, batches, config)
    pruned = choose_pruned(adapter, scores, config)
    set_masks(adapter, pruned, 0.0)
    return PruningReport(ranks_before, live_ranks(adapter), parameters_before, adapter.parameter_count(), psnr_before,
                         mean_psnr(adapter, backbone, batches, config.timesteps), pruned, scores)


def finetune(trainer: "StyleTrainer", steps: int) -> dict:
    """A short run of ``trainer``'s kind on the same adapter, data and settings, flow loss only
    (a fresh discriminator would be untrained), no checkpoints. Returns the loss history."""
    train_shared = any(name.endswith(".shared_down") for name in trainer.parameters)
    settings = dataclasses.replace(trainer.config, steps=steps, warmup_steps=min(trainer.config.warmup_steps, max(1, steps // 5)),
                                   adversarial_weight=0.0, checkpoint_every=0, sample_every=0)
    return type(trainer)(trainer.backbone, trainer.adapter, trainer.styles, settings, train_shared=train_shared,
                         accelerator=trainer.accelerator).train()


def prune(trainer: "StyleTrainer", config: PruningConfig) -> PruningReport:
    """Prune ``trainer``'s adapter scored on crops of ``trainer``'s styles, then fine-tune for
    ``config.finetune_steps`` steps (``psnr_finetuned`` in the report)."""
    batches = scoring_batches(trainer.backbone, trainer.styles, config)
    report = prune_adapter(trainer.adapter, trainer.backbone, batches, config)
    if config.finetune_steps:
        finetune(trainer, config.finetune_steps)
        report.psnr_finetuned = mean_psnr(trainer.adapter, trainer.backbone, batches, config.timesteps)
    return report
