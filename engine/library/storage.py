"""Where the library's files live and how they get there without ever being half-written.

Layout::

    <library>/library.db                       the database (plus its -wal and -shm files)
    <library>/files/styles/<slug>-<id>/        one style: pairs/0000-before.png, ..., thumbnail.png
    <library>/files/adapters/<slug>-<id>/      one adapter: adapter.safetensors
    <library>/.staging/<id>/                   files being written (deleted on recovery)

A write copies everything into a fresh staging folder, records the final folder names in
``pending_files`` (committed), renames the staged folders into ``files/``, then inserts the rows
and clears the pending names in one transaction. A removal deletes rows and records the folders
in ``pending_files`` in one transaction, then deletes the folders. :func:`settle` finishes or
undoes either after a crash: it empties ``.staging`` and deletes each pending folder no row
references. Whatever moment a process dies at, a style is either complete or absent.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Iterable

import sqlite_utils

from engine.library.database import LibraryDatabase
from engine.library.names import slug
from engine.library.schema import now

DATABASE_FILE = "library.db"
LOCK_FILE = ".lock"
FILES = "files"
STAGING = ".staging"
STYLE_FILES = "styles"
ADAPTER_FILES = "adapters"
FILE_KINDS = (STYLE_FILES, ADAPTER_FILES)
ADAPTER_FILE = "adapter.safetensors"
THUMBNAIL_FILE = "thumbnail.png"
PAIRS_FOLDER = "pairs"
CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class StagedFolder:
    """A folder written in staging and the library-relative place it will be renamed to."""

    staged: Path
    relative: str


class Staging:
    """A private folder under ``.staging`` for one write; removed when the ``with`` block ends."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.folder = root / STAGING / uuid.uuid4().hex
        self.folders: list[StagedFolder] = []

    def __enter__(self) -> Staging:
        self.folder.mkdir(parents=True)
        return self

    def __exit__(self, *exc_info: object) -> None:
        # After a successful move only empty kind folders are left; after a failure, the copies.
        if self.folder.exists():
            shutil.rmtree(self.folder)

    def new_folder(self, kind: str, label: str) -> StagedFolder:
        """An empty staged folder for ``files/<kind>/<slug of label>-<unique id>``."""
        name = f"{slug(label)}-{uuid.uuid4().hex[:12]}"
        staged = StagedFolder(self.folder / kind / name, f"{FILES}/{kind}/{name}")
        staged.staged.mkdir(parents=True)
        self.folders.append(staged)
        return staged

    def relatives(self) -> list[str]:
        return [folder.relative for folder in self.folders]

    def move_into_place(self) -> None:
        """Rename every staged folder to its final place (call after recording them as pending)."""
        parents = set()
        for folder in self.folders:
            final = self.root / folder.relative
            final.parent.mkdir(parents=True, exist_ok=True)
            os.rename(folder.staged, final)
            parents.add(final.parent)
        # The renames must be on disk before the commit that makes rows point at them.
        for parent in parents:
            fsync_folder(parent)


def copy_with_sha256(source: Path, target: Path) -> tuple[str, int]:
    """Copy ``source`` to ``target`` byte for byte, flushed to disk; return (sha256, size)."""
    digest = hashlib.sha256()
    size = 0
    with open(source, "rb") as reading, open(target, "xb") as writing:
        while chunk := reading.read(CHUNK_BYTES):
            digest.update(chunk)
            writing.write(chunk)
            size += len(chunk)
        writing.flush()
        os.fsync(writing.fileno())
    return digest.hexdigest(), size


def sha256_of(path: Path) -> tuple[str, int]:
    """(sha256 hex digest, size in bytes) of a file."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as reading:
        while chunk := reading.read(CHUNK_BYTES):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def fsync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def mark_pending(database: LibraryDatabase, relatives: Iterable[str]) -> None:
    """Record, in a committed transaction, folders about to appear under ``files/``."""
    with database.write() as db:
        add_pending(db, relatives)


def add_pending(db: sqlite_utils.Database, relatives: Iterable[str]) -> None:
    """Record folders as pending inside the caller's transaction."""
    db["pending_files"].insert_all(({"path": relative, "created": now()} for relative in relatives), replace=True)


def clear_pending(db: sqlite_utils.Database, relatives: Iterable[str]) -> None:
    for relative in relatives:
        db["pending_files"].delete_where("path = ?", [relative])


def folder_of(relative_path: str) -> str:
    """The ``files/<kind>/<folder>`` a library-relative file path is in."""
    return "/".join(PurePosixPath(relative_path).parts[:3])


def referenced_folders(db: sqlite_utils.Database) -> set[str]:
    """Every folder under ``files/`` some row points into."""
    folders = {row["folder"] for row in db.query("SELECT folder FROM styles")}
    folders.update(folder_of(row["path"]) for row in db.query("SELECT path FROM adapters"))
    for row in db.query("SELECT before_path, after_path FROM pairs UNION ALL SELECT thumbnail, thumbnail FROM styles WHERE thumbnail IS NOT NULL"):
        folders.update((folder_of(row["before_path"]), folder_of(row["after_path"])))
    return folders


def settle(root: Path, database: LibraryDatabase) -> list[str]:
    """Finish or undo interrupted writes (hold the library lock): delete everything in
    ``.staging`` and every pending folder no row references; return the removed paths."""
    removed = []
    staging = root / STAGING
    if staging.exists():
        for leftover in sorted(staging.iterdir()):
            remove_tree(leftover)
            removed.append(f"{STAGING}/{leftover.name}")
    with database.read() as db:
        pending = [row["path"] for row in db.query("SELECT path FROM pending_files")]
        referenced = referenced_folders(db)
    for relative in pending:
        # Only paths the library itself recorded, and only inside files/.
        if relative not in referenced and relative.startswith(f"{FILES}/") and ".." not in PurePosixPath(relative).parts:
            if (root / relative).exists():
                remove_tree(root / relative)
                removed.append(relative)
    if pending:
        # Cleared only after the folders are gone, so a crash part-way is finished next time.
        with database.write() as db:
            clear_pending(db, pending)
    return removed


def unlisted_entries(root: Path, db: sqlite_utils.Database) -> list[str]:
    """Entries under ``files/`` that no row references and no pending write explains."""
    files = root / FILES
    if not files.exists():
        return []
    referenced = referenced_folders(db) | {row["path"] for row in db.query("SELECT path FROM pending_files")}
    unlisted = []
    for entry in sorted(files.iterdir()):
        if entry.name not in FILE_KINDS or not entry.is_dir():
            unlisted.append(f"{FILES}/{entry.name}")
            continue
        unlisted.extend(f"{FILES}/{entry.name}/{item.name}" for item in sorted(entry.iterdir())
                        if f"{FILES}/{entry.name}/{item.name}" not in referenced)
    return unlisted


def remove_tree(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
