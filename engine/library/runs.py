"""Training runs: their settings, log, metrics and outcome.

A run records the process doing it. When a library is opened, a run still 'running' whose
process is gone (killed, crashed, machine rebooted) is marked 'failed' as interrupted; a run whose
process is alive, in this process or another, is left alone. A pid alone is not enough, since
pids are reused, so the process is identified by pid plus the kernel's boot id and the pid's start
time (from ``/proc``); where ``/proc`` is missing, the pid alone is used.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from engine.core.errors import InputError
from engine.library.database import LibraryDatabase
from engine.library.schema import now

RUN_STATUSES = ("running", "finished", "failed", "cancelled")
ENDED_STATUSES = ("finished", "failed", "cancelled")
INTERRUPTED_NOTE = "\n[interrupted: the process doing this run ended without finishing it]\n"


@dataclass(frozen=True)
class RunRecord:
    """One training run as stored. ``style_names`` are the names when the run began."""

    id: int
    kind: str
    style_names: tuple[str, ...]
    settings: dict[str, Any]
    metrics: dict[str, Any] | None
    log: str
    status: str
    started: str
    ended: str | None
    pid: int | None


def begin_run(database: LibraryDatabase, kind: str, style_names: Sequence[str], settings: Mapping[str, Any]) -> int:
    """Insert a 'running' run owned by this process; return its id."""
    if not isinstance(kind, str) or not kind.strip():
        raise InputError(f"run kind {kind!r} is empty; give a kind such as 'train'")
    if isinstance(style_names, str) or not all(isinstance(name, str) for name in style_names):
        raise InputError(f"style names of a run must be a list of names, not {style_names!r}")
    settings_text = to_json(settings, "run settings")
    with database.write() as db:
        table = db["runs"].insert({
            "kind": kind, "style_names": json.dumps(list(style_names)), "settings": settings_text, "log": "",
            "status": "running", "started": now(), "pid": os.getpid(), "process": process_identity(os.getpid()),
        })
        return int(table.last_pk)


def append_log(database: LibraryDatabase, run_id: int, text: str) -> None:
    """Add ``text`` to the end of a run's log."""
    if not isinstance(text, str):
        raise InputError(f"run log text must be a string, not {type(text).__name__}")
    with database.write() as db:
        _require_run(db, run_id)
        db.execute("UPDATE runs SET log = log || ? WHERE id = ?", [text, run_id])


def finish_run(database: LibraryDatabase, run_id: int, status: str, metrics: Mapping[str, Any] | None = None) -> None:
    """End a running run as 'finished', 'failed' or 'cancelled', with its metrics."""
    if status not in ENDED_STATUSES:
        raise InputError(f"run status {status!r} is not an end state; use one of {', '.join(ENDED_STATUSES)}")
    metrics_text = None if metrics is None else to_json(metrics, "run metrics")
    with database.write() as db:
        row = _require_run(db, run_id)
        if row["status"] != "running":
            raise InputError(f"run {run_id} already ended as {row['status']!r}; start a new run")
        db["runs"].update(run_id, {"status": status, "metrics": metrics_text, "ended": now()})


def get_run(database: LibraryDatabase, run_id: int) -> RunRecord:
    with database.read() as db:
        return run_record(_require_run(db, run_id))


def list_runs(database: LibraryDatabase, limit: int = 100) -> list[RunRecord]:
    """The latest ``limit`` runs, newest first."""
    with database.read() as db:
        return [run_record(row) for row in db.query("SELECT * FROM runs ORDER BY id DESC LIMIT ?", [limit])]


def mark_interrupted_runs(database: LibraryDatabase) -> list[int]:
    """Mark 'failed' every running run whose process is gone; return their ids."""
    with database.write() as db:
        interrupted = [row["id"] for row in db.query("SELECT id, pid, process FROM runs WHERE status = 'running'")
                       if not process_alive(row["pid"], row["process"])]
        for run_id in interrupted:
            db.execute("UPDATE runs SET status = 'failed', ended = ?, log = log || ? WHERE id = ? AND status = 'running'",
                       [now(), INTERRUPTED_NOTE, run_id])
    return interrupted


def run_record(row: Mapping[str, Any]) -> RunRecord:
    return RunRecord(
        id=row["id"], kind=row["kind"], style_names=tuple(json.loads(row["style_names"])), settings=json.loads(row["settings"]),
        metrics=None if row["metrics"] is None else json.loads(row["metrics"]), log=row["log"], status=row["status"],
        started=row["started"], ended=row["ended"], pid=row["pid"],
    )


def to_json(value: Mapping[str, Any], what: str) -> str:
    """``value`` as JSON text; it must be a dict of JSON-ready values."""
    if not isinstance(value, Mapping):
        raise InputError(f"{what} must be a dict, not {type(value).__name__}")
    try:
        return json.dumps(dict(value), sort_keys=True)
    except (TypeError, ValueError) as error:
        raise InputError(f"{what} cannot be stored as JSON ({error}); pass numbers, strings, lists and dicts") from error


def process_identity(pid: int) -> str | None:
    """``"<boot id>:<start time>"`` of a live, non-zombie process, or None when it is gone or
    ``/proc`` cannot tell."""
    try:
        boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Fields after the command name, which is in parentheses and may itself hold spaces.
    fields = stat[stat.rindex(")") + 2:].split()
    state, start_ticks = fields[0], fields[19]
    if state in ("Z", "X"):
        return None
    return f"{boot_id}:{start_ticks}"


def process_alive(pid: int | None, identity: str | None) -> bool:
    """Whether the process recorded as ``pid``/``identity`` is still running."""
    if pid is None:
        return False
    if identity is not None:
        return process_identity(pid) == identity
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, owned by another user
    return True


def _require_run(db: Any, run_id: int) -> dict[str, Any]:
    rows = list(db.query("SELECT * FROM runs WHERE id = ?", [run_id]))
    if not rows:
        raise InputError(f"there is no run {run_id} in the style library; use a run id from begin_run")
    return rows[0]
