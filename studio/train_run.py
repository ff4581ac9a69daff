"""The Train page's handlers: check and start a run, poll it, cancel, resume or discard one.

Training runs in :class:`engine.services.jobs.TrainingJobs`' own thread, so no event waits for it:
*Train* starts the job and returns, and a ``gr.Timer`` polls the runner while a job is active.
Every poll returns the same outputs, in the order of :data:`VIEW`, built by :func:`show_state`;
``seen`` (a per-page ``gr.State``) remembers what the page already shows, so unchanged images
and plots are skipped and the end of a job is announced (and the library signal bumped) once.
"""

from __future__ import annotations

import dataclasses
import html
import shutil
import time
import uuid
from pathlib import Path
from typing import Any, Callable

import gradio as gr
import pandas as pd

from engine.core.errors import AtelierError, InputError
from engine.library import StyleRecord
from engine.services.jobs import LOADING, PUBLISHING, JobState, TrainingJobs
from engine.training.add_style import StyleRequest
from engine.training.pair_uploads import check_ready, write_pairs_folder
from engine.training.resumable import ResumableRun
from engine.training.style_trainer import StyleTrainingConfig
from studio.messages import page_error
from studio.train_uploads import PairUploads

# The outputs every poll returns, in order (the poll adds the library signal after them).
VIEW = ("seen", "status", "progress", "loss", "preview", "metrics", "timer", "resumable", "interrupted")
ADVANCED = tuple(field.name for field in dataclasses.fields(StyleTrainingConfig) if field.name != "steps")
AVERAGE_OVER = 10  # steps in the loss plot's running average
MAX_PLOTTED = 1000  # loss points sent to the page; longer runs are thinned evenly
TRACK_STYLE = "height:12px;border-radius:6px;overflow:hidden;background:var(--neutral-200);"
FILL_STYLE = "height:100%;background:var(--color-accent);transition:width 0.4s;"
TEXT_STYLE = "margin-top:4px;font-size:var(--text-sm);color:var(--body-text-color-subdued);"
IDLE = "Upload before/after pairs, name the style, then press **Train**. The Edit tab stays usable while a style trains."


# Plain names for the settings whose field names are jargon; the field name stays in brackets so
# the CLI's flag (``--timestep-shift``) can be found from the page.
LABELS = {
    "loss_weighting": "What the error measures (loss weighting)",
    "timestep_sampling": "Which noise levels to practise on (timestep sampling)",
    "timestep_shift": "Train more on noisy steps (timestep shift)",
    "adversarial_weight": "Strength of the realism critic (adversarial weight)",
    "adversarial_start": "Step the realism critic joins (adversarial start)",
    "discriminator_learning_rate": "Learning rate of the realism critic (discriminator)",
    "training_scale": "Scale the pairs are learned at (training scale)",
    "crop_margin": "Crop margin (enlarge before cropping)",
    "checkpoint_every": "Save a checkpoint every … steps",
    "sample_every": "Show a preview at most every … steps",
    "warmup_steps": "Warm-up steps",
}


def label_of(name: str) -> str:
    """How the page names a setting: ``batch_size`` -> ``Batch size``, or its plain name in :data:`LABELS`."""
    return LABELS.get(name) or name.replace("_", " ").capitalize()


def default_of(name: str) -> Any:
    return next(field.default for field in dataclasses.fields(StyleTrainingConfig) if field.name == name)


def config_from(steps: float | None, *advanced: float | str | None) -> StyleTrainingConfig:
    """Training settings from the widget values, in :data:`ADVANCED` order after ``steps``
    (numbers, or the chosen option of a choice such as ``loss_weighting``, which the config checks)."""
    values = {}
    for name, value in zip(("steps",) + ADVANCED, (steps,) + advanced, strict=True):
        default = default_of(name)
        if isinstance(default, str):
            if not value:
                raise InputError(f"{label_of(name)} is empty; choose one (the default is {default})")
            values[name] = str(value)
            continue
        if value is None:
            raise InputError(f"{label_of(name)} is empty; enter a number (the default is {default:g})")
        if isinstance(default, int) and float(value) != int(value):
            raise InputError(f"{label_of(name)} must be a whole number, not {value:g}")
        values[name] = int(value) if isinstance(default, int) else float(value)
    return StyleTrainingConfig(**values)


def check_training(jobs: TrainingJobs, uploads: PairUploads | None, name: str, description: str, trigger: str,
                   steps: float | None, *advanced: float | None) -> str:
    """Refuse at once what training would refuse; returns a 'starting' status."""
    try:
        jobs.check(name or "", description or "", trigger or "")
        check_ready((uploads or PairUploads()).shown())
        config_from(steps, *advanced)
    except AtelierError as error:
        raise page_error(error, "Cannot train yet") from error
    return "Starting…"


def start_training(jobs: TrainingJobs, work_folder: Path, uploads: PairUploads | None, name: str, description: str,
                   trigger: str, steps: float | None, *advanced: float | None) -> tuple[Any, ...]:
    """Start training the uploaded pairs; returns the :data:`VIEW` of the new job."""
    folder = Path(work_folder) / "train-pairs" / uuid.uuid4().hex
    try:
        config = config_from(steps, *advanced)
        write_pairs_folder((uploads or PairUploads()).shown(), folder)
        state = jobs.start(StyleRequest(name or "", folder, description or "", trigger or ""), config)
    except AtelierError as error:
        raise page_error(error, "Cannot train") from error
    finally:
        shutil.rmtree(folder, ignore_errors=True)  # the runner keeps its own copy in the run folder
    return show_state(jobs, state, {}, fresh=True)


def check_resume(jobs: TrainingJobs, key: str | None) -> str:
    """Refuse a resume that cannot start; returns a 'starting' status."""
    if not key:
        raise gr.Error("Pick an interrupted run in the list first.", title="No run picked")
    current = jobs.state()
    if current.active:
        raise page_error(InputError(f"{current.name!r} is training now; wait for it to finish or cancel it first"), "Cannot resume yet")
    return "Resuming…"


def resume_training(jobs: TrainingJobs, key: str | None) -> tuple[Any, ...]:
    """Resume the picked run; returns the :data:`VIEW` of the new job."""
    try:
        state = jobs.resume(key or "")
    except AtelierError as error:
        raise page_error(error, "Cannot resume") from error
    return show_state(jobs, state, {}, fresh=True)


def discard_training(jobs: TrainingJobs, key: str | None) -> tuple[Any, Any]:
    """Delete the picked interrupted run; returns the refreshed list of runs and its box."""
    if not key:
        raise gr.Error("Pick an interrupted run in the list first.", title="No run picked")
    try:
        jobs.discard(key)
    except AtelierError as error:
        raise page_error(error, "Cannot discard") from error
    gr.Info("Discarded the interrupted run.")
    return resumable_update(jobs.resumable())


def cancel_training(jobs: TrainingJobs) -> Any:
    """Ask the running job to stop; returns the status (the poll shows the rest)."""
    try:
        state = jobs.cancel()
    except InputError as error:
        gr.Info(html.escape(str(error)))
        return gr.skip()
    return status_text(state)


def poll_training(jobs: TrainingJobs, seen: dict | None, version: float | None) -> tuple[Any, ...]:
    """The :data:`VIEW` of the current job, then the library signal, bumped once when a job publishes."""
    seen = seen or {}
    state = jobs.state()
    newly_finished = state.status == "finished" and not (seen.get("job") == state.job and seen.get("ended"))
    return (*show_state(jobs, state, seen), float(version or 0) + 1 if newly_finished else gr.skip())


def attach(jobs: TrainingJobs) -> tuple[Any, ...]:
    """The :data:`VIEW` for a page that just loaded: the job running now (polled from here on);
    or, when the last job has ended, an empty page whose status names that run as an earlier one
    (its outcome was announced already, in the page that watched it)."""
    state = jobs.state()
    if not state.ended:
        return show_state(jobs, state, {}, fresh=True, announce=False)
    runs = jobs.resumable()
    can_resume = state.key in {run.key for run in runs}
    seen = {"job": state.job, "ended": True, "preview_step": state.preview_step, "losses": len(state.losses)}
    return (seen, earlier_run_text(state, can_resume), "", None, gr.update(value=None, label="Preview"),
            gr.update(value="", visible=False), gr.Timer(active=False), *resumable_update(runs))


def earlier_run_text(state: JobState, can_resume: bool = False) -> str:
    """The status of a page opened after the last run ended: what to do now, then that run's outcome,
    marked as earlier (``Last run (ended 12:03): ...``)."""
    when = f" (ended {time.strftime('%H:%M', time.localtime(state.ended_at))})" if state.ended_at is not None else ""
    return f"{IDLE}\n\n*Last run{when}:* {status_text(state, can_resume)}"


@dataclasses.dataclass(frozen=True)
class JobView:
    """What a page watching a training job (a style here, a subject on the Fuse page) updates on a
    poll: ``seen`` for the next poll, and the loss plot and preview, skipped where unchanged."""

    same_job: bool
    just_ended: bool
    seen: dict
    loss: Any
    preview: Any


def job_view(state: JobState, seen: dict, fresh: bool, label: Callable[[JobState], str]) -> JobView:
    """The :class:`JobView` of ``state`` for a page that last saw ``seen`` (``fresh``: a page just
    loaded, which shows everything); ``label`` names the preview."""
    same_job = not fresh and seen.get("job") == state.job
    new_seen = {"job": state.job, "ended": state.ended, "preview_step": state.preview_step, "losses": len(state.losses)}
    loss = gr.skip() if same_job and seen.get("losses") == len(state.losses) else loss_frame(state)
    if same_job and seen.get("preview_step") == state.preview_step:
        preview = gr.skip()
    else:
        preview = gr.update(value=state.preview, label=label(state))
    return JobView(same_job, state.ended and not (same_job and seen.get("ended")), new_seen, loss, preview)


def show_state(jobs: TrainingJobs, state: JobState, seen: dict, fresh: bool = False, announce: bool = True) -> tuple[Any, ...]:
    """Updates for :data:`VIEW`; parts the page already shows (per ``seen``) are skipped."""
    view = job_view(state, seen, fresh, preview_label)
    same_job, just_ended = view.same_job, view.just_ended
    if state.status == "finished" and state.record is not None:
        metrics = gr.update(value=metrics_markdown(state.record), visible=True)
    else:
        metrics = gr.update(value="", visible=False) if not same_job else gr.skip()
    runs = jobs.resumable() if just_ended or not same_job else None
    can_resume = bool(runs) and state.key in {run.key for run in runs}
    if announce and just_ended and state.status == "failed":
        gr.Warning(html.escape(f"Training {state.name!r} failed: {state.error}"), title="Training failed")
    resumable = resumable_update(runs) if runs is not None else (gr.skip(), gr.skip())
    return (view.seen, status_text(state, can_resume), progress_html(state), view.loss, view.preview, metrics,
            gr.Timer(active=state.active), *resumable)


def resumable_update(runs: list[ResumableRun]) -> tuple[Any, Any]:
    """The list of interrupted runs (first one picked) and its box, shown only when there are some."""
    choices = [(run.label(), run.key) for run in runs]
    return gr.update(choices=choices, value=choices[0][1] if choices else None), gr.update(visible=bool(choices))


def status_text(state: JobState, can_resume: bool = False) -> str:
    """One line on the job: what it is doing, or how it ended and what to do next."""
    name = f"**{html.escape(state.name)}**"
    if state.status == "idle":
        return IDLE
    if state.status == "cancelling":
        return f"Cancelling {name} at the end of this step…"
    if state.status == "running":
        if state.phase == LOADING:
            return f"Training {name}: loading a copy of the model…"
        if state.phase == PUBLISHING:
            return f"Training {name}: measuring the style on its pairs and adding it to the library…"
        loss = f" · loss {state.losses[-1][1]:.4f}" if state.losses else ""
        return f"Training {name}: step {state.step} of {state.total}{loss}."
    if state.status == "finished":
        late = " (Cancel came after the last step, when the style was already being added.)" if state.cancel_too_late else ""
        return f"{name} is in your library, trained in {duration(state.seconds)}: pick it in the Edit tab.{late}"
    where = f"at step {state.step} of {state.total}" if state.step else "before the first step"
    hint = " The run is listed under **Interrupted runs**: resume it from its last checkpoint, or discard it." if can_resume else ""
    if state.status == "cancelled":
        return f"Cancelled {name} {where}; the library is unchanged.{hint}"
    return f"Training {name} failed {where}: {html.escape(state.error)}\n\nThe library is unchanged.{hint}"


def progress_html(state: JobState) -> str:
    """A progress bar with step and time left (empty while the model loads).

    Drawn with two divs in the theme's accent colour: browsers paint ``<progress>`` in their own
    colours, whatever the page's theme."""
    if state.status == "idle":
        return ""
    total = max(state.total, 1)
    if state.active and state.phase == LOADING:
        percent, text = 0.0, "Loading the model…"
    else:
        percent = 100 * min(state.step, total) / total
        if state.active:
            left = f" · about {duration(state.seconds_left)} left" if state.seconds_left is not None and state.step < state.total else ""
            text = f"Step {state.step} of {state.total}{left} · {duration(state.seconds)} so far"
        else:
            text = f"Step {state.step} of {state.total} · {state.status} after {duration(state.seconds)}"
    return (f'<div class="train-progress-bar" role="progressbar" aria-valuemin="0" aria-valuemax="{state.total}" '
            f'aria-valuenow="{state.step}" data-status="{state.status}" data-step="{state.step}" data-total="{state.total}">'
            f'<div style="{TRACK_STYLE}"><div style="{FILL_STYLE}width:{percent:.1f}%"></div></div>'
            f'<div style="{TEXT_STYLE}">{html.escape(text)}</div></div>')


def duration(seconds: float | None) -> str:
    """``75`` -> ``1 min 15 s``."""
    seconds = max(0, round(seconds or 0))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def loss_frame(state: JobState) -> pd.DataFrame | None:
    """The loss per step and its running average, as the loss plot reads them; None (an empty
    plot) before the first step, since a plot first given no rows draws no lines later."""
    if not state.losses:
        return None
    steps = [step for step, _ in state.losses]
    losses = pd.Series([loss for _, loss in state.losses], dtype="float64")
    average = losses.rolling(AVERAGE_OVER, min_periods=1).mean()
    stride = max(1, -(-len(steps) // MAX_PLOTTED))
    keep = list(range(0, len(steps), stride))
    if steps and keep[-1] != len(steps) - 1:
        keep.append(len(steps) - 1)
    rows = [(steps[index], float(losses[index]), "loss per step") for index in keep]
    rows += [(steps[index], float(average[index]), f"average of {AVERAGE_OVER} steps") for index in keep]
    frame = pd.DataFrame(rows, columns=["step", "loss", "series"])
    return frame.astype({"step": "int64", "loss": "float64", "series": "string"})


def preview_label(state: JobState) -> str:
    if not state.preview_pair:
        return "Preview"
    which = "held-out pair" if state.held_out else "training pair"
    when = f" at step {state.preview_step}" if state.preview_step else ""
    return f"Preview{when} on the {which} '{state.preview_pair}': before · now · target"


def metrics_markdown(record: StyleRecord) -> str:
    """PSNR with the style against the base model, on the held-out and training pairs."""
    splits = {"holdout": "held-out", "train": "training"}
    counts = {split: sum(1 for pair in record.pairs if pair.split == split) for split in splits}
    rows = []
    for split, label in splits.items():
        scores = record.metrics.get(split)
        if scores:
            gain = scores["psnr"] - scores["base_psnr"]
            rows.append(f"| {label} ({counts[split]}) | {scores['psnr']:.2f} dB | {scores['base_psnr']:.2f} dB | "
                        f"{gain:+.2f} dB | {scores['ssim']:.3f} |")
    if not rows:
        return ""
    note = "" if "holdout" in record.metrics else "\n\nNo pair was held out (that takes 4 or more pairs), so these are training pairs."
    return ("**How well the style reproduces its after photos** (PSNR, higher is closer)\n\n"
            "| Pairs | With the style | Base model | Gain | SSIM |\n|---|---|---|---|---|\n" + "\n".join(rows) + note)
