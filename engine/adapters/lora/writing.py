"""Writing a LoRA as one safetensors file that diffusers, peft and Atelier's reader load.

Layout (the one :mod:`engine.adapters.lora.files` reads first): ``transformer.<module>.lora_A.weight``
``(r, in)`` and ``transformer.<module>.lora_B.weight`` ``(out, r)`` with the LoRA scale already
folded into ``lora_B``, and in the header diffusers' ``lora_adapter_metadata`` (peft's
``LoraConfig`` with ``lora_alpha == r`` for every module, so any loader's ``alpha / r`` is 1), the
SAI model spec entries (``modelspec.*``) and Atelier's own ``atelier.*`` entries. Both a style
exported from the MoE LoRA (:mod:`engine.adapters.moe.export`) and a subject LoRA
(:mod:`engine.training.subject.lora`) are written here.
"""

from __future__ import annotations

import collections
import json
from pathlib import Path
from typing import Any, Mapping

import torch
from safetensors.torch import save_file

from engine.core.errors import InputError
from engine.core.files import atomic_path
from engine.models.backbones.base import Backbone

# Key prefix of the transformer's weights in a diffusers pipeline LoRA (FluxLoraLoaderMixin's
# ``transformer_name``); diffusers also keeps only the metadata keys carrying it.
TRANSFORMER_PREFIX = "transformer"
# diffusers' safetensors header key for the peft LoraConfig (diffusers.loaders.lora_base.LORA_ADAPTER_METADATA_KEY).
LORA_ADAPTER_METADATA_KEY = "lora_adapter_metadata"
MODEL_SPEC_KEYS = {"title": "modelspec.title", "trigger": "modelspec.trigger_phrase",
                   "architecture": "modelspec.architecture", "description": "modelspec.description"}


def architecture_of(backbone: Backbone) -> str:
    """The ``modelspec.architecture`` a LoRA made for ``backbone`` names."""
    return backbone.name if backbone.name.startswith("atelier-embedded") else "flux-1-dev/lora"


def check_lora_path(path: str | Path) -> Path:
    """``path`` as a Path, refused unless it ends in ``.safetensors``."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise InputError(f"{path.name} must end in .safetensors; LoRAs are written as safetensors only")
    return path


def model_spec_entries(*, title: Any, trigger: Any, architecture: Any, description: Any,
                       title_hint: str = "e.g. the style's name") -> dict[str, str]:
    """The ``modelspec.*`` header entries; every value must be text, the title and architecture
    non-empty (``title_hint`` says what the title should be)."""
    values = {"title": title, "trigger": trigger, "architecture": architecture, "description": description}
    for name, value in values.items():
        if not isinstance(value, str):
            raise InputError(f"{name} must be text, not {type(value).__name__}")
    for name in ("title", "architecture"):
        if not values[name].strip():
            raise InputError(f"the LoRA's {name} is empty; give one ({title_hint})")
    return {MODEL_SPEC_KEYS[name]: value for name, value in values.items()}


def settings_entry(training_settings: Mapping[str, Any] | None) -> str:
    """``training_settings`` as the JSON of the ``atelier.training_settings`` header entry."""
    try:
        return json.dumps(dict(training_settings or {}), sort_keys=True)
    except (TypeError, ValueError) as error:
        raise InputError(f"training_settings must hold JSON values only ({error})") from error


def lora_config_metadata(ranks: Mapping[str, int]) -> dict[str, Any]:
    """The peft ``LoraConfig`` arguments for per-module ``ranks``, keyed as diffusers stores them.

    ``r`` is the most common rank; other modules get ``rank_pattern`` entries, and ``alpha`` mirrors
    the rank everywhere, so ``lora_alpha / r`` is 1 for every module. Pattern keys are anchored with
    ``^`` as diffusers' own ``load_lora_adapter`` anchors them (peft matches them as regular
    expressions against module names; the anchor stops ``proj_out`` matching ``blocks.0.proj_out``).
    Every key carries the ``transformer.`` prefix because diffusers' loader keeps only the metadata
    entries of the component it loads (``FluxLoraLoaderMixin`` then ``load_lora_adapter``).
    """
    common = collections.Counter(ranks.values()).most_common(1)[0][0]
    pattern = {f"^{name}": rank for name, rank in ranks.items() if rank != common}
    config = {
        "r": common,
        "lora_alpha": common,
        "rank_pattern": pattern,
        "alpha_pattern": dict(pattern),
        "target_modules": sorted(ranks),
        "use_dora": False,
        "lora_bias": False,
    }
    return {f"{TRANSFORMER_PREFIX}.{key}": value for key, value in config.items()}


def write_lora_file(path: Path, factors: Mapping[str, tuple[torch.Tensor, torch.Tensor]], model_spec: Mapping[str, str],
                    atelier: Mapping[str, str], dtype: torch.dtype = torch.float32) -> Path:
    """Write ``factors`` (module path -> ``(down (r, in), up (out, r))``, the scale folded into
    ``up``) to ``path`` atomically, with the peft config, the ``model_spec`` entries (from
    :func:`model_spec_entries`) and the ``atelier`` entries in the header; returns ``path``."""
    tensors = {}
    for name, (down, up) in factors.items():
        tensors[f"{TRANSFORMER_PREFIX}.{name}.lora_A.weight"] = down.to(dtype).contiguous()
        tensors[f"{TRANSFORMER_PREFIX}.{name}.lora_B.weight"] = up.to(dtype).contiguous()
    ranks = {name: down.shape[0] for name, (down, _) in factors.items()}
    header = {
        "format": "pt",
        LORA_ADAPTER_METADATA_KEY: json.dumps(lora_config_metadata(ranks), sort_keys=True),
        "modelspec.sai_model_spec": "1.0.0",
        **model_spec,
        **atelier,
    }
    with atomic_path(path) as temporary:
        save_file(tensors, temporary, metadata=header)
    return path
