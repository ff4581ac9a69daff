"""Finding what is wrong with a library (missing or damaged files, files nothing refers to), and
checking a folder or a replacement adapter before the library takes it."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from engine.core.errors import InputError
from engine.library.database import LibraryDatabase
from engine.library.reading import adapter_record, style_records
from engine.library.names import name_key
from engine.library.records import AdapterSource, StyleRecord
from engine.library.storage import DATABASE_FILE, STAGING, sha256_of, unlisted_entries


def find_problems(root: Path, database: LibraryDatabase, deep: bool = False) -> list[str]:
    """One line per problem (hold the library lock, so no write is half-way). ``deep`` also
    recomputes every file's sha256, which reads every byte."""
    problems = []
    with database.read() as db:
        integrity = [row[0] for row in db.execute("PRAGMA quick_check").fetchall()]
        if integrity != ["ok"]:
            problems.append(f"the database {database.path} is damaged ({'; '.join(integrity[:3])}); restore it from a backup")
        for table, rowid, parent, _ in db.execute("PRAGMA foreign_key_check").fetchall():
            problems.append(f"row {rowid} of {table} points at a missing {parent} row in {database.path}")
        styles = style_records(db, root)
        adapters = [adapter_record(row, root) for row in db.query("SELECT * FROM adapters ORDER BY id")]
        pending = [row["path"] for row in db.query("SELECT path FROM pending_files ORDER BY path")]
        unlisted = unlisted_entries(root, db)
    used = {style.adapter.id for style in styles}
    for adapter in adapters:
        problems.extend(_file_problems(adapter.path, adapter.sha256, adapter.size_bytes, f"adapter {adapter.id}", deep))
        if adapter.id not in used:
            problems.append(f"adapter {adapter.id} ({adapter.relative_path}) is used by no style")
    for style in styles:
        if not style.folder.is_dir():
            problems.append(f"the folder {style.folder} of style {style.name!r} is missing; re-import the style")
        if style.thumbnail is not None and not style.thumbnail.is_file():
            problems.append(f"the thumbnail {style.thumbnail} of style {style.name!r} is missing")
        for pair in style.pairs:
            problems.extend(_file_problems(pair.before, pair.before_sha256, None, f"style {style.name!r}", deep))
            problems.extend(_file_problems(pair.after, pair.after_sha256, None, f"style {style.name!r}", deep))
    problems.extend(f"an interrupted write left {path}; reopen the library to clean it up" for path in pending)
    staging = root / STAGING
    if staging.exists():
        problems.extend(f"an interrupted write left {STAGING}/{entry.name}; reopen the library to clean it up" for entry in sorted(staging.iterdir()))
    problems.extend(f"{root / entry} belongs to no style or adapter; move it out of the library (recovery only deletes what it recorded)"
                    for entry in unlisted)
    return problems


def verify_style(record: StyleRecord) -> None:
    """Recompute the sha256 of a style's adapter and pair files.

    Raises:
        InputError: naming the first missing or damaged file.
    """
    files = [(record.adapter.path, record.adapter.sha256)]
    for pair in record.pairs:
        files += [(pair.before, pair.before_sha256), (pair.after, pair.after_sha256)]
    for path, expected in files:
        if not path.is_file():
            raise InputError(f"{path} of style {record.name!r} is missing; re-import the style")
        if sha256_of(path)[0] != expected:
            raise InputError(f"{path} of style {record.name!r} is damaged (its sha256 differs from the library's); re-import the style")


def _file_problems(path: Path, sha256: str, size: int | None, owner: str, deep: bool) -> list[str]:
    if not path.is_file():
        return [f"{path} of {owner} is missing; re-import the style"]
    if size is not None and path.stat().st_size != size:
        return [f"{path} of {owner} has {path.stat().st_size} bytes, not {size}; it is damaged, re-import the style"]
    if deep and sha256_of(path)[0] != sha256:
        return [f"{path} of {owner} is damaged (its sha256 differs from the library's); re-import the style"]
    return []


def check_replacement(old: Mapping[str, Any], adapter: AdapterSource, sharing: list[str], expert_keys: Mapping[str, str | None]) -> None:
    """A replacement adapter must be for the same backbone, and key changes name its styles."""
    if adapter.backbone != old["backbone"]:
        raise InputError(f"adapter {adapter.path} is for backbone {adapter.backbone!r} but adapter {old['id']} it replaces is for "
                         f"{old['backbone']!r}; give an adapter trained on {old['backbone']!r}")
    if not isinstance(expert_keys, Mapping):
        raise InputError(f"updated expert keys must be a dict of style name to key, not {type(expert_keys).__name__}")
    sharing_keys = {name_key(name) for name in sharing}
    for style_name, key in expert_keys.items():
        if not isinstance(style_name, str) or name_key(style_name) not in sharing_keys:
            raise InputError(f"style {style_name!r} does not use adapter {old['id']}; only its styles' expert keys can be updated")
        if key is not None and (not isinstance(key, str) or not key):
            raise InputError(f"expert key {key!r} of style {style_name!r} must be a non-empty string or None")


def check_library_folder(root: Path) -> None:
    """A library folder is new, empty, or holds the library database."""
    if root.exists() and not root.is_dir():
        raise InputError(f"the style library {root} is a file; give a folder")
    if root.is_dir() and not (root / DATABASE_FILE).exists():
        # Hidden files (.gitkeep, .DS_Store) do not make a folder someone else's.
        others = sorted(entry.name for entry in root.iterdir() if not entry.name.startswith("."))
        if others:
            raise InputError(f"{root} holds {', '.join(others[:3])} but no {DATABASE_FILE}, so it is not a style library; "
                             f"give an empty or new folder, or restore {DATABASE_FILE}")
