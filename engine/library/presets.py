"""Saved settings by name, such as a favourite fusion setting: the ``presets`` table.

A preset is ``(kind, name) -> settings`` (JSON); names are unique per kind, case-insensitively,
and follow the style-name rules. Saving under an existing name replaces it only when asked.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Mapping

from engine.core.errors import InputError
from engine.library.database import LibraryDatabase
from engine.library.names import validate_style_name
from engine.library.schema import now

PRESET_KINDS = ("fusion",)


@dataclass(frozen=True)
class PresetRecord:
    id: int
    kind: str
    name: str
    settings: dict[str, Any]
    created: str


def _check_kind(kind: str) -> None:
    if kind not in PRESET_KINDS:
        raise InputError(f"preset kind {kind!r} is unknown; use one of {', '.join(PRESET_KINDS)}")


def _record(row: Mapping[str, Any]) -> PresetRecord:
    return PresetRecord(row["id"], row["kind"], row["name"], json.loads(row["settings"]), row["created"])


def save_preset(database: LibraryDatabase, kind: str, name: str, settings: Mapping[str, Any], replace: bool = False) -> PresetRecord:
    """Store ``settings`` as preset ``name`` of ``kind`` in one transaction."""
    _check_kind(kind)
    validate_style_name(name)
    try:
        text = json.dumps(dict(settings), sort_keys=True)
    except (TypeError, ValueError) as error:
        raise InputError(f"preset {name!r}: settings must be JSON values ({error})") from error
    with database.write() as db:
        existing = list(db.query("SELECT id FROM presets WHERE kind = ? AND lower(name) = lower(?)", [kind, name]))
        if existing and not replace:
            raise InputError(f"a {kind} preset named {name!r} exists; pick another name or replace it")
        if existing:
            db["presets"].delete(existing[0]["id"])
        db["presets"].insert({"kind": kind, "name": name, "settings": text, "created": now()})
    return get_preset(database, kind, name)


def get_preset(database: LibraryDatabase, kind: str, name: str) -> PresetRecord:
    _check_kind(kind)
    with database.read() as db:
        rows = list(db.query("SELECT * FROM presets WHERE kind = ? AND lower(name) = lower(?)", [kind, name]))
    if not rows:
        raise InputError(f"no {kind} preset named {name!r}")
    return _record(rows[0])


def list_presets(database: LibraryDatabase, kind: str) -> list[PresetRecord]:
    _check_kind(kind)
    with database.read() as db:
        return [_record(row) for row in db.query("SELECT * FROM presets WHERE kind = ? ORDER BY lower(name)", [kind])]


def delete_preset(database: LibraryDatabase, kind: str, name: str) -> None:
    record = get_preset(database, kind, name)
    with database.write() as db:
        db["presets"].delete(record.id)
