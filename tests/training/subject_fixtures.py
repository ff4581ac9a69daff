"""Shared helpers of the subject tests: a non-identity tiny embedded model and subject photos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from engine.models.backbones.embedded.backbone import EmbeddedBackbone


def tiny_backbone(seed: int = 0) -> EmbeddedBackbone:
    """The tiny embedded model with a random (not zero) output layer, so every block, and so a
    LoRA on it, changes the output (the untrained base returns its source unchanged)."""
    backbone = EmbeddedBackbone.from_config("tiny", seed=seed)
    with torch.no_grad():
        weight = backbone.transformer.proj_out.weight
        weight.copy_(0.05 * torch.randn(weight.shape, generator=torch.Generator().manual_seed(seed)))
    return backbone


def write_photos(folder: Path, count: int = 3, size: tuple[int, int] = (48, 40), suffix: str = ".png") -> Path:
    """``count`` photos of one 'subject' (a red disc) on different smooth backgrounds and places."""
    folder.mkdir(parents=True, exist_ok=True)
    generator = np.random.default_rng(count)
    for index in range(count):
        background = (generator.random((4, 5, 3)) * 120 + 60).astype("uint8")
        image = Image.fromarray(background).resize(size, Image.Resampling.BICUBIC)
        left, top = int(generator.integers(0, size[0] // 2)), int(generator.integers(0, size[1] // 2))
        ImageDraw.Draw(image).ellipse((left, top, left + size[0] // 2, top + size[1] // 2), fill=(220, 30, 40))
        image.save(folder / f"view{index}{suffix}")
    return folder


def library_files(root: Path) -> list[str]:
    """Every file under the library's ``files/`` folder, relative (what a write would change)."""
    files = root / "files"
    return sorted(str(path.relative_to(root)) for path in files.rglob("*") if path.is_file())


def has_peft_layers(backbone) -> bool:
    """Whether peft left anything on the transformer: a wrapped layer or its config."""
    return hasattr(backbone.transformer, "peft_config") or any(hasattr(module, "lora_A") for module in backbone.transformer.modules())
