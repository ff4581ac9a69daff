"""The library's tables, as an ordered list of migrations.

``schema_migrations`` records which versions are applied. Opening a library applies the missing
ones in order, each in its own transaction together with its ``schema_migrations`` row, so a
library is always at exactly one version (SQLite DDL is transactional). To change the schema,
append a function to :data:`MIGRATIONS`; never edit one that has shipped.

JSON columns hold ``json.dumps`` text. Paths are relative to the library folder, POSIX style, so a
library can be moved or copied as a folder.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timezone
from typing import Callable

import sqlite_utils

from engine.core.errors import InputError
from engine.library.database import LibraryDatabase

VERSION_1 = """
CREATE TABLE runs (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    style_names TEXT NOT NULL DEFAULT '[]',
    settings TEXT NOT NULL DEFAULT '{}',
    metrics TEXT,
    log TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL CHECK (status IN ('running', 'finished', 'failed', 'cancelled')),
    started TEXT NOT NULL,
    ended TEXT,
    -- The process doing the run, so a run left 'running' by a killed process can be told apart
    -- from one still going in another process: its pid, and "boot id:start time" of that pid.
    pid INTEGER,
    process TEXT
);
CREATE TABLE adapters (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('moe', 'lora', 'subject')),
    path TEXT NOT NULL UNIQUE,
    sha256 TEXT NOT NULL,
    size_bytes INTEGER NOT NULL,
    backbone TEXT NOT NULL,
    metadata TEXT NOT NULL DEFAULT '{}',
    created TEXT NOT NULL
);
CREATE TABLE styles (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE COLLATE NOCASE,
    -- NOCASE folds ASCII only; name_key (NFC, case-folded) makes 'Été' and 'été' one name too.
    name_key TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL DEFAULT '',
    trigger TEXT NOT NULL DEFAULT '',
    created TEXT NOT NULL,
    backbone TEXT NOT NULL,
    adapter_id INTEGER NOT NULL REFERENCES adapters(id),
    expert_key TEXT,
    -- The style's own folder (pairs, thumbnail): every file it owns is inside.
    folder TEXT NOT NULL UNIQUE,
    thumbnail TEXT,
    metrics TEXT NOT NULL DEFAULT '{}',
    run_id INTEGER REFERENCES runs(id) ON DELETE SET NULL
);
CREATE INDEX styles_adapter ON styles(adapter_id);
CREATE TABLE pairs (
    id INTEGER PRIMARY KEY,
    style_id INTEGER NOT NULL REFERENCES styles(id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    before_path TEXT NOT NULL,
    after_path TEXT NOT NULL,
    split TEXT NOT NULL CHECK (split IN ('train', 'holdout')),
    before_sha256 TEXT NOT NULL,
    after_sha256 TEXT NOT NULL,
    UNIQUE (style_id, position)
);
CREATE TABLE presets (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    settings TEXT NOT NULL DEFAULT '{}',
    created TEXT NOT NULL,
    UNIQUE (kind, name)
);
-- Folders under files/ that a write is about to create or has just made unreferenced. Recovery
-- deletes those no row references, and only those: a folder the library did not record here is
-- reported by check(), never deleted (an older library.db restored from a backup must not make
-- the library wipe the newer styles' files).
CREATE TABLE pending_files (
    path TEXT PRIMARY KEY,
    created TEXT NOT NULL
);
"""


def _version_1(db: sqlite_utils.Database) -> None:
    _execute_script(db, VERSION_1)


def _version_2(db: sqlite_utils.Database) -> None:
    # The style's full-size render choice (engine.rendering.render_choice.RenderChoice as JSON);
    # NULL, as every style from before has, renders with the RenderSettings defaults.
    db.execute("ALTER TABLE styles ADD COLUMN render TEXT")


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [_version_1, _version_2]
LATEST_VERSION = len(MIGRATIONS)


def schema_version(db: sqlite_utils.Database) -> int:
    """The highest applied migration, 0 for an empty database."""
    if not db["schema_migrations"].exists():
        return 0
    return db.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()[0]


def migrate(database: LibraryDatabase) -> list[int]:
    """Apply the missing migrations in order, each in one transaction; return the versions applied.

    Safe when two processes open the same library at once: the version is re-read inside each
    write transaction, so a migration another process just applied is skipped.

    Raises:
        InputError: when the library was written by a newer Atelier (a higher schema version).
    """
    applied = []
    while True:
        with database.write() as db:
            if not db["schema_migrations"].exists():
                db.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied TEXT NOT NULL)")
            current = schema_version(db)
            if current > LATEST_VERSION:
                raise InputError(
                    f"the style library {database.path} has schema version {current}, newer than this Atelier's {LATEST_VERSION}; update Atelier"
                )
            if current == LATEST_VERSION:
                return applied
            MIGRATIONS[current](db)
            db["schema_migrations"].insert({"version": current + 1, "applied": now()})
            applied.append(current + 1)


def _execute_script(db: sqlite_utils.Database, script: str) -> None:
    """Run SQL statements one by one inside the open transaction (``executescript`` would commit
    it first). ``complete_statement`` knows about comments and quotes, unlike splitting on ';'."""
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            db.execute(pending)
            pending = ""
    if pending.strip():
        raise ValueError(f"incomplete SQL statement in a migration: {pending.strip()[:60]}")


def now() -> str:
    """The current UTC time as ISO 8601 to the second, the form every timestamp column holds."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
