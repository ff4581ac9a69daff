"""The Train page: upload before/after pairs, name the style, train it while the page shows the
steps, the loss and previews, then find it in the library; or resume a run that was interrupted.

Layout and wiring only; the handlers are in :mod:`studio.train_uploads` (the pairs) and
:mod:`studio.train_run` (the job).

* Training runs in a :class:`engine.services.jobs.TrainingJobs` thread on its own copy of the model,
  never on the one edits use. *Train* starts it and returns at once; a ``gr.Timer``, active only
  while a job runs, polls the runner. No training event holds a worker for long or uses the
  ``edit`` queue, so the Edit tab stays usable while a style trains.
* Settings take their defaults and help texts from :class:`StyleTrainingConfig`, as the CLI does.
* When a style is published, the poll bumps ``context.library_version`` so the other tabs refresh.
"""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from engine.core.configuration import help_of
from engine.library.names import MAX_NAME_LENGTH
from engine.library.records import MAX_DESCRIPTION_LENGTH, MAX_TRIGGER_LENGTH
from engine.services.jobs import TrainingJobs
from engine.training.schedules import TIMESTEP_DISTRIBUTIONS
from engine.training.style_data import TRAINING_SCALES
from engine.training.style_trainer import LOSS_WEIGHTINGS, StyleTrainingConfig
from studio.context import StudioContext
from studio.train_run import (
    ADVANCED,
    IDLE,
    attach,
    cancel_training,
    check_resume,
    check_training,
    default_of,
    discard_training,
    label_of,
    poll_training,
    resume_training,
    start_training,
)
from studio.messages import keeps_errors
from studio.train_uploads import PairUploads, remove_pair, summary, update_uploads

# Starting a job is quick (the work is in the runner's thread), so this queue never holds for long.
TRAIN_QUEUE = "train"
UPLOADS_QUEUE = "train-uploads"  # one upload change at a time, so a page's pair state is never raced
POLL_SECONDS = 1.0
STEPS_CEILING = 3000
MINIMUMS = {"batch_size": 1, "learning_rate": 0, "warmup_steps": 0, "adversarial_weight": 0, "adversarial_start": 0,
            "discriminator_learning_rate": 0, "crop_margin": 1, "checkpoint_every": 0, "sample_every": 0, "seed": 0}
# The arrows of a decimal setting move by these (and the browser accepts values on this grid).
CHOICES = {"loss_weighting": LOSS_WEIGHTINGS, "timestep_sampling": TIMESTEP_DISTRIBUTIONS,
           "training_scale": TRAINING_SCALES}  # settings picked from a list, not typed
DECIMAL_STEPS = {"learning_rate": 1e-4, "discriminator_learning_rate": 1e-5, "adversarial_weight": 0.01, "crop_margin": 0.01}
# Run in the browser when Resume is pressed: that button sits low in the column, the progress
# above it, so bring the progress into view (the inputs pass through). Train sits right above it.
SHOW_PROGRESS = "(...values) => { document.querySelector('#train-status')?.scrollIntoView({block: 'start'}); return values; }"
LOSS_COLOURS = {"loss per step": "#cbd5e1", "average of 10 steps": "#ea580c"}
# "8 or more", not "about 8": a style learned from more pairs carries better to new photos (measured on cartoon:
# docs/decisions/2026-12-07-why-cartoon-is-not-learned.md, "More pairs").
INTRO = ("Give a few photos **before** and **after** the look you want (8 pairs or more: more pairs carry the look to new "
         "photos better), name the style and press "
         "**Train**. A before photo and its after photo share a file name.")


def elem_id(name: str) -> str:
    """The stable element id of a setting's widget: ``batch_size`` -> ``train-batch-size``."""
    return "train-" + name.replace("_", "-")


def build_train_tab(context: StudioContext, jobs: TrainingJobs | None = None) -> TrainingJobs:
    """Lay out the Train page inside the current Blocks context and wire its events.

    Returns the runner the page trains with (made over ``context.library`` and
    ``context.model_spec`` unless given), for tests and for code that wants to wait for it.
    """
    jobs = jobs or TrainingJobs(context.library, context.model_spec)
    work_folder = Path(context.output_folder)
    uploads, selected, seen = gr.State(PairUploads()), gr.State(None), gr.State({})
    timer = gr.Timer(POLL_SECONDS, active=False)
    with gr.Row(equal_height=False, elem_id="train-page"):
        with gr.Column(scale=1, min_width=360):
            gr.Markdown(INTRO, elem_id="train-intro")
            with gr.Row(equal_height=True):
                before = gr.File(label="Before photos", file_count="multiple", type="filepath", height=140, elem_id="train-before")
                after = gr.File(label="After photos (in the style)", file_count="multiple", type="filepath", height=140,
                                elem_id="train-after")
            zip_file = gr.File(label="…or one zip with before/ and after/ folders", file_count="single", type="filepath", height=120,
                               elem_id="train-zip")
            pairs = gr.Gallery(label="Pairs: before | after (click one to select it)", columns=2, fit_columns=False, height=300,
                               object_fit="contain", allow_preview=True, buttons=[], elem_id="train-pairs")
            with gr.Row(equal_height=False):
                pairs_status = gr.Markdown(summary(PairUploads()), elem_id="train-pairs-status")
                remove = gr.Button("Remove pair", size="sm", variant="secondary", scale=0, min_width=130, elem_id="train-remove")
        with gr.Column(scale=1, min_width=360):
            # Name, Train and Cancel at the top of this column, so Train is in view without scrolling
            # (1280x720); the long list of settings is collapsed below the progress.
            # No max_length on these boxes: the browser would cut pasted text silently; Train refuses
            # text that is too long with the engine's message instead.
            name = gr.Textbox(label="Style name", placeholder="e.g. ink wash",
                              info=f"Up to {MAX_NAME_LENGTH} letters, digits, spaces, - or _; must differ from the styles in your library.",
                              elem_id="train-name")
            with gr.Row(equal_height=True):
                description = gr.Textbox(label="Description", placeholder="What the style does, for the library",
                                         info=f"Optional; up to {MAX_DESCRIPTION_LENGTH} characters.", elem_id="train-description")
                trigger = gr.Textbox(label="Trigger phrase", placeholder="e.g. in ink wash style",
                                     info=f"Optional; one line, up to {MAX_TRIGGER_LENGTH} characters; stored with the style and its exported LoRA.",
                                     elem_id="train-trigger")
            steps = gr.Slider(label="Steps", info=help_of(StyleTrainingConfig, "steps"), minimum=1, maximum=STEPS_CEILING, step=1,
                              value=default_of("steps"), elem_id="train-steps")
            with gr.Row():
                run = gr.Button("Train", variant="primary", size="lg", elem_id="train-run")
                cancel = gr.Button("Cancel", variant="stop", size="lg", elem_id="train-cancel")
            message = gr.Markdown("", elem_id="train-message")
            status = gr.Markdown(IDLE, elem_id="train-status")
            progress = gr.HTML("", elem_id="train-progress")
            with gr.Accordion("Advanced settings", open=False, elem_id="train-advanced"):
                advanced = [setting_widget(setting) for setting in ADVANCED]
            loss = gr.LinePlot(None, x="step", y="loss", color="series", color_map=LOSS_COLOURS, label="Training loss",
                               x_title="Step", y_title="Loss", elem_id="train-loss")
            preview = gr.Image(label="Preview", type="pil", interactive=False, height=240, buttons=["fullscreen"],
                               elem_id="train-preview")
            metrics = gr.Markdown(visible=False, elem_id="train-metrics")
            with gr.Accordion("Interrupted runs", open=True, visible=False, elem_id="train-interrupted") as interrupted:
                resumable = gr.Dropdown(label="Runs that stopped before publishing", choices=[], value=None,
                                        info="Resuming continues from the run's last checkpoint with the pairs it was given.",
                                        elem_id="train-resumable")
                with gr.Row():
                    resume = gr.Button("Resume", variant="secondary", elem_id="train-resume")
                    discard = gr.Button("Discard run", variant="secondary", elem_id="train-discard")

    view = [seen, status, progress, loss, preview, metrics, timer, resumable, interrupted]
    settings = [name, description, trigger, steps, *advanced]
    pair_outputs = [uploads, pairs, pairs_status, selected]
    private = {"api_visibility": "private"}

    def on_uploads(current, before_files, after_files, zip_value):
        return update_uploads(current, before_files, after_files, zip_value, work_folder)

    for widget in (before, after, zip_file):
        widget.change(on_uploads, [uploads, before, after, zip_file], pair_outputs, concurrency_limit=1,
                      concurrency_id=UPLOADS_QUEUE, show_progress="minimal", **private)

    def pick_pair(event: gr.SelectData) -> int:
        return event.index

    pairs.select(pick_pair, None, selected, queue=False, **private)
    remove.click(remove_pair, [uploads, selected, pairs], pair_outputs, concurrency_limit=1, concurrency_id=UPLOADS_QUEUE, **private)

    # Train first checks at once (no queue limit), writing refusals under the button until the next press.
    def check_handler(current, *values):
        return check_training(jobs, current, *values), ""

    run.click(
        keeps_errors(check_handler, outputs=2, at=1, title="Cannot train yet"), [uploads, *settings], [status, message],
        concurrency_limit=None, show_progress="hidden", **private,
    ).success(
        keeps_errors(lambda current, *values: (*start_training(jobs, work_folder, current, *values), gr.skip()), outputs=len(view) + 1,
                     at=len(view), title="Cannot train"),
        [uploads, *settings], [*view, message], concurrency_limit=1, concurrency_id=TRAIN_QUEUE, show_progress="minimal", **private,
    )
    cancel.click(lambda: (cancel_training(jobs), ""), None, [status, message], concurrency_limit=None, show_progress="hidden", **private)
    resume.click(
        lambda key: check_resume(jobs, key), resumable, status, concurrency_limit=None, show_progress="hidden", js=SHOW_PROGRESS,
        **private,
    ).success(
        lambda key: resume_training(jobs, key), resumable, view, concurrency_limit=1, concurrency_id=TRAIN_QUEUE,
        show_progress="minimal", **private,
    )
    discard.click(lambda key: discard_training(jobs, key), resumable, [resumable, interrupted], concurrency_limit=1,
                  concurrency_id=TRAIN_QUEUE, **private)

    signal = context.library_version
    if signal is not None:
        timer.tick(lambda watched, version: poll_training(jobs, watched, version), [seen, signal], [*view, signal],
                   concurrency_limit=None, show_progress="hidden", **private)
    else:  # a page without the cross-tab signal (a Train page on its own)
        timer.tick(lambda watched: poll_training(jobs, watched, 0)[:-1], seen, view, concurrency_limit=None,
                   show_progress="hidden", **private)
    # On page load: show (and poll) a job started before this page opened, and list interrupted runs.
    gr.on(None, lambda: attach(jobs), None, view, concurrency_limit=None, show_progress="hidden", **private)
    return jobs


def setting_widget(setting: str) -> gr.Number | gr.Dropdown:
    """A number box (a dropdown for a choice) for a :class:`StyleTrainingConfig` field, with its
    default and help text."""
    default = default_of(setting)
    if setting in CHOICES:
        return gr.Dropdown(choices=list(CHOICES[setting]), value=default, label=label_of(setting),
                           info=help_of(StyleTrainingConfig, setting), elem_id=elem_id(setting))
    whole = isinstance(default, int)
    return gr.Number(label=label_of(setting), info=help_of(StyleTrainingConfig, setting), value=default,
                     precision=0 if whole else None, minimum=MINIMUMS.get(setting), step=1 if whole else DECIMAL_STEPS.get(setting, 0.01),
                     elem_id=elem_id(setting))

