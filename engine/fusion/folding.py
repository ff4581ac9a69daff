"""Folding the chosen LoRA update of each layer into its base weight, only when the choice changes.

Each layer has a few fixed *options*, each a combination ``a * dW_c + b * dW_s`` of the subject and
style updates (``dW = scale * B A``); selecting option ``o`` for a layer sets its weight to
``W0 + a * dW_c + b * dW_s``, computed as one ``addmm`` from the concatenated factors
``[a s_c B_c, b s_s B_s]`` ``(out, r_c + r_s)`` and ``[A_c; A_s]`` ``(r_c + r_s, in)`` (sides with a
zero coefficient are left out, so "subject only" and "merge with weights (1, 0)" fold the same
bits). The original weight tensor ``W0`` is kept itself, not copied, so :meth:`FoldedLayers.remove`
restores the backbone bit for bit (as :class:`engine.adapters.lora.patch.LoraPatch` does).

Why folding: a folded layer runs at exactly the base model's cost, and the switch of EST-LoRA and
K-LoRA changes a layer at most once per run (subject to style, see :mod:`engine.fusion.rule`), so a
whole image costs at most two folds per layer, each ``r * out * in`` multiply-adds: a few percent of
one forward pass over a few hundred tokens. Keeping both folded weights per layer instead would
save those folds but hold two extra copies of every adapted weight (tens of GB for FLUX), so it is
not done.

How folding compares with running the chosen update beside each layer, and with the published
code's per-call recomputation: `BENCHMARKS.md, "Subject/style fusion: cost per image"
<../../BENCHMARKS.md#subjectstyle-fusion-cost-per-image>`_ (:mod:`benchmarks.fusion_speed`).
Folding is the product's only mechanism.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from engine.adapters.lora.folding import restore_weight, summed_low_rank, write_weight
from engine.core.errors import InputError
from engine.fusion.pair import LoraPair

ORIGINAL = -1  # the option index of "no update folded"


class FoldedLayers:
    """The pair's layers of ``transformer`` with switchable folded updates, until :meth:`remove`.

    Args:
        transformer: the backbone's transformer.
        pair: the checked LoRA pair (its ``names`` give the layer order).
        options: ``(subject coefficient, style coefficient)`` per option, the same for every layer.
    """

    def __init__(self, transformer: nn.Module, pair: LoraPair, options: Sequence[tuple[float, float]]) -> None:
        modules = dict(transformer.named_modules())
        not_linear = [name for name in pair.names if not isinstance(modules.get(name), nn.Linear)]
        if not_linear:
            raise InputError(f"this model has no plain linear layer {', '.join(not_linear[:3])}; apply the fusion to the "
                             "model the LoRAs were checked against, with no other adapter installed")
        self.linears = [modules[name] for name in pair.names]
        self.originals = [linear.weight.data for linear in self.linears]
        self.factors = [[_option_factors(pair, name, linear.weight, coefficients) for coefficients in options]
                        for name, linear in zip(pair.names, self.linears)]
        self.current = torch.full((len(self.linears),), ORIGINAL, dtype=torch.long)
        self.folds = 0  # layer folds done so far (the measure of this mechanism's cost)

    def select(self, options: torch.Tensor) -> int:
        """Fold option ``options[i]`` into layer ``i`` ``(L,)`` long, where it differs from the current
        one; returns the number of layers refolded. One comparison for all layers, then a Python
        loop over the changed layers only."""
        changed = (options != self.current).nonzero().flatten().tolist()
        with torch.no_grad():
            for index in changed:
                self._fold(index, int(options[index]))
        self.current = options.clone()
        return len(changed)

    def select_all(self, option: int) -> int:
        """Fold the same option into every layer."""
        return self.select(torch.full_like(self.current, option))

    def _fold(self, index: int, option: int) -> None:
        linear, original = self.linears[index], self.originals[index]
        factors = None if option == ORIGINAL else self.factors[index][option]
        if factors is None:
            restore_weight(linear, original)
            return
        write_weight(linear, summed_low_rank(original, *factors))
        self.folds += 1

    def remove(self) -> None:
        """Put every original weight tensor back."""
        for linear, original in zip(self.linears, self.originals):
            restore_weight(linear, original)
        # A new tensor, not fill_: select() may have made current under inference mode.
        self.current = torch.full((len(self.linears),), ORIGINAL, dtype=torch.long)


def _option_factors(pair: LoraPair, name: str, weight: torch.Tensor,
                    coefficients: tuple[float, float]) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``(up (out, R), down (R, in))`` float32 on the weight's device for ``a * dW_c + b * dW_s``,
    or None when both coefficients are zero."""
    ups, downs = [], []
    for layer, coefficient in zip((pair.subject[name], pair.style[name]), coefficients):
        if coefficient != 0.0:
            ups.append(layer.up.float() * (coefficient * layer.scale))
            downs.append(layer.down.float())
    if not ups:
        return None
    return torch.cat(ups, dim=1).to(weight.device), torch.cat(downs).to(weight.device)
