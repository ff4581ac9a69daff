"""The Fuse page's handlers: fuse a subject LoRA with a style LoRA (EST-LoRA, K-LoRA, merge, or one
side alone), compare the methods side by side, and keep favourite settings as presets.

Fusion changes the weights of the model it runs on, so it runs on the context's *workshop*
model under its lock, never on the model edits use; an edit is never held up by a fusion.
"""

from __future__ import annotations

import html
import logging
from pathlib import Path
from typing import Any, Iterator

import gradio as gr
from PIL import Image

from engine.core.errors import AtelierError, InputError
from engine.core.imaging import load_photo
from engine.fusion import FusionConfig, plan_fusion, render_fusion
from engine.fusion.fuse import sampling_runs
from engine.fusion.render import stage_of
from engine.fusion.sources import record_layers
from engine.models.sampling.sampler import SamplerSettings
from engine.rendering.full_resolution import check_render_size
from engine.services.mix_render import render_for_mix
from studio.context import StudioContext
from studio.streaming import Finished, stream_call
from studio.messages import page_error

LOGGER = logging.getLogger(__name__)
SUBJECT_KINDS = ("subject", "lora")
STYLE_KINDS = ("moe", "lora")
GENERATE, EDIT = "Generate", "Edit a photo"
COMPARED = (("est", "EST-LoRA"), ("klora", "K-LoRA"), ("merge", "Merge"))
METHOD_LABELS = {"est": "EST-LoRA", "klora": "K-LoRA", "merge": "Merge", "subject": "Subject only", "style": "Style only"}
PRESET_FIELDS = ("subject", "style", "mode", "method", "alpha", "style_bias", "subject_scale", "style_scale", "seed", "steps",
                 "union_layers")



def choices(context: StudioContext, kinds: tuple[str, ...]) -> list[str]:
    """Library records of these kinds made for the loaded model."""
    return [record.name for record in context.library.list_styles()
            if record.adapter.kind in kinds and record.backbone == context.backbone.name]


def preset_names(context: StudioContext) -> list[str]:
    return [preset.name for preset in context.library.list_presets("fusion")]


def refreshed(context: StudioContext, subject: str | None, style: str | None, preset: str | None) -> list[dict]:
    """New choices for the subject, style and preset dropdowns, keeping picks that still exist."""
    subjects, styles, presets = choices(context, SUBJECT_KINDS), choices(context, STYLE_KINDS), preset_names(context)
    return [gr.update(choices=subjects, value=subject if subject in subjects else None),
            gr.update(choices=styles, value=style if style in styles else None),
            gr.update(choices=presets, value=preset if preset in presets else None)]


def _request(context: StudioContext, subject: str | None, style: str | None, mode: str, photo_path: str | None,
             seed: float | None, steps: float | None) -> tuple[Image.Image | None, SamplerSettings]:
    if not subject or not style:
        raise InputError("pick a subject and a style first")
    if subject == style:
        raise InputError(f"{subject!r} is on both sides; pick two different LoRAs")
    photo = None
    if mode == EDIT:
        if not photo_path:
            raise InputError("upload a photo to edit, or choose Generate")
        photo = load_photo(photo_path)
        check_render_size(photo.size, Path(photo_path).name)
    settings = SamplerSettings(steps=int(steps if steps is not None else context.backbone.steps_for(edit=mode == EDIT)),
                               seed=int(seed if seed is not None else 0))
    return photo, settings


def _config(method: str, alpha: float, style_bias: float, subject_scale: float, style_scale: float,
            union_layers: bool) -> FusionConfig:
    return FusionConfig(method=method, alpha=float(alpha), style_bias=float(style_bias), subject_scale=float(subject_scale),
                        style_scale=float(style_scale), layers="union" if union_layers else "same")


def describe(result, method: str) -> str:
    """How the page reports a fusion: its size, beta, gamma and how many layers took the subject per step."""
    parts = [f"**{method}**", f"{result.image.width}x{result.image.height} px"]
    if result.beta is not None:
        parts.append(f"β {result.beta:.3f}")
    if result.gamma is not None:
        parts.append(f"γ {result.gamma:.3g}")
    counts = [step.subject_layers for step in result.steps]
    if counts:
        parts.append("layers on the subject per step: " + " → ".join(str(count) for count in counts))
    return " · ".join(parts)


def fusion_status(step: int, total: int, runs: int) -> str:
    """The status of a fusion's combined ``step`` of ``total`` over ``runs`` sampling runs, counted
    as the user set Steps: ``Measuring β: step 3 of 16…`` over the two beta samples, then
    ``Fusing: step 2 of 8…``."""
    index, within, per_run = stage_of(step, total, runs)
    if index < runs - 1:
        return f"Measuring β: step {step} of {(runs - 1) * per_run}…"
    return f"Fusing: step {within} of {per_run}…"


def _fuse_once(context: StudioContext, subject: str, style: str, config: FusionConfig, photo, settings, callback):
    backbone = context.workshop()
    subject_source = record_layers(context.library, context.library.get_style(subject), backbone)
    style_source = record_layers(context.library, context.library.get_style(style), backbone)
    plan = plan_fusion(backbone, subject_source.layers, style_source.layers, config)
    # An edit is carried to the photo's size with the style's stored render choice, as on the Edit page.
    render = render_for_mix(context.library, {style: 1.0})
    return render_fusion(backbone, plan, settings, photo=photo, callback=callback, render_settings=render)


def run_fusion(context: StudioContext, subject, style, mode, photo_path, method, alpha, style_bias, subject_scale,
               style_scale, seed, steps, union_layers=False) -> Iterator[tuple[Any, Any, str]]:
    """Stream ``(preview, result, status)`` for one fusion."""
    try:
        photo, settings = _request(context, subject, style, mode, photo_path, seed, steps)
        config = _config(method, alpha, style_bias, subject_scale, style_scale, union_layers)
    except AtelierError as error:
        raise page_error(error, "Cannot fuse") from error
    yield gr.update(value=None, visible=True), gr.skip(), "Waiting for the model…"
    runs = sampling_runs(config)  # _fuse_once makes a new plan, so beta is never measured already

    def work(callback):
        with context.workshop_lock:
            return _fuse_once(context, subject, style, config, photo, settings, callback)

    try:
        for event in stream_call(work, name="atelier-fuse"):
            if isinstance(event, Finished):
                result = event.value
                break
            yield gr.update(value=event.preview), gr.skip(), fusion_status(event.step, event.total, runs)
    except AtelierError as error:
        yield gr.update(visible=False), gr.skip(), "The last fusion failed."
        raise page_error(error, "Fusion failed") from error
    except Exception as error:
        LOGGER.exception("fusion failed")
        yield gr.update(visible=False), gr.skip(), "The last fusion failed."
        raise gr.Error("The fusion failed unexpectedly; the terminal running Atelier shows the details.", title="Fusion failed") from error
    yield gr.update(visible=False), gr.update(value=result.image), describe(result, METHOD_LABELS.get(method, method))


def run_compare(context: StudioContext, subject, style, mode, photo_path, alpha, style_bias, subject_scale, style_scale,
                seed, steps, union_layers=False) -> Iterator[tuple[Any, str]]:
    """EST-LoRA, K-LoRA and merge with the same seed, added to a gallery one by one."""
    try:
        photo, settings = _request(context, subject, style, mode, photo_path, seed, steps)
        configs = [(label, _config(method, alpha, style_bias, subject_scale, style_scale, union_layers))
                   for method, label in COMPARED]
    except AtelierError as error:
        raise page_error(error, "Cannot compare") from error
    images: list[tuple[Image.Image, str]] = []
    notes: list[str] = []
    for label, config in configs:
        yield gr.update(value=images), f"Rendering {label} ({len(images) + 1} of {len(configs)})…"
        try:
            with context.workshop_lock:
                result = _fuse_once(context, subject, style, config, photo, settings, None)
        except AtelierError as error:
            raise page_error(error, f"{label} failed") from error
        images.append((result.image, label))
        notes.append(describe(result, label))
    yield gr.update(value=images), "  \n".join(notes) + f"  \nSame seed ({settings.seed}) and steps ({settings.steps}) for all three."


def save_preset(context: StudioContext, name: str | None, version: float | None, *values: Any) -> tuple[Any, str, float]:
    """Store the page's fusion settings under ``name`` (replacing a preset of that name)."""
    try:
        if not name or not name.strip():
            raise InputError("give the preset a name")
        settings = dict(zip(PRESET_FIELDS, values))
        context.library.save_preset("fusion", name.strip(), settings, replace=True)
    except AtelierError as error:
        raise page_error(error, "Cannot save the preset") from error
    return gr.update(choices=preset_names(context), value=name.strip()), f"Saved preset **{html.escape(name.strip())}**.", context.bump(version)


def load_preset(context: StudioContext, name: str | None) -> list[Any]:
    """The widget values of a saved preset, in :data:`PRESET_FIELDS` order."""
    if not name:
        raise gr.Error("Pick a saved preset first.", title="No preset")
    try:
        settings = context.library.get_preset("fusion", name).settings
    except AtelierError as error:
        raise page_error(error, "Cannot load the preset") from error
    return [settings.get(field, gr.skip()) for field in PRESET_FIELDS] + [f"Loaded preset **{html.escape(name)}**."]
