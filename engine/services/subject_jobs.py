"""Training one subject at a time in a background thread, with a state anyone may poll: the
subject counterpart of :class:`engine.services.jobs.TrainingJobs`, behind the studio's
*Train a subject* section on the Fuse page.

* :meth:`SubjectJobs.start` checks the name and the photos (3 to 10, each a readable photo,
  named in the message when it is not) before anything loads, copies the photos into a folder of
  the job's own (an upload may be tidied away while the job runs) and starts training; it returns
  at once. :meth:`SubjectJobs.state` is a :class:`~engine.services.jobs.JobState` snapshot, the
  same one style jobs give (step, ETA, losses, the latest preview: a photo | the current sample),
  with ``pairs`` counting the photos.
* One job at a time, and none while ``busy()`` names something else training (the studio passes
  its style runner), so two trainings never share the two cores.
* Each job loads its own copy of the model: the subject LoRA wraps the backbone's layers while
  training, so the model the studio edits with is never touched.
* Cancel sets a flag the training loop polls each step; the library stays as it was, and the run's
  checkpoint folder is removed (the studio starts a subject over rather than resuming it).
* A failure ends the job as ``failed`` with its message in the state.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable, Sequence

from engine.core.errors import AtelierError, InputError
from engine.library import StyleLibrary, validate_style_name
from engine.library.records import MAX_DESCRIPTION_LENGTH, MAX_TRIGGER_LENGTH, check_text
from engine.models.backbones.base import Backbone
from engine.models.backbones.registry import load_backbone
from engine.services.jobs import LOADING, TRAINING, JobProgress, JobState
from engine.training.loop import TrainingProgress
from engine.training.subject import SubjectRequest, SubjectTrainingConfig, train_subject
from engine.training.subject.add_subject import subject_run_folder
from engine.training.subject.photos import read_photo_files

LOGGER = logging.getLogger(__name__)
TAKEN = "the library already has a style or subject named {taken!r}; pick another name or delete it first"


class SubjectJobs(JobProgress):
    """The subject-training runner of one library. ``load_model`` loads a model copy from a spec
    (tests pass a tiny model's loader); ``busy`` returns the name of another training in progress
    (a style), or ``""``."""

    def __init__(self, library: StyleLibrary, model_spec: str, load_model: Callable[[str], Backbone] = load_backbone,
                 busy: Callable[[], str] | None = None) -> None:
        self._library = library
        self._model_spec = model_spec
        self._load_model = load_model
        self._busy = busy or (lambda: "")
        self._state = JobState()
        self._losses: list[tuple[int, float]] = []
        self._started = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._state_lock = threading.Lock()
        self._start_lock = threading.Lock()

    def state(self) -> JobState:
        """The current job's state (a snapshot)."""
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

    def check(self, name: str, description: str = "", trigger: str = "") -> None:
        """Refuse, as :meth:`start` would, a subject that cannot start now: while a training runs,
        for a bad or taken name, or for text that is too long."""
        current = self.state()
        if current.active:
            raise InputError(f"{current.name!r} is training now (step {current.step} of {current.total}); "
                             "wait for it to finish or cancel it before starting another")
        other = self._busy()
        if other:
            raise InputError(f"the style {other!r} is training now; wait for it to finish (Train tab) before training a subject")
        validate_style_name(name)
        check_text(description, "description", name, MAX_DESCRIPTION_LENGTH)
        check_text(trigger, "trigger", name, MAX_TRIGGER_LENGTH, one_line=True)
        self._library.check_name_free(name, TAKEN)

    def start(self, name: str, photos: Sequence[str | Path], config: SubjectTrainingConfig, description: str = "",
              trigger: str = "") -> JobState:
        """Check everything, copy the photos and start training subject ``name``; returns the new
        job's state.

        Raises:
            InputError: while a training runs, for a bad or taken name, or for photos
                :func:`~engine.training.subject.photos.read_photo_files` refuses (naming the file).
        """
        with self._start_lock:
            self.check(name, description, trigger)
            checked = read_photo_files(list(photos), "the uploaded photos")
            folder = Path(tempfile.mkdtemp(prefix="atelier-subject-photos-"))
            try:
                copies = []
                for index, photo in enumerate(checked):
                    copy = folder / f"{index:02d}-{photo.path.name}"
                    shutil.copyfile(photo.path, copy)
                    copies.append(copy)
            except OSError as error:
                shutil.rmtree(folder, ignore_errors=True)
                raise InputError(f"cannot copy the photos ({error.strerror or error}); upload them again") from error
            stop = threading.Event()
            with self._state_lock:
                job = self._state.job + 1
                self._stop = stop
                self._losses = []
                self._started = time.monotonic()
                self._state = JobState(job=job, status="running", name=name, phase=LOADING, total=config.steps,
                                       preview_pair=checked[0].path.name, pairs=len(checked))
            request = SubjectRequest(name, copies, description, trigger)
            self._thread = threading.Thread(target=self._run, args=(job, request, config, stop, folder),
                                            name=f"atelier-subject-{job}", daemon=True)
            self._thread.start()
            return self.state()

    def cancel(self) -> JobState:
        """Ask the running job to stop at its next step; the library is left as it was.

        Raises:
            InputError: when no subject is training.
        """
        with self._state_lock:
            if not self._state.active:
                raise InputError("no subject is training; there is nothing to cancel")
            self._stop.set()
            self._state = replace(self._state, status="cancelling")
        return self.state()

    def _run(self, job: int, request: SubjectRequest, config: SubjectTrainingConfig, stop: threading.Event, folder: Path) -> None:
        try:
            backbone = self._load_model(self._model_spec)
            if stop.is_set():
                self._end(job, "cancelled", request.name)
                return
            self._update(job, phase=TRAINING)
            record = train_subject(self._library, backbone, request, config, callback=lambda progress: self._progress(job, progress),
                                   should_stop=stop.is_set, resume=False)
        except AtelierError as error:
            self._end(job, "failed", request.name, error=str(error))
        except Exception as error:  # reported in the state, where the page shows it; the traceback goes to the log
            LOGGER.exception("training subject %r failed", request.name)
            self._end(job, "failed", request.name, error=f"training stopped by an unexpected error ({type(error).__name__}: {error}); "
                                                         "the terminal running Atelier shows the details")
        else:
            if record is None:
                self._end(job, "cancelled", request.name)
            else:
                self._end(job, "finished", request.name, record=record, cancel_too_late=stop.is_set())
        finally:
            shutil.rmtree(folder, ignore_errors=True)
            self._end(job, "failed", request.name, error="training ended without a result; the terminal running Atelier shows why",
                      only_if_active=True)

    def _end(self, job: int, status: str, name: str, only_if_active: bool = False, **changes) -> None:
        with self._state_lock:
            if self._state.job != job or (only_if_active and not self._state.active):
                return
        if status != "finished":  # the studio starts a subject over, so a stopped run's checkpoint would only linger
            shutil.rmtree(subject_run_folder(self._library.root, name), ignore_errors=True)
        with self._state_lock:
            self._state = replace(self._state, status=status, phase="", seconds=time.monotonic() - self._started,
                                  ended_at=time.time(), **changes)
