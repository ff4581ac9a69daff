"""Folding a plain LoRA (read by :mod:`engine.adapters.lora.files`) into a backbone's weights.

``W <- W + scale * dW`` for every layer the LoRA names, with the original weight tensors kept
(not copies), so :meth:`LoraPatch.remove` restores the backbone bit for bit. A folded LoRA costs
nothing per step, which is how imported LoRAs edit at the speed of the base model (the same idea
as :meth:`engine.adapters.moe.adapter.MoELoraAdapter.fold` and diffusers' ``fuse_lora``).

A layer wrapped by an adapter (a module with a linear ``base_layer``, as the style editor keeps the
shared MoE adapter wrapped between edits) is patched in its ``base_layer``: with the adapter's
routing off, the wrapper returns exactly its base layer's output.
"""

from __future__ import annotations

import contextlib
from typing import Iterator, Mapping

import torch
from torch import nn

from engine.adapters.lora.folding import restore_weight, summed_weight, write_weight
from engine.adapters.lora.files import LoraLayer
from engine.core.errors import InputError
from engine.models.backbones.base import Backbone


def linear_of(module: nn.Module) -> nn.Linear | None:
    """The linear layer to patch for ``module``: itself, or the ``base_layer`` an adapter wraps."""
    base = getattr(module, "base_layer", None)
    if isinstance(base, nn.Linear):
        return base
    return module if isinstance(module, nn.Linear) else None


class LoraPatch:
    """One or more LoRAs folded into a backbone, until :meth:`remove`."""

    def __init__(self, backbone: Backbone, layers: Mapping[str, LoraLayer], scale: float = 1.0) -> None:
        modules = {name: linear_of(module) for name, module in backbone.transformer.named_modules()}
        missing = [name for name in layers if modules.get(name) is None]
        if missing:
            raise InputError(f"the LoRA names layers this model does not have as linear layers: {', '.join(missing[:5])}")
        self._originals: dict[str, torch.Tensor] = {}
        with torch.no_grad():
            for name, layer in layers.items():
                linear = modules[name]
                self._originals[name] = write_weight(linear, summed_weight(linear.weight.data, scale * layer.delta()))
        self._modules = {name: modules[name] for name in layers}

    def remove(self) -> None:
        """Put the original weight tensors back."""
        for name, original in self._originals.items():
            restore_weight(self._modules[name], original)
        self._originals.clear()

    @property
    def active(self) -> bool:
        return bool(self._originals)


@contextlib.contextmanager
def applied_lora(backbone: Backbone, layers: Mapping[str, LoraLayer], scale: float = 1.0) -> Iterator[LoraPatch]:
    """``with applied_lora(backbone, layers):`` edits with the LoRA folded in, then restores."""
    patch = LoraPatch(backbone, layers, scale)
    try:
        yield patch
    finally:
        patch.remove()
