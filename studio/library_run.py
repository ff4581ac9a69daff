"""The Library page's handlers: list and search styles, show one, rename, edit, export, delete,
import. Each maps widget values to :mod:`engine.services.style_ops` and :class:`StyleLibrary` calls and
their results (or :class:`AtelierError`) to widget updates; the layout is in
:mod:`studio.library_tab`.

Work that loads the shared adapter runs on the context's *workshop* model under its lock, never
on the editing model (loading the adapter wraps a model's layers). A deletion also takes the
editor's lock, so it waits for a running edit to finish instead of changing the files under it,
and says so on the page.
"""

from __future__ import annotations

import html
import json
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import gradio as gr
from PIL import Image

from engine.core.errors import AtelierError, InputError
from engine.library import StyleRecord
from engine.rendering.full_resolution import RenderSettings
from engine.rendering.render_choice import GUIDED_CANDIDATES, describe_settings
from engine.services import style_ops
from studio.context import StudioContext
from studio.messages import page_error

IMPORTABLE = (".zip", ".safetensors")
KIND_LABELS = {"moe": "trained in Atelier (shared MoE LoRA expert)", "lora": "imported LoRA", "subject": "subject LoRA"}



def thumbnail_of(record: StyleRecord) -> str | Image.Image:
    """The record's thumbnail, else its first pair's after-image, else a neutral tile."""
    if record.thumbnail is not None and record.thumbnail.is_file():
        return str(record.thumbnail)
    if record.pairs:
        return str(record.pairs[0].after)
    return Image.new("RGB", (96, 96), (225, 225, 225))


def gallery_items(context: StudioContext, search: str | None) -> tuple[list[tuple[Any, str]], list[str]]:
    """``(thumbnail, caption)`` per style matching ``search``, and the names in the same order."""
    records = context.library.list_styles(search or "")
    return [(thumbnail_of(record), record.name) for record in records], [record.name for record in records]


def refresh(context: StudioContext, search: str | None) -> tuple[Any, list[str], str]:
    items, names = gallery_items(context, search)
    count = f"{len(names)} style(s)" + (f" matching “{html.escape(search)}”" if search else "") + f" in `{context.library.root}`"
    return gr.update(value=items, selected_index=None), names, count


def _metric_lines(metrics: dict[str, Any]) -> list[str]:
    lines = []
    for split in ("holdout", "train"):
        scores = metrics.get(split)
        if isinstance(scores, dict) and "psnr" in scores:
            label = "held-out pairs" if split == "holdout" else "training pairs"
            lines.append(f"| {label} | {scores['psnr']:.2f} dB | {scores.get('base_psnr', float('nan')):.2f} dB | "
                         f"{scores.get('identity_psnr', float('nan')):.2f} dB |")
    if not lines:
        return []
    return ["| PSNR on | with the style | base model | unedited photo |", "|---|---|---|---|", *lines]


def has_full_size_render(record: StyleRecord) -> bool:
    """Whether the record's edits are carried onto photos: a subject LoRA is drawn (the Fuse page), never
    carried onto a photo, so it has no full-size render to show or set."""
    return record.adapter.kind != "subject"


def render_line(record: StyleRecord) -> str:
    """How the style's edits reach the photo's size, e.g. ``guided, radius 2, ε 0.001 (chosen from 1 held-out pair)``."""
    if record.render is None:
        return f"{describe_settings(record.render_settings)} (the default; no choice stored)"
    return record.render.describe()


def details_markdown(record: StyleRecord) -> str:
    """Everything the page shows about a style, as Markdown (text is escaped)."""
    escape = html.escape
    parts = [f"### {escape(record.name)}", escape(record.description) or "*No description.*", "",
             f"**Trigger:** {escape(record.trigger) or '—'} · **Kind:** {KIND_LABELS.get(record.adapter.kind, record.adapter.kind)} · "
             f"**Model:** {escape(record.backbone)} · **Created:** {escape(record.created[:19].replace('T', ' '))} · "
             f"**Pairs:** {len(record.pairs)}", ""]
    parts += _metric_lines(record.metrics)
    if has_full_size_render(record):
        parts += ["", f"**Full-size render:** {escape(render_line(record))}"]
    settings = record.settings
    if settings:
        training = settings.get("training", {})
        shown = {key: training[key] for key in ("steps", "batch_size", "learning_rate", "adversarial_weight", "seed") if key in training}
        parts += ["", "**Training settings:** " + ", ".join(f"{key} {value}" for key, value in shown.items())]
    extra = {key: value for key, value in record.metrics.items() if key not in ("holdout", "train")}
    if extra:
        parts += ["", "**Also recorded:** " + escape(json.dumps(extra))]
    return "\n".join(parts)


def select_style(context: StudioContext, names: list[str], event: gr.SelectData) -> tuple[Any, ...]:
    """Show the style clicked in the gallery."""
    name = names[event.index] if event.index is not None and event.index < len(names) else None
    if name is None:
        return None, gr.update(value="Pick a style in the gallery."), gr.update(value=[]), "", "", "", gr.update(visible=False)
    try:
        record = context.library.get_style(name)
    except AtelierError as error:
        raise page_error(error, "Style not found") from error
    pairs = [item for pair in record.pairs for item in ((str(pair.before), f"{pair.position + 1}: before"), (str(pair.after), f"{pair.position + 1}: after"))]
    # An imported LoRA has no pairs: no empty pairs box then.
    return (name, details_markdown(record), gr.update(value=pairs, visible=bool(pairs)), name, record.description,
            record.trigger, gr.update(visible=True))


TILED_OPTION = "tiled: the model edits a 3x larger copy in tiles (several times slower), then the style's guided settings"


def render_options() -> list[str]:
    """The Library's render menu: every guided candidate training chooses from, tiled, then resize."""
    return [*(describe_settings(settings) for settings in GUIDED_CANDIDATES), TILED_OPTION,
            describe_settings(RenderSettings(render="resize"))]


def _menu_settings(current: RenderSettings, label: str) -> RenderSettings | None:
    """The settings a menu entry stands for; the tiled entry keeps the style's current guided
    settings (the defaults where it is set to resize), and every entry its sampling steps."""
    if label == TILED_OPTION:
        return replace(current if current.render != "resize" else RenderSettings(edit_steps=current.edit_steps), render="tiled")
    entry = {describe_settings(item): item for item in (*GUIDED_CANDIDATES, RenderSettings(render="resize"))}.get(label)
    return None if entry is None else replace(entry, edit_steps=current.edit_steps)


def current_render(context: StudioContext, selected: str | None) -> tuple[Any, Any]:
    """The render menu showing the selected style's settings (a menu entry, or added if set
    otherwise), and whether its row shows (:func:`has_full_size_render`)."""
    if not selected:
        return gr.update(value=None), gr.update(visible=True)
    record = context.library.get_style(selected)
    if not has_full_size_render(record):
        return gr.update(value=None), gr.update(visible=False)
    label = describe_settings(record.render_settings)
    choices = render_options()
    return gr.update(choices=choices if label in choices else [*choices, label], value=label), gr.update(visible=True)


def set_render(context: StudioContext, selected: str | None, label: str | None, version: float | None):
    """Set the selected style's full-size render by hand, from the menu."""
    name = _require(selected)
    try:
        settings = _menu_settings(context.library.get_style(name).render_settings, label or "")
        if settings is None:
            raise InputError(f"pick one of the render settings in the menu, not {label!r}")
        record = context.library.set_render(name, settings)
    except AtelierError as error:
        raise page_error(error, "Cannot set the render") from error
    return (details_markdown(record),
            f"**{html.escape(name)}** now reaches the photo's size by {html.escape(describe_settings(settings))}.",
            context.bump(version))


def _require(selected: str | None) -> str:
    if not selected:
        raise gr.Error("Pick a style in the gallery first.", title="No style selected")
    return selected


def rename_style(context: StudioContext, selected: str | None, new_name: str | None, version: float | None):
    old = _require(selected)
    try:
        record = context.library.rename_style(old, (new_name or "").strip())
    except AtelierError as error:
        raise page_error(error, "Cannot rename") from error
    return record.name, details_markdown(record), f"Renamed {html.escape(old)} to **{html.escape(record.name)}**.", context.bump(version)


def save_details(context: StudioContext, selected: str | None, description: str | None, trigger: str | None, version: float | None):
    name = _require(selected)
    try:
        record = context.library.update_style(name, description=description or "", trigger=trigger or "")
    except AtelierError as error:
        raise page_error(error, "Cannot save") from error
    return details_markdown(record), f"Saved the description and trigger of **{html.escape(name)}**.", context.bump(version)


def _export_path(context: StudioContext, name: str, suffix: str) -> Path:
    folder = context.output_folder / uuid.uuid4().hex
    folder.mkdir(parents=True)
    return folder / f"{name.replace(' ', '-')}{suffix}"


def export_style(context: StudioContext, selected: str | None, as_zip: bool):
    """Write the style as a LoRA file or a style zip; returns the file for download and a status."""
    name = _require(selected)
    out = _export_path(context, name, ".zip" if as_zip else ".safetensors")
    try:
        with context.workshop_lock:
            if as_zip:
                style_ops.export_zip(context.library, name, context.workshop(), out)
                note = "a style zip: pairs, weights and metadata; import it in any Atelier library"
            else:
                report = style_ops.export_lora(context.library, name, context.workshop(), out)
                note = ("a diffusers/peft LoRA file" + ("" if report is None else ", exact" if report.exact
                                                          else f", SVD-truncated (relative error {report.error:.4f})"))
    except AtelierError as error:
        raise page_error(error, "Cannot export") from error
    return gr.update(value=str(out), visible=True), f"Exported **{html.escape(name)}** as {note}."


def ask_delete(selected: str | None):
    name = _require(selected)
    return gr.update(visible=True), f"Delete **{html.escape(name)}** with its pairs and weights? Other styles are not touched.", ""


def delete_style(context: StudioContext, selected: str | None, version: float | None):
    """Delete the selected style (a generator, so the page can say it waits for a running edit).

    The deletion holds the editor's lock: an edit in progress finishes on the files it started
    with, and an edit asked for meanwhile waits and then finds the style gone.
    """
    name = _require(selected)
    with context.workshop_lock:
        context.workshop()  # load the model copy (first use) before making edits wait for us
    lock = context.editor.lock
    if not lock.acquire(blocking=False):
        yield (*[gr.update()] * 5, f"An edit is running; **{html.escape(name)}** is deleted as soon as it finishes…", gr.update())
        lock.acquire()
    try:
        with context.workshop_lock:
            style_ops.delete_style(context.library, name, context.workshop())
    except AtelierError as error:
        raise page_error(error, "Cannot delete") from error
    finally:
        lock.release()
    yield (None, gr.update(value="Pick a style in the gallery."), gr.update(value=[]), gr.update(visible=False),
           gr.update(visible=False), f"Deleted **{html.escape(name)}**.", context.bump(version))


def import_file(context: StudioContext, path: str | None, name: str | None, description: str | None, trigger: str | None,
                version: float | None):
    """Import a style zip, or an external LoRA file (diffusers/peft or kohya keys) as a style."""
    if not path:
        raise gr.Error("Choose a .zip style or a .safetensors LoRA file to import.", title="No file")
    suffix = Path(path).suffix.lower()
    try:
        if suffix not in IMPORTABLE:
            raise InputError(f"{Path(path).name} is not a style zip or a LoRA file; import a .zip made by Atelier "
                             "or a .safetensors LoRA")
        name = (name or "").strip() or None
        if suffix == ".zip":
            # Messages name the file as the user chose it: the upload's temporary copy keeps its base name.
            record = style_ops.import_zip(context.library, path, name, shown_as=Path(path).name)
        else:
            if name is None:
                raise InputError("give the imported LoRA a name")
            with context.workshop_lock:
                record = style_ops.import_lora(context.library, path, name, context.workshop(), description or "",
                                               trigger or "", sample=style_ops.sample_photo())
    except AtelierError as error:
        raise page_error(error, "Cannot import") from error
    return f"Imported **{html.escape(record.name)}**; it is in the Edit tab's style list now.", context.bump(version)
