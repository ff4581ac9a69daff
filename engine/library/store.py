"""The style library: styles, their adapter files and pairs, and training runs, in one folder.

Crash safety (see :mod:`engine.library.storage` for the steps): files are written in staging,
renamed into ``files/`` after being recorded as pending, and only then do rows point at them, in
one transaction; removals commit first and delete files after. Opening a library runs
:meth:`StyleLibrary.recover`, so after a kill at any moment there is no style without its files
and no file left over from an unfinished write.

Concurrency: every public method may be called from any thread, and several processes may open
the same library. Reads use per-thread SQLite connections in WAL mode and never wait for a
write; methods that touch files hold :class:`engine.library.locking.LibraryLock`. A record read
just before another thread replaces or deletes a style may name files that are gone; read the
record again.
"""

from __future__ import annotations

import contextlib
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from engine.core.errors import InputError
from engine.library import presets, runs
from engine.library.checks import check_library_folder, check_replacement, find_problems, verify_style
from engine.library.database import LibraryDatabase
from engine.library.location import resolve_library
from engine.library.locking import LibraryLock
from engine.library.names import name_key, validate_style_name
from engine.library.reading import SEARCH_WHERE, style_records, style_row, taken_names
from engine.library.records import (
    MAX_DESCRIPTION_LENGTH,
    MAX_TRIGGER_LENGTH,
    AdapterRecord,
    AdapterSource,
    NewStyle,
    StyleRecord,
    check_adapter_source,
    check_new_styles,
    check_text,
)
from engine.library.schema import migrate
from engine.library.storage import (
    DATABASE_FILE,
    FILES,
    LOCK_FILE,
    Staging,
    add_pending,
    clear_pending,
    folder_of,
    mark_pending,
    settle,
)
from engine.library.writing import (insert_adapter, insert_style, stage_adapter, stage_style, store_render_choice,
                                    update_render)
from engine.rendering.full_resolution import RenderSettings
from engine.rendering.render_choice import RenderChoice

# How a taken name is refused unless the caller words it otherwise (see StyleLibrary.check_name_free).
TAKEN_MESSAGE = ("the name {name!r} (compared without case, after Unicode NFC) is taken: the style library {library} "
                 "already has a style named {taken!r}; choose another name or delete that style")


@dataclass(frozen=True)
class Recovery:
    """What :meth:`StyleLibrary.recover` cleaned up."""

    removed: list[str]
    interrupted_runs: list[int]


class StyleLibrary:
    """A style library folder. Open it with :meth:`open`; close it (or use ``with``) when done."""

    def __init__(self, root: Path, database: LibraryDatabase, lock: LibraryLock) -> None:
        self.root = root
        self._database = database
        self._lock = lock
        # What the recovery run by open() cleaned up, for the caller to log or show.
        self.opening_recovery = Recovery([], [])

    @classmethod
    def open(cls, folder: str | Path | None = None) -> StyleLibrary:
        """Open (creating if missing) the library at ``folder`` (see :func:`resolve_library`),
        bring its schema up to date and recover from any interrupted write.

        Raises:
            InputError: when the folder is a file, or holds other things but no library.
        """
        root = resolve_library(folder).absolute()
        check_library_folder(root)
        (root / FILES).mkdir(parents=True, exist_ok=True)
        database = LibraryDatabase(root / DATABASE_FILE)
        try:
            migrate(database)
            library = cls(root, database, LibraryLock(root / LOCK_FILE))
            library.opening_recovery = library.recover()
        except BaseException:
            database.close()
            raise
        return library

    def close(self) -> None:
        self._database.close()

    def __enter__(self) -> StyleLibrary:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def recover(self) -> Recovery:
        """Delete what interrupted writes left (staging, pending folders no row references) and
        mark 'failed' the runs whose process is gone. Safe while other threads or processes use
        the library. Files under ``files/`` the library did not record are left for :meth:`check`."""
        with self._lock.exclusive():
            removed = settle(self.root, self._database)
        return Recovery(removed, runs.mark_interrupted_runs(self._database))

    def check(self, deep: bool = False) -> list[str]:
        """Problems found, one line each (empty when all is well): rows whose files are missing
        or the wrong size (``deep``: or whose sha256 differs), unused adapters, leftovers of
        interrupted writes, and files no row refers to. Nothing is changed."""
        with self._lock.exclusive():
            return find_problems(self.root, self._database, deep)

    # Reading ----------------------------------------------------------------------------------

    def list_styles(self, search: str = "") -> list[StyleRecord]:
        """Every style, by name; with ``search``, those whose name, description or trigger contains
        it (ignoring case)."""
        if not isinstance(search, str):
            raise InputError(f"search text must be a string, not {type(search).__name__}")
        with self._database.read() as db:
            if not search:
                return style_records(db, self.root)
            return style_records(db, self.root, SEARCH_WHERE, {"needle": name_key(search)})

    def get_style(self, name: str) -> StyleRecord:
        """The style called ``name`` (any case). Raises InputError naming close matches."""
        with self._database.read() as db:
            row = style_row(db, name, self.root)
            return style_records(db, self.root, "id = ?", [row["id"]])[0]

    def adapter_path(self, record: StyleRecord | AdapterRecord) -> Path:
        """The absolute path of a style's (or an adapter record's) weights file."""
        return (record.adapter if isinstance(record, StyleRecord) else record).path

    def verify(self, record: StyleRecord) -> None:
        """Recompute the sha256 of the style's adapter and pairs; InputError if one differs."""
        verify_style(record)

    def check_name_free(self, name: str, message: str = TAKEN_MESSAGE) -> None:
        """Refuse ``name`` for a new style or subject when it is not a valid name or the library
        already has a style or subject of that name, compared as the library compares names
        (:func:`~engine.library.names.name_key`: NFC-normalised and case-folded, so ``Ink`` and
        ``ink``, or a composed and a decomposed ``é``, are one name).

        This is the one place the rule lives: publishing, replacing and renaming here apply it,
        and training calls it before its first step, so a name that publishing would refuse never
        trains for a whole run first. (Publishing checks again under the lock, for a name taken
        meanwhile.)

        ``message`` is a :meth:`str.format` template for the error: ``{taken}`` is the existing
        name as stored, ``{name}`` the name asked for, ``{library}`` the library's folder.

        Raises:
            InputError: for an invalid name (as :func:`validate_style_name` words it) or a taken one.
        """
        validate_style_name(name)
        with self._database.read() as db:
            self._refuse_taken(db, [name], message)

    # Writing ----------------------------------------------------------------------------------

    def publish_styles(self, new_styles: Sequence[NewStyle], adapter: AdapterSource, run_id: int | None = None) -> list[StyleRecord]:
        """Add styles that share one new adapter file; return their records. Names already in the
        library are refused before any file is written."""
        styles = check_new_styles(new_styles)
        if not styles:
            raise InputError("there are no styles to publish; give at least one NewStyle")
        check_adapter_source(adapter)
        with self._lock.exclusive():
            with self._database.read() as db:
                self._refuse_taken(db, [style.name for style in styles])
                self._require_run(db, run_id)
            with Staging(self.root) as staging:
                adapter_row = stage_adapter(staging, adapter, f"{adapter.kind} {styles[0].name}")
                staged = [stage_style(staging, style) for style in styles]
                with self._undo_on_error():
                    self._move_into_place(staging)
                    with self._database.write() as db:
                        adapter_id = insert_adapter(db, adapter_row)
                        for style in staged:
                            insert_style(db, style, adapter_id, adapter.backbone, run_id)
                        clear_pending(db, staging.relatives())
        return self._records_named([style.name for style in styles])

    def replace_adapter(self, old_adapter_id: int, adapter: AdapterSource, new_styles: Sequence[NewStyle] = (),
                        updated_expert_keys: Mapping[str, str | None] | None = None, run_id: int | None = None) -> list[StyleRecord]:
        """Swap a shared adapter for a rewritten one (a style joins or leaves a mixture of experts):
        every style on the old adapter moves to the new one, ``updated_expert_keys`` (style name to
        key) changes their keys, ``new_styles`` are added on it, and the old file is deleted once
        this has committed. Returns every style on the new adapter."""
        styles = check_new_styles(new_styles)
        check_adapter_source(adapter)
        with self._lock.exclusive():
            with self._database.read() as db:
                old = self._adapter_row(db, old_adapter_id)
                sharing = [row["name"] for row in db.query("SELECT name FROM styles WHERE adapter_id = ?", [old_adapter_id])]
                check_replacement(old, adapter, sharing, updated_expert_keys or {})
                if not sharing and not styles:
                    raise InputError(f"no style uses adapter {old_adapter_id} and no new style is given; publish_styles adds new styles")
                self._refuse_taken(db, [style.name for style in styles])
                self._require_run(db, run_id)
            with Staging(self.root) as staging:
                adapter_row = stage_adapter(staging, adapter, f"{adapter.kind} {(sharing or [styles[0].name])[0]}")
                staged = [stage_style(staging, style) for style in styles]
                with self._undo_on_error():
                    self._move_into_place(staging)
                    with self._database.write() as db:
                        new_id = self._swap_adapter(db, old, adapter_row, updated_expert_keys or {})
                        for style in staged:
                            insert_style(db, style, new_id, adapter.backbone, run_id)
                        clear_pending(db, staging.relatives())
            settle(self.root, self._database)
            with self._database.read() as db:
                return style_records(db, self.root, "adapter_id = ?", [new_id])

    def delete_style(self, name: str, adapter_after_removal: AdapterSource | None = None,
                     updated_expert_keys: Mapping[str, str | None] | None = None) -> None:
        """Remove a style, its pairs and files. When other styles share its adapter, pass that
        adapter rewritten without the style's expert (and any changed expert keys of the others):
        it replaces the old one in the same transaction. An adapter no style uses any more is
        deleted with its file."""
        if adapter_after_removal is not None:
            check_adapter_source(adapter_after_removal)
        elif updated_expert_keys:
            raise InputError("updated_expert_keys change keys inside a rewritten adapter; pass that adapter as adapter_after_removal too")
        with self._lock.exclusive():
            with self._database.read() as db:
                row = style_row(db, name, self.root)
                old = self._adapter_row(db, row["adapter_id"])
                sharing = [other["name"] for other in db.query("SELECT name FROM styles WHERE adapter_id = ? AND id != ?", [old["id"], row["id"]])]
            if sharing and adapter_after_removal is None:
                raise InputError(f"style {row['name']!r} shares its adapter with {', '.join(map(repr, sharing))}; "
                                 "pass that adapter rewritten without its expert as adapter_after_removal")
            if not sharing and adapter_after_removal is not None:
                raise InputError(f"no other style uses the adapter of style {row['name']!r}, so it is deleted with it; pass no adapter_after_removal")
            if adapter_after_removal is not None:
                check_replacement(old, adapter_after_removal, sharing, updated_expert_keys or {})
            with Staging(self.root) as staging:
                adapter_row = stage_adapter(staging, adapter_after_removal, f"{adapter_after_removal.kind} {sharing[0]}") if sharing else None
                with self._undo_on_error():
                    self._move_into_place(staging)
                    with self._database.write() as db:
                        add_pending(db, [row["folder"]])
                        db["pairs"].delete_where("style_id = ?", [row["id"]])
                        db["styles"].delete(row["id"])
                        if adapter_row is not None:
                            self._swap_adapter(db, old, adapter_row, updated_expert_keys or {})
                        else:
                            add_pending(db, [folder_of(old["path"])])
                            db["adapters"].delete(old["id"])
                        clear_pending(db, staging.relatives())
            settle(self.root, self._database)

    def rename_style(self, old: str, new: str) -> StyleRecord:
        """Rename a style (changing only its case is allowed too). Its folder keeps its old name."""
        validate_style_name(new)
        with self._lock.exclusive():
            with self._database.write() as db:
                row = style_row(db, old, self.root)
                if name_key(new) != row["name_key"]:
                    self._refuse_taken(db, [new])
                db["styles"].update(row["id"], {"name": new, "name_key": name_key(new)})
        return self.get_style(new)

    def update_style(self, name: str, *, description: str | None = None, trigger: str | None = None) -> StyleRecord:
        """Change a style's description and/or trigger (None leaves a field as it is)."""
        changes: dict[str, Any] = {}
        if description is not None:
            changes["description"] = check_text(description, "description", name, MAX_DESCRIPTION_LENGTH)
        if trigger is not None:
            changes["trigger"] = check_text(trigger, "trigger", name, MAX_TRIGGER_LENGTH, one_line=True)
        with self._lock.exclusive():
            with self._database.write() as db:
                row = style_row(db, name, self.root)
                if changes:
                    db["styles"].update(row["id"], changes)
        return self.get_style(name)

    def set_render(self, name: str, settings: RenderSettings) -> StyleRecord:
        """Set by hand how a style's edits reach the photo's size (the last measurement is kept)."""
        with self._lock.exclusive():
            with self._database.write() as db:
                update_render(db, style_row(db, name, self.root), settings)
        return self.get_style(name)

    def record_render_choice(self, name: str, choice: RenderChoice) -> StyleRecord:
        """Store a measured render choice for a style (replacing any earlier one, by hand or measured)."""
        with self._lock.exclusive():
            with self._database.write() as db:
                store_render_choice(db, style_row(db, name, self.root), choice)
        return self.get_style(name)

    # Runs -------------------------------------------------------------------------------------

    def begin_run(self, kind: str, style_names: Sequence[str], settings: Mapping[str, Any]) -> int:
        """Record a training run as 'running' in this process; return its id."""
        return runs.begin_run(self._database, kind, style_names, settings)

    def append_log(self, run_id: int, text: str) -> None:
        runs.append_log(self._database, run_id, text)

    def finish_run(self, run_id: int, status: str, metrics: Mapping[str, Any] | None = None) -> None:
        """End a run as 'finished', 'failed' or 'cancelled'."""
        runs.finish_run(self._database, run_id, status, metrics)

    def get_run(self, run_id: int) -> runs.RunRecord:
        return runs.get_run(self._database, run_id)

    def list_runs(self, limit: int = 100) -> list[runs.RunRecord]:
        """The latest runs, newest first."""
        return runs.list_runs(self._database, limit)

    # Presets ----------------------------------------------------------------------------------

    def save_preset(self, kind: str, name: str, settings: Mapping[str, Any], replace: bool = False) -> presets.PresetRecord:
        """Store named settings, such as a favourite fusion setting."""
        return presets.save_preset(self._database, kind, name, settings, replace)

    def get_preset(self, kind: str, name: str) -> presets.PresetRecord:
        return presets.get_preset(self._database, kind, name)

    def list_presets(self, kind: str) -> list[presets.PresetRecord]:
        return presets.list_presets(self._database, kind)

    def delete_preset(self, kind: str, name: str) -> None:
        presets.delete_preset(self._database, kind, name)

    # Internals --------------------------------------------------------------------------------

    def _move_into_place(self, staging: Staging) -> None:
        if staging.folders:
            mark_pending(self._database, staging.relatives())
            staging.move_into_place()

    @contextlib.contextmanager
    def _undo_on_error(self) -> Iterator[None]:
        """On any error in the block (KeyboardInterrupt too), undo the write's file changes; a
        cleanup that fails itself is left to the next recovery and noted on the original error."""
        try:
            yield
        except BaseException as error:
            try:
                self._undo()
            except (OSError, sqlite3.Error) as cleanup_error:
                error.add_note(f"cleanup deferred to the next opening of the library: {cleanup_error}")
            raise

    def _undo(self) -> None:
        """Remove what a failed write left (the same cleanup recovery does after a kill)."""
        settle(self.root, self._database)

    def _swap_adapter(self, db: Any, old: dict[str, Any], adapter_row: dict[str, Any], expert_keys: Mapping[str, str | None]) -> int:
        """Insert the new adapter, repoint the old one's styles, and drop the old one (its folder
        becomes pending, deleted after commit). Inside the caller's transaction."""
        new_id = insert_adapter(db, adapter_row)
        db.execute("UPDATE styles SET adapter_id = ? WHERE adapter_id = ?", [new_id, old["id"]])
        for style_name, key in expert_keys.items():
            db.execute("UPDATE styles SET expert_key = ? WHERE name_key = ?", [key, name_key(style_name)])
        add_pending(db, [folder_of(old["path"])])
        db["adapters"].delete(old["id"])
        return new_id

    def _refuse_taken(self, db: Any, names: list[str], message: str = TAKEN_MESSAGE) -> None:
        """The taken-name rule (see :meth:`check_name_free`), inside the caller's read or write."""
        taken = taken_names(db, names)
        if taken:
            asked = next((name for name in names if name_key(name) == name_key(taken[0])), taken[0])
            raise InputError(message.format(taken=taken[0], name=asked, library=self.root))

    def _require_run(self, db: Any, run_id: int | None) -> None:
        if run_id is not None and not list(db.query("SELECT id FROM runs WHERE id = ?", [run_id])):
            raise InputError(f"there is no run {run_id} in the style library {self.root}; pass a run id from begin_run or None")

    def _adapter_row(self, db: Any, adapter_id: int) -> dict[str, Any]:
        rows = list(db.query("SELECT * FROM adapters WHERE id = ?", [adapter_id]))
        if not rows:
            raise InputError(f"there is no adapter {adapter_id} in the style library {self.root}; use a style's adapter.id")
        return rows[0]

    def _records_named(self, names: list[str]) -> list[StyleRecord]:
        keys = [name_key(name) for name in names]
        with self._database.read() as db:
            found = {record.name: record for record in style_records(db, self.root, f"name_key IN ({','.join('?' * len(keys))})", keys)}
        return [found[name] for name in names]
