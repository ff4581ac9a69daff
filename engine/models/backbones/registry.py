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


def compute_dtype(choice: str, styled: bool, spec: str = EMBEDDED) -> torch.dtype:
    """The dtype for a ``--dtype`` choice with the model ``spec``. ``auto`` is float32 where styles
    are folded into the weights or trained, which bfloat16 has not been measured for; for plain
    edits it is bfloat16 where that was measured faster: for an embedded model, when its model
    card's evaluation (``metrics.json``) timed bfloat16 edits below float32 ones (version 1: yes;
    version 2, whose convolutions run unfused in bfloat16 on CPU: no); for FLUX.1 Kontext always,
    as diffusers runs it."""
    if choice not in DTYPE_CHOICES:
        raise InputError(f"dtype must be one of {', '.join(DTYPE_CHOICES)}; got {choice!r}")
    if choice == "auto":
        return torch.bfloat16 if not styled and _bfloat16_is_faster(spec) else torch.float32
    return torch.float32 if choice == "float32" else torch.bfloat16


def _bfloat16_is_faster(spec: str) -> bool:
    from engine.models.backbones.embedded.backbone import ASSETS, EmbeddedBackbone

    folder = Path(ASSETS) if spec == EMBEDDED else Path(spec).expanduser()
    config = folder / "config.json"
    if not (config.is_file() and json.loads(config.read_text()).get("backbone") == EmbeddedBackbone.family):
        return True  # FLUX.1 Kontext (a pipeline folder or a hub id)
    metrics = folder / "metrics.json"
    if not metrics.is_file():
        return False
    measured = json.loads(metrics.read_text())
    try:
        return measured["identity_psnr_bf16"]["seconds_per_edit"] < measured["identity_psnr_fp32"]["seconds_per_edit"]
    except (KeyError, TypeError):
        return False


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
