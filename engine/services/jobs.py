"""Training one style at a time in a background thread, with a state anyone may poll.

The studio's Train page (and anything else that wants training off the calling thread) starts a
job with :meth:`TrainingJobs.start`, polls :meth:`TrainingJobs.state` for the step, ETA, loss
history, latest preview and outcome, and stops it with :meth:`TrainingJobs.cancel`.

* One job at a time: a second start while one runs is refused with an :class:`InputError`.
* Each job loads its own copy of the model (``load_model(model_spec)``): adapters wrap the
  backbone's layers while training, so the copy the studio edits with is never touched. The
  copy is dropped when the job ends, so an idle studio holds one model, not two.
* Cancel sets a flag :func:`train_style` polls each step; the library stays as it was. A run
  that stopped after a checkpoint stays in its run folder, to resume or discard; one with
  nothing to resume from is removed, so the name can be trained again at once.
* A failure ends the job as ``failed`` with its message in the state; nothing is lost in the thread.
* Runs keep their request and pairs in their run folder (:mod:`engine.training.resumable`), so an
  interrupted run can be listed and resumed, here or after a restart.

Every public method may be called from any thread.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from PIL import Image

from engine.core.errors import AtelierError, InputError
from engine.library import StyleLibrary, StyleRecord, slug, validate_style_name
from engine.library.records import MAX_DESCRIPTION_LENGTH, MAX_TRIGGER_LENGTH, check_text
from engine.library.runs import process_alive
from engine.models.backbones.base import Backbone
from engine.models.backbones.registry import load_backbone
from engine.training.add_style import HOLDOUT_FROM, StyleRequest, train_style
from engine.training.checkpoint import RECORD_FILE
from engine.training.loop import TrainingProgress
from engine.training.pairs import Pair, read_pairs
from engine.training.resumable import (
    CHECKPOINTS,
    RESUME_FILE,
    ResumableRun,
    discard_run,
    list_resumable,
    load_request,
    read_run,
    run_folder,
    save_request,
)
from engine.training.style_trainer import StyleTrainingConfig

LOGGER = logging.getLogger(__name__)
ACTIVE = ("running", "cancelling")
ENDED = ("finished", "cancelled", "failed")
# StyleLibrary.check_name_free's wording for a taken name, for a new run and for a waiting one.
TAKEN = "a style named {taken!r} is already in the library; pick another name or delete that style first"
TAKEN_BY_WAITING_RUN = "a style named {taken!r} is already in the library; discard the run of {name!r}"
LOADING, TRAINING, PUBLISHING = "loading the model", "training", "measuring and publishing"


@dataclass(frozen=True)
class JobState:
    """A snapshot of the runner: the current job, or the last one once it ended.

    ``status`` is ``idle`` (no job yet), ``running``, ``cancelling``, ``finished``, ``cancelled``
    or ``failed``. ``losses`` are ``(step, loss)`` from this run's first step; a resumed run
    starts at ``first_step``. ``preview`` is the latest sample (before | current | target) on
    ``preview_pair``, made at ``preview_step``.
    """

    job: int = 0  # numbers the jobs of this runner from 1; 0 before the first
    status: str = "idle"
    name: str = ""
    key: str = ""  # the run folder's name
    phase: str = ""
    step: int = 0
    total: int = 0
    first_step: int = 0
    seconds_left: float | None = None
    seconds: float = 0.0  # since the job started, or its whole length once it ended
    ended_at: float | None = None  # when the job ended (time.time()), for a page that opens later
    losses: tuple[tuple[int, float], ...] = ()
    preview: Image.Image | None = None
    preview_step: int | None = None
    preview_pair: str = ""
    held_out: bool = False  # whether preview_pair is held out of training
    pairs: int = 0
    error: str = ""
    cancel_too_late: bool = False  # Cancel came after the last step, when the style was already being published
    record: StyleRecord | None = None

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    @property
    def ended(self) -> bool:
        return self.status in ENDED


class JobProgress:
    """What both training runners (styles here, subjects in :mod:`engine.services.subject_jobs`)
    do with a run's progress: keep the loss curve and move :class:`JobState` forward, only for
    the job still current. Needs ``_state_lock``, ``_state`` and ``_losses``."""

    def training_name(self) -> str:
        """The name being trained now, or ``""``: what another runner's ``busy`` asks, so that a
        style and a subject never train at the same time on the same two cores."""
        with self._state_lock:
            return self._state.name if self._state.active else ""

    def _progress(self, job: int, progress: TrainingProgress) -> None:
        with self._state_lock:
            if self._state.job != job:
                return
            self._losses.append((progress.step, float(progress.loss)))
            changes = {"step": progress.step, "total": progress.total, "seconds_left": progress.seconds_left,
                       "phase": PUBLISHING if progress.step >= progress.total else TRAINING}
            if progress.preview is not None:
                changes.update(preview=progress.preview, preview_step=progress.step)
            self._state = replace(self._state, **changes)

    def _update(self, job: int, **changes) -> None:
        with self._state_lock:
            if self._state.job == job and self._state.active:
                self._state = replace(self._state, **changes)


class TrainingJobs(JobProgress):
    """The training runner of one library. ``load_model`` loads a model copy from a spec (tests
    pass a tiny model's loader); ``busy`` returns the name of another training in progress (a
    subject, :class:`engine.services.subject_jobs.SubjectJobs`), or ``""``."""

    def __init__(self, library: StyleLibrary, model_spec: str, load_model: Callable[[str], Backbone] = load_backbone,
                 busy: Callable[[], str] | None = None) -> None:
        self._library = library
        self._model_spec = model_spec
        self._load_model = load_model
        self._busy = busy or (lambda: "")
        self._state = JobState()
        self._losses: list[tuple[int, float]] = []  # the current job's, copied into each snapshot
        self._started = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._state_lock = threading.Lock()  # guards _state, _losses and _started; held briefly
        self._start_lock = threading.Lock()  # one start/resume/discard at a time, so two clicks cannot both start

    # Reading ----------------------------------------------------------------------------------

    def state(self) -> JobState:
        """The current job's state (a snapshot: later progress does not change it)."""
        with self._state_lock:
            state = replace(self._state, losses=tuple(self._losses))
            if state.active:
                state = replace(state, seconds=time.monotonic() - self._started)
            return state

    def wait(self, timeout: float | None = None) -> JobState:
        """Block until the current job ends (or ``timeout`` seconds pass); returns its state."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return self.state()

    def resumable(self) -> list[ResumableRun]:
        """Interrupted runs of this library, leaving out the one training here and any that
        another live process is training."""
        current = self.state()
        busy = self._keys_trained_elsewhere()
        return [run for run in list_resumable(self._library.root)
                if not (current.active and run.key == current.key) and run.key not in busy]

    # Starting and stopping ------------------------------------------------------------------

    def start(self, request: StyleRequest, config: StyleTrainingConfig) -> JobState:
        """Check ``request`` (name, text, pairs), save it with its pairs in its run folder and
        start training it in the background; returns the new job's state.

        Raises:
            InputError: while another job runs, for a bad or taken name, for pairs
                :func:`read_pairs` refuses, or when an interrupted run of the name is waiting
                (resume or discard it first).
        """
        with self._start_lock:
            self.check(request.name, request.description, request.trigger)
            folder = run_folder(self._library.root, request.name)
            if folder.exists():
                shutil.rmtree(folder)  # a start that never began training: nothing in it to resume
            try:
                pairs = read_pairs(save_request(folder, request.name, request.description, request.trigger, request.pairs, config))
            except BaseException:
                shutil.rmtree(folder, ignore_errors=True)
                raise
            return self._launch(StyleRequest(request.name, pairs, request.description, request.trigger), config, folder.name, 0)

    def check(self, name: str, description: str = "", trigger: str = "") -> None:
        """Refuse, as :meth:`start` would, a new style that cannot start now (before its pairs are
        copied): while another job runs, for a bad or taken name or text, or when an
        interrupted run of the name is waiting (resume or discard it first)."""
        self._refuse_while_busy()
        validate_style_name(name)
        check_text(description, "description", name, MAX_DESCRIPTION_LENGTH)
        check_text(trigger, "trigger", name, MAX_TRIGGER_LENGTH, one_line=True)
        self._library.check_name_free(name, TAKEN)
        folder = run_folder(self._library.root, name)
        waiting = read_run(folder)
        if waiting is not None:
            if folder.name in self._keys_trained_elsewhere():
                raise InputError(f"another Atelier process is training a style into {folder}; wait for it to finish")
            raise InputError(f"an interrupted run ({waiting.label()}) is waiting in {folder}; "
                             f"resume it, or discard it to train {name!r} from the start")

    def resume(self, key: str) -> JobState:
        """Resume the interrupted run ``key`` (a :attr:`ResumableRun.key`) from its checkpoint.

        Raises:
            InputError: while another job runs, for an unknown run, for a run started outside
                the studio, or when its name has since been taken in the library.
        """
        with self._start_lock:
            self._refuse_while_busy()
            run = next((item for item in self.resumable() if item.key == key), None)
            if run is None:
                raise InputError(f"there is no interrupted run {key!r} any more; refresh the list of runs")
            saved = load_request(run)
            self._library.check_name_free(saved.name, TAKEN_BY_WAITING_RUN)
            pairs = read_pairs(saved.pairs_folder)
            request = StyleRequest(saved.name, pairs, saved.description, saved.trigger)
            return self._launch(request, saved.config, run.key, run.step)

    def cancel(self) -> JobState:
        """Ask the running job to stop at its next step; the library is left as it was.

        Raises:
            InputError: when no job is running.
        """
        with self._state_lock:
            if not self._state.active:
                raise InputError("no style is training; there is nothing to cancel")
            self._stop.set()
            self._state = replace(self._state, status="cancelling")
        return self.state()

    def discard(self, key: str) -> None:
        """Delete the interrupted run ``key`` (its checkpoint and saved pairs).

        Raises:
            InputError: for an unknown run, or one being trained here or by another process.
        """
        with self._start_lock:
            current = self.state()
            if current.active and current.key == key:
                raise InputError(f"{current.name!r} is training from that run now; cancel it first")
            run = next((item for item in self.resumable() if item.key == key), None)
            if run is None:
                raise InputError(f"there is no interrupted run {key!r} any more; refresh the list of runs")
            discard_run(run)

    # The job's thread -------------------------------------------------------------------------

    def _launch(self, request: StyleRequest, config: StyleTrainingConfig, key: str, first_step: int) -> JobState:
        pairs: list[Pair] = request.pairs  # type: ignore[assignment] - start and resume pass loaded pairs
        held_out = len(pairs) >= HOLDOUT_FROM
        preview_pair = pairs[-1].name if held_out else pairs[0].name  # as train_style picks it
        stop = threading.Event()  # a fresh flag, so a late Cancel of the last job cannot stop this one
        with self._state_lock:
            job = self._state.job + 1
            self._stop = stop
            self._losses = []
            self._started = time.monotonic()
            self._state = JobState(job=job, status="running", name=request.name, key=key, phase=LOADING, step=first_step,
                                   total=config.steps, first_step=first_step, preview_pair=preview_pair, held_out=held_out,
                                   pairs=len(pairs))
        self._thread = threading.Thread(target=self._run, args=(job, request, config, stop), name=f"atelier-train-{job}", daemon=True)
        self._thread.start()
        return self.state()

    def _run(self, job: int, request: StyleRequest, config: StyleTrainingConfig, stop: threading.Event) -> None:
        try:
            backbone = self._load_model(self._model_spec)
            if stop.is_set():
                self._end(job, "cancelled")
                return
            self._update(job, phase=TRAINING)
            record = train_style(self._library, backbone, request, config, callback=lambda progress: self._progress(job, progress),
                                 should_stop=stop.is_set, resume=True)
        except AtelierError as error:
            self._end(job, "failed", error=str(error))
        except Exception as error:  # reported in the state, where the page shows it; the traceback goes to the log
            LOGGER.exception("training %r failed", request.name)
            self._end(job, "failed", error=f"training stopped by an unexpected error ({type(error).__name__}: {error}); "
                                           "the terminal running Atelier shows the details")
        else:
            if record is None:
                self._end(job, "cancelled")
            else:
                self._end(job, "finished", record=record, cancel_too_late=stop.is_set())
        finally:
            # Reached with the job still active only when something like SystemExit ended the thread.
            self._end(job, "failed", error="training ended without a result; the terminal running Atelier shows why", only_if_active=True)

    def _end(self, job: int, status: str, only_if_active: bool = False, **changes) -> None:
        with self._state_lock:
            if self._state.job != job or (only_if_active and not self._state.active):
                return
            key = self._state.key
        # Tidied while the job still counts as running, so no start of the same name can begin
        # writing into the folder meanwhile.
        folder = self._library.root / CHECKPOINTS / key
        if status != "finished" and folder.is_dir() and _nothing_to_resume(folder):
            shutil.rmtree(folder, ignore_errors=True)
        with self._state_lock:
            self._state = replace(self._state, status=status, phase="", seconds=time.monotonic() - self._started,
                                  ended_at=time.time(), **changes)

    # Checks -----------------------------------------------------------------------------------

    def _refuse_while_busy(self) -> None:
        current = self.state()
        if current.active:
            where = LOADING if current.phase == LOADING else f"step {current.step} of {current.total}"
            if current.phase == TRAINING and current.step == current.first_step:
                where = "at its first step"
            raise InputError(f"{current.name!r} is training now ({where}); wait for it to finish or cancel it before starting another")
        other = self._busy()
        if other:
            raise InputError(f"the subject {other!r} is training now; wait for it to finish (Fuse tab) before training a style")

    def _keys_trained_elsewhere(self) -> set[str]:
        """Run folders another live process is training into (a run it began and has not ended)."""
        keys = set()
        for run in self._library.list_runs(limit=50):
            if run.status == "running" and run.pid != os.getpid() and process_alive(run.pid, None):
                keys.update(slug(name) for name in run.style_names)
        return keys


def _nothing_to_resume(folder: Path) -> bool:
    """Whether the folder of a run that did not finish holds nothing to resume from.

    Without ``resume.json`` the job ended before train_style began the run; without a checkpoint
    a resumed run would start again from the first step, as a new Train does (and the page still
    holds the uploads). Such a folder would only block the next Train of the name, so it goes.
    """
    return not (folder / RESUME_FILE).exists() or not (folder / RECORD_FILE).exists()
