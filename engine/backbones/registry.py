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

from engine.backbones.base import Backbone
from engine.errors import InputError

EMBEDDED = "embedded"


def load_backbone(spec: str = EMBEDDED, dtype: torch.dtype = torch.float32, allow_download: bool = False) -> Backbone:
    """Load the backbone ``spec`` names (see the module docstring)."""
    from engine.backbones.embedded.backbone import ASSETS, EmbeddedBackbone

    if spec == EMBEDDED:
        return EmbeddedBackbone.from_pretrained(ASSETS, dtype=dtype)
    path = Path(spec).expanduser()
    if path.is_dir():
        config = path / "config.json"
        if config.is_file() and json.loads(config.read_text()).get("backbone") == EmbeddedBackbone.name:
            return EmbeddedBackbone.from_pretrained(path, dtype=dtype)
        if (path / "model_index.json").is_file():
            from engine.backbones.kontext import KontextBackbone

            return KontextBackbone.from_pretrained(str(path), dtype=dtype, allow_download=False)
        raise InputError(f"{path} is neither an Atelier model folder (config.json) nor a diffusers pipeline (model_index.json)")
    if path.exists():
        raise InputError(f"{path} is a file; give a model folder, a hub id, or 'embedded'")
    if spec.count("/") == 1 and not spec.startswith((".", "/", "~")):
        from engine.backbones.kontext import KontextBackbone

        return KontextBackbone.from_pretrained(spec, dtype=dtype, allow_download=allow_download)
    raise InputError(f"no model at {spec!r}: give 'embedded', a model folder, or a hub id such as black-forest-labs/FLUX.1-Kontext-dev")
