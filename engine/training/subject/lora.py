"""A plain LoRA on a backbone's transformer, injected with peft, and its file.

LoRA (Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models") leaves every weight
``W`` ``(out, in)`` frozen and learns ``W x + (alpha / r) B A x`` with ``A`` ``(r, in)`` and ``B``
``(out, r)``; ``B`` starts at zero, so the untrained LoRA changes nothing. peft's
``inject_adapter_in_model`` wraps the chosen ``nn.Linear`` layers in place, and :meth:`remove`
puts the original layers back, so the backbone is exactly as it was afterwards.

The file is the diffusers/peft LoRA layout :mod:`engine.adapters.moe.export` writes:
``transformer.<module>.lora_A.weight`` ``(r, in)`` and ``transformer.<module>.lora_B.weight``
``(out, r)`` with the scale ``alpha / r`` folded into ``lora_B`` and ``lora_alpha == r`` in the
header's peft config, so every loader (Atelier's ``read_lora_file``, diffusers'
``load_lora_weights``, peft) applies exactly ``dW = (alpha / r) B A``.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any, Iterator, Mapping

import torch
from peft import LoraConfig, inject_adapter_in_model
from peft.tuners.lora import LoraLayer
from safetensors.torch import save_file

from engine.adapters.moe.adapter import target_layers
from engine.adapters.moe.export import LORA_ADAPTER_METADATA_KEY, TRANSFORMER_PREFIX, architecture_of, lora_config_metadata
from engine.core.errors import InputError
from engine.core.files import atomic_path
from engine.models.backbones.base import Backbone

ADAPTER_NAME = "subject"
KIND = "subject"



class SubjectLora:
    """A rank-``rank`` LoRA on the ``targets`` preset's linear layers of ``backbone.transformer``.

    ``seed`` fixes ``A``'s random initialisation (peft's Kaiming-uniform) without touching the
    global random state.
    """

    def __init__(self, backbone: Backbone, rank: int, alpha: float, targets: str, seed: int = 0) -> None:
        self.backbone = backbone
        self.rank, self.alpha = rank, alpha
        names = target_layers(backbone, targets)
        if not names:
            raise InputError(f"the target preset {targets!r} selects no layer of {backbone.name}")
        modules = dict(backbone.transformer.named_modules())
        wrapped = [name for name in names if not isinstance(modules[name], torch.nn.Linear)]
        if wrapped:
            raise InputError(f"{wrapped[0]} is already wrapped by an adapter; remove it before training a subject")
        config = LoraConfig(r=rank, lora_alpha=alpha, target_modules=names, lora_dropout=0.0, bias="none",
                            init_lora_weights=True)
        # peft leaves its config on the model; remove() deletes it again unless it was there before.
        self._had_peft_config = hasattr(backbone.transformer, "peft_config")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            inject_adapter_in_model(config, backbone.transformer, adapter_name=ADAPTER_NAME)
        modules = dict(backbone.transformer.named_modules())
        self.layers: dict[str, LoraLayer] = {name: modules[name] for name in names}
        missed = [name for name, layer in self.layers.items() if not isinstance(layer, LoraLayer)]
        if missed:  # peft matched the names differently from how they were meant
            self.remove()
            raise RuntimeError(f"peft did not wrap {missed[:3]}")

    @property
    def scale(self) -> float:
        return self.alpha / self.rank

    def parameters(self) -> dict[str, torch.nn.Parameter]:
        """The trainable factors by name: ``<module>.lora_A`` ``(r, in)`` and ``<module>.lora_B`` ``(out, r)``."""
        named = {}
        for name, layer in self.layers.items():
            named[f"{name}.lora_A"] = layer.lora_A[ADAPTER_NAME].weight
            named[f"{name}.lora_B"] = layer.lora_B[ADAPTER_NAME].weight
        return named

    def factors(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """``{module: (down (r, in), up (out, r))}`` in float32 with the scale folded into ``up``."""
        with torch.no_grad():
            return {name: (layer.lora_A[ADAPTER_NAME].weight.detach().float().clone(),
                           self.scale * layer.lora_B[ADAPTER_NAME].weight.detach().float())
                    for name, layer in self.layers.items()}

    @contextlib.contextmanager
    def disabled(self) -> Iterator[None]:
        """Run the base model for the block (the LoRA's layers pass their input to the base layer only)."""
        # peft's enable_adapters also switches the factors' requires_grad; keep the caller's.
        trainable = {name: tensor.requires_grad for name, tensor in self.parameters().items()}
        for layer in self.layers.values():
            layer.enable_adapters(False)
        try:
            yield
        finally:
            for layer in self.layers.values():
                layer.enable_adapters(True)
            for name, tensor in self.parameters().items():
                tensor.requires_grad_(trainable[name])

    def save(self, path: str | Path, *, title: str, trigger: str, description: str = "",
             training_settings: Mapping[str, Any] | None = None, dtype: torch.dtype = torch.float32) -> Path:
        """Write the LoRA as one diffusers/peft safetensors file (atomically); returns its path.

        The header holds peft's ``LoraConfig`` (``lora_adapter_metadata``), the SAI model spec
        entries ``modelspec.title``, ``modelspec.trigger_phrase``, ``modelspec.description`` and
        ``modelspec.architecture``, and ``atelier.training_settings`` (JSON).
        """
        path = Path(path)
        if path.suffix != ".safetensors":
            raise InputError(f"{path.name} must end in .safetensors; LoRAs are written as safetensors only")
        if not title.strip():
            raise InputError("the LoRA's title is empty; give one (the subject's name)")
        try:
            settings_json = json.dumps(dict(training_settings or {}), sort_keys=True)
        except (TypeError, ValueError) as error:
            raise InputError(f"training_settings must hold JSON values only ({error})") from error
        tensors = {}
        for name, (down, up) in self.factors().items():
            tensors[f"{TRANSFORMER_PREFIX}.{name}.lora_A.weight"] = down.to(dtype).contiguous()
            tensors[f"{TRANSFORMER_PREFIX}.{name}.lora_B.weight"] = up.to(dtype).contiguous()
        header = {
            "format": "pt",
            LORA_ADAPTER_METADATA_KEY: json.dumps(lora_config_metadata({name: self.rank for name in self.layers}), sort_keys=True),
            "modelspec.sai_model_spec": "1.0.0",
            "modelspec.title": title,
            "modelspec.architecture": architecture_of(self.backbone),
            "modelspec.trigger_phrase": trigger,
            "modelspec.description": description,
            "atelier.backbone": self.backbone.name,
            "atelier.kind": KIND,
            "atelier.training_settings": settings_json,
        }
        with atomic_path(path) as temporary:
            save_file(tensors, temporary, metadata=header)
        return path

    def remove(self) -> None:
        """Put the original linear layers back (idempotent)."""
        modules = dict(self.backbone.transformer.named_modules())
        for name, layer in self.layers.items():
            parent_name, _, child_name = name.rpartition(".")
            parent = modules[parent_name] if parent_name else self.backbone.transformer
            if getattr(parent, child_name) is layer:
                setattr(parent, child_name, layer.get_base_layer())
        if self.layers and not self._had_peft_config and hasattr(self.backbone.transformer, "peft_config"):
            del self.backbone.transformer.peft_config
        self.layers = {}
