"""The Edit page's handlers: check a request, run it with live previews, keep recent results.

Each handler maps widget values to engine calls and engine results (or :class:`AtelierError`)
to widget updates; the layout and wiring are in :mod:`studio.edit_tab`.

* :func:`check_request` refuses what the engine would refuse before the request waits for the
  model (no concurrency limit, so it answers at once even while another edit runs);
* :func:`run_edit` runs :meth:`engine.services.style_edit.StyleEditor.edit` and carries the result
  to the photo's own size (:func:`engine.rendering.full_resolution.carry_to_full_resolution`, with
  the leading style's render choice, :func:`engine.services.mix_render.render_for_mix`) in a
  worker thread (:func:`studio.streaming.stream_call`); it yields each step's working-size
  estimate, then the full-size result as a before/after slider, a PNG download and an updated
  gallery of recent results.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import uuid
from pathlib import Path
from typing import Any, Iterator, Sequence

import gradio as gr
from PIL import Image

from engine.core.errors import AtelierError, InputError
from engine.core.imaging import load_photo, save_image
from engine.models.sampling.sampler import SamplerSettings
from engine.rendering.full_resolution import carry_to_full_resolution, check_render_size
from engine.services.mix_render import render_for_mix
from engine.services.style_edit import MAX_MIX, StyleEditor
from studio.streaming import Finished, stream_call
from studio.messages import error_markdown, page_error

LOGGER = logging.getLogger(__name__)
NO_PHOTO = "Upload a photo first."
NO_STYLE = "None"  # the style dropdowns' empty choice
RECENT_RESULTS = 8


def default_setting(name: str) -> Any:
    """The default value of a :class:`SamplerSettings` field."""
    return next(field.default for field in dataclasses.fields(SamplerSettings) if field.name == name)



def read_photo(path: str | Path) -> Image.Image:
    """The uploaded photo (:func:`load_photo`), or an :class:`InputError` that names the file as the
    user chose it (the upload's copy keeps its base name) and says what to choose instead."""
    name = Path(path).name
    try:
        return load_photo(path)
    except InputError as error:
        cause = error.__cause__
        if isinstance(cause, Image.UnidentifiedImageError):
            reason = "its contents are not a picture format Atelier knows, whatever the name ends in"
        else:
            reason = str(error).replace(str(path), name).split("; ")[0]
            reason = reason[len(name):].strip() if reason.startswith(name) else reason
        raise InputError(f"{name} is not an image Atelier can read: {reason}; choose a PNG, JPEG or WebP photo") from error


def check_photo(path: str | None) -> str:
    """The message under the photo after an upload: empty for a photo Atelier reads, else why not."""
    if not path:
        return ""
    try:
        photo = read_photo(path)
        check_render_size(photo.size, Path(path).name)
    except AtelierError as error:
        return error_markdown(error, "Cannot use this photo")
    return ""


def settings_from(steps: float | None, seed: float | None, strength: float | None,
                  noise_scale: float | None = None) -> SamplerSettings:
    """Sampler settings from the widget values (empty fields take the defaults)."""
    return SamplerSettings(
        steps=int(steps) if steps is not None else default_setting("steps"),
        seed=int(seed) if seed is not None else default_setting("seed"),
        strength=float(strength) if strength is not None else default_setting("strength"),
        noise_scale=float(noise_scale) if noise_scale is not None else default_setting("noise_scale"),
    )


def mix_from(styles_and_weights: Sequence[Any]) -> dict[str, float]:
    """``{style: weight}`` from alternating dropdown and slider values; unused rows are skipped.

    >>> mix_from(["ink sketch", 1.0, "None", 0.5, "vintage", 0.4])
    {'ink sketch': 1.0, 'vintage': 0.4}
    """
    if len(styles_and_weights) % 2:
        raise ValueError("styles and weights must alternate")
    mix: dict[str, float] = {}
    for style, weight in zip(styles_and_weights[::2], styles_and_weights[1::2]):
        if not style or style == NO_STYLE:
            continue
        if style in mix:
            raise InputError(f"style {style!r} is in the mix twice; pick it once and set its weight")
        mix[style] = float(weight if weight is not None else 1.0)
    if len(mix) > MAX_MIX:
        raise InputError(f"a mix takes at most {MAX_MIX} styles")
    if mix and all(weight == 0.0 for weight in mix.values()):
        raise InputError("every style in the mix has weight 0; raise a weight or pick no style")
    return mix


def describe_mix(mix: dict[str, float]) -> str:
    """How a result's caption names its styles."""
    if not mix:
        return "no style"
    if len(mix) == 1 and next(iter(mix.values())) == 1.0:
        return next(iter(mix))
    return " + ".join(f"{name} ×{weight:g}" for name, weight in mix.items())


def check_request(photo: str | None, steps: float | None, seed: float | None, strength: float | None,
                  noise_scale: float | None, *styles_and_weights: Any) -> tuple[Any, Any]:
    """Refuse a request the engine would refuse; returns a 'waiting' status and hides the download."""
    if not photo:
        raise gr.Error(NO_PHOTO, title="No photo")
    try:
        settings_from(steps, seed, strength, noise_scale)
        mix_from(styles_and_weights)
    except AtelierError as error:
        raise page_error(error, "Check the settings") from error
    try:
        check_render_size(read_photo(photo).size, Path(photo).name)
    except AtelierError as error:
        raise page_error(error, "Cannot use this photo") from error
    return gr.update(value="Waiting for the model…"), gr.update(visible=False)


def run_edit(editor: StyleEditor, output_folder: Path, recent: list[tuple[str, str]] | None, photo_path: str | None,
             prompt: str | None, steps: float | None, seed: float | None, strength: float | None,
             noise_scale: float | None, *styles_and_weights: Any) -> Iterator[tuple[Any, ...]]:
    """Edit the photo and stream ``(preview, comparison, status, download, recent, gallery)``.

    Previews are at the model's working size; the result has the photo's own size. The
    comparison is ``(the photo, the result)`` as files (the photo upright, as JPEG quality 95 for
    the browser; the result as the PNG download in ``output_folder``), so a large photo is not
    encoded again for the page; ``recent`` lists ``(png path, caption)`` of the last results,
    newest first. An :class:`AtelierError` becomes a message in the page.
    """
    if not photo_path:
        raise gr.Error(NO_PHOTO, title="No photo")
    try:
        settings = settings_from(steps, seed, strength, noise_scale)
        mix = mix_from(styles_and_weights)
        photo = read_photo(photo_path)
        check_render_size(photo.size, Path(photo_path).name)
    except AtelierError as error:
        raise page_error(error, "Cannot edit") from error

    started = time.monotonic()
    yield gr.update(value=None, visible=True), gr.update(visible=False), "Starting…", gr.update(visible=False), gr.skip(), gr.skip()
    try:
        def edit(callback) -> Image.Image:
            render = render_for_mix(editor.library, mix)
            working = editor.edit(photo, mix, settings, callback=callback, prompt=prompt or "", render=render)
            return carry_to_full_resolution(photo, working, render)

        for event in stream_call(edit, name="atelier-edit"):
            if isinstance(event, Finished):
                result = event.value
                break
            status = f"Step {event.step} of {event.total}…"
            yield gr.update(value=event.preview), gr.skip(), status, gr.skip(), gr.skip(), gr.skip()
    except Exception as error:
        yield gr.update(visible=False), gr.update(visible=True), "The last edit failed.", gr.skip(), gr.skip(), gr.skip()
        if isinstance(error, AtelierError):
            raise page_error(error, "Edit failed") from error
        LOGGER.exception("edit failed")
        raise gr.Error("The edit failed unexpectedly; the terminal running Atelier shows the details.", title="Edit failed") from error

    # From zero noise the seed plays no part, so it is not named.
    seeded = settings.noise_scale_for(editor.backbone, edit=True) > 0
    download = save_result(result, output_folder, Path(photo_path).stem, settings.seed if seeded else None)
    before = save_image(photo, download.parent / "before.jpg")
    width, height = result.size
    noise = f"seed {settings.seed}" if seeded else "no noise"
    caption = f"{describe_mix(mix)} · {noise}"
    recent = ([(str(download), caption)] + list(recent or []))[:RECENT_RESULTS]
    status = (f"Done in {time.monotonic() - started:.1f} s with {describe_mix(mix)}: {width}×{height} px, "
              f"{noise}. Drag the slider to compare.")
    yield (
        gr.update(value=None, visible=False),
        gr.update(value=(str(before), str(download)), visible=True),
        status,
        gr.update(value=str(download), visible=True),
        recent,
        gr.update(value=recent),
    )


def save_result(result: Image.Image, folder: Path, stem: str, seed: int | None) -> Path:
    """Write the result as a PNG named after the photo and seed (if the edit drew noise), in a
    folder of its own."""
    target = folder / uuid.uuid4().hex / (f"{stem}-atelier-seed{seed}.png" if seed is not None else f"{stem}-atelier.png")
    target.parent.mkdir(parents=True)
    return save_image(result, target)
