"""Where the two LoRAs of a fusion come from: a LoRA file, or a library record by name.

* a style trained in Atelier: its expert (with the shared experts) taken out of the shared MoE
  LoRA as one plain LoRA (:func:`engine.adapters.moe.export.export_style_lora`, exact for the style
  router), read back like any LoRA file;
* an imported LoRA (diffusers/peft or kohya keys) or a subject LoRA: read from its file.

Loading the shared MoE adapter wraps the backbone's layers; it is removed again before this
returns, so the backbone is left as fusion needs it.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from engine.adapters.lora.files import LoraLayer, read_lora_file
from engine.adapters.moe.adapter import MoELoraAdapter
from engine.adapters.lora.writing import architecture_of
from engine.adapters.moe.export import export_style_lora
from engine.core.errors import InputError
from engine.library import StyleLibrary, StyleRecord
from engine.library.storage import sha256_of
from engine.models.backbones.base import Backbone

FUSABLE_KINDS = ("moe", "lora", "subject")


@dataclass
class LoraSource:
    """A LoRA ready for fusion: its layers, an identity (to tell two sides apart) and a label."""

    layers: dict[str, LoraLayer]
    identity: tuple[str, str | None]
    label: str



def record_layers(library: StyleLibrary, record: StyleRecord, backbone: Backbone) -> LoraSource:
    """The LoRA of a library record, checked against ``backbone``."""
    if record.backbone != backbone.name:
        raise InputError(f"{record.name!r} was made for {record.backbone}, not {backbone.name}; load that model")
    if record.adapter.kind not in FUSABLE_KINDS:
        raise InputError(f"{record.name!r} is stored as a {record.adapter.kind!r} adapter, which fusion cannot read")
    adapter_file = library.adapter_path(record)
    identity = (record.adapter.sha256, record.expert_key)
    if record.adapter.kind != "moe":
        return LoraSource(read_lora_file(adapter_file, backbone), identity, repr(record.name))
    with tempfile.TemporaryDirectory(prefix="atelier-fuse-") as folder:
        exported = Path(folder) / "style.safetensors"
        adapter = MoELoraAdapter.load(adapter_file, backbone)
        try:
            export_style_lora(adapter, record.expert_key, exported, title=record.name, trigger=record.trigger,
                              architecture=architecture_of(backbone), description=record.description)
        finally:
            adapter.remove()
        return LoraSource(read_lora_file(exported, backbone), identity, repr(record.name))


def file_layers(path: str | Path, backbone: Backbone) -> LoraSource:
    """The LoRA of a .safetensors file, checked against ``backbone``."""
    path = Path(path).expanduser()
    if path.suffix.lower() != ".safetensors":
        raise InputError(f"{path.name}: LoRAs are read from .safetensors files only; pickled .ckpt/.pt/.bin files are not read")
    return LoraSource(read_lora_file(path, backbone), (sha256_of(path)[0], None), str(path))
