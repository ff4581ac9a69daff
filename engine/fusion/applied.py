"""A fusion installed on a backbone for the length of a ``with`` block.

``with applied_fusion(backbone, plan, beta) as fusion:`` installs the plan's mechanism and yields
an :class:`AppliedFusion` whose :meth:`~AppliedFusion.before_step` is passed to
:func:`engine.models.editing.edit_photo` or :func:`engine.models.editing.generate_image` as ``before_step``; the
sampler calls it with the real step fraction before every model call. Leaving the block restores
the backbone bit for bit (original weight tensors and modules put back).

Mechanisms (chosen by the plan's config; :mod:`benchmarks.fusion_speed` measures them):

* ``fold`` (default): :class:`~engine.fusion.folding.FoldedLayers`. Static methods (merge, subject,
  style) fold once; EST and K-LoRA compute the choice of every layer with one vectorised op
  (:meth:`~engine.fusion.rule.SwitchRule.choose`) and refold only the layers whose choice changed
  (at most once per layer per run).
* ``unfused``: :class:`~engine.fusion.switched_layer.SwitchedLoraLinear` wrappers reading a shared
  per-layer choice list set once per step.
* ``recompute_per_call``: the same wrappers rebuilding and scoring both updates at every call, as
  the public EST-LoRA / K-LoRA code does (speed baseline).
"""

from __future__ import annotations

import contextlib
import weakref
from dataclasses import dataclass
from typing import Iterator

import torch
from torch import nn

from engine.core.errors import InputError
from engine.fusion.config import MAX_BETA
from engine.fusion.folding import FoldedLayers
from engine.fusion.plan import FusionPlan
from engine.fusion.switched_layer import STYLE, SUBJECT, SharedChoice, SwitchedLoraLinear, install, uninstall
from engine.models.backbones.base import Backbone
from engine.models.sampling.sampler import StepStart

# Transformers with a fusion installed: a second one on top would fold into folded weights.
_ACTIVE: "weakref.WeakSet[nn.Module]" = weakref.WeakSet()


@dataclass(frozen=True)
class FusionStep:
    """One step's switch: the step fraction ``tau``, ``S`` and how many layers used the subject
    (None with per-call recomputation, which decides inside each layer call)."""

    fraction_done: float
    strength: float
    subject_layers: int | None


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
            beta = config.base_beta() if beta is None else beta
            if beta is None:
                raise InputError("EST needs the style discrepancy beta: measure it (engine.fusion.discrepancy) "
                                 "or set it in the settings")
            if not 0.0 <= float(beta) <= MAX_BETA:
                raise InputError(f"beta must lie in [0, {MAX_BETA}] (1 - a cosine), not {beta}")
            self.rule = plan.rule(float(beta))
        self._folded: FoldedLayers | None = None
        self._wrappers: dict[str, SwitchedLoraLinear] = {}
        self._shared: SharedChoice | None = None
        if config.recompute_per_call or (config.switches and config.application == "unfused"):
            self._install_wrappers(plan)
        else:
            self._folded = FoldedLayers(transformer, plan.pair, plan.fold_options())
            self._folded.select(self._options(0.0) if config.switches else torch.zeros_like(self._folded.current))
        _ACTIVE.add(transformer)

    def _install_wrappers(self, plan: FusionPlan) -> None:
        config, pair = plan.config, plan.pair
        modules = dict(self.transformer.named_modules())
        not_linear = [name for name in pair.names if not isinstance(modules.get(name), nn.Linear)]
        if not_linear:
            raise InputError(f"this model has no plain linear layer {', '.join(not_linear[:3])}; apply the fusion to the "
                             "model the LoRAs were checked against, with no other adapter installed")
        per_call = ({"est": "energy", "klora": "top_k"}[config.method]) if config.recompute_per_call else None
        self._shared = SharedChoice(strength=self.rule.strength(0.0), gamma=self.rule.gamma,
                                    subject_scale=config.subject_scale, style_scale=config.style_scale)
        if per_call is None:
            self._shared.indices = self._options(0.0).tolist()

        def make_layer(index: int, linear: nn.Linear) -> SwitchedLoraLinear:
            name = pair.names[index]
            return SwitchedLoraLinear(linear, index, pair.subject[name], pair.style[name], self._shared, per_call)

        self._wrappers = install(self.transformer, list(pair.names), make_layer)

    def _options(self, fraction_done: float) -> torch.Tensor:
        """Per layer ``(L,)`` long: SUBJECT (0) or STYLE (1) at step fraction ``tau``."""
        return torch.where(self.rule.choose(fraction_done), SUBJECT, STYLE)

    def before_step(self, info: StepStart) -> None:
        """Switch every layer for the coming step (pass as ``before_step`` to the sampler)."""
        if self.rule is None:
            return
        tau = info.fraction_done
        strength = self.rule.strength(tau)
        if self.plan.config.recompute_per_call:
            self._shared.strength = strength
            self.steps.append(FusionStep(tau, strength, None))
            return
        options = self._options(tau)
        if self._folded is not None:
            self._folded.select(options)
        else:
            self._shared.indices = options.tolist()
        self.steps.append(FusionStep(tau, strength, int((options == SUBJECT).sum())))

    @property
    def folds(self) -> int:
        """Layer folds done so far (0 for the unfolded mechanisms)."""
        return 0 if self._folded is None else self._folded.folds

    def remove(self) -> None:
        """Restore the backbone's original weights and modules."""
        if self._folded is not None:
            self._folded.remove()
            self._folded = None
        if self._wrappers:
            uninstall(self.transformer, self._wrappers)
            self._wrappers = {}
        _ACTIVE.discard(self.transformer)


@contextlib.contextmanager
def applied_fusion(backbone: Backbone, plan: FusionPlan, beta: float | None = None) -> Iterator[AppliedFusion]:
    """``with applied_fusion(backbone, plan, beta) as fusion:`` render with
    ``before_step=fusion.before_step``; the backbone is restored bit for bit afterwards."""
    fusion = AppliedFusion(backbone, plan, beta)
    try:
        yield fusion
    finally:
        fusion.remove()
