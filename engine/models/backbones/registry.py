"""Choosing and loading a backbone from what the user names.

* ``"embedded"`` (the default): Atelier's own model shipped in ``assets/base``.
* A folder with ``config.json`` naming ``atelier-embedded``: another embedded model.
* A folder with ``model_index.json``, or a Hugging Face hub id: FLUX.1 Kontext through
  diffusers. A hub id is only looked up in the local cache unless ``allow_download`` is set.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from engine.core.errors import InputError
from engine.models.backbones.base import Backbone

EMBEDDED = "embedded"
DTYPE_CHOICES = ("auto", "float32", "bfloat16")


def compute_dtype(choice: str, styled: bool) -> torch.dtype:
    """The dtype for a ``--dtype`` choice. ``auto`` is bfloat16 for plain edits, where it is
    1.36x faster than float32 at equal identity PSNR (BENCHMARKS.md), and float32 where styles
    are folded into the weights or trained, which bfloat16 has not been measured for."""
    if choice not in DTYPE_CHOICES:
        raise InputError(f"dtype must be one of {', '.join(DTYPE_CHOICES)}; got {choice!r}")
    if choice == "auto":
        return torch.float32 if styled else torch.bfloat16
    return torch.float32 if choice == "float32" else torch.bfloat16


def load_backbone(spec: str = EMBEDDED, dtype: torch.dtype = torch.float32, allow_download: bool = False) -> Backbone:
    """Load the backbone ``spec`` names (see the module docstring)."""
    from engine.models.backbones.embedded.backbone import ASSETS, EmbeddedBackbone

    if spec == EMBEDDED:
        return EmbeddedBackbone.from_pretrained(ASSETS, dtype=dtype)
    path = Path(spec).expanduser()
    if path.is_dir():
        config = path / "config.json"
        if config.is_file() and json.loads(config.read_text()).get("backbone") == EmbeddedBackbone.family:
            return EmbeddedBackbone.from_pretrained(path, dtype=dtype)
        if (path / "model_index.json").is_file():
            from engine.models.backbones.kontext import KontextBackbone

            return KontextBackbone.from_pretrained(str(path), dtype=dtype, allow_download=False)
        raise InputError(f"{path} is neither an Atelier model folder (config.json) nor a diffusers pipeline (model_index.json)")
    if path.exists():
        raise InputError(f"{path} is a file; give a model folder, a hub id, or 'embedded'")
    if spec.count("/") == 1 and not spec.startswith((".", "/", "~")):
        from engine.models.backbones.kontext import KontextBackbone

        return KontextBackbone.from_pretrained(spec, dtype=dtype, allow_download=allow_download)
    raise InputError(f"no model at {spec!r}: give 'embedded', a model folder, or a hub id such as black-forest-labs/FLUX.1-Kontext-dev")
