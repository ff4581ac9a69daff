"""Generating with a subject: the prompt a subject is trained and sampled under, and sampling
with a library subject's LoRA folded into the backbone."""

from __future__ import annotations

from PIL import Image

from engine.adapters.lora.files import read_lora_file
from engine.adapters.lora.patch import applied_lora
from engine.core.errors import InputError
from engine.library import StyleLibrary, StyleRecord
from engine.models.backbones.base import Backbone
from engine.models.editing import PreviewCallback, generate_image
from engine.models.sampling.sampler import SamplerSettings
from engine.training.subject.lora import KIND


def takes_text(backbone: Backbone) -> bool:
    """Whether ``backbone`` has a text encoder (any prompt), rather than a fixed instruction set."""
    return backbone.prompt_choices() is None


def subject_prompt(backbone: Backbone, trigger: str) -> str:
    """The prompt a subject is trained and generated under: the trigger on a backbone with a text
    encoder, and the generation default ``""`` on the embedded model, whose fixed instructions
    cannot hold a new word (see :mod:`engine.training.subject.trainer`)."""
    return trigger if takes_text(backbone) else ""


def subject_record(library: StyleLibrary, name: str, backbone: Backbone) -> StyleRecord:
    """The library subject ``name``; InputError for a style, or a subject of another backbone."""
    record = library.get_style(name)
    if record.adapter.kind != KIND:
        raise InputError(f"{record.name!r} is a style, not a subject; edit photos with it instead, or pick a subject")
    if record.backbone != backbone.name:
        raise InputError(f"subject {record.name!r} was trained for {record.backbone}; load that model to generate with it")
    return record


def generate_subject(backbone: Backbone, library: StyleLibrary, name: str, size: tuple[int, int] | None = None,
                     settings: SamplerSettings | None = None, prompt: str | None = None,
                     callback: PreviewCallback | None = None) -> Image.Image:
    """Generate the library subject ``name`` with its LoRA folded into ``backbone`` (restored after).

    ``size`` defaults to the backbone's native square; ``prompt`` to the subject's own prompt
    (its trigger on a text backbone). On the embedded model any prompt but ``""`` is refused,
    since generation there has the one default condition.
    """
    record = subject_record(library, name, backbone)
    if prompt is None:
        prompt = subject_prompt(backbone, record.trigger)
    elif prompt and not takes_text(backbone):
        raise InputError(f"{backbone.name} generates under its one default condition; leave the prompt empty")
    side = backbone.native_resolution
    layers = read_lora_file(library.adapter_path(record), backbone)
    with applied_lora(backbone, layers):
        return generate_image(backbone, size or (side, side), settings or SamplerSettings(), prompt=prompt, callback=callback)
