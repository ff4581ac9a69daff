"""Migrations: an empty folder becomes a library at the latest version; opening again changes
nothing; a version-1 library (from before the render column) opens and migrates."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from library_fixtures import adapter_source, new_style, write_adapter

from engine.core.errors import InputError
from engine.library import StyleLibrary
from engine.library.database import LibraryDatabase
from engine.library.schema import LATEST_VERSION, MIGRATIONS, migrate, now
from engine.rendering.full_resolution import RenderSettings

TABLES = {"schema_migrations", "styles", "pairs", "adapters", "runs", "presets", "pending_files"}


def tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as connection:
        return {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_opening_an_empty_folder_applies_every_migration(tmp_path: Path) -> None:
    StyleLibrary.open(tmp_path / "new" / "styles").close()
    database = tmp_path / "new" / "styles" / "library.db"
    assert TABLES <= tables(database)
    with sqlite3.connect(database) as connection:
        versions = [row[0] for row in connection.execute("SELECT version FROM schema_migrations ORDER BY version")]
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert versions == list(range(1, len(MIGRATIONS) + 1)) == [1, LATEST_VERSION]


def test_reopening_applies_nothing_and_keeps_the_data(tmp_path: Path) -> None:
    with StyleLibrary.open(tmp_path) as library:
        run_id = library.begin_run("train", ["ink"], {"steps": 3})
    database = LibraryDatabase(tmp_path / "library.db")
    try:
        assert migrate(database) == []
        with database.read() as db:
            assert [row["version"] for row in db.query("SELECT version FROM schema_migrations")] == [1, 2]
    finally:
        database.close()
    with StyleLibrary.open(tmp_path) as library:
        assert library.get_run(run_id).settings == {"steps": 3}


def test_foreign_keys_are_enforced(library: StyleLibrary) -> None:
    with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
        with library._database.write() as db:
            db.execute("INSERT INTO styles (name, name_key, created, backbone, adapter_id, folder) VALUES ('a', 'a', 'now', 'b', 999, 'f')")
    assert library._database.connection().execute("SELECT count(*) FROM styles").fetchone()[0] == 0


def test_a_library_from_a_newer_atelier_is_refused(tmp_path: Path) -> None:
    StyleLibrary.open(tmp_path).close()
    with sqlite3.connect(tmp_path / "library.db") as connection:
        connection.execute("INSERT INTO schema_migrations VALUES (?, 'later')", [LATEST_VERSION + 1])
    with pytest.raises(InputError, match=f"schema version {LATEST_VERSION + 1}, newer than this Atelier's {LATEST_VERSION}; update Atelier"):
        StyleLibrary.open(tmp_path)


def test_a_folder_holding_other_things_is_not_taken_over(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="holds notes.txt but no library.db, so it is not a style library"):
        StyleLibrary.open(tmp_path)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["notes.txt"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="is a file; give a folder"):
        StyleLibrary.open(tmp_path / "file")


def columns(path: Path, table: str) -> set[str]:
    with sqlite3.connect(path) as connection:
        return {row[1] for row in connection.execute(f"PRAGMA table_info({table})")}


def test_a_version_1_library_opens_migrates_and_its_styles_render_with_the_defaults(tmp_path: Path, pairs) -> None:
    # A library written before version 2: published with the current code, then taken back to
    # version 1 exactly (the render column dropped, the version-2 row removed).
    with StyleLibrary.open(tmp_path / "old") as library:
        library.publish_styles([new_style("ink", pairs, "e0")], adapter_source(write_adapter(tmp_path / "a.safetensors", ["e0"])))
    database = tmp_path / "old" / "library.db"
    with sqlite3.connect(database) as connection:
        connection.execute("ALTER TABLE styles DROP COLUMN render")
        connection.execute("DELETE FROM schema_migrations WHERE version > 1")
    assert "render" not in columns(database, "styles")
    with StyleLibrary.open(tmp_path / "old") as library:
        record = library.get_style("ink")
        assert record.render is None and record.render_settings == RenderSettings()
        assert library.set_render("ink", RenderSettings("guided", 4, 1e-4)).render_settings == RenderSettings("guided", 4, 1e-4)
    assert "render" in columns(database, "styles")
    with sqlite3.connect(database) as connection:
        assert [row[0] for row in connection.execute("SELECT version FROM schema_migrations ORDER BY version")] == [1, 2]


def test_a_database_at_version_1_gets_version_2_only(tmp_path: Path) -> None:
    database = LibraryDatabase(tmp_path / "library.db")
    try:
        with database.write() as db:
            db.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied TEXT NOT NULL)")
            MIGRATIONS[0](db)
            db["schema_migrations"].insert({"version": 1, "applied": now()})
        assert migrate(database) == [2]
    finally:
        database.close()
    assert "render" in columns(tmp_path / "library.db", "styles")
