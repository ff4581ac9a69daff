"""Shared helpers of the fusion tests: random non-zero LoRAs on a backbone's linear layers,
snapshots of a backbone's weights, and rendering to arrays."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from engine.adapters.lora.files import LoraLayer
from engine.models.backbones.base import Backbone
from engine.models.sampling.sampler import SamplerSettings
from tests.adapters.moe.moe_fixtures import base_backbone


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


# Module-scoped fixtures shared by tests/fusion/test_fusion_apply.py and
# tests/benchmarks/test_fusion_baselines.py (imported there by name, as pytest allows).
SHAPE = torch.Size((1, 3, 32, 32))
SETTINGS = SamplerSettings(steps=6, seed=5)


@pytest.fixture(scope="module")
def backbone():
    return base_backbone(0)


@pytest.fixture(scope="module")
def loras(backbone):
    return random_lora(backbone, seed=1), random_lora(backbone, seed=2, rank=3)


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    array = np.random.default_rng(0).integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
    return Image.fromarray(array, mode="RGB")
