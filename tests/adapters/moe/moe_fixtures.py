"""Shared helpers of the MoE LoRA tests: a non-identity tiny base model and random adapter weights."""

import torch

from engine.adapters.moe.adapter import MoELoraAdapter
from engine.models.backbones.embedded.backbone import EmbeddedBackbone


def base_backbone(seed: int = 0) -> EmbeddedBackbone:
    """The tiny embedded model with a random (not zero) output layer, so the output depends on every block."""
    backbone = EmbeddedBackbone.from_config("tiny", seed=seed)
    with torch.no_grad():
        weight = backbone.transformer.proj_out.weight
        weight.copy_(0.05 * torch.randn(weight.shape, generator=torch.Generator().manual_seed(seed)))
    return backbone


def randomise(adapter: MoELoraAdapter, seed: int = 1, scale: float = 0.2) -> None:
    """Random non-zero expert and router weights (masks untouched): a non-identity start."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in adapter.layers.values():
            for name, parameter in layer.named_parameters():
                if not name.startswith("base_layer") and "mask" not in name:
                    parameter.copy_(scale * torch.randn(parameter.shape, generator=generator))
