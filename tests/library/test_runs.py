"""Training runs: their lifecycle, and runs left 'running' by a process that is gone."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from engine.core.errors import InputError
from engine.library import StyleLibrary
from engine.library.runs import process_identity


def test_a_run_goes_from_running_to_finished_with_its_log_and_metrics(library: StyleLibrary) -> None:
    run_id = library.begin_run("train", ["Ink", "Neon"], {"steps": 200, "rank": 8})
    run = library.get_run(run_id)
    assert (run.status, run.kind, run.style_names, run.settings, run.pid, run.ended) == (
        "running", "train", ("Ink", "Neon"), {"steps": 200, "rank": 8}, os.getpid(), None)
    library.append_log(run_id, "step 1 loss 0.5\n")
    library.append_log(run_id, "step 2 loss 0.4\n")
    library.finish_run(run_id, "finished", {"psnr": 24.0})
    run = library.get_run(run_id)
    assert (run.status, run.metrics, run.log) == ("finished", {"psnr": 24.0}, "step 1 loss 0.5\nstep 2 loss 0.4\n")
    assert run.ended is not None and run.ended >= run.started
    with pytest.raises(InputError, match=f"run {run_id} already ended as 'finished'; start a new run"):
        library.finish_run(run_id, "cancelled")
    assert [listed.id for listed in library.list_runs()] == [run_id]


@pytest.mark.parametrize(("call", "message"), [
    (lambda library: library.finish_run(1, "done"), "run status 'done' is not an end state"),
    (lambda library: library.append_log(99, "x"), "there is no run 99"),
    (lambda library: library.get_run(99), "there is no run 99"),
    (lambda library: library.begin_run("", [], {}), "run kind '' is empty"),
    (lambda library: library.begin_run("train", "Ink", {}), "must be a list of names"),
    (lambda library: library.begin_run("train", [], {"path": Path("x")}), "run settings cannot be stored as JSON"),
])
def test_bad_run_calls_are_refused(library: StyleLibrary, call, message: str) -> None:
    library.begin_run("train", [], {})
    with pytest.raises(InputError, match=message):
        call(library)


def set_owner(library: StyleLibrary, run_id: int, pid: int, process: str | None) -> None:
    with library._database.write() as db:
        db["runs"].update(run_id, {"pid": pid, "process": process})


def test_recovery_fails_only_runs_whose_process_is_gone(library: StyleLibrary) -> None:
    ours = library.begin_run("train", ["a"], {})
    elsewhere = library.begin_run("train", ["b"], {})
    reused_pid = library.begin_run("train", ["c"], {})
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        set_owner(library, elsewhere, sleeper.pid, process_identity(sleeper.pid))
        # Our own pid, but recorded by an earlier process (another start time): the pid was reused.
        set_owner(library, reused_pid, os.getpid(), "another-boot:1")
        assert library.recover().interrupted_runs == [reused_pid]
        assert [library.get_run(run).status for run in (ours, elsewhere)] == ["running", "running"]
    finally:
        sleeper.kill()
        sleeper.wait()
    assert library.recover().interrupted_runs == [elsewhere]
    run = library.get_run(elsewhere)
    assert run.status == "failed" and "[interrupted" in run.log and run.ended is not None
    assert library.get_run(ours).status == "running"
    library.finish_run(ours, "cancelled")
