"""The baselines the product's folded fusion (:mod:`engine.fusion.folding`) is measured against:
the chosen LoRA update run beside each frozen linear layer instead of folded into its weight.

Two mechanisms, for EST-LoRA and K-LoRA only (the methods that switch):

* ``unfused``: the layer holds both updates' factors, scaled, and reads its choice from a list the
  fusion sets once per step for all layers (:class:`SharedChoice`, filled from one vectorised
  :meth:`~engine.fusion.rule.SwitchRule.choose`). A call costs the base layer plus a low-rank
  product ``up @ (down @ x)``: about ``2 r (in + out)`` multiply-adds per token.
* ``per_call``: what the public EST-LoRA and K-LoRA code does (``KLoRALinearLayer.forward`` in
  github.com/HVision-NKU/K-LoRA and github.com/Godz-z/EST-LoRA, ``klora.py``): at every call,
  rebuild ``dW_c = B_c A_c`` and ``dW_s`` ``(out, in)``, score both (top-K sum of ``|dW|`` for K-LoRA,
  ``||dW||_F^2`` for EST-LoRA), compare on the host (a device sync per call) and apply the chosen
  full matrix, ``x @ dW^T``. The only change is the time: ``tau`` is the sampler's step fraction
  (:class:`SharedChoice`'s ``strength``), not their global call counter that assumes 28000 calls.

``Baseline(config, mechanism)`` makes the plan (:meth:`Baseline.plan`: the product's plan for
``unfused``; only the checked pair and gamma for ``per_call``, which is all the public code computes
once) and installs it for a ``with`` block (:meth:`Baseline.applied`, the counterpart of
:func:`engine.fusion.applied_fusion`: pass ``fusion.before_step`` to the sampler; leaving the block
puts every original layer back). :mod:`benchmarks.fusion_speed` and :mod:`benchmarks.fusion_bench`
time them.
"""

from __future__ import annotations

import contextlib
import weakref
from dataclasses import dataclass, field
from typing import Callable, Iterator, Mapping

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from engine.adapters.lora.files import LoraLayer
from engine.adapters.lora.surgery import replace_module
from engine.adapters.moe.layer import add_low_rank_update
from engine.core.errors import InputError
from engine.fusion.applied import STYLE, SUBJECT, FusionStep, switch_beta
from engine.fusion.config import SWITCHING_METHODS, FusionConfig
from engine.fusion.pair import LoraPair, check_pair
from engine.fusion.plan import FusionPlan, plan_fusion
from engine.fusion.render import render
from engine.fusion.scores import balance_gamma, energies, l1_sums
from engine.models.backbones.base import Backbone
from engine.models.sampling.sampler import SamplerSettings, StepStart

MECHANISMS = ("unfused", "per_call")
# What the public code of each method scores at every call (SwitchedLoraLinear's per_call_score).
PER_CALL_SCORES = {"est": "energy", "klora": "top_k"}
# Transformers with a baseline installed: a second one would wrap the wrappers.
_ACTIVE: "weakref.WeakSet[nn.Module]" = weakref.WeakSet()


@dataclass
class SharedChoice:
    """What every switched layer of one fusion reads at its forward pass.

    ``indices``: per layer, 0 (subject) or 1 (style), set once per step. ``strength``: the step's
    ``S = alpha * tau + beta`` (per-call mode). ``gamma``, ``subject_scale``, ``style_scale``: fixed.
    """

    indices: list[int] = field(default_factory=list)
    strength: float = 0.0
    gamma: float = 1.0
    subject_scale: float = 1.0
    style_scale: float = 1.0


class SwitchedLoraLinear(nn.Module):
    """A frozen ``nn.Linear`` (``base_layer``) plus a subject and a style LoRA, one used per call.

    Args:
        base_layer: the layer wrapped (kept as is; the wrapper is removed by putting it back).
        index: this layer's position in :attr:`SharedChoice.indices`.
        subject, style: the two LoRAs of this layer.
        shared: the fusion's shared state.
        per_call_score: ``None`` (unfused mode), ``"top_k"`` (K-LoRA's code) or ``"energy"``
            (EST-LoRA's code).
    """

    def __init__(self, base_layer: nn.Linear, index: int, subject: LoraLayer, style: LoraLayer, shared: SharedChoice,
                 per_call_score: str | None = None) -> None:
        super().__init__()
        self.base_layer = base_layer
        self.index = index
        self.shared = shared
        self.per_call_score = per_call_score
        self.in_features, self.out_features = base_layer.in_features, base_layer.out_features
        device, dtype = base_layer.weight.device, base_layer.weight.dtype
        self.top_k = subject.down.shape[0] * style.down.shape[0]
        if per_call_score is None:
            # Scales folded into up once; a zero scale leaves that side out.
            self.options = [_scaled(subject, shared.subject_scale, device, dtype), _scaled(style, shared.style_scale, device, dtype)]
        else:
            # The public code keeps the raw factors and multiplies them at every call.
            self.factors = [(layer.down.to(device, dtype), (layer.scale * layer.up).to(device, dtype)) for layer in (subject, style)]

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """``hidden``: ``(..., in)``; returns ``(..., out)``."""
        result = self.base_layer(hidden)
        if self.per_call_score is not None:
            return result + F.linear(hidden, self._per_call_weight().to(hidden.dtype))
        option = self.options[self.shared.indices[self.index]]
        if option is None:
            return result
        down, up = option
        return add_low_rank_update(result, F.linear(hidden, down.to(hidden.dtype)), up.to(hidden.dtype))

    def _per_call_weight(self) -> torch.Tensor:
        """The public code's ``get_klora_weight``: both products, both scores, a host-side ``if``."""
        (down_c, up_c), (down_s, up_s) = self.factors
        matrix_c, matrix_s = up_c @ down_c, up_s @ down_s
        if self.per_call_score == "top_k":
            k = min(self.top_k, matrix_c.numel())
            score_c = torch.topk(matrix_c.abs().flatten(), k).values.sum()
            score_s = torch.topk(matrix_s.abs().flatten(), k).values.sum()
        else:
            score_c, score_s = torch.norm(matrix_c) ** 2, torch.norm(matrix_s) ** 2
        shared = self.shared
        if (score_c / shared.gamma) / (score_s * shared.strength) > 1:
            return matrix_c * shared.subject_scale
        return matrix_s * shared.style_scale


def _scaled(layer: LoraLayer, scale: float, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor] | None:
    if scale == 0.0:
        return None
    return layer.down.to(device, dtype), (layer.up * (layer.scale * scale)).to(device, dtype)


def install(transformer: nn.Module, names: list[str],
            make_layer: Callable[[int, nn.Linear], SwitchedLoraLinear]) -> dict[str, SwitchedLoraLinear]:
    """Replace each named ``nn.Linear`` by ``make_layer(index, linear)``; returns the wrappers by
    name. Refuses (changing nothing) names that are not plain linear layers."""
    modules = dict(transformer.named_modules())
    not_linear = [name for name in names if not isinstance(modules.get(name), nn.Linear)]
    if not_linear:
        raise InputError(f"this model has no plain linear layer {', '.join(not_linear[:3])}; apply the fusion to the "
                         "model the LoRAs were checked against, with no other adapter installed")
    wrappers: dict[str, SwitchedLoraLinear] = {}
    try:
        for index, name in enumerate(names):
            wrapper = make_layer(index, modules[name])
            replace_module(transformer, name, wrapper)
            wrappers[name] = wrapper
    except BaseException:
        uninstall(transformer, wrappers)
        raise
    return wrappers


def uninstall(transformer: nn.Module, wrappers: dict[str, SwitchedLoraLinear]) -> None:
    """Put every wrapped ``nn.Linear`` back in its place."""
    for name, wrapper in wrappers.items():
        replace_module(transformer, name, wrapper.base_layer)


def per_call_plan(pair: LoraPair, config: FusionConfig) -> FusionPlan:
    """What the public code computes once: gamma (EST: the energy ratio, K-LoRA: the L1 ratio, as
    :func:`engine.fusion.plan.plan_fusion`). The scores are left empty ``(0,)``: every layer call
    scores its own update, so only the plan's rule's ``strength`` and ``gamma`` are used."""
    names = pair.names
    score = energies if config.method == "est" else l1_sums
    gamma = balance_gamma(score(pair.subject, names), score(pair.style, names))
    empty = torch.empty(0, dtype=torch.float64)
    return FusionPlan(pair, config, gamma, empty, empty)


class AppliedBaseline:
    """A baseline installed on ``backbone`` until :meth:`remove`: every layer of the plan's pair
    wrapped by a :class:`SwitchedLoraLinear`.

    Args:
        backbone: the model (the one the plan was checked against, or one with the same layers).
        plan: from :meth:`Baseline.plan` (``unfused`` also takes :func:`~engine.fusion.plan.plan_fusion`'s).
        mechanism: ``"unfused"`` or ``"per_call"``.
        beta: the style discrepancy; None takes the config's (its ``beta``, or K-LoRA's constant).

    ``steps`` records each step's switch as :class:`~engine.fusion.FusionStep` for ``unfused``; it
    stays empty for ``per_call``, whose layers decide inside each call.
    """

    def __init__(self, backbone: Backbone, plan: FusionPlan, mechanism: str, beta: float | None = None) -> None:
        _check_baseline(plan.config, mechanism)
        transformer = backbone.transformer
        if transformer in _ACTIVE:
            raise InputError("a baseline is already applied to this model; leave its with-block before applying another")
        config, pair = plan.config, plan.pair
        if mechanism == "unfused" and (plan.subject_scores is None or len(plan.subject_scores) != len(pair.names)):
            raise InputError("the unfused baseline chooses from the plan's scores; make its plan with "
                             "Baseline(config, 'unfused').plan or engine.fusion.plan_fusion")
        self.plan, self.mechanism, self.transformer = plan, mechanism, transformer
        self.steps: list[FusionStep] = []
        self.rule = plan.rule(switch_beta(config, beta))
        per_call = PER_CALL_SCORES[config.method] if mechanism == "per_call" else None
        self._shared = SharedChoice(strength=self.rule.strength(0.0), gamma=self.rule.gamma,
                                    subject_scale=config.subject_scale, style_scale=config.style_scale)
        if per_call is None:
            self._shared.indices = self._options(0.0).tolist()

        def make_layer(index: int, linear: nn.Linear) -> SwitchedLoraLinear:
            name = pair.names[index]
            return SwitchedLoraLinear(linear, index, pair.subject[name], pair.style[name], self._shared, per_call)

        self._wrappers = install(transformer, list(pair.names), make_layer)
        _ACTIVE.add(transformer)

    def _options(self, fraction_done: float) -> torch.Tensor:
        """Per layer ``(L,)`` long: SUBJECT (0) or STYLE (1) at step fraction ``tau``."""
        return torch.where(self.rule.choose(fraction_done), SUBJECT, STYLE)

    def before_step(self, info: StepStart) -> None:
        """Switch every layer for the coming step (pass as ``before_step`` to the sampler)."""
        tau = info.fraction_done
        strength = self.rule.strength(tau)
        if self.mechanism == "per_call":
            self._shared.strength = strength
            return
        options = self._options(tau)
        self._shared.indices = options.tolist()
        self.steps.append(FusionStep(tau, strength, int((options == SUBJECT).sum())))

    def remove(self) -> None:
        """Put the backbone's original layers back."""
        if self._wrappers:
            uninstall(self.transformer, self._wrappers)
            self._wrappers = {}
        _ACTIVE.discard(self.transformer)


@dataclass(frozen=True)
class Baseline:
    """EST-LoRA or K-LoRA (``config.method``) applied by one of the :data:`MECHANISMS`."""

    config: FusionConfig
    mechanism: str

    def __post_init__(self) -> None:
        _check_baseline(self.config, self.mechanism)

    def plan(self, backbone: Backbone, subject: Mapping[str, LoraLayer], style: Mapping[str, LoraLayer]) -> FusionPlan:
        """The pair checked against ``backbone``, and what the mechanism needs once: the product's
        plan for ``unfused``, :func:`per_call_plan` for ``per_call``."""
        if self.mechanism == "unfused":
            return plan_fusion(backbone, subject, style, self.config)
        return per_call_plan(check_pair(backbone, subject, style, self.config.layers), self.config)

    @contextlib.contextmanager
    def applied(self, backbone: Backbone, plan: FusionPlan, beta: float | None = None) -> Iterator[AppliedBaseline]:
        """``with baseline.applied(backbone, plan, beta) as fusion:`` render with
        ``before_step=fusion.before_step``; the original layers are put back afterwards."""
        fusion = AppliedBaseline(backbone, plan, self.mechanism, beta)
        try:
            yield fusion
        finally:
            fusion.remove()

    def render(self, backbone: Backbone, plan: FusionPlan, settings: SamplerSettings | None = None, prompt: str = "",
               photo: Image.Image | None = None, size: tuple[int, int] | None = None,
               beta: float | None = None) -> Image.Image:
        """One image with the baseline applied, as :func:`engine.fusion.render_fusion` renders one
        with a beta it does not have to measure (``beta``, else the config's)."""
        with self.applied(backbone, plan, beta) as fusion:
            return render(backbone, settings or SamplerSettings(), prompt, photo, size, before_step=fusion.before_step)


def _check_baseline(config: FusionConfig, mechanism: str) -> None:
    if not isinstance(config, FusionConfig):
        raise InputError(f"config must be a FusionConfig, not {type(config).__name__}")
    if mechanism not in MECHANISMS:
        raise InputError(f"mechanism must be one of {', '.join(MECHANISMS)}, not {mechanism!r}")
    if config.method not in SWITCHING_METHODS:
        raise InputError(f"the {mechanism} baseline applies to {' and '.join(SWITCHING_METHODS)} only, not {config.method}")
