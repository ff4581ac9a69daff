"""A fusion installed on a backbone for the length of a ``with`` block.

``with applied_fusion(backbone, plan, beta) as fusion:`` folds the plan's updates in and yields
an :class:`AppliedFusion` whose :meth:`~AppliedFusion.before_step` is passed to
:func:`engine.models.editing.edit_photo` or :func:`engine.models.editing.generate_image` as ``before_step``; the
sampler calls it with the real step fraction before every model call. Leaving the block restores
the backbone bit for bit (the original weight tensors put back).

The mechanism is folding (:class:`~engine.fusion.folding.FoldedLayers`). Static methods (merge,
subject, style) fold once; EST and K-LoRA compute the choice of every layer with one vectorised op
(:meth:`~engine.fusion.rule.SwitchRule.choose`) and refold only the layers whose choice changed (at
most once per layer per run). The alternatives it is measured against (:mod:`benchmarks.fusion_speed`:
the chosen factors run beside each layer, and the public EST-LoRA / K-LoRA code's recomputation at
every layer call) are benchmark baselines, in :mod:`benchmarks.fusion_baselines`.
"""

from __future__ import annotations

import contextlib
import weakref
from dataclasses import dataclass
from typing import Iterator

import torch
from torch import nn

from engine.core.errors import InputError
from engine.fusion.config import MAX_BETA, FusionConfig
from engine.fusion.folding import FoldedLayers
from engine.fusion.plan import FusionPlan
from engine.models.backbones.base import Backbone
from engine.models.sampling.sampler import StepStart

# The option indices of a switching plan's fold_options(): the subject's update, the style's.
SUBJECT, STYLE = 0, 1
# Transformers with a fusion installed: a second one on top would fold into folded weights.
_ACTIVE: "weakref.WeakSet[nn.Module]" = weakref.WeakSet()


@dataclass(frozen=True)
class FusionStep:
    """One step's switch: the step fraction ``tau``, ``S`` and how many layers used the subject."""

    fraction_done: float
    strength: float
    subject_layers: int


class AppliedFusion:
    """The plan's updates installed on ``backbone`` until :meth:`remove`.

    Args:
        backbone: the model (the one the plan was checked against, or one with the same layers).
        plan: from :func:`engine.fusion.plan.plan_fusion`.
        beta: the style discrepancy for EST; None takes the config's (its ``beta``, or K-LoRA's
            constant for klora). Ignored by the methods that do not switch.
    """

    def __init__(self, backbone: Backbone, plan: FusionPlan, beta: float | None = None) -> None:
        transformer = backbone.transformer
        if transformer in _ACTIVE:
            raise InputError("a fusion is already applied to this model; leave its with-block before applying another")
        config = plan.config
        self.plan, self.transformer = plan, transformer
        self.steps: list[FusionStep] = []
        self.rule = None
        if config.switches:
            self.rule = plan.rule(switch_beta(config, beta))
        self._folded: FoldedLayers | None = FoldedLayers(transformer, plan.pair, plan.fold_options())
        self._folded.select(self._options(0.0) if config.switches else torch.zeros_like(self._folded.current))
        _ACTIVE.add(transformer)

    def _options(self, fraction_done: float) -> torch.Tensor:
        """Per layer ``(L,)`` long: SUBJECT (0) or STYLE (1) at step fraction ``tau``."""
        return torch.where(self.rule.choose(fraction_done), SUBJECT, STYLE)

    def before_step(self, info: StepStart) -> None:
        """Switch every layer for the coming step (pass as ``before_step`` to the sampler)."""
        if self.rule is None:
            return
        tau = info.fraction_done
        options = self._options(tau)
        self._folded.select(options)
        self.steps.append(FusionStep(tau, self.rule.strength(tau), int((options == SUBJECT).sum())))

    @property
    def folds(self) -> int:
        """Layer folds done so far (0 once removed)."""
        return 0 if self._folded is None else self._folded.folds

    def remove(self) -> None:
        """Restore the backbone's original weights."""
        if self._folded is not None:
            self._folded.remove()
            self._folded = None
        _ACTIVE.discard(self.transformer)


def switch_beta(config: FusionConfig, beta: float | None) -> float:
    """The style discrepancy a switching fusion uses: ``beta``, or the config's (its ``beta``, or
    K-LoRA's constant for klora); refuses a missing or out-of-range one."""
    beta = config.base_beta() if beta is None else beta
    if beta is None:
        raise InputError("EST needs the style discrepancy beta: measure it (engine.fusion.discrepancy) "
                         "or set it in the settings")
    if not 0.0 <= float(beta) <= MAX_BETA:
        raise InputError(f"beta must lie in [0, {MAX_BETA}] (1 - a cosine), not {beta}")
    return float(beta)


@contextlib.contextmanager
def applied_fusion(backbone: Backbone, plan: FusionPlan, beta: float | None = None) -> Iterator[AppliedFusion]:
    """``with applied_fusion(backbone, plan, beta) as fusion:`` render with
    ``before_step=fusion.before_step``; the backbone is restored bit for bit afterwards."""
    fusion = AppliedFusion(backbone, plan, beta)
    try:
        yield fusion
    finally:
        fusion.remove()
