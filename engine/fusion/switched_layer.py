"""Unfolded fusion layers: the chosen LoRA update runs beside the frozen linear layer.

Two modes, both kept for comparison with folding (:mod:`engine.fusion.folding`, the default):

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
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from engine.adapters.lora.files import LoraLayer
from engine.adapters.moe.layer import add_low_rank_update

SUBJECT, STYLE = 0, 1


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


def install(transformer: nn.Module, names: list[str], make_layer) -> dict[str, SwitchedLoraLinear]:
    """Replace each named ``nn.Linear`` by ``make_layer(index, linear)``; returns the wrappers by name."""
    modules = dict(transformer.named_modules())
    wrappers = {}
    for index, name in enumerate(names):
        parent_name, _, child_name = name.rpartition(".")
        wrapper = make_layer(index, modules[name])
        setattr(modules[parent_name] if parent_name else transformer, child_name, wrapper)
        wrappers[name] = wrapper
    return wrappers


def uninstall(transformer: nn.Module, wrappers: dict[str, SwitchedLoraLinear]) -> None:
    """Put every wrapped ``nn.Linear`` back in its place."""
    modules = dict(transformer.named_modules())
    for name, wrapper in wrappers.items():
        parent_name, _, child_name = name.rpartition(".")
        setattr(modules[parent_name] if parent_name else transformer, child_name, wrapper.base_layer)
