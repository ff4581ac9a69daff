"""Managing styles in the library: export, import, delete, measuring the render choice again. The calls behind
``python -m engine styles`` and the studio's Library page.

Operations that read or rewrite the shared MoE adapter load it onto a backbone, which wraps the
backbone's layers; callers pass a *workshop* backbone for that, a copy of the model no edit is
using (the studio keeps one besides its editing model, the CLI loads one), so an edit never
sees a half-wrapped model. Every change goes through :class:`StyleLibrary`'s transactions.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from PIL import Image

from engine.adapters.lora.files import read_lora_file
from engine.adapters.lora.patch import applied_lora
from engine.adapters.moe.adapter import MoELoraAdapter
from engine.adapters.lora.writing import architecture_of
from engine.adapters.moe.export import ExportReport, export_style_lora
from engine.core.assets import load_shipped_photo
from engine.core.errors import InputError
from engine.core.files import atomic_path
from engine.core.imaging import load_photo
from engine.library import AdapterSource, NewStyle, StyleLibrary, StyleRecord, export_style_zip, import_style_zip
from engine.library.names import validate_style_name
from engine.metrics.image_quality import psnr
from engine.models.backbones.base import Backbone
from engine.models.editing import edit_photo
from engine.models.sampling.sampler import SamplerSettings
from engine.rendering.render_choice import choose_render
from engine.services.style_edit import StyleEditor

SAMPLE_PHOTO = "city"  # a shipped photo the benchmarks hold out; an imported LoRA's thumbnail is it, edited
SAMPLE_PHOTO_SIZE = (192, 128)  # thumbnail size: the edit that makes the thumbnail stays cheap


def sample_photo() -> Image.Image:
    """The fixed photo an imported LoRA is shown editing (its thumbnail), at thumbnail size."""
    photo = load_shipped_photo(SAMPLE_PHOTO)
    photo.thumbnail(SAMPLE_PHOTO_SIZE)
    return photo



def _moe_record(library: StyleLibrary, name: str, backbone: Backbone) -> StyleRecord:
    record = library.get_style(name)
    if record.backbone != backbone.name:
        raise InputError(f"style {record.name!r} was trained for {record.backbone}; load that model to work on it")
    return record


def export_lora(library: StyleLibrary, name: str, backbone: Backbone, out: str | Path) -> ExportReport | None:
    """Write ``name`` as a diffusers/peft LoRA file with modelspec metadata.

    Returns the export report for a trained style (exact for the style router), ``None`` for an
    imported LoRA, whose file is copied as it is.
    """
    record = _moe_record(library, name, backbone)
    if record.adapter.kind != "moe":
        with atomic_path(out) as temporary:
            shutil.copyfile(library.adapter_path(record), temporary)
        return None
    adapter = MoELoraAdapter.load(library.adapter_path(record), backbone)
    try:
        return export_style_lora(adapter, record.expert_key, out, title=record.name, trigger=record.trigger,
                                 architecture=architecture_of(backbone), description=record.description,
                                 training_settings=record.settings)
    finally:
        adapter.remove()


def export_zip(library: StyleLibrary, name: str, backbone: Backbone, out: str | Path) -> None:
    """Write the whole style (pairs, its expert with the shared experts, metadata) as a zip."""
    record = _moe_record(library, name, backbone)
    with tempfile.TemporaryDirectory(prefix="atelier-export-") as folder:
        weights = Path(folder) / "style.safetensors"
        if record.adapter.kind == "moe":
            adapter = MoELoraAdapter.load(library.adapter_path(record), backbone)
            try:
                for key in adapter.style_keys:
                    if key != record.expert_key:
                        adapter.remove_style(key)
                adapter.save(weights)
            finally:
                adapter.remove()
        else:
            shutil.copyfile(library.adapter_path(record), weights)
        export_style_zip(library, record.name, out, weights, expert_key=record.expert_key)


def import_zip(library: StyleLibrary, path: str | Path, name: str | None = None, shown_as: str | None = None) -> StyleRecord:
    """Import a style zip made by :func:`export_zip`, optionally under another name; ``shown_as``
    names the zip in messages (default: ``path``; the studio gives the uploaded file's name)."""
    if name is not None:
        validate_style_name(name)
    return import_style_zip(library, Path(path), name, shown_as)


def import_lora(library: StyleLibrary, path: str | Path, name: str, backbone: Backbone, description: str = "",
                trigger: str = "", sample: Image.Image | None = None) -> StyleRecord:
    """Add an external LoRA file (diffusers/peft or kohya keys) as a style of kind ``lora``.

    The file is checked against ``backbone`` first (a file for another model is refused, naming
    the layers that do not fit). With ``sample`` (e.g. :func:`sample_photo`), the thumbnail is that
    photo edited with the LoRA; without, the style has no thumbnail (the Library shows a plain tile).
    """
    validate_style_name(name)
    path = Path(path)
    if path.suffix.lower() != ".safetensors":
        raise InputError(f"{path.name}: a LoRA is imported from a .safetensors file; pickled .ckpt/.pt/.bin files are not read")
    layers = read_lora_file(path, backbone)
    thumbnail = None
    if sample is not None:
        with applied_lora(backbone, layers):
            thumbnail = edit_photo(backbone, sample, SamplerSettings())
    metrics = {"imported_from": path.name, "layers": len(layers), "rank": max(layer.down.shape[0] for layer in layers.values())}
    style = NewStyle(name, description, trigger, [], expert_key=None, metrics=metrics, thumbnail=thumbnail)
    return library.publish_styles([style], AdapterSource(path, "lora", backbone.name, {"source": path.name}))[0]


def delete_style(library: StyleLibrary, name: str, backbone: Backbone) -> None:
    """Delete a style; when it shares the MoE adapter, the adapter is rewritten without its
    expert, so every other style keeps its weights bit for bit."""
    validate_style_name(name)
    record = library.get_style(name)
    sharing = [other for other in library.list_styles() if other.adapter.id == record.adapter.id and other.id != record.id]
    if not sharing or record.adapter.kind != "moe":  # only the shared MoE adapter holds several styles' weights
        library.delete_style(record.name)
        return
    adapter = MoELoraAdapter.load(library.adapter_path(record), backbone)
    try:
        adapter.remove_style(record.expert_key)
        with tempfile.TemporaryDirectory(prefix="atelier-adapter-") as folder:
            path = Path(folder) / "adapter.safetensors"
            adapter.save(path)
            library.delete_style(record.name, AdapterSource(path, "moe", record.backbone, {"styles": len(adapter.style_keys)}))
    finally:
        adapter.remove()


def measure_render_choice(library: StyleLibrary, backbone: Backbone, name: str,
                          pairs: list[tuple[Image.Image, Image.Image]] | None = None) -> StyleRecord:
    """Choose style ``name``'s full-size render settings again, as training does, and store the
    choice: on ``pairs`` ``(before, after)`` when given (e.g. larger copies of its training pairs),
    else on its stored pairs at their own size (held-out ones when it has any)."""
    record = library.get_style(name)
    split: dict[str, list[tuple[Image.Image, Image.Image]]] = {"train": list(pairs or []), "holdout": []}
    if pairs is None:
        for pair in record.pairs:
            split[pair.split].append((load_photo(pair.before), load_photo(pair.after)))
    if not split["train"] and not split["holdout"]:
        raise InputError(f"{record.name} has no stored pairs to measure on (an imported LoRA?); give --pairs or set its "
                         "render by hand with 'styles set-render'")
    editor = StyleEditor(backbone, library)
    choice = choose_render(lambda photo, steps: editor.edit(photo, {record.name: 1.0}, SamplerSettings(steps=steps)),
                           split["train"], split["holdout"], score=psnr)
    if choice is None:
        raise InputError(f"the pairs of {record.name} are no larger than the model's working size, so every render gives "
                         "the same result there; give larger pairs with --pairs")
    return library.record_render_choice(record.name, choice)
