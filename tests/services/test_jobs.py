"""The background training runner: a run publishes, Cancel leaves the library as it was, one job at
a time, failures end up in the state, and an interrupted run can be listed, resumed or discarded."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from engine.core.errors import InputError
from engine.library import StyleLibrary
from engine.services.jobs import TrainingJobs
from engine.training.add_style import StyleRequest
from engine.training.style_trainer import StyleTrainingConfig
from tests.adapters.moe.moe_fixtures import base_backbone
from tests.training.tiny_styles import tiny_pairs

QUICK = dict(batch_size=2, warmup_steps=1, sample_every=1, checkpoint_every=0)
WAIT_S = 240  # a generous bound on a tiny run, so a hung thread fails the test instead of hanging it


def write_pairs(folder: Path, count: int = 4, offset: int = 40) -> Path:
    """``count`` tiny before/after PNG pairs in ``folder/before`` and ``folder/after``."""
    for side in ("before", "after"):
        (folder / side).mkdir(parents=True)
    for pair in tiny_pairs(offset, count=count):
        pair.before.save(folder / "before" / f"{pair.name}.png")
        pair.after.save(folder / "after" / f"{pair.name}.png")
    return folder


@pytest.fixture()
def library(tmp_path: Path):
    opened = StyleLibrary.open(tmp_path / "library")
    yield opened
    opened.close()


def tiny_loader(spec: str):
    assert spec == "tiny"  # the runner loads the spec it was given, never the studio's model object
    return base_backbone()


def cancel_at(jobs: TrainingJobs, step: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``jobs`` press Cancel itself right after ``step`` is reported (no timing involved)."""
    report = jobs._progress

    def report_then_cancel(job, progress):
        report(job, progress)
        if progress.step == step:
            jobs.cancel()

    monkeypatch.setattr(jobs, "_progress", report_then_cancel)


def test_a_run_trains_in_the_background_and_publishes(library, tmp_path: Path) -> None:
    jobs = TrainingJobs(library, "tiny", load_model=tiny_loader)
    assert jobs.state().status == "idle" and jobs.resumable() == []
    started = jobs.start(StyleRequest("Light", write_pairs(tmp_path / "pairs"), "brighter", "in light style"),
                         StyleTrainingConfig(steps=2, **QUICK))
    assert started.status == "running" and started.job == 1 and started.total == 2
    # Four pairs: the last by name is held out, and the previews show it.
    assert started.held_out and started.preview_pair == "p3" and started.pairs == 4
    state = jobs.wait(WAIT_S)
    assert state.status == "finished", state.error
    assert [step for step, _ in state.losses] == [1, 2] and all(loss > 0 for _, loss in state.losses)
    assert state.preview is not None and state.preview_step == 2
    assert state.record.name == "Light" and state.record.description == "brighter"
    assert "holdout" in state.record.metrics and "psnr" in state.record.metrics["holdout"]
    assert [record.name for record in library.list_styles()] == ["Light"]
    assert library.check(deep=True) == []
    assert not (library.root / "checkpoints" / "light").exists()  # published: the run folder is gone
    with pytest.raises(InputError, match="already in the library"):
        jobs.start(StyleRequest("light", tmp_path / "pairs"), StyleTrainingConfig(steps=2, **QUICK))


def test_cancel_leaves_the_library_as_it_was_and_the_run_can_be_resumed(library, tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    jobs = TrainingJobs(library, "tiny", load_model=tiny_loader)
    pairs = write_pairs(tmp_path / "pairs", count=3)
    cancel_at(jobs, 3, monkeypatch)
    jobs.start(StyleRequest("Dusk", pairs), StyleTrainingConfig(steps=6, **{**QUICK, "checkpoint_every": 2}))
    state = jobs.wait(WAIT_S)
    assert state.status == "cancelled" and state.record is None and state.step == 3
    assert library.list_styles() == [] and library.check(deep=True) == []
    assert library.list_runs()[0].status == "cancelled"
    # The run waits in its folder with the pairs the studio saved, at its last checkpoint.
    [run] = jobs.resumable()
    assert (run.name, run.step, run.total, run.pairs) == ("Dusk", 2, 6, 3) and run.saved_request
    with pytest.raises(InputError, match="interrupted run"):
        jobs.start(StyleRequest("Dusk", pairs), StyleTrainingConfig(steps=6, **QUICK))
    monkeypatch.undo()
    resumed = jobs.resume(run.key)
    assert resumed.job == 2 and resumed.first_step == 2 and resumed.name == "Dusk"
    state = jobs.wait(WAIT_S)
    assert state.status == "finished", state.error
    assert [step for step, _ in state.losses] == [3, 4, 5, 6]
    assert [record.name for record in library.list_styles()] == ["Dusk"] and jobs.resumable() == []


def test_a_run_cancelled_before_its_first_checkpoint_leaves_nothing_to_resume(library, tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    jobs = TrainingJobs(library, "tiny", load_model=tiny_loader)
    cancel_at(jobs, 1, monkeypatch)
    jobs.start(StyleRequest("Mist", write_pairs(tmp_path / "pairs", count=2)), StyleTrainingConfig(steps=5, **QUICK))
    assert jobs.wait(WAIT_S).status == "cancelled"
    assert library.list_runs()[0].status == "cancelled" and library.list_styles() == []
    # Resuming would only start over, as Train does, so the folder goes and the name is free.
    assert jobs.resumable() == [] and not (library.root / "checkpoints" / "mist").exists()
    monkeypatch.undo()
    jobs.start(StyleRequest("Mist", tmp_path / "pairs"), StyleTrainingConfig(steps=1, **QUICK))
    assert jobs.wait(WAIT_S).status == "finished"


def test_a_second_start_while_one_runs_is_refused_and_cancel_during_loading_ends_it(library, tmp_path: Path) -> None:
    loading = threading.Event()
    release = threading.Event()

    def slow_loader(spec: str):
        loading.set()
        release.wait(WAIT_S)
        return base_backbone()

    jobs = TrainingJobs(library, "tiny", load_model=slow_loader)
    pairs = write_pairs(tmp_path / "pairs", count=2)
    first = jobs.start(StyleRequest("Ink", pairs), StyleTrainingConfig(steps=2, **QUICK))
    assert loading.wait(WAIT_S) and first.phase == "loading the model"
    with pytest.raises(InputError, match="'Ink' is training now.*cancel it"):
        jobs.start(StyleRequest("Other", pairs), StyleTrainingConfig(steps=2, **QUICK))
    with pytest.raises(InputError, match="training from that run"):
        jobs.discard(first.key)
    assert jobs.cancel().status == "cancelling"
    release.set()
    state = jobs.wait(WAIT_S)
    assert state.status == "cancelled" and state.job == 1
    assert library.list_styles() == [] and library.list_runs() == []  # stopped before a run began
    # Nothing was left to resume, so the name can be trained again straight away.
    assert jobs.resumable() == [] and not (library.root / "checkpoints" / "ink").exists()
    with pytest.raises(InputError, match="nothing to cancel"):
        jobs.cancel()


@pytest.mark.parametrize("error, shown", [
    (InputError("no model at 'x'; give a model folder"), "no model at 'x'; give a model folder"),
    (RuntimeError("out of memory"), "unexpected error (RuntimeError: out of memory)"),
])
def test_failures_are_reported_in_the_state(library, tmp_path: Path, error: Exception, shown: str) -> None:
    def failing_loader(spec: str):
        raise error

    jobs = TrainingJobs(library, "tiny", load_model=failing_loader)
    jobs.start(StyleRequest("Broken", write_pairs(tmp_path / "pairs", count=2)), StyleTrainingConfig(steps=2, **QUICK))
    state = jobs.wait(WAIT_S)
    assert state.status == "failed" and shown in state.error and state.record is None
    assert library.list_styles() == []
    # The runner is free again after a failure.
    jobs = TrainingJobs(library, "tiny", load_model=tiny_loader)
    assert jobs.start(StyleRequest("Broken", tmp_path / "pairs"), StyleTrainingConfig(steps=1, **QUICK)).status == "running"
    assert jobs.wait(WAIT_S).status == "finished"


def test_a_failure_inside_training_keeps_the_run_for_resuming(library, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    jobs = TrainingJobs(library, "tiny", load_model=tiny_loader)

    def failing_report(job, progress):
        raise RuntimeError("disk full")

    monkeypatch.setattr(jobs, "_progress", failing_report)
    config = StyleTrainingConfig(steps=3, **{**QUICK, "checkpoint_every": 1})  # step 1 is saved before it is reported
    jobs.start(StyleRequest("Fragile", write_pairs(tmp_path / "pairs", count=2)), config)
    state = jobs.wait(WAIT_S)
    assert state.status == "failed" and "disk full" in state.error
    assert library.list_styles() == [] and library.list_runs()[0].status == "failed"
    [run] = jobs.resumable()
    assert run.name == "Fragile" and run.step == 1
    jobs.discard(run.key)
    assert jobs.resumable() == [] and not run.folder.exists()


def test_bad_requests_are_refused_before_anything_starts(library, tmp_path: Path) -> None:
    jobs = TrainingJobs(library, "tiny", load_model=tiny_loader)
    pairs = write_pairs(tmp_path / "pairs", count=2)
    config = StyleTrainingConfig(steps=1, **QUICK)
    with pytest.raises(InputError, match="contains '/'"):
        jobs.start(StyleRequest("ink/wash", pairs), config)
    with pytest.raises(InputError, match="trigger .* several lines"):
        jobs.start(StyleRequest("Fine", pairs, trigger="two\nlines"), config)
    (pairs / "after" / "p1.png").unlink()
    with pytest.raises(InputError, match="p1.png has no after/ match"):
        jobs.start(StyleRequest("Fine", pairs), config)
    with pytest.raises(InputError, match="no interrupted run"):
        jobs.resume("fine")
    assert jobs.state().status == "idle" and not (library.root / "checkpoints" / "fine").exists()


def test_runs_started_outside_the_studio_are_listed_but_resumed_there(library, tmp_path: Path) -> None:
    folder = library.root / "checkpoints" / "cli-style"
    folder.mkdir(parents=True)
    (folder / "resume.json").write_text('{"expert_key": "abc", "settings": {"training": {"steps": 300}, "pairs": 5}}')
    jobs = TrainingJobs(library, "tiny", load_model=tiny_loader)
    [run] = jobs.resumable()
    assert run.name is None and not run.saved_request and "started outside the studio" in run.label()
    with pytest.raises(InputError, match="python -m engine train"):
        jobs.resume(run.key)
    jobs.discard(run.key)
    assert not folder.exists()


def test_a_style_and_a_subject_never_train_at_once(library, tmp_path: Path) -> None:
    """The studio wires the two runners to each other: while a subject trains (here still loading
    its model) a style is refused with a message naming the subject, and the other way round."""
    from engine.services.subject_jobs import SubjectJobs
    from engine.training.subject.config import preset
    from tests.training.subject_fixtures import write_photos

    loading, release = threading.Event(), threading.Event()

    def slow_loader(spec: str):
        loading.set()
        release.wait(WAIT_S)
        return base_backbone()

    styles = TrainingJobs(library, "tiny", load_model=slow_loader, busy=lambda: subjects.training_name())
    subjects = SubjectJobs(library, "tiny", load_model=slow_loader, busy=styles.training_name)
    photos = sorted(write_photos(tmp_path / "subject").iterdir())
    assert styles.training_name() == subjects.training_name() == ""
    subjects.start("my cat", photos, preset("tiny", steps=1))
    assert loading.wait(WAIT_S) and subjects.training_name() == "my cat"
    pairs = write_pairs(tmp_path / "pairs", count=2)
    with pytest.raises(InputError, match="the subject 'my cat' is training now"):
        styles.start(StyleRequest("Ink", pairs), StyleTrainingConfig(steps=1, **QUICK))
    subjects.cancel()
    release.set()
    assert subjects.wait(WAIT_S).status in ("cancelled", "finished")
    assert subjects.training_name() == ""
    loading.clear()
    release.clear()
    styles.start(StyleRequest("Ink", pairs), StyleTrainingConfig(steps=1, **QUICK))
    assert loading.wait(WAIT_S)
    with pytest.raises(InputError, match="the style 'Ink' is training now"):
        subjects.check("my dog")
    release.set()
    assert styles.wait(WAIT_S).status == "finished"
