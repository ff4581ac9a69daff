"""Shared helpers of the fusion tests: random non-zero LoRAs on a backbone's linear layers,
snapshots of a backbone's weights, and rendering to arrays."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from engine.adapters.lora.files import LoraLayer
from engine.models.backbones.base import Backbone


def random_lora(backbone: Backbone, seed: int, rank: int = 4, scale: float = 0.5, magnitude: float = 0.3,
                names: list[str] | None = None) -> dict[str, LoraLayer]:
    """A LoRA with random (non-zero) factors on ``names`` (default: all the backbone's adapter targets)."""
    generator = torch.Generator().manual_seed(seed)
    modules = dict(backbone.transformer.named_modules())
    layers = {}
    for name in names or backbone.adapter_targets():
        linear = modules[name]
        down = magnitude * torch.randn(rank, linear.in_features, generator=generator)
        up = magnitude * torch.randn(linear.out_features, rank, generator=generator)
        layers[name] = LoraLayer(down, up, scale)
    return layers


def weight_snapshot(backbone: Backbone) -> dict[str, tuple[torch.Tensor, int, type]]:
    """Every parameter and buffer of the transformer: a copy, its storage address and its module type."""
    modules = dict(backbone.transformer.named_modules())
    snapshot = {}
    for name, tensor in backbone.transformer.state_dict(keep_vars=True).items():
        owner = modules[name.rpartition(".")[0]]
        snapshot[name] = (tensor.detach().clone(), tensor.data_ptr(), type(owner))
    return snapshot


def assert_unchanged(backbone: Backbone, snapshot: dict[str, tuple[torch.Tensor, int, type]]) -> None:
    """The transformer holds the very tensors (same storage, same bits) and module types of ``snapshot``."""
    now = weight_snapshot(backbone)
    assert set(now) == set(snapshot)
    for name, (tensor, address, owner) in snapshot.items():
        assert torch.equal(now[name][0], tensor), name
        assert now[name][1] == address, name
        assert now[name][2] is owner, name


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)
