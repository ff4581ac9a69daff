"""Building :class:`StyleRecord` objects from rows, and finding a style by name."""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any

import sqlite_utils

from engine.core.errors import InputError
from engine.library.names import name_key
from engine.library.records import AdapterRecord, PairRecord, StyleRecord
from engine.library.runs import run_record
from engine.rendering.render_choice import RenderChoice


def style_records(db: sqlite_utils.Database, root: Path, where: str = "1", arguments: list[Any] | dict[str, Any] | None = None) -> list[StyleRecord]:
    """Every style matching the SQL ``where`` clause (on ``styles``), ordered by name, with its
    pairs, adapter and run, read with three more queries rather than three per style."""
    styles = list(db.query(f"SELECT * FROM styles WHERE {where} ORDER BY name_key", arguments if arguments is not None else []))
    if not styles:
        return []
    ids = [row["id"] for row in styles]
    marks = ",".join("?" * len(ids))
    pairs: dict[int, list[PairRecord]] = {}
    for row in db.query(f"SELECT * FROM pairs WHERE style_id IN ({marks}) ORDER BY style_id, position", ids):
        pairs.setdefault(row["style_id"], []).append(PairRecord(
            position=row["position"], before=root / row["before_path"], after=root / row["after_path"], split=row["split"],
            before_sha256=row["before_sha256"], after_sha256=row["after_sha256"],
        ))
    adapter_ids = sorted({row["adapter_id"] for row in styles})
    adapters = {row["id"]: adapter_record(row, root)
                for row in db.query(f"SELECT * FROM adapters WHERE id IN ({','.join('?' * len(adapter_ids))})", adapter_ids)}
    run_ids = sorted({row["run_id"] for row in styles if row["run_id"] is not None})
    runs = {row["id"]: run_record(row) for row in db.query(f"SELECT * FROM runs WHERE id IN ({','.join('?' * len(run_ids))})", run_ids)}
    return [
        StyleRecord(
            id=row["id"], name=row["name"], description=row["description"], trigger=row["trigger"], created=row["created"],
            backbone=row["backbone"], expert_key=row["expert_key"], metrics=json.loads(row["metrics"]), folder=root / row["folder"],
            thumbnail=None if row["thumbnail"] is None else root / row["thumbnail"], pairs=tuple(pairs.get(row["id"], ())),
            adapter=adapters[row["adapter_id"]], run=runs.get(row["run_id"]),
            render=None if row.get("render") is None else RenderChoice.from_json(json.loads(row["render"])),
        )
        for row in styles
    ]


def adapter_record(row: dict[str, Any], root: Path) -> AdapterRecord:
    return AdapterRecord(
        id=row["id"], kind=row["kind"], path=root / row["path"], relative_path=row["path"], sha256=row["sha256"],
        size_bytes=row["size_bytes"], backbone=row["backbone"], metadata=json.loads(row["metadata"]), created=row["created"],
    )


def style_row(db: sqlite_utils.Database, name: str, library: Path) -> dict[str, Any]:
    """The ``styles`` row named ``name`` (any case).

    Raises:
        InputError: for an unknown name, listing close matches.
    """
    if not isinstance(name, str):
        raise InputError(f"style name {name!r} is not text; give a style's name")
    rows = list(db.query("SELECT * FROM styles WHERE name_key = ?", [name_key(name)]))
    if rows:
        return rows[0]
    names = {name_key(row["name"]): row["name"] for row in db.query("SELECT name FROM styles")}
    if not names:
        raise InputError(f"there is no style {name!r}: the style library {library} is empty; train or import a style first")
    close = [names[key] for key in difflib.get_close_matches(name_key(name), list(names), n=3, cutoff=0.6)]
    hint = f"did you mean {', '.join(repr(match) for match in close)}?" if close else "list the styles to see their names"
    raise InputError(f"there is no style {name!r} in the style library {library}; {hint}")


def taken_names(db: sqlite_utils.Database, names: list[str]) -> list[str]:
    """Those of ``names`` that existing styles or subjects already have, as stored, compared by
    :func:`~engine.library.names.name_key` (NFC-normalised, case-folded). Callers outside the
    library use :meth:`engine.library.StyleLibrary.check_name_free`."""
    keys = [name_key(name) for name in names]
    if not keys:
        return []
    return [row["name"] for row in db.query(f"SELECT name FROM styles WHERE name_key IN ({','.join('?' * len(keys))})", keys)]



# SQL matching every style whose name, description or trigger contains the (folded) search text;
# fold() is the connection function LibraryDatabase registers (NFC + case folding, any script).
SEARCH_WHERE = "instr(fold(name), :needle) > 0 OR instr(fold(description), :needle) > 0 OR instr(fold(trigger), :needle) > 0"
