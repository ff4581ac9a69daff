"""A plain LoRA on a backbone's transformer, injected with peft, and its file.

LoRA (Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models") leaves every weight
``W`` ``(out, in)`` frozen and learns ``W x + (alpha / r) B A x`` with ``A`` ``(r, in)`` and ``B``
``(out, r)``; ``B`` starts at zero, so the untrained LoRA changes nothing. peft's
``inject_adapter_in_model`` wraps the chosen ``nn.Linear`` layers in place, and :meth:`remove`
puts the original layers back, so the backbone is exactly as it was afterwards.

The file is the diffusers/peft LoRA layout of :mod:`engine.adapters.lora.writing`:
``transformer.<module>.lora_A.weight`` ``(r, in)`` and ``transformer.<module>.lora_B.weight``
``(out, r)`` with the scale ``alpha / r`` folded into ``lora_B`` and ``lora_alpha == r`` in the
header's peft config, so every loader (Atelier's ``read_lora_file``, diffusers'
``load_lora_weights``, peft) applies exactly ``dW = (alpha / r) B A``.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Iterator, Mapping

import torch
from peft import LoraConfig, inject_adapter_in_model
from peft.tuners.lora import LoraLayer

from engine.adapters.moe.adapter import target_layers
from engine.adapters.lora.surgery import replace_module
from engine.adapters.lora.writing import architecture_of, check_lora_path, model_spec_entries, settings_entry, write_lora_file
from engine.core.errors import InputError
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
        path = check_lora_path(path)
        model_spec = model_spec_entries(title=title, trigger=trigger, architecture=architecture_of(self.backbone),
                                        description=description, title_hint="the subject's name")
        settings_json = settings_entry(training_settings)
        return write_lora_file(path, self.factors(), model_spec, {
            "atelier.backbone": self.backbone.name,
            "atelier.kind": KIND,
            "atelier.training_settings": settings_json,
        }, dtype)

    def remove(self) -> None:
        """Put the original linear layers back (idempotent)."""
        for name, layer in self.layers.items():
            if self.backbone.transformer.get_submodule(name) is layer:
                replace_module(self.backbone.transformer, name, layer.get_base_layer())
        if self.layers and not self._had_peft_config and hasattr(self.backbone.transformer, "peft_config"):
            del self.backbone.transformer.peft_config
        self.layers = {}
