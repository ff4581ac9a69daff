"""FLUX.1 Kontext behind the :class:`~engine.models.backbones.base.Backbone` contract.

FLUX.1 Kontext (Black Forest Labs 2025, "FLUX.1 Kontext: Flow Matching for In-Context Image
Generation and Editing in Latent Space", arXiv 2506.15742) edits by in-context conditioning: the
source image's latents are packed into tokens and appended after the noisy tokens in the image
stream of the FLUX MM-DiT. Their RoPE position ids carry 1 in the first coordinate instead of 0,
so the transformer tells the two images apart; only the first, noisy, tokens' outputs are the
velocity. This module reproduces that from the components of diffusers' ``FluxKontextPipeline``
(``prepare_latents`` and the denoising loop of ``__call__``) but keeps latents spatial
``(B, 16, h, w)`` so samplers and trainers stay backbone-agnostic.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxKontextPipeline, FluxTransformer2DModel
from diffusers.pipelines.flux.pipeline_flux_kontext import calculate_shift

from engine.core.configuration import from_dict, option, require
from engine.core.errors import InputError
from engine.models.backbones.base import ADAPTABLE_LAYERS, Backbone, Condition, linear_layer_names
from engine.models.backbones.patches import grid_positions, pack, unpack

# Optional file in a model folder with Atelier's settings for that model (see KontextSettings).
SETTINGS_FILE = "atelier_kontext.json"
# FLUX packs 2x2 latent patches into one token.
PACKING = 2
# Position ids' first coordinate: 0 for the tokens being denoised, 1 for the context image.
TARGET_INDEX, CONTEXT_INDEX = 0.0, 1.0


@dataclass
class KontextSettings:
    """How Atelier runs a Kontext model; the defaults are those of FLUX.1 Kontext [dev].

    A model folder may override them with ``atelier_kontext.json`` (tiny test models do).
    """

    native_resolution: int = option(1024, "Side in pixels of the square whose area photos are edited at.")
    guidance: float = option(2.5, "Embedded guidance scale for guidance-distilled models (Kontext [dev] uses 2.5).")
    max_sequence_length: int = option(512, "T5 prompt length in tokens; longer prompts are truncated (at most 512).")
    default_steps: int = option(28, "Sampling steps when the caller gives none.")

    def __post_init__(self) -> None:
        require(self.native_resolution > 0, "native_resolution must be a positive number of pixels")
        require(self.guidance >= 0, "guidance must not be negative")
        require(1 <= self.max_sequence_length <= 512, "max_sequence_length must lie between 1 and 512")
        require(1 <= self.default_steps <= 1000, "default_steps must lie between 1 and 1000")


def read_settings(spec: str) -> KontextSettings:
    """The settings file of a local model folder, or the defaults (hub ids, folders without one)."""
    path = Path(spec).expanduser() / SETTINGS_FILE
    if not path.is_file():
        return KontextSettings()
    try:
        values = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise InputError(f"{path} is not valid JSON ({error.msg}, line {error.lineno}); fix or delete it") from error
    return from_dict(KontextSettings, values)


def load_pipeline(spec: str, dtype: torch.dtype, allow_download: bool) -> FluxKontextPipeline:
    """``FluxKontextPipeline.from_pretrained`` with the failures a user can cause turned into
    :class:`InputError`. Nothing is downloaded unless ``allow_download``."""
    path = Path(spec).expanduser()
    if path.exists() and not (path / "model_index.json").is_file():
        raise InputError(f"{path} is not a diffusers pipeline folder (no model_index.json); give a folder saved with "
                         "FluxKontextPipeline.save_pretrained or a hub id such as black-forest-labs/FLUX.1-Kontext-dev")
    source = str(path) if path.exists() else spec
    try:
        pipeline = FluxKontextPipeline.from_pretrained(source, dtype=dtype, local_files_only=not allow_download)
    except (OSError, ValueError) as error:
        if path.exists():
            raise InputError(f"cannot load the Kontext pipeline in {path}: {first_line(error)}") from error
        if allow_download:
            raise InputError(f"cannot download {spec!r}: {first_line(error)}; check the hub id, your network and "
                             "that you accepted the model's licence (huggingface-cli login)") from error
        raise InputError(f"{spec!r} is not in the local Hugging Face cache; download it once (allow downloads, e.g. "
                         f"huggingface-cli download {spec}) or give a local pipeline folder") from error
    if not isinstance(pipeline.transformer, FluxTransformer2DModel) or not isinstance(pipeline.vae, AutoencoderKL):
        raise InputError(f"{spec} is not a FLUX pipeline (its transformer is {type(pipeline.transformer).__name__})")
    return pipeline


def first_line(error: BaseException) -> str:
    """The first line of an error's message (diffusers' messages run over several lines)."""
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


class KontextBackbone(Backbone):
    """FLUX.1 Kontext on diffusers' components (transformer, VAE, CLIP and T5 encoders).

    Latents are the VAE's, normalised as the pipeline does: ``(mean - shift) * scale``, shape
    ``(B, 16, H/8, W/8)`` for the real model. The transformer sees them as 2x2-packed tokens.
    """

    name = "flux-kontext"

    def __init__(self, pipeline: FluxKontextPipeline, settings: KontextSettings | None = None) -> None:
        settings = settings or KontextSettings()
        self.pipeline = pipeline
        self.settings = settings
        for component in (pipeline.transformer, pipeline.vae, pipeline.text_encoder, pipeline.text_encoder_2):
            component.eval().requires_grad_(False)
        self.transformer = pipeline.transformer
        self.vae = pipeline.vae
        self.latent_channels = self.vae.config.latent_channels
        require(self.transformer.config.in_channels == self.latent_channels * PACKING**2,
                f"the transformer takes {self.transformer.config.in_channels} channels but 2x2-packed VAE latents "
                f"have {self.latent_channels * PACKING**2}: the pipeline's components do not belong together")
        self.vae_scale_factor = pipeline.vae_scale_factor
        self.resolution_multiple = self.vae_scale_factor * PACKING
        require(settings.native_resolution % self.resolution_multiple == 0,
                f"native_resolution must be a multiple of {self.resolution_multiple} for this model")
        self.native_resolution = settings.native_resolution
        self.default_steps = settings.default_steps
        self.guidance = settings.guidance
        self.scheduler_shift = pipeline.scheduler.config.shift

    @classmethod
    def from_pretrained(
        cls,
        spec: str,
        dtype: torch.dtype = torch.float32,
        allow_download: bool = False,
        settings: KontextSettings | None = None,
    ) -> "KontextBackbone":
        """Load a saved pipeline folder or a hub id.

        Args:
            spec: a folder written by ``FluxKontextPipeline.save_pretrained`` or a hub id.
            dtype: dtype of every component (``torch.bfloat16`` for the real model on a GPU).
            allow_download: fetch a hub id that is not cached; otherwise only the cache is read.
            settings: overrides the folder's ``atelier_kontext.json`` and the defaults.
        """
        settings = settings or read_settings(spec)
        return cls(load_pipeline(spec, dtype, allow_download), settings)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Images ``(B, 3, H, W)`` in ``[-1, 1]`` to latents ``(B, C, H/f, W/f)`` (float32), from the
        mean of the VAE posterior as the pipeline's ``_encode_vae_image`` takes it."""
        height, width = images.shape[-2:]
        multiple = self.resolution_multiple
        if images.ndim != 4 or height % multiple or width % multiple:
            raise InputError(f"images of shape {tuple(images.shape)} cannot be encoded: sides must be multiples of "
                             f"{multiple} (resize with the backbone's fit_size)")
        posterior = self.vae.encode(images.to(self.vae.device, self.vae.dtype)).latent_dist
        config = self.vae.config
        return ((posterior.mode() - config.shift_factor) * config.scaling_factor).float()

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents ``(B, C, h, w)`` to images ``(B, 3, h*f, w*f)`` in ``[-1, 1]`` (float32, not clamped)."""
        config = self.vae.config
        scaled = latents.to(self.vae.device, self.vae.dtype) / config.scaling_factor + config.shift_factor
        return self.vae.decode(scaled, return_dict=False)[0].float()

    def encode_prompt(self, prompts: list[str]) -> Condition:
        """CLIP's pooled embedding ``(B, 768)`` and T5's sequence ``(B, L, 4096)`` per prompt (sizes of
        the real model), through the pipeline's ``encode_prompt``. An empty prompt is encoded as is."""
        if isinstance(prompts, str) or not prompts:
            raise ValueError("encode_prompt takes a non-empty list of prompts, one per batch item")
        # no_grad rather than inference_mode: the result must be usable in training graphs.
        with torch.no_grad():
            prompt_embeds, pooled_prompt_embeds, _ = self.pipeline.encode_prompt(
                prompt=list(prompts), device=self.device, max_sequence_length=self.settings.max_sequence_length
            )
        return Condition(list(prompts), {"prompt_embeds": prompt_embeds, "pooled_prompt_embeds": pooled_prompt_embeds})

    def predict_velocity(
        self,
        noisy: torch.Tensor,
        timestep: torch.Tensor,
        source: torch.Tensor | None,
        condition: Condition,
        **transformer_kwargs: Any,
    ) -> torch.Tensor:
        """The Kontext transformer's flow velocity for ``noisy`` ``(B, C, h, w)`` at ``t`` ``(B,)``.

        The image stream is ``[noisy tokens (h/2 * w/2), source tokens]`` with position ids
        ``(0, row, col)`` and ``(1, row, col)``; without a source it is plain FLUX text-to-image.
        """
        batch, channels, height, width = self.check_latents(noisy, "noisy")
        dtype, device = self.dtype, self.device
        tokens = pack(noisy.to(device, dtype), PACKING)
        positions = grid_positions(height // PACKING, width // PACKING, TARGET_INDEX, device)
        if source is not None:
            source_batch = self.check_latents(source, "source")[0]
            if source_batch != batch:
                raise ValueError(f"source has batch {source_batch} but noisy has batch {batch}")
            tokens = torch.cat([tokens, pack(source.to(device, dtype), PACKING)], dim=1)
            source_rows, source_cols = source.shape[-2] // PACKING, source.shape[-1] // PACKING
            positions = torch.cat([positions, grid_positions(source_rows, source_cols, CONTEXT_INDEX, device)], dim=0)
        prompt_embeds = condition.tensors["prompt_embeds"].to(device, dtype)
        pooled = condition.tensors["pooled_prompt_embeds"].to(device, dtype)
        if prompt_embeds.shape[0] != batch:
            raise ValueError(f"the condition has batch {prompt_embeds.shape[0]} but noisy has batch {batch}")
        guidance = None
        if self.transformer.config.guidance_embeds:
            guidance = torch.full((batch,), self.guidance, device=device, dtype=torch.float32)
        # FLUX's transformer scales t by 1000 itself; the pipeline passes sigma = timestep / 1000.
        output = self.transformer(
            hidden_states=tokens,
            timestep=timestep.to(device, dtype).expand(batch),
            guidance=guidance,
            pooled_projections=pooled,
            encoder_hidden_states=prompt_embeds,
            txt_ids=torch.zeros(prompt_embeds.shape[1], 3, device=device, dtype=dtype),
            img_ids=positions.to(dtype),
            return_dict=False,
            **transformer_kwargs,
        )[0]
        noisy_tokens = (height // PACKING) * (width // PACKING)
        return unpack(output[:, :noisy_tokens], PACKING, height, width).to(noisy.dtype)

    def check_latents(self, latents: torch.Tensor, role: str) -> tuple[int, int, int, int]:
        """The shape of spatial latents that can be packed, or a ValueError naming ``role``."""
        packable = latents.ndim == 4 and latents.shape[2] % PACKING == 0 and latents.shape[3] % PACKING == 0
        if not packable or latents.shape[1] != self.latent_channels:
            raise ValueError(f"{role} latents must have shape (B, {self.latent_channels}, h, w) with even h and w, "
                             f"got {tuple(latents.shape)}")
        return tuple(latents.shape)

    def adapter_targets(self) -> list[str]:
        return linear_layer_names(self.transformer, ADAPTABLE_LAYERS)

    def make_scheduler(self, edit: bool = True) -> FlowMatchEulerDiscreteScheduler:
        """A fresh copy of the pipeline's scheduler (for Kontext [dev]: dynamic shifting), for edits
        and generations alike, as diffusers' pipelines run it."""
        return FlowMatchEulerDiscreteScheduler.from_config(self.pipeline.scheduler.config)

    def schedule_kwargs(self, latents_shape: torch.Size) -> dict[str, Any]:
        """FLUX's resolution-dependent shift ``mu``: linear in the number of packed noisy tokens
        between ``base_shift`` at 256 and ``max_shift`` at 4096 tokens (Esser et al. 2024, SD3)."""
        config = self.pipeline.scheduler.config
        if not config.get("use_dynamic_shifting", False):
            return {}
        sequence_length = (latents_shape[-2] // PACKING) * (latents_shape[-1] // PACKING)
        mu = calculate_shift(
            sequence_length,
            config.get("base_image_seq_len", 256),
            config.get("max_image_seq_len", 4096),
            config.get("base_shift", 0.5),
            config.get("max_shift", 1.15),
        )
        return {"mu": mu}

