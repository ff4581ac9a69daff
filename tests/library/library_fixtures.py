"""Helpers shared by the style library tests and the publisher subprocess of the crash test:
tiny photos, small safetensors adapters, and the set of files a library's rows refer to."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import safetensors.numpy
from PIL import Image

from engine.library import AdapterSource, NewStyle, StyleLibrary

BACKBONE = "embedded-tiny"


def write_photo(path: Path, colour: tuple[int, int, int], size: tuple[int, int] = (16, 12)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)
    return path


def write_pairs(folder: Path, count: int = 2) -> list[tuple[Path, Path, str]]:
    """``count`` before/after pairs (PNG, and a JPEG after for the second), the last held out."""
    pairs = []
    for index in range(count):
        before = write_photo(folder / f"before-{index}.png", (10 * index, 20, 30))
        after = write_photo(folder / f"after-{index}.{'jpg' if index == 1 else 'png'}", (200, 10 * index, 40))
        pairs.append((before, after, "holdout" if index == count - 1 and count > 1 else "train"))
    return pairs


def write_adapter(path: Path, experts: list[str], values: int = 256, seed: int = 0) -> Path:
    """A safetensors file with one ``(values,)`` float32 tensor per expert."""
    generator = np.random.default_rng(seed)
    tensors = {f"{expert}.lora_down": generator.standard_normal(values).astype(np.float32) for expert in experts}
    path.parent.mkdir(parents=True, exist_ok=True)
    safetensors.numpy.save_file(tensors, str(path), metadata={"experts": ",".join(experts)})
    return path


def new_style(name: str, pairs: list[tuple[Path, Path, str]], expert_key: str | None = None, thumbnail: bool = True, **fields: object) -> NewStyle:
    return NewStyle(
        name=name, description=fields.pop("description", f"{name} look"), trigger=fields.pop("trigger", f"in {name} style"),
        pairs=pairs, expert_key=expert_key, metrics=fields.pop("metrics", {"psnr": 21.5}),
        thumbnail=Image.new("RGB", (8, 8), (1, 2, 3)) if thumbnail else None,
    )


def adapter_source(path: Path, kind: str = "moe", metadata: dict | None = None) -> AdapterSource:
    return AdapterSource(path=path, kind=kind, backbone=BACKBONE, metadata=metadata or {"experts": 2})


def files_on_disk(root: Path) -> set[str]:
    """Every file under ``files/``, relative to the library."""
    return {path.relative_to(root).as_posix() for path in (root / "files").rglob("*") if path.is_file()}


def referenced_files(library: StyleLibrary) -> set[str]:
    """Every file the library's rows refer to, relative to the library."""
    files = set()
    for record in library.list_styles():
        files.add(record.adapter.relative_path)
        files.update(path.relative_to(library.root).as_posix() for pair in record.pairs for path in (pair.before, pair.after))
        if record.thumbnail is not None:
            files.add(record.thumbnail.relative_to(library.root).as_posix())
    return files
