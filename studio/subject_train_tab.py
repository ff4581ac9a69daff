"""The Fuse page's *Train a subject* section: upload 3 to 10 photos of one subject, name it and
press **Train**; the steps, the loss and previews follow, as on the Train page, and the new subject
is listed and picked in the Fuse page's subject dropdown when it is done.

Layout and wiring only; the handlers are in :mod:`studio.subject_train_run`. Training runs in a
:class:`engine.services.subject_jobs.SubjectJobs` thread on its own copy of the model; *Train*
returns at once and a ``gr.Timer``, active only while a job runs, polls the runner, so edits and
fusions go on meanwhile. A subject does not start while a style trains on the Train page.
"""

from __future__ import annotations

import gradio as gr

from engine.core.configuration import help_of
from engine.library.names import MAX_NAME_LENGTH
from engine.services.subject_jobs import SubjectJobs
from engine.training.subject import MAX_PHOTOS, MIN_PHOTOS, SubjectTrainingConfig
from studio import subject_train_run as run
from studio.context import StudioContext
from studio.messages import keeps_errors
from studio.train_tab import LOSS_COLOURS, POLL_SECONDS

SUBJECT_QUEUE = "train-subject"  # starting is quick (the work is in the runner's thread)
PRIVATE = {"api_visibility": "private"}
STEPS_CEILING = 1000


def build_subject_training(context: StudioContext, subject: gr.Dropdown, jobs: SubjectJobs | None = None,
                           open_: bool = False) -> SubjectJobs:
    """Lay out the section inside the current Blocks context (an accordion) and wire its events;
    ``subject`` is the Fuse page's subject dropdown, refreshed and picked when a subject is added.
    Returns the runner (made over the context's library and model unless given; the studio passes
    one that refuses to start while a style trains)."""
    jobs = jobs or SubjectJobs(context.library, context.model_spec)
    seen = gr.State({})
    timer = gr.Timer(POLL_SECONDS, active=False)
    with gr.Accordion("Train a subject", open=open_, elem_id="subject-train"):
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=280):
                photos = gr.File(label=f"Photos of the subject ({MIN_PHOTOS} to {MAX_PHOTOS})", file_count="multiple",
                                 type="filepath", height=140, elem_id="subject-photos")
                photos_status = gr.Markdown("", elem_id="subject-photos-status")
                name = gr.Textbox(label="Subject name", placeholder="e.g. my dog",
                                  info=f"Up to {MAX_NAME_LENGTH} letters, digits, spaces, - or _; must differ from the names in your library.",
                                  elem_id="subject-name")
                steps = gr.Slider(label="Steps", info=help_of(SubjectTrainingConfig, "steps") + " About 3 minutes for 200 on two cores.",
                                  minimum=1, maximum=STEPS_CEILING, step=1, value=run.DEFAULT_STEPS, elem_id="subject-steps")
                with gr.Row():
                    train = gr.Button("Train", variant="primary", elem_id="subject-run")
                    cancel = gr.Button("Cancel", variant="stop", elem_id="subject-cancel")
                message = gr.Markdown("", elem_id="subject-message")
            with gr.Column(scale=1, min_width=280):
                status = gr.Markdown(run.IDLE, elem_id="subject-status")
                progress = gr.HTML("", elem_id="subject-progress")
                loss = gr.LinePlot(None, x="step", y="loss", color="series", color_map=LOSS_COLOURS, label="Training loss",
                                   x_title="Step", y_title="Loss", height=200, elem_id="subject-loss")
                preview = gr.Image(label="Preview", type="pil", interactive=False, height=200, buttons=["fullscreen"],
                                   elem_id="subject-preview")

    view = [seen, status, progress, loss, preview, timer]
    photos.change(run.check_uploads, photos, photos_status, concurrency_limit=None, show_progress="hidden", **PRIVATE)
    train.click(
        keeps_errors(lambda files, value, count: (*run.start_subject(jobs, files, value, count), ""), outputs=len(view) + 1,
                     at=len(view), title="Cannot train the subject"),
        [photos, name, steps], [*view, message], concurrency_limit=1, concurrency_id=SUBJECT_QUEUE, show_progress="minimal", **PRIVATE,
    )
    cancel.click(lambda: (run.cancel_subject(jobs), ""), None, [status, message], concurrency_limit=None, show_progress="hidden",
                 **PRIVATE)
    signal = context.library_version
    if signal is not None:
        timer.tick(lambda watched, version: run.poll_subject(context, jobs, watched, version), [seen, signal], [*view, subject, signal],
                   concurrency_limit=None, show_progress="hidden", **PRIVATE)
    else:
        timer.tick(lambda watched: run.poll_subject(context, jobs, watched, 0)[:-1], seen, [*view, subject],
                   concurrency_limit=None, show_progress="hidden", **PRIVATE)
    gr.on(None, lambda: run.attach(jobs), None, view, concurrency_limit=None, show_progress="hidden", **PRIVATE)
    return jobs
