"""The library's SQLite database: one connection per thread, and explicit transactions.

Why not ``with db.conn:``: sqlite-utils 4 wraps each of its own writes in ``db.atomic()``, which
issues ``BEGIN``/``COMMIT`` itself when no transaction is open. Python's ``with conn:`` opens no
transaction until the first plain DML statement, so a ``table.insert`` as the first write would
commit on its own and a later failure could not roll it back. :meth:`LibraryDatabase.write` opens
the transaction first (``BEGIN IMMEDIATE``), after which sqlite-utils nests its writes as
savepoints inside it, and everything commits or rolls back as one.

``IMMEDIATE`` takes the write lock at the start, so the checks a method makes (is this name free?)
and the writes that follow see the same state, and a writer waits for another (busy timeout)
instead of failing when a deferred read transaction cannot be upgraded.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from pathlib import Path
from typing import Iterator

import sqlite_utils

from engine.core.errors import InputError
from engine.library.names import name_key

# Seconds a connection waits for another writer before giving up with "database is locked".
BUSY_TIMEOUT_S = 30.0


class LibraryDatabase:
    """Per-thread sqlite-utils connections to one database file.

    A ``sqlite3`` connection must not be used by two threads at once, and the studio reads the
    library from UI threads while training publishes from another, so each thread gets its own
    connection (WAL mode lets readers go on while a writer writes).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._all: list[sqlite_utils.Database] = []
        self._guard = threading.Lock()
        self._closed = False
        try:
            with self._guard:
                first = self._connect()
            first.execute("SELECT count(*) FROM sqlite_master").fetchall()
        except sqlite3.OperationalError:
            raise  # locked, busy or unreachable: not a damaged file
        except sqlite3.DatabaseError as error:
            self.close()
            raise InputError(
                f"{path} is not a readable style library database ({error}); the file is damaged: restore it from "
                "a backup, or use another library folder to start a new one"
            ) from error
        # The journal mode is stored in the file, so setting it once is enough; FULL sync makes a
        # commit durable before files it made unreferenced are deleted (in WAL mode NORMAL can
        # lose the last commits on power loss, which would then point at deleted files).
        first.enable_wal()

    def connection(self) -> sqlite_utils.Database:
        """This thread's connection, opened on first use."""
        db = getattr(self._local, "db", None)
        if db is None:
            with self._guard:
                if self._closed:
                    raise RuntimeError(f"the style library database {self.path} is closed")
                db = self._connect()
        return db

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite_utils.Database]:
        """A write transaction: commits when the block ends, rolls back if it raises."""
        db = self.connection()
        if db.conn.in_transaction:
            raise RuntimeError("nested library transaction; a library method called another public method mid-write")
        db.conn.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.rollback()
            raise
        try:
            db.conn.execute("COMMIT")
        except BaseException:
            db.rollback()
            raise

    @contextlib.contextmanager
    def read(self) -> Iterator[sqlite_utils.Database]:
        """A read transaction, so several queries see one consistent snapshot of the library."""
        db = self.connection()
        if db.conn.in_transaction:
            # Already inside a write (or read) on this thread: that snapshot is the right one.
            yield db
            return
        db.conn.execute("BEGIN")
        try:
            yield db
        finally:
            db.rollback()

    def close(self) -> None:
        """Close every thread's connection; later use raises."""
        with self._guard:
            self._closed = True
            connections, self._all = self._all, []
        for db in connections:
            db.close()

    def _connect(self) -> sqlite_utils.Database:
        # check_same_thread=False only so close() may close another thread's connection; each
        # connection is still used by the thread that opened it alone.
        connection = sqlite3.connect(str(self.path), timeout=BUSY_TIMEOUT_S, check_same_thread=False)
        db = sqlite_utils.Database(connection, execute_plugins=False)
        db.execute("PRAGMA foreign_keys = ON")
        db.execute("PRAGMA synchronous = FULL")
        # Case-insensitive search for any script (SQLite's lower() and NOCASE fold ASCII only).
        connection.create_function("fold", 1, lambda text: None if text is None else name_key(text), deterministic=True)
        self._local.db = db
        self._all.append(db)
        return db
