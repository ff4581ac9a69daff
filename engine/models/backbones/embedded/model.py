"""The embedded image-editing DiT: a small FLUX transformer in pixel space.

Design (measured choices are in ``assets/base/MODEL_CARD.md``):

* Pixel space with packed ``p x p`` patches (no VAE to train or run; a patch is one token).
* The source image is concatenated to the noisy image in channels, not in the sequence as
  Kontext does: the same token count, so half the linear cost and a quarter of the attention.
* The transformer predicts the clean image as a residual over the source,
  ``x_0 = source + f(x_t, source, t, instruction)`` (x-prediction, as Li & He 2025, "Back to
  Basics: Let Denoising Generative Models Denoise", argue for pixel space). With ``proj_out``
  zero-initialised the untrained model is an exact identity editor, and the base model's
  reconstruction error, which bounds every style learned on top, stays small.
* Instructions are learned token sequences fed where FLUX takes T5 tokens, plus a pooled vector
  where FLUX takes CLIP's.
* Version 2 (``pixel_head_channels > 0``) unpatchifies several channels per pixel and runs a
  convolutional :class:`~engine.models.backbones.embedded.pixel_head.PixelHead` over them, and may
  move the patch grid by a few pixels per call (``grid_offset``), so no pixel border is always a
  patch border: the two remedies for patch seams.
* Version 3 (``detail_bands > 0``) also predicts a gain per pixel for each frequency band of the
  source (:mod:`~engine.models.backbones.embedded.detail_bands`), so blurs, sharpening and
  edge-preserving smoothing need not squeeze the source's fine detail through the tokens.
* Version 4 (``detail_guides``) guides those gains by each band's local energy, pixel by pixel,
  and gives the dark side of each band gains of its own.

Module names are those of diffusers' ``FluxTransformer2DModel``, so LoRA targets are the same
for this model and FLUX.1 Kontext.
"""

from __future__ import annotations

import torch
from diffusers import FluxTransformer2DModel
from torch import nn

from engine.models.backbones.embedded.config import EmbeddedConfig
from engine.models.backbones.embedded.detail_bands import apply_detail_gains, apply_guided_detail_gains
from engine.models.backbones.embedded.instructions import vocabulary
from engine.models.backbones.embedded.pixel_head import PixelHead
from engine.models.backbones.patches import grid_positions, pack, shift_grid, unpack, unshift_grid

IMAGE_CHANNELS = 3


class EmbeddedEditor(nn.Module):
    """Predicts the clean image ``x_0`` from a noisy image, a source image and an instruction."""

    def __init__(self, config: EmbeddedConfig) -> None:
        super().__init__()
        self.config = config
        patch_features = IMAGE_CHANNELS * config.patch_size**2
        head_channels = config.pixel_head_channels or IMAGE_CHANNELS
        # The detail-band gains come last, so growing a model into one with bands keeps its channels.
        out_channels = head_channels + config.detail_channels
        self.vocabulary = vocabulary(config.restoration_edits)
        self.instruction_tokens = nn.Embedding(len(self.vocabulary), config.instruction_tokens * config.instruction_dim)
        self.instruction_pooled = nn.Embedding(len(self.vocabulary), config.instruction_dim)
        nn.init.normal_(self.instruction_tokens.weight, std=0.02)
        nn.init.normal_(self.instruction_pooled.weight, std=0.02)
        self.transformer = FluxTransformer2DModel(
            patch_size=1,
            in_channels=2 * patch_features,
            out_channels=out_channels * config.patch_size**2,
            num_layers=config.num_double_blocks,
            num_single_layers=config.num_single_blocks,
            attention_head_dim=config.head_dim,
            num_attention_heads=config.num_heads,
            joint_attention_dim=config.instruction_dim,
            pooled_projection_dim=config.instruction_dim,
            axes_dims_rope=config.rope_axes,
        )
        # Zero output: the untrained model returns the source unchanged (DiT's adaLN-zero idea).
        nn.init.zeros_(self.transformer.proj_out.weight)
        nn.init.zeros_(self.transformer.proj_out.bias)
        self.pixel_head = PixelHead(head_channels, config.pixel_head_hidden) if config.pixel_head_channels else None

    def forward(
        self,
        noisy: torch.Tensor,
        timestep: torch.Tensor,
        source: torch.Tensor | None,
        instruction_ids: torch.Tensor,
        joint_attention_kwargs: dict | None = None,
        grid_offset: tuple[int, int] = (0, 0),
    ) -> torch.Tensor:
        """Predict ``x_0``.

        Args:
            noisy: ``(B, 3, H, W)``; H and W multiples of ``patch_size``.
            timestep: ``(B,)`` in ``[0, 1]``.
            source: ``(B, 3, H, W)`` or ``None`` (generation; the source channels are zeros).
            instruction_ids: ``(B,)`` indices into ``self.vocabulary``.
            grid_offset: pixels ``(rows, cols)`` in ``[0, patch_size)`` to move the patch grid by.

        Returns:
            ``x_0`` estimate ``(B, 3, H, W)`` in the dtype of ``noisy``.
        """
        batch, _, out_height, out_width = noisy.shape
        patch = self.config.patch_size
        base = source if source is not None else torch.zeros_like(noisy)
        noisy_grid, base_grid = shift_grid(noisy, grid_offset, patch), shift_grid(base, grid_offset, patch)
        height, width = noisy_grid.shape[-2:]
        compute_dtype = self.transformer.dtype
        tokens = torch.cat([pack(noisy_grid, patch), pack(base_grid, patch)], dim=-1).to(compute_dtype)
        context = self.instruction_tokens(instruction_ids).reshape(batch, self.config.instruction_tokens, -1)
        pooled = self.instruction_pooled(instruction_ids)
        image_ids = grid_positions(height // patch, width // patch, device=noisy.device)
        text_ids = torch.zeros(self.config.instruction_tokens, 3, device=noisy.device)
        residual_tokens = self.transformer(
            hidden_states=tokens,
            encoder_hidden_states=context.to(compute_dtype),
            pooled_projections=pooled.to(compute_dtype),
            timestep=timestep.to(compute_dtype),
            img_ids=image_ids,
            txt_ids=text_ids,
            joint_attention_kwargs=joint_attention_kwargs,
            return_dict=False,
        )[0]
        features = unpack(residual_tokens, patch, height, width)
        detail = self.config.detail_channels
        features, gains = (features[:, :-detail], features[:, -detail:]) if detail else (features, None)
        if self.pixel_head is not None:
            features = self.pixel_head(features, noisy_grid, base_grid)
        if gains is not None:
            apply = apply_guided_detail_gains if self.config.detail_guides else apply_detail_gains
            features = apply(features, gains * self.config.detail_gain_scale, base_grid)
        residual = unshift_grid(features.to(noisy.dtype), grid_offset, patch, out_height, out_width)
        return base + residual
