"""Tiny deterministic style data shared by the training tests and their multi-process worker."""

import numpy as np
import torch
from PIL import Image

from engine.adapters.moe import MoELoraAdapter, MoELoraConfig
from engine.models.backbones.embedded.backbone import EmbeddedBackbone
from engine.training.pairs import Pair
from engine.training.style_data import prepare_style
from engine.training.style_trainer import StyleTrainer, StyleTrainingConfig


def tiny_pairs(offset: int, count: int = 3, seed: int = 0) -> list[Pair]:
    """Smooth random images and the same images shifted by ``offset`` grey levels (an easy style)."""
    generator = np.random.default_rng(seed)
    pairs = []
    for index in range(count):
        small = generator.random((5, 6, 3)) * 160 + 48
        image = Image.fromarray(small.astype("uint8")).resize((48, 40), Image.Resampling.BICUBIC)
        shifted = Image.fromarray(np.clip(np.asarray(image).astype(int) + offset, 0, 255).astype("uint8"))
        pairs.append(Pair(f"p{index}", image, shifted, None, None))
    return pairs


def tiny_setup(config: StyleTrainingConfig, accelerator=None, adapter_config: MoELoraConfig | None = None):
    backbone = EmbeddedBackbone.from_config("tiny", seed=0)
    with torch.no_grad():  # a zero output layer (the untrained base) would pass no gradient to the adapter
        weight = backbone.transformer.proj_out.weight
        weight.copy_(0.05 * torch.randn(weight.shape, generator=torch.Generator().manual_seed(0)))
    torch.manual_seed(0)
    adapter = MoELoraAdapter(backbone, adapter_config or MoELoraConfig(rank=2, num_shared_experts=2))
    keys = [adapter.add_style("xlight00"), adapter.add_style("xdark000")]
    styles = [prepare_style(backbone, keys[0], "light", tiny_pairs(40), 1.15),
              prepare_style(backbone, keys[1], "dark", tiny_pairs(-40, seed=1), 1.15)]
    return backbone, adapter, StyleTrainer(backbone, adapter, styles, config, accelerator=accelerator)
