"""Folding a low-rank update into a linear layer's weight, and putting the original back.

Every mechanism that folds (:class:`engine.adapters.lora.patch.LoraPatch`,
:meth:`engine.adapters.moe.layer.MoELoraLinear.fold`, the fusion's switched folds in
:mod:`engine.fusion.folding`) does it the same way:

* the sum ``W + dW`` is formed in float32 whatever the model's dtype, then rounded once to the
  weight's dtype, so a bfloat16 model gets the closest bfloat16 of the exact sum;
* the original tensor itself is kept, not a copy: a copy made under inference mode could not be
  trained again after restoring, and restoring the tensor makes the layer bit-identical to before.
"""

from __future__ import annotations

import torch
from torch import nn


def summed_weight(weight: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """``weight + delta`` ``(out, in)``, summed in float32 and rounded once to ``weight``'s dtype."""
    return (weight.float() + delta.to(device=weight.device).float()).to(weight.dtype)


def summed_low_rank(weight: torch.Tensor, up: torch.Tensor, down: torch.Tensor) -> torch.Tensor:
    """``weight + up @ down`` for float32 ``up`` ``(out, r)`` and ``down`` ``(r, in)``, in one
    float32 ``addmm`` (no ``(out, in)`` product of its own), rounded once to ``weight``'s dtype."""
    return torch.addmm(weight.float(), up, down).to(weight.dtype)


def write_weight(linear: nn.Linear, weight: torch.Tensor) -> torch.Tensor:
    """Make ``weight`` the weight of ``linear``; returns the tensor it replaces, to pass to
    :func:`restore_weight` later."""
    previous = linear.weight.data
    linear.weight.data = weight
    return previous


def restore_weight(linear: nn.Linear, original: torch.Tensor) -> None:
    """Put back the tensor :func:`write_weight` returned."""
    linear.weight.data = original
