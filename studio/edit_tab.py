"""The Edit page: upload a photo, run the model with live step previews, compare and download.

The page only maps widgets to :func:`engine.edit.edit_photo` and shows what comes back:

* the controls take their defaults from the backbone and :class:`SamplerSettings`, and their help
  texts from the dataclass metadata, so the page and the CLI describe a setting the same way;
* clicking *Edit* first checks the request with no concurrency limit (a missing photo or a bad
  setting is reported at once, even while another edit runs), then ``.success()`` runs the edit
  in the ``edit`` queue;
* the edit runs in a worker thread (:func:`studio.streaming.stream_call`); each step's estimate
  is yielded to the *Live preview* image, and the result replaces it as a before/after slider
  (the photo at the working size beside the result) with a download of the result PNG.
"""

from __future__ import annotations

import dataclasses
import html
import logging
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

import gradio as gr
from PIL import Image

from engine.backbones.base import Backbone
from engine.configuration import help_of
from engine.edit import edit_photo
from engine.errors import AtelierError
from engine.imaging import load_photo, resize_to, save_image
from engine.sampling.sampler import SamplerSettings
from studio.streaming import Finished, stream_call

LOGGER = logging.getLogger(__name__)
# Edits share the backbone, so they run one at a time in their own queue; a later training run
# uses another concurrency id and never holds an edit up.
EDIT_QUEUE = "edit"
STEPS_CEILING = 50
SEED_CEILING = 2**32 - 1
NO_PHOTO = "Upload a photo first."


def _default(name: str) -> Any:
    """The default value of a :class:`SamplerSettings` field."""
    return next(field.default for field in dataclasses.fields(SamplerSettings) if field.name == name)


def page_error(error: Exception, title: str) -> gr.Error:
    """A message in the page for an :class:`AtelierError` (its text is shown as text, not HTML)."""
    return gr.Error(html.escape(str(error)), title=title)


def settings_from(steps: float | None, seed: float | None, strength: float | None) -> SamplerSettings:
    """Sampler settings from the widget values (empty fields take the defaults)."""
    return SamplerSettings(
        steps=int(steps) if steps is not None else _default("steps"),
        seed=int(seed) if seed is not None else _default("seed"),
        strength=float(strength) if strength is not None else _default("strength"),
    )


def check_request(photo: str | None, prompt: str | None, steps: float | None, seed: float | None, strength: float | None) -> tuple[Any, Any]:
    """Refuse a request the engine would refuse, before it waits for the model.

    Returns updates that say the edit is waiting and hide the last result's download.
    """
    if not photo:
        raise gr.Error(NO_PHOTO, title="No photo")
    try:
        settings_from(steps, seed, strength)
    except AtelierError as error:
        raise page_error(error, "Check the settings") from error
    return gr.update(value="Waiting for the model…"), gr.update(visible=False)


def run_edit(
    backbone: Backbone,
    output_folder: Path,
    photo_path: str | None,
    prompt: str | None,
    steps: float | None,
    seed: float | None,
    strength: float | None,
) -> Iterator[tuple[Any, Any, Any, Any]]:
    """Edit the photo and stream ``(preview, comparison, status, download)`` updates.

    The comparison is ``(photo at the working size, result)``; the download is the result as
    a PNG in ``output_folder``. An :class:`AtelierError` becomes a message in the page.
    """
    if not photo_path:
        raise gr.Error(NO_PHOTO, title="No photo")
    try:
        settings = settings_from(steps, seed, strength)
        photo = load_photo(photo_path)
    except AtelierError as error:
        raise page_error(error, "Cannot edit") from error

    started = time.monotonic()
    yield gr.update(value=None, visible=True), gr.update(visible=False), "Starting…", gr.update(visible=False)
    try:
        edit = lambda callback: edit_photo(backbone, photo, settings, prompt=prompt or "", callback=callback)  # noqa: E731
        for event in stream_call(edit, name="atelier-edit"):
            if isinstance(event, Finished):
                result = event.value
                break
            status = f"Step {event.step} of {event.total}…"
            yield gr.update(value=event.preview), gr.skip(), status, gr.skip()
    except Exception as error:
        yield gr.update(visible=False), gr.update(visible=True), "The last edit failed.", gr.skip()
        if isinstance(error, AtelierError):
            raise page_error(error, "Edit failed") from error
        LOGGER.exception("edit failed")
        raise gr.Error("The edit failed unexpectedly; the terminal running Atelier shows the details.", title="Edit failed") from error

    before = resize_to(photo, result.size)
    download = save_result(result, output_folder, Path(photo_path).stem, settings.seed)
    width, height = result.size
    status = f"Done in {time.monotonic() - started:.1f} s: {width}×{height} px, seed {settings.seed}. Drag the slider to compare."
    yield (
        gr.update(value=None, visible=False),
        gr.update(value=(before, result), visible=True),
        status,
        gr.update(value=str(download), visible=True),
    )


def save_result(result: Image.Image, folder: Path, stem: str, seed: int) -> Path:
    """Write the result as a PNG named after the photo and seed, in a folder of its own."""
    target = folder / uuid.uuid4().hex / f"{stem}-atelier-seed{seed}.png"
    target.parent.mkdir(parents=True)
    return save_image(result, target)


def build_edit_tab(backbone: Backbone) -> None:
    """Lay out the Edit page inside the current Blocks context and wire its events."""
    # Results live as long as the page (the folder goes when the process ends).
    results = tempfile.TemporaryDirectory(prefix="atelier-results-")
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=300):
            photo = gr.Image(
                label="Photo",
                type="filepath",
                sources=["upload", "clipboard"],
                height=300,
                elem_id="edit-photo",
            )
            choices = backbone.prompt_choices()
            if choices is None:
                prompt = gr.Textbox(label="Prompt", placeholder="What to change, e.g. 'make it a watercolour'", elem_id="edit-prompt")
            else:
                prompt = gr.Dropdown(label="Instruction", choices=choices, value=choices[0],
                                     info="What the model does to the photo; 'identity' reproduces it.", elem_id="edit-prompt")
            edit = gr.Button("Edit", variant="primary", size="lg", elem_id="edit-run")
            with gr.Accordion("Settings", open=True, elem_id="edit-settings"):
                steps = gr.Slider(
                    label="Steps",
                    info=help_of(SamplerSettings, "steps"),
                    minimum=0,
                    maximum=max(STEPS_CEILING, 2 * backbone.default_steps),
                    step=1,
                    value=backbone.default_steps,
                    elem_id="edit-steps",
                )
                seed = gr.Number(
                    label="Seed",
                    info=help_of(SamplerSettings, "seed"),
                    value=_default("seed"),
                    minimum=0,
                    maximum=SEED_CEILING,
                    precision=0,
                    elem_id="edit-seed",
                )
                strength = gr.Slider(
                    label="Strength",
                    info=help_of(SamplerSettings, "strength"),
                    minimum=0.05,
                    maximum=1.0,
                    step=0.05,
                    value=_default("strength"),
                    elem_id="edit-strength",
                )
        with gr.Column(scale=3, min_width=360):
            status = gr.Markdown("Upload a photo, then press **Edit**.", elem_id="edit-status")
            preview = gr.Image(
                label="Live preview",
                type="pil",
                interactive=False,
                visible=False,
                height=460,
                buttons=[],
                elem_id="edit-preview",
            )
            comparison = gr.ImageSlider(
                label="Before / after",
                type="pil",
                format="png",
                interactive=False,
                max_height=460,
                buttons=["fullscreen"],
                elem_id="edit-comparison",
            )
            download = gr.DownloadButton("Download result (PNG)", visible=False, elem_id="edit-download")

    def edit_handler(photo_path, prompt_value, steps_value, seed_value, strength_value):
        """Stream one edit (the closure keeps the results folder alive with the page)."""
        yield from run_edit(backbone, Path(results.name), photo_path, prompt_value, steps_value, seed_value, strength_value)

    inputs = [photo, prompt, steps, seed, strength]
    edit.click(
        check_request, inputs, [status, download], concurrency_limit=None, show_progress="hidden", api_visibility="private"
    ).success(
        edit_handler,
        inputs,
        [preview, comparison, status, download],
        concurrency_limit=1,
        concurrency_id=EDIT_QUEUE,
        show_progress="minimal",
        api_name="edit",
    )
