"""The multi-style MoE LoRA as a whole: wrapping a backbone's layers, routing, folding, saving.

One adapter holds every style of a library's shared MoE LoRA. Styles are addressed by stable
expert keys (``"x3f9a0c1"``), never by position, so deleting one style leaves the others'
weights untouched.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from pathlib import Path
from typing import Iterator, Mapping

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from engine.adapters.lora.files import linear_layer_shapes
from engine.adapters.lora.surgery import replace_module
from engine.adapters.moe.config import INPUT_OUTPUT, TARGET_PRESETS, MoELoraConfig
from engine.adapters.moe.layer import MoELoraLinear, Routing
from engine.core.configuration import from_dict, to_dict
from engine.core.errors import InputError
from engine.core.files import atomic_path
from engine.models.backbones.base import Backbone

FORMAT = "atelier-moe-lora/1"


def target_layers(backbone: Backbone, targets: str) -> list[str]:
    """The backbone's adaptable layers that the target preset selects: block layers by name, then
    (``all+io``) the model's input and output layers that it has as linear layers."""
    preset = TARGET_PRESETS[targets]
    names = [name for name in backbone.adapter_targets()
             if name.split(".")[0] in preset["blocks"] and any(fragment in name for fragment in preset["fragments"])]
    if preset["input_output"]:
        shapes = linear_layer_shapes(backbone.transformer)  # lists a wrapped layer under its own name
        names += [name for name in INPUT_OUTPUT if name in shapes]
    return names


def new_expert_key() -> str:
    return "x" + uuid.uuid4().hex[:8]


class MoELoraAdapter:
    """Wraps the chosen linear layers of ``backbone.transformer`` in :class:`MoELoraLinear`."""

    def __init__(self, backbone: Backbone, config: MoELoraConfig) -> None:
        self.backbone_name = backbone.name
        self.config = config
        self.routing = Routing()
        self._last_mix: tuple[list[str], torch.Tensor] | None = None
        self.layers: dict[str, MoELoraLinear] = {}
        modules = dict(backbone.transformer.named_modules())
        names = target_layers(backbone, config.targets)
        if not names:
            raise InputError(f"the target preset {config.targets!r} selects no layer of {backbone.name}")
        for name in names:
            base = modules[name]
            if isinstance(base, MoELoraLinear):
                raise InputError(f"{name} is already wrapped by an adapter; remove it first")
            layer = MoELoraLinear(base, config, self.routing).to(base.weight.device)
            replace_module(backbone.transformer, name, layer)
            self.layers[name] = layer
        self.transformer = backbone.transformer

    # Styles ------------------------------------------------------------------------------
    @property
    def style_keys(self) -> list[str]:
        return list(next(iter(self.layers.values())).style_down.keys())

    def add_style(self, key: str | None = None) -> str:
        """Add a style expert everywhere (a zero update) and return its key."""
        key = key or new_expert_key()
        if key in self.style_keys:
            raise InputError(f"the adapter already has an expert {key!r}")
        for layer in self.layers.values():
            layer.add_style(key)
        return key

    def remove_style(self, key: str) -> None:
        """Delete one style's expert and router entry; nothing else changes."""
        self.check_keys([key])
        for layer in self.layers.values():
            layer.remove_style(key)
        self.routing.keys, self.routing.weights = [], None

    def check_keys(self, keys) -> None:
        unknown = [key for key in keys if key not in self.style_keys]
        if unknown:
            raise InputError(f"the adapter has no expert {', '.join(unknown)}; it has {', '.join(self.style_keys) or 'none'}")

    # Routing -----------------------------------------------------------------------------
    def route(self, mix: Mapping[str, float]) -> None:
        """Route every sample to one fixed mix of styles, e.g. ``{"x3f9a0c1": 1.0}``."""
        self.check_keys(mix)
        keys = list(mix)
        weights = torch.tensor([[float(mix[key]) for key in keys]])
        previous = self._last_mix
        if (previous is not None and previous[0] == keys and not previous[1].is_inference()
                and torch.equal(previous[1], weights)):
            # The same tensor again, so each layer's inference cache of its update factors
            # (keyed on this tensor) still holds; rebuilding them all is a measurable part of an
            # unfolded edit (BENCHMARKS.md, styles' cost at edit time).
            weights = previous[1]
        self._last_mix = (keys, weights)
        self.routing.keys = keys
        self.routing.weights = weights

    def route_batch(self, keys_per_sample: list[str]) -> None:
        """One style per sample (joint training on a mixed batch): one-hot weights ``(B, S)``."""
        self.check_keys(keys_per_sample)
        keys = sorted(set(keys_per_sample))
        self.routing.keys = keys
        self.routing.weights = torch.tensor([[1.0 if key == sample else 0.0 for key in keys] for sample in keys_per_sample])

    def clear_routing(self) -> None:
        """Switch the adapter off: the layers return the base output."""
        self.routing.keys, self.routing.weights = [], None

    def fold(self, mix: Mapping[str, float]) -> None:
        """Fold one style mix into the base weights until :meth:`unfold`: edits then cost
        exactly what a base edit costs."""
        if not self.config.foldable:
            raise InputError("this adapter routes by token and cannot be folded; edit unfolded")
        self.route(mix)
        for layer in self.layers.values():
            layer.fold()

    def unfold(self) -> None:
        """Restore the base weights and switch routing off."""
        for layer in self.layers.values():
            layer.unfold()
        self.clear_routing()

    @contextlib.contextmanager
    def folded(self, mix: Mapping[str, float]) -> Iterator[None]:
        """Within the block, the mix is folded into the base weights."""
        self.fold(mix)
        try:
            yield
        finally:
            self.unfold()

    # Parameters --------------------------------------------------------------------------
    def parameters(self, styles: list[str] | None = None, shared: bool = True) -> list[nn.Parameter]:
        """Trainable tensors: the given styles' experts and router entries (all if ``None``),
        plus the shared experts and token router when ``shared``."""
        keys = self.style_keys if styles is None else styles
        chosen = []
        for layer in self.layers.values():
            for key in keys:
                chosen += [layer.style_down[key], layer.style_up[key], layer.style_router[key]]
            if shared and self.config.num_shared_experts:
                chosen += [layer.shared_down, layer.shared_up]
                if layer.token_router is not None:
                    chosen.append(layer.token_router.weight)
        return chosen

    def balance_loss(self) -> torch.Tensor:
        losses = [layer.balance_loss() for layer in self.layers.values()]
        return torch.stack(losses).mean()

    def parameter_count(self, styles: list[str] | None = None) -> int:
        """Parameters of live (unmasked) components: a pruned rank-1 component does not count."""
        total = 0
        for layer in self.layers.values():
            per_component = layer.in_features + layer.out_features
            for key in self.style_keys if styles is None else styles:
                total += int(layer.style_mask[key].sum().item()) * per_component + layer.style_router[key].numel()
            total += int(layer.shared_mask.sum().item()) * per_component
            if layer.token_router is not None:
                total += layer.token_router.weight.numel()
        return total

    # Files -------------------------------------------------------------------------------
    def state_dict_tensors(self) -> Iterator[tuple[str, nn.Parameter]]:
        """The live adapter tensors by ``<layer>.<tensor>[.<style key>]`` (the base layers excluded)."""
        for name, layer in self.layers.items():
            for tensor_name, tensor in layer.named_parameters():
                if not tensor_name.startswith("base_layer."):
                    yield f"{name}.{tensor_name}", tensor

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Detached float32 copies of :meth:`state_dict_tensors`."""
        return {name: tensor.detach().to(torch.float32, copy=True) for name, tensor in self.state_dict_tensors()}

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        own = dict(self.state_dict())
        missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
        if missing or unexpected:
            raise InputError(f"adapter tensors do not match: missing {missing[:3]}, unexpected {unexpected[:3]}")
        with torch.no_grad():
            for name, tensor in self.state_dict_tensors():
                tensor.copy_(state[name])

    def save(self, path: str | Path, metadata: Mapping[str, str] | None = None) -> None:
        """Weights in safetensors, the config and style keys in its metadata; written atomically."""
        header = {"format": FORMAT, "backbone": self.backbone_name, "config": json.dumps(to_dict(self.config)),
                  "style_keys": json.dumps(self.style_keys), **(metadata or {})}
        with atomic_path(path) as temporary:
            save_file(self.state_dict(), temporary, metadata=header)

    @classmethod
    def load(cls, path: str | Path, backbone: Backbone) -> "MoELoraAdapter":
        """Wrap ``backbone`` with the adapter saved at ``path``."""
        path = Path(path)
        if not path.is_file():
            raise InputError(f"adapter file {path} not found")
        with safe_open(path, framework="pt") as handle:
            header = handle.metadata() or {}
            if header.get("format") != FORMAT:
                raise InputError(f"{path} is not an Atelier MoE LoRA ({FORMAT})")
            if header.get("backbone") != backbone.name:
                raise InputError(f"{path} was trained for {header.get('backbone')}, not {backbone.name}")
            state = {key: handle.get_tensor(key) for key in handle.keys()}
        adapter = cls(backbone, from_dict(MoELoraConfig, json.loads(header["config"])))
        for key in json.loads(header["style_keys"]):
            adapter.add_style(key)
        adapter.load_state_dict(state)
        return adapter

    def remove(self) -> None:
        """Put the original linear layers back (unfolding first)."""
        for name, layer in self.layers.items():
            layer.unfold()
            replace_module(self.transformer, name, layer.base_layer)
        self.layers = {}
