"""The one contract every backbone implements.

Samplers, trainers, adapters, fusion and export are written against :class:`Backbone` only, so
the embedded model and FLUX.1 Kontext are interchangeable.

Conventions (rectified flow, as in FLUX and SD3; Liu et al. 2022, "Flow Straight and Fast"):

* Images are float tensors ``(B, 3, H, W)`` in ``[-1, 1]``.
* Latents are spatial tensors ``(B, C, h, w)``; the backbone packs them into tokens itself.
* Time ``t`` runs from 1 (pure noise) to 0 (data). A noisy sample is
  ``x_t = (1 - t) * x_0 + t * noise`` and the velocity is ``v = noise - x_0``, so
  ``x_0 = x_t - t * v``.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any

import torch
from diffusers import FlowMatchEulerDiscreteScheduler
from torch import nn


@dataclass
class Condition:
    """What a backbone is conditioned on besides the image: an encoded prompt or instruction.

    ``tensors`` are backbone-specific (prompt embeddings for Kontext, instruction ids for the
    embedded model) with the batch first; ``prompts`` keeps the text for metadata and logs.
    """

    prompts: list[str]
    tensors: dict[str, torch.Tensor]

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> "Condition":
        moved = {}
        for key, value in self.tensors.items():
            moved[key] = value.to(device, dtype) if dtype is not None and value.is_floating_point() else value.to(device)
        return Condition(self.prompts, moved)

    def repeat(self, times: int) -> "Condition":
        """The same condition for a batch ``times`` as large (used by batched training)."""
        return Condition(self.prompts * times, {k: v.repeat_interleave(times, dim=0) for k, v in self.tensors.items()})


class Backbone(abc.ABC):
    """An image-editing flow model that adapters can wrap.

    Attributes:
        name: a short id stored with adapters, so one trained for another backbone is refused.
        transformer: the ``nn.Module`` whose linear layers adapters wrap (its module names follow
            diffusers' ``FluxTransformer2DModel``: ``transformer_blocks.0.attn.to_q`` ...).
        native_resolution: the side, in pixels, of the square whose area the model works at.
        resolution_multiple: image sides must be multiples of this.
        default_steps: sampling steps of an edit when the caller gives none.
        generation_steps: sampling steps of a generation (no source) when the caller gives none;
            0 uses ``default_steps``.
        generation_shift: the timestep shift of a generation's schedule; 0 uses ``scheduler_shift``.
    """

    name: str
    transformer: nn.Module
    native_resolution: int
    resolution_multiple: int
    default_steps: int = 10
    scheduler_shift: float = 1.0
    # A generation walks from pure noise and decides its layout and colours at high noise, where an
    # edit already has the photo: a backbone may give it more steps and a larger shift.
    generation_steps: int = 0
    generation_shift: float = 0.0
    # Scale of an edit's starting noise when the caller gives none (SamplerSettings.noise_scale):
    # 1 is standard sampling; a backbone lowers it only where a measurement says edits gain.
    edit_noise_scale: float = 1.0
    # Training draws t from [min_timestep, 1]: a backbone that converts an x_0 prediction to a
    # velocity divides by t and floors it there.
    min_timestep: float = 0.0

    @property
    def device(self) -> torch.device:
        return next(self.transformer.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        """The dtype the transformer computes in."""
        return next(self.transformer.parameters()).dtype

    @abc.abstractmethod
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Images ``(B, 3, H, W)`` in ``[-1, 1]`` to latents ``(B, C, h, w)``."""

    @abc.abstractmethod
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents ``(B, C, h, w)`` to images ``(B, 3, H, W)`` in ``[-1, 1]`` (not clamped)."""

    @abc.abstractmethod
    def encode_prompt(self, prompts: list[str]) -> Condition:
        """Encode one prompt per batch item. An empty prompt means the backbone's default."""

    @abc.abstractmethod
    def predict_velocity(
        self,
        noisy: torch.Tensor,
        timestep: torch.Tensor,
        source: torch.Tensor | None,
        condition: Condition,
        **transformer_kwargs: Any,
    ) -> torch.Tensor:
        """Predict the flow velocity ``noise - x_0``.

        Args:
            noisy: latents ``x_t`` of shape ``(B, C, h, w)``.
            timestep: ``t`` in ``[0, 1]``, shape ``(B,)``.
            source: latents of the image to edit, ``(B, C, h, w)``, or ``None`` for generation.
            condition: from :meth:`encode_prompt`, batch ``B``.
            transformer_kwargs: passed to the transformer call (``joint_attention_kwargs``).

        Returns:
            The velocity, shape ``(B, C, h, w)``, in the dtype of ``noisy``.
        """

    @abc.abstractmethod
    def adapter_targets(self) -> list[str]:
        """Qualified names of the linear layers in :attr:`transformer` that adapters may wrap."""

    def prompt_choices(self) -> list[str] | None:
        """The prompts this backbone understands when they form a fixed set (the embedded
        model's instructions), or ``None`` when any text goes (a text encoder)."""
        return None

    def steps_for(self, edit: bool) -> int:
        """Sampling steps when the caller gives none: ``default_steps`` for an edit, and
        ``generation_steps`` (where set) for a generation."""
        return self.default_steps if edit or not self.generation_steps else self.generation_steps

    def make_scheduler(self, edit: bool = True) -> FlowMatchEulerDiscreteScheduler:
        """The flow-matching scheduler whose sigmas the sampler walks: shifted by
        ``scheduler_shift`` for an edit and ``generation_shift`` (where set) for a generation
        (``sigma' = shift * sigma / (1 + (shift - 1) * sigma)``, Esser et al. 2024)."""
        shift = self.scheduler_shift if edit or not self.generation_shift else self.generation_shift
        return FlowMatchEulerDiscreteScheduler(shift=shift)

    def schedule_kwargs(self, latents_shape: torch.Size) -> dict[str, Any]:
        """Extra ``set_timesteps`` arguments for a latent shape (FLUX's resolution-dependent ``mu``)."""
        return {}

    def latent_noise(self, latents_shape: torch.Size, generator: torch.Generator) -> torch.Tensor:
        """Standard normal noise of a latent shape, drawn on the CPU so seeds match across devices."""
        return torch.randn(latents_shape, generator=generator, dtype=torch.float32).to(self.device)

    def fit_size(self, width: int, height: int, resolution: int | None = None) -> tuple[int, int]:
        """The working size for a photo: the area of a ``resolution`` square (default the native
        resolution), the photo's aspect ratio, sides rounded to :attr:`resolution_multiple`."""
        multiple = self.resolution_multiple
        side = resolution or self.native_resolution
        scale = (side**2 / (width * height)) ** 0.5
        new_width = max(multiple, round(width * scale / multiple) * multiple)
        new_height = max(multiple, round(height * scale / multiple) * multiple)
        return new_width, new_height


# Module-name fragments of the linear layers adapters wrap in a FLUX-style transformer block:
# attention projections of both streams, both feed-forwards, and the single blocks' MLP and output.
ADAPTABLE_LAYERS = ("attn.to_q", "attn.to_k", "attn.to_v", "attn.to_out.0", "attn.add_q_proj", "attn.add_k_proj",
                    "attn.add_v_proj", "attn.to_add_out", "ff.net", "ff_context.net", "proj_mlp", "proj_out")


def linear_layer_names(module: nn.Module, include: tuple[str, ...] = ADAPTABLE_LAYERS) -> list[str]:
    """Names of the linear layers in transformer blocks whose qualified name contains one of
    ``include``'s substrings (the layers FLUX LoRAs wrap).

    A layer an adapter already wraps (peft's or Atelier's: a module with a ``base_layer``) is
    listed under its own name, and the adapter's inner modules are not listed, so the answer is
    the same before and after wrapping.
    """
    names, wrapped = [], []
    for name, child in module.named_modules():
        parts = name.split(".")
        if any(name.startswith(prefix) for prefix in wrapped) or any(part.startswith("lora_") for part in parts):
            continue  # inside an adapter: its base layer, experts and router are not layers of the model
        if isinstance(getattr(child, "base_layer", None), nn.Module):
            wrapped.append(name + ".")
        is_linear = isinstance(child, nn.Linear) or isinstance(getattr(child, "base_layer", None), nn.Linear)
        if not is_linear or parts[0] not in ("transformer_blocks", "single_transformer_blocks"):
            continue
        if any(part in name for part in include):
            names.append(name)
    return names
