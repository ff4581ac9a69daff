"""Reading LoRA files (Atelier's exports and external ones) into a plain per-layer form.

Every layer becomes a :class:`LoraLayer` ``(down (r, in), up (out, r), scale)`` with the update
``dW = scale * up @ down`` ``(out, in)``, whatever layout the file used:

* diffusers / peft: ``[transformer.]<module>.lora_A[.<adapter>].weight`` and ``lora_B``
  (also ``base_model.model.`` prefixed, and ``lora_down``/``lora_up`` under ``transformer.``).
  The scale is ``alpha / r`` from a ``<module>.alpha`` tensor, else from the peft ``LoraConfig`` in
  the header's ``lora_adapter_metadata`` (``lora_alpha``, ``rank_pattern``, ``alpha_pattern``,
  matched as peft matches them), else 1 (diffusers' convention: no alpha means ``alpha == r``).
* kohya: ``lora_unet_<module path, dots as underscores>.lora_down.weight`` / ``.lora_up.weight``
  with an optional ``.alpha`` (scale ``alpha / r``; ``alpha = r`` when absent, as kohya's scripts
  default it). Files in the original FLUX layout (``double_blocks``/``single_blocks``, fused qkv),
  the "mixture" ``lora_transformer_`` layout and ComfyUI's ``diffusion_model.`` keys go through
  diffusers' own converter (``_convert_kohya_flux_lora_to_diffusers``), which splits fused qkv
  projections and folds alpha into the weights (scale 1).

Every file is checked against the backbone: each module must be a linear layer of its transformer
with matching shapes, and every value finite. Text-encoder LoRA weights are refused rather than
dropped, since leaving them out would change what the LoRA does.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Mapping, NamedTuple

import torch
from diffusers.loaders.lora_conversion_utils import _convert_kohya_flux_lora_to_diffusers
from peft.utils.other import get_pattern_key
from safetensors import SafetensorError, safe_open
from torch import nn

from engine.core.errors import InputError
from engine.models.backbones.base import Backbone

# "<module>.lora_A.weight", "<module>.lora_A.default.weight" (peft's adapter name), "<module>.lora_down.weight".
WEIGHT_KEY = re.compile(r"(?P<module>.+?)\.(?P<part>lora_A|lora_B|lora_down|lora_up)(?:\.(?P<adapter>[^.]+))?\.weight")
ALPHA_KEY = re.compile(r"(?P<module>.+)\.alpha")
DOWN_PARTS, UP_PARTS = ("lora_A", "lora_down"), ("lora_B", "lora_up")
# Prefixes peft and diffusers put before a transformer's module paths.
DIFFUSERS_PREFIXES = ("base_model.model.", "transformer.")
# Module-name starts of kohya-style files (underscored paths, or ComfyUI's original FLUX names).
KOHYA_PREFIXES = ("lora_unet_", "lora_transformer_", "lora_te", "diffusion_model.", "text_encoders.")
TEXT_ENCODER_PREFIXES = ("text_encoder.", "text_encoder_2.", "lora_te", "text_encoders.")
# Layouts diffusers' FLUX converter understands (after "lora_unet_"): BFL's original module names.
BFL_NAMES = ("double_blocks_", "single_blocks_", "final_layer", "img_in", "txt_in", "time_in", "vector_in", "guidance_in")
EXAMPLES = 3


class LoraLayer(NamedTuple):
    """One layer of a LoRA: ``down`` ``(r, in)``, ``up`` ``(out, r)`` (float32) and the scale."""

    down: torch.Tensor
    up: torch.Tensor
    scale: float

    def delta(self) -> torch.Tensor:
        """The weight update ``scale * up @ down`` ``(out, in)``."""
        return self.scale * (self.up @ self.down)


def read_lora_file(path: str | Path, backbone: Backbone) -> dict[str, LoraLayer]:
    """The layers of a LoRA safetensors file, checked against ``backbone``'s transformer."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"LoRA file {path} not found")
    try:
        with safe_open(path, framework="pt") as handle:
            header = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    except (SafetensorError, OSError) as error:
        raise InputError(f"{path.name} is not a readable safetensors file ({error}); only .safetensors LoRAs are read") from error
    return read_lora_tensors(tensors, header, backbone, source=path.name)


def read_lora_tensors(
    tensors: Mapping[str, torch.Tensor], header: Mapping[str, str], backbone: Backbone, source: str = "the LoRA"
) -> dict[str, LoraLayer]:
    """:func:`read_lora_file` for tensors and a safetensors header already in memory."""
    if not tensors:
        raise InputError(f"{source} holds no tensors; pick a LoRA .safetensors file")
    shapes = linear_layer_shapes(backbone.transformer)
    weights, alphas = _group_keys(tensors, source)
    text_encoder = [module for module in weights if module.startswith(TEXT_ENCODER_PREFIXES)]
    if text_encoder:
        raise InputError(f"{source} also changes the text encoder ({_few(text_encoder)}), which Atelier does not apply; "
                         "use a LoRA trained on the transformer only")
    kohya = [module for module in weights if module.startswith(KOHYA_PREFIXES)]
    if kohya and len(kohya) < len(weights):
        raise InputError(f"{source} mixes kohya keys ({_few(kohya)}) with diffusers keys; save it in one layout")
    if kohya:
        layers = _read_kohya(tensors, weights, alphas, shapes, source)
    else:
        layers = _read_diffusers(weights, alphas, header, source)
    check_lora_layers(layers, shapes, source)
    return layers


def lora_delta(layers: Mapping[str, LoraLayer]) -> dict[str, torch.Tensor]:
    """Each layer's weight update ``dW`` ``(out, in)``, by module path (for fusing into a base)."""
    return {module: layer.delta() for module, layer in layers.items()}


def linear_layer_shapes(transformer: nn.Module) -> dict[str, tuple[int, int]]:
    """``(out, in)`` of every linear layer of ``transformer`` by module path.

    A layer wrapped by an adapter (Atelier's or peft's: a module with a linear ``base_layer``) is
    listed under the wrapper's name and the wrapper's own modules (LoRA factors, a token router)
    are skipped, so the answer does not depend on which adapters are installed.
    """
    shapes: dict[str, tuple[int, int]] = {}
    wrapper_prefix = None
    for name, module in transformer.named_modules():
        # named_modules walks depth-first, so a wrapper's descendants follow it directly.
        if wrapper_prefix is not None and name.startswith(wrapper_prefix):
            continue
        base = getattr(module, "base_layer", None)
        if isinstance(base, nn.Linear):
            shapes[name] = (base.out_features, base.in_features)
            wrapper_prefix = f"{name}."
        elif isinstance(module, nn.Linear):
            shapes[name] = (module.out_features, module.in_features)
    return shapes


def check_lora_layers(layers: Mapping[str, LoraLayer], shapes: Mapping[str, tuple[int, int]], source: str) -> None:
    """InputError unless every layer names a linear layer in ``shapes``, fits its ``(out, in)``, and is finite."""
    if not layers:
        raise InputError(f"{source} holds no LoRA weights; pick a LoRA .safetensors file")
    unknown = [module for module in layers if module not in shapes]
    if unknown:
        raise InputError(f"{source} has weights for {len(unknown)} layer(s) this model does not have ({_few(unknown)}); "
                         "it was made for another model")
    for module, layer in layers.items():
        down, up = layer.down, layer.up
        if down.ndim != 2 or up.ndim != 2 or down.shape[0] != up.shape[1]:
            raise InputError(f"{source}: {module} has down {tuple(down.shape)} and up {tuple(up.shape)}, "
                             "which are not the two factors of one LoRA")
        out_features, in_features = shapes[module]
        if (up.shape[0], down.shape[1]) != (out_features, in_features):
            raise InputError(f"{source}: {module} has down {tuple(down.shape)} and up {tuple(up.shape)} but the layer is "
                             f"{out_features} x {in_features}; the LoRA was made for another model")
        if not (torch.isfinite(down).all() and torch.isfinite(up).all() and math.isfinite(layer.scale)):
            raise InputError(f"{source}: the weights of {module} contain NaN or infinite values; the file is damaged "
                             "or its training diverged")


# Key grouping --------------------------------------------------------------------------------
def _group_keys(tensors: Mapping[str, torch.Tensor], source: str):
    """``{module: {"down": t, "up": t}}`` and ``{module: alpha}``, or InputError for other tensors."""
    weights: dict[str, dict[str, torch.Tensor]] = {}
    alphas: dict[str, torch.Tensor] = {}
    adapters, unreadable = set(), []
    for key, tensor in tensors.items():
        weight, alpha = WEIGHT_KEY.fullmatch(key), ALPHA_KEY.fullmatch(key)
        if weight:
            if tensor.ndim != 2 or 0 in tensor.shape:
                raise InputError(f"{source}: {key} has shape {tuple(tensor.shape)}, not a matrix; only LoRAs of linear "
                                 "layers are read")
            side = "down" if weight["part"] in DOWN_PARTS else "up"
            weights.setdefault(weight["module"], {})[side] = tensor
            adapters.add(weight["adapter"])
        elif alpha:
            alphas[alpha["module"]] = tensor
        else:
            unreadable.append(key)
    if unreadable:
        raise InputError(f"{source} has tensors that are not LoRA factors ({_few(unreadable)}); only plain LoRA files "
                         "(lora_A/lora_B or lora_down/lora_up, no DoRA or LoKr) are read")
    if len(adapters) > 1:
        raise InputError(f"{source} holds several peft adapters ({_few(sorted(map(str, adapters)))}); save one adapter per file")
    incomplete = [module for module, sides in weights.items() if len(sides) != 2]
    if incomplete:
        raise InputError(f"{source} has only one of the two LoRA factors for {_few(incomplete)}; the file is incomplete")
    stray = [module for module in alphas if module not in weights]
    if stray:
        raise InputError(f"{source} has an alpha but no weights for {_few(stray)}; the file is incomplete")
    return weights, alphas


# diffusers / peft layout ---------------------------------------------------------------------
def _read_diffusers(weights, alphas, header: Mapping[str, str], source: str) -> dict[str, LoraLayer]:
    config = _lora_config(header, source)
    if alphas and config is not None:
        raise InputError(f"{source} has both alpha tensors and a LoRA config in its header, so its scale is ambiguous")
    layers = {}
    for module, sides in weights.items():
        name = _strip_prefixes(module)
        if name in layers:
            raise InputError(f"{source} has two sets of weights for {name}; keep one")
        down, up = sides["down"].float(), sides["up"].float()
        rank = down.shape[0]
        if module in alphas:
            scale = float(alphas[module]) / rank
        elif config is not None:
            scale = _config_scale(config, name, rank, source)
        else:
            scale = 1.0
        layers[name] = LoraLayer(down, up, scale)
    return layers


def _strip_prefixes(module: str) -> str:
    for prefix in DIFFUSERS_PREFIXES:
        module = module.removeprefix(prefix)
    return module


def _lora_config(header: Mapping[str, str], source: str) -> dict | None:
    """The transformer's peft LoraConfig arguments from diffusers' ``lora_adapter_metadata``, if any.

    diffusers stores them with the component's prefix (``"transformer.r"``); an unprefixed dict with
    an ``r`` (peft's own ``adapter_config.json`` form) is read as is.
    """
    raw = header.get("lora_adapter_metadata")
    if not raw:
        return None
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as error:
        raise InputError(f"{source}: lora_adapter_metadata in the header is not valid JSON ({error.msg})") from error
    if not isinstance(config, dict):
        raise InputError(f"{source}: lora_adapter_metadata in the header is not a JSON object")
    prefixed = {key.removeprefix("transformer."): value for key, value in config.items() if key.startswith("transformer.")}
    if prefixed:
        return prefixed
    return config if "r" in config else None


def _config_scale(config: Mapping, module: str, rank: int, source: str) -> float:
    """peft's ``lora_alpha / r`` (``/ sqrt(r)`` with rsLoRA) for ``module``, patterns matched as peft does."""
    rank_pattern, alpha_pattern = config.get("rank_pattern") or {}, config.get("alpha_pattern") or {}
    # peft's LoraConfig defaults, for keys the header leaves out.
    configured_rank = rank_pattern.get(get_pattern_key(list(rank_pattern), module), config.get("r", 8))
    alpha = alpha_pattern.get(get_pattern_key(list(alpha_pattern), module), config.get("lora_alpha", 8))
    if configured_rank != rank:
        raise InputError(f"{source}: {module} has rank {rank} but the header's LoRA config says {configured_rank}; "
                         "the file is inconsistent")
    return float(alpha) / (math.sqrt(rank) if config.get("use_rslora") else rank)


# kohya layout --------------------------------------------------------------------------------
def _read_kohya(tensors, weights, alphas, shapes, source: str) -> dict[str, LoraLayer]:
    names = list(weights)
    if any(_needs_converter(name) for name in names):
        return _read_with_diffusers_converter(tensors, names, source)
    by_underscored: dict[str, str | None] = {}
    for module in shapes:
        key = "lora_unet_" + module.replace(".", "_")
        # Two modules whose paths differ only in "." versus "_" cannot be told apart here.
        by_underscored[key] = None if key in by_underscored else module
    unknown = [name for name in names if by_underscored.get(name) is None]
    if unknown:
        raise InputError(f"{source} has weights for {len(unknown)} layer(s) this model does not have ({_few(unknown)}); "
                         "it was made for another model")
    layers = {}
    for name in names:
        down, up = weights[name]["down"].float(), weights[name]["up"].float()
        rank = down.shape[0]
        # kohya's default alpha is the rank (scale 1), as diffusers' converter assumes too.
        alpha = float(alphas[name]) if name in alphas else float(rank)
        layers[by_underscored[name]] = LoraLayer(down, up, alpha / rank)
    return layers


def _needs_converter(name: str) -> bool:
    """True for the layouts diffusers' kohya FLUX converter knows and a plain rename does not."""
    if name.startswith(("lora_transformer_", "diffusion_model.")):
        return True
    return name.startswith("lora_unet_") and name.removeprefix("lora_unet_").startswith(BFL_NAMES)


def _read_with_diffusers_converter(tensors, names: list[str], source: str) -> dict[str, LoraLayer]:
    """Convert with diffusers' ``_convert_kohya_flux_lora_to_diffusers`` (alpha folded in), then read
    the diffusers layout. A fused qkv gives three layers, a single block's ``linear1`` four."""
    try:
        converted = _convert_kohya_flux_lora_to_diffusers(dict(tensors))
    except (ValueError, KeyError, AssertionError, NotImplementedError, RuntimeError) as error:
        # The converter reports layouts it cannot handle with asserts and KeyErrors as well as ValueErrors.
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise InputError(f"{source} is a kohya FLUX LoRA that diffusers cannot convert for this model ({message})") from error
    expected = 0
    for name in names:
        flat = name.replace(".", "_")
        expected += 3 if flat.endswith("_attn_qkv") else 4 if flat.endswith("_linear1") else 1
    weights, alphas = _group_keys(converted, source)
    if len(weights) < expected:
        raise InputError(f"diffusers converted only {len(weights)} of the {expected} layers in {source}; "
                         "the file has layers it does not know")
    return _read_diffusers(weights, alphas, {}, source)


def _few(items) -> str:
    items = list(items)
    shown = ", ".join(str(item) for item in items[:EXAMPLES])
    return shown + (f" and {len(items) - EXAMPLES} more" if len(items) > EXAMPLES else "")
