"""The library's write lock, shared by threads and processes.

Every method that adds, moves or removes files under the library holds it, from the first file it
stages to the last it deletes. Recovery holds it too, so it never mistakes another writer's
half-finished work (a staging folder, a folder renamed into place a moment before its rows are
inserted) for the leftovers of a killed process. Readers never take it: SQLite's WAL mode gives
them consistent snapshots while a writer works.

``flock`` locks belong to an open file, so two threads (each opening the lock file) exclude each
other as two processes do, and the kernel releases the lock of a killed process. POSIX only.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
from pathlib import Path
from typing import Iterator

from engine.core.errors import AtelierError

# Seconds to wait for another writer (publishing copies files, so it can take a while).
LOCK_TIMEOUT_S = 300.0
POLL_S = 0.02


class LibraryLock:
    """A re-entrant exclusive lock on ``<library>/.lock``."""

    def __init__(self, path: Path, timeout_s: float = LOCK_TIMEOUT_S) -> None:
        self.path = path
        self.timeout_s = timeout_s
        self._thread_lock = threading.RLock()
        self._depth = 0
        self._descriptor: int | None = None

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the lock for the block; nested use by the same thread is allowed."""
        with self._thread_lock:
            if self._depth == 0:
                self._descriptor = self._acquire()
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if self._depth == 0 and self._descriptor is not None:
                    # Closing the file releases the flock.
                    os.close(self._descriptor)
                    self._descriptor = None

    def _acquire(self) -> int:
        descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + self.timeout_s
        while True:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return descriptor
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(descriptor)
                    raise AtelierError(
                        f"the style library {self.path.parent} is busy: another Atelier process has been writing to it for "
                        f"{self.timeout_s:g} s; wait for it to finish or close it, then try again"
                    ) from None
                time.sleep(POLL_S)
