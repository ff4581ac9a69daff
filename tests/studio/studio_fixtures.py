"""Helpers shared by the studio tests: a library whose styles have random, non-zero weights on a
given backbone, so an edit with a style differs from a plain edit."""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path
from typing import Iterator

from PIL import Image

from engine.adapters.moe.adapter import MoELoraAdapter
from engine.adapters.moe.config import MoELoraConfig
from engine.library import AdapterSource, NewStyle, StyleLibrary
from engine.models.backbones.base import Backbone
from studio.context import StudioContext, new_context
from tests.adapters.moe.moe_fixtures import base_backbone, randomise


def write_photo(path: Path, colour: tuple[int, int, int], size: tuple[int, int] = (40, 32)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)
    return path


def add_random_styles(library: StyleLibrary, backbone: Backbone, names: list[str], work: Path, seed: int = 3) -> None:
    """Publish ``names`` as styles of one shared MoE adapter with random weights."""
    adapter = MoELoraAdapter(backbone, MoELoraConfig(rank=4))
    keys = [adapter.add_style() for _ in names]
    randomise(adapter, seed=seed, scale=0.3)
    styles = []
    for index, (name, key) in enumerate(zip(names, keys)):
        pairs = [(write_photo(work / name / f"before-{pair}.png", (20 * pair, 40, 90)),
                  write_photo(work / name / f"after-{pair}.png", (200, 30 * index, 40)), "train") for pair in range(2)]
        styles.append(NewStyle(name, f"{name} look", f"in {name} style", pairs, expert_key=key,
                               metrics={"holdout": {"psnr": 20.0 + index, "base_psnr": 18.0, "ssim": 0.5}},
                               thumbnail=Image.new("RGB", (16, 16), (200, 30 * index, 40))))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "adapter.safetensors"
        adapter.clear_routing()
        adapter.save(path)
        library.publish_styles(styles, AdapterSource(path, "moe", backbone.name, {"styles": len(names)}))
    adapter.remove()


@contextlib.contextmanager
def styled_context(folder: Path, names: list[str]) -> Iterator[StudioContext]:
    """A studio context on the non-identity tiny model, over a library of ``names`` with random
    weights, with its own workshop model; released and closed afterwards."""
    library = StyleLibrary.open(folder / "library")
    add_random_styles(library, base_backbone(), names, folder / "pairs")
    context = new_context(base_backbone(), "tiny", library, workshop=base_backbone())
    try:
        yield context
    finally:
        context.editor.release()
        library.close()
