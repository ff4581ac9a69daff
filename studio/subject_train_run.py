"""The handlers of the Fuse page's *Train a subject* section: check the uploaded photos, start a
subject, poll it, cancel it.

Training runs in :class:`engine.services.subject_jobs.SubjectJobs`' own thread, so no event waits
for it: *Train* starts the job and returns, and a ``gr.Timer`` polls the runner while a job is
active. Every poll returns the outputs of :data:`VIEW` (built by :func:`show_state`), then the
Fuse page's subject dropdown and the library signal; ``seen`` remembers what the page shows, so
unchanged plots and previews are skipped and the end of a job is announced once. The progress bar
and the loss plot are the Train page's (:mod:`studio.train_run`).
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any, Sequence

import gradio as gr

from engine.core.errors import AtelierError, InputError
from engine.core.imaging import load_photo
from engine.services.jobs import LOADING, PUBLISHING, JobState
from engine.services.subject_jobs import SubjectJobs
from engine.training.subject import MAX_PHOTOS, MIN_PHOTOS, SubjectTrainingConfig
from engine.training.subject.photos import check_suffix
from studio import fuse_run
from studio.context import StudioContext
from studio.messages import error_markdown, page_error
from studio.train_run import duration, job_view, progress_html

VIEW = ("seen", "status", "progress", "loss", "preview", "timer")
IDLE = (f"Upload {MIN_PHOTOS} to {MAX_PHOTOS} photos of one subject, name it and press **Train**. "
        "Edits and fusions stay usable while it trains.")
DEFAULT_STEPS = SubjectTrainingConfig.__dataclass_fields__["steps"].default


def paths_of(files: Sequence[Any] | None) -> list[str]:
    """The uploaded files' paths (a ``gr.File`` with ``type='filepath'`` gives strings)."""
    return [str(getattr(item, "name", item)) for item in (files or [])]


def check_uploads(files: Sequence[Any] | None) -> str:
    """A line on the uploaded photos: how many are ready, or what is wrong, naming the file."""
    paths = [Path(path) for path in paths_of(files)]
    if not paths:
        return ""
    try:
        for path in paths:
            check_suffix(path)
            load_photo(path)  # an InputError naming the file when it cannot be decoded
    except AtelierError as error:
        return error_markdown(error, "Cannot use this photo")
    if len(paths) < MIN_PHOTOS:
        return f"{len(paths)} photo(s); a subject needs at least {MIN_PHOTOS}."
    if len(paths) > MAX_PHOTOS:
        return error_markdown(InputError(f"{len(paths)} photos; a subject takes at most {MAX_PHOTOS}: keep the best {MAX_PHOTOS}"),
                              "Too many photos")
    return f"{len(paths)} photos ready."


def config_from(steps: float | None) -> SubjectTrainingConfig:
    if steps is None:
        raise InputError(f"Steps is empty; enter a number (the default is {DEFAULT_STEPS})")
    if float(steps) != int(steps):
        raise InputError(f"Steps must be a whole number, not {steps:g}")
    return SubjectTrainingConfig(steps=int(steps))


def start_subject(jobs: SubjectJobs, files: Sequence[Any] | None, name: str | None, steps: float | None) -> tuple[Any, ...]:
    """Start training a subject from the uploaded photos; returns the :data:`VIEW` of the new job."""
    try:
        config = config_from(steps)
        jobs.check(name or "")
        paths = paths_of(files)
        if not paths:
            raise InputError(f"upload {MIN_PHOTOS} to {MAX_PHOTOS} photos of the subject first")
        state = jobs.start(name or "", paths, config)
    except AtelierError as error:
        raise page_error(error, "Cannot train the subject") from error
    return show_state(state, {}, fresh=True)


def cancel_subject(jobs: SubjectJobs) -> Any:
    """Ask the running job to stop; returns the status (the poll shows the rest)."""
    try:
        state = jobs.cancel()
    except InputError as error:
        gr.Info(html.escape(str(error)))
        return gr.skip()
    return status_text(state)


def poll_subject(context: StudioContext, jobs: SubjectJobs, seen: dict | None, version: float | None) -> tuple[Any, ...]:
    """The :data:`VIEW` of the current job, then the subject dropdown and the library signal: once
    a subject is published the dropdown lists it, picked, and the signal is bumped."""
    seen = seen or {}
    state = jobs.state()
    newly_finished = state.status == "finished" and not (seen.get("job") == state.job and seen.get("ended"))
    if newly_finished:
        subjects = fuse_run.choices(context, fuse_run.SUBJECT_KINDS)
        picked = gr.update(choices=subjects, value=state.name) if state.name in subjects else gr.update(choices=subjects)
        return (*show_state(state, seen), picked, float(version or 0) + 1)
    return (*show_state(state, seen), gr.skip(), gr.skip())


def attach(jobs: SubjectJobs) -> tuple[Any, ...]:
    """The :data:`VIEW` for a page that just loaded: a job running now is shown (and polled);
    an ended one is not announced again."""
    state = jobs.state()
    if state.ended or state.status == "idle":
        seen = {"job": state.job, "ended": True, "preview_step": state.preview_step, "losses": len(state.losses)}
        return seen, IDLE, "", None, gr.update(value=None, label="Preview"), gr.Timer(active=False)
    return show_state(state, {}, fresh=True, announce=False)


def show_state(state: JobState, seen: dict, fresh: bool = False, announce: bool = True) -> tuple[Any, ...]:
    """Updates for :data:`VIEW`; parts the page already shows (per ``seen``) are skipped."""
    view = job_view(state, seen, fresh, preview_label)
    if announce and view.just_ended and state.status == "failed":
        gr.Warning(html.escape(f"Training the subject {state.name!r} failed: {state.error}"), title="Training failed")
    return view.seen, status_text(state), progress_html(state), view.loss, view.preview, gr.Timer(active=state.active)


def preview_label(state: JobState) -> str:
    when = f" at step {state.preview_step}" if state.preview_step else ""
    return f"Preview{when}: a training photo · a sample with the subject"


def status_text(state: JobState) -> str:
    """One line on the job: what it is doing, or how it ended and what to do next."""
    name = f"**{html.escape(state.name)}**"
    if state.status == "idle":
        return IDLE
    if state.status == "cancelling":
        return f"Cancelling {name} at the end of this step…"
    if state.status == "running":
        if state.phase == LOADING:
            return f"Training {name} from {state.pairs} photos: loading a copy of the model…"
        if state.phase == PUBLISHING:
            return f"Training {name}: measuring it and adding it to the library…"
        loss = f" · loss {state.losses[-1][1]:.4f}" if state.losses else ""
        return f"Training {name} from {state.pairs} photos: step {state.step} of {state.total}{loss}."
    if state.status == "finished":
        late = " (Cancel came after the last step, when the subject was already being added.)" if state.cancel_too_late else ""
        return f"{name} is in your library, trained in {duration(state.seconds)}, and picked as the subject above.{late}"
    where = f"at step {state.step} of {state.total}" if state.step else "before the first step"
    if state.status == "cancelled":
        return f"Cancelled {name} {where}; the library is unchanged."
    return f"Training {name} failed {where}: {html.escape(state.error)}\n\nThe library is unchanged."
