"""Copying a new style's files and an adapter into staging, and inserting their rows.

Pair photos are copied byte for byte, not re-encoded: the library keeps exactly the photos the
user gave (no generation loss for JPEGs, metadata intact), the stored sha256 is the original
file's, and publishing stays fast. Every photo was decoded by the trainer already; here
:func:`engine.library.records.check_photo_file` checks the header before anything is copied.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlite_utils
from PIL import Image

from engine.core.errors import InputError
from engine.library.names import name_key
from engine.library.records import AdapterSource, NewStyle
from engine.library.schema import now
from engine.library.storage import (ADAPTER_FILE, ADAPTER_FILES, PAIRS_FOLDER, STYLE_FILES, THUMBNAIL_FILE, Staging,
                                    copy_with_sha256, fsync_folder)
from engine.rendering.full_resolution import RenderSettings
from engine.rendering.render_choice import RenderChoice


@dataclass(frozen=True)
class StagedStyle:
    """A new style's files in staging, with the rows that will point at their final places."""

    style: NewStyle
    folder: str
    thumbnail: str | None
    pairs: list[dict[str, Any]]


def stage_adapter(staging: Staging, source: AdapterSource, label: str) -> dict[str, Any]:
    """Copy the adapter file into staging; return its ``adapters`` row (without id)."""
    folder = staging.new_folder(ADAPTER_FILES, label)
    sha256, size = copy_with_sha256(Path(source.path), folder.staged / ADAPTER_FILE)
    fsync_folder(folder.staged)
    return {
        "kind": source.kind, "path": f"{folder.relative}/{ADAPTER_FILE}", "sha256": sha256, "size_bytes": size,
        "backbone": source.backbone, "metadata": json.dumps(dict(source.metadata), sort_keys=True), "created": now(),
    }


def stage_style(staging: Staging, style: NewStyle) -> StagedStyle:
    """Copy a style's pair photos and write its thumbnail into staging."""
    folder = staging.new_folder(STYLE_FILES, style.name)
    pairs_folder = folder.staged / PAIRS_FOLDER
    pairs_folder.mkdir()
    pairs = []
    for position, (before, after, split) in enumerate(style.pairs):
        row: dict[str, Any] = {"position": position, "split": split}
        for side, source in (("before", Path(before)), ("after", Path(after))):
            # The original extension is kept, so the stored file opens as what it is.
            name = f"{position:04d}-{side}{source.suffix.lower()}"
            row[f"{side}_sha256"], _ = copy_with_sha256(source, pairs_folder / name)
            row[f"{side}_path"] = f"{folder.relative}/{PAIRS_FOLDER}/{name}"
        pairs.append(row)
    thumbnail = None
    if style.thumbnail is not None:
        _write_png(style.thumbnail, folder.staged / THUMBNAIL_FILE)
        thumbnail = f"{folder.relative}/{THUMBNAIL_FILE}"
    fsync_folder(pairs_folder)
    fsync_folder(folder.staged)
    return StagedStyle(style, folder.relative, thumbnail, pairs)


def insert_adapter(db: sqlite_utils.Database, row: dict[str, Any]) -> int:
    return int(db["adapters"].insert(row).last_pk)


def insert_style(db: sqlite_utils.Database, staged: StagedStyle, adapter_id: int, backbone: str, run_id: int | None) -> int:
    """Insert a staged style's ``styles`` and ``pairs`` rows (inside the caller's transaction)."""
    style = staged.style
    style_id = int(db["styles"].insert({
        "name": style.name, "name_key": name_key(style.name), "description": style.description, "trigger": style.trigger,
        "created": now(), "backbone": backbone, "adapter_id": adapter_id, "expert_key": style.expert_key,
        "folder": staged.folder, "thumbnail": staged.thumbnail, "metrics": json.dumps(dict(style.metrics), sort_keys=True),
        "run_id": run_id, "render": None if style.render is None else json.dumps(style.render.to_json(), sort_keys=True),
    }).last_pk)
    db["pairs"].insert_all({"style_id": style_id, **pair} for pair in staged.pairs)
    return style_id


def update_render(db: sqlite_utils.Database, row: dict[str, Any], settings: RenderSettings) -> None:
    """Store ``settings`` as set by hand in a ``styles`` row, keeping its last measurement (inside
    the caller's transaction)."""
    if not isinstance(settings, RenderSettings):
        raise InputError(f"render settings must be RenderSettings, not {type(settings).__name__}")
    old = None if row["render"] is None else RenderChoice.from_json(json.loads(row["render"]))
    choice = (old or RenderChoice(settings)).by_hand(settings)
    db["styles"].update(row["id"], {"render": json.dumps(choice.to_json(), sort_keys=True)})


def store_render_choice(db: sqlite_utils.Database, row: dict[str, Any], choice: RenderChoice) -> None:
    """Store a measured render ``choice`` in a ``styles`` row (inside the caller's transaction)."""
    if not isinstance(choice, RenderChoice):
        raise InputError(f"a render choice must be a RenderChoice, not {type(choice).__name__}")
    db["styles"].update(row["id"], {"render": json.dumps(choice.to_json(), sort_keys=True)})


def _write_png(image: Image.Image, path: Path) -> None:
    # PNG holds RGB(A), greyscale and palette images; other modes (CMYK, float) are shown as RGB.
    if image.mode not in ("RGB", "RGBA", "L", "LA", "P", "1"):
        image = image.convert("RGB")
    with open(path, "xb") as writing:
        image.save(writing, format="PNG")
        writing.flush()
        os.fsync(writing.fileno())
