"""Rectified-flow Euler sampling for every backbone.

Walks the sigmas of diffusers' ``FlowMatchEulerDiscreteScheduler`` with its ``step`` (Euler:
``x <- x + (t_next - t) * v``). Edits with ``strength < 1`` start part-way, from the source
noised to the first sigma, as diffusers' image-to-image pipelines do (SDEdit, Meng et al. 2022).

The starting noise is scaled by ``noise_scale``, the temperature of Glow's reduced-temperature
sampling (Kingma & Dhariwal 2018, section 5). At 0 the Euler walk starts from zero, the noise's
mean, and is deterministic: the embedded model's edits score higher that way and lose
the per-patch colour grid that styled edits read from the noise (docs/decisions/2026-11-30-zero-noise-edits.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from engine.core.configuration import option, require
from engine.models.backbones.base import Backbone, Condition


@dataclass
class SamplerSettings:
    """How to sample."""

    steps: int = option(0, "Euler steps over the full noise range; 0 uses the style's chosen steps for a styled edit, "
                           "else the backbone's default (for an edit, or for a generation, which may take more).")
    seed: int = option(0, "Seed of the starting noise; the same seed gives the same image.")
    strength: float = option(1.0, "Edits only: how far into the noise the source is taken (1 = pure noise).")
    noise_scale: float = option(-1.0, "Scale of the starting noise, the sampling temperature (1 = standard noise; 0 = none, "
                                      "so the result no longer depends on the seed). -1: the model's default for edits "
                                      "(the embedded model's is 0), and 1 for generation.")
    working_size: int = option(0, "Edits only: the model edits a copy of the photo with the area of a square of this side "
                                  "in pixels (0: the model's native resolution, which it was trained at); the result is "
                                  "then carried to the photo's own size.")

    def __post_init__(self) -> None:
        require(0 <= self.steps <= 1000, "steps must lie between 1 and 1000 (0 for the model's default)")
        require(0.0 < self.strength <= 1.0, "strength must lie in (0, 1]")
        require(0 <= self.seed < 2**63, "seed must be a non-negative integer below 2**63")
        require(self.noise_scale == -1.0 or 0.0 <= self.noise_scale <= 1.0,
                "noise_scale must lie in [0, 1], or be -1 for the model's default")
        require(self.working_size == 0 or 16 <= self.working_size <= 4096,
                "working_size must lie between 16 and 4096 pixels, or be 0 for the model's native resolution")

    def noise_scale_for(self, backbone: Backbone, edit: bool) -> float:
        """The scale of the starting noise this run uses: ``noise_scale`` if given, else the
        backbone's ``edit_noise_scale`` for an edit and 1 for a generation."""
        if self.noise_scale >= 0:
            return self.noise_scale
        return backbone.edit_noise_scale if edit else 1.0


@dataclass
class StepInfo:
    """What the per-step callback receives.

    Attributes:
        step: steps done so far (1-based).
        total: steps this run takes.
        timestep: ``t`` after this step (0 at the end).
        estimate: the current estimate of the final latents ``x_0 = x_t - t * v``, ``(B, C, h, w)``.
    """

    step: int
    total: int
    timestep: float
    estimate: torch.Tensor
    backbone: Backbone

    def preview(self) -> torch.Tensor:
        """The estimate decoded to images ``(B, 3, H, W)`` in ``[-1, 1]`` (decoded only when asked)."""
        with torch.inference_mode():
            return self.backbone.decode(self.estimate).clamp(-1, 1)


StepCallback = Callable[[StepInfo], None]


@dataclass
class StepStart:
    """What the before-step hook receives, just before a step's model call.

    Attributes:
        index: steps done so far in this run (0-based index of the coming step).
        total: steps this run takes.
        skipped: steps of the full schedule an edit with ``strength < 1`` starts after.
        schedule_steps: steps of the full schedule (``total + skipped``).
        timestep: the ``t`` (sigma) the model is called at.
    """

    index: int
    total: int
    skipped: int
    schedule_steps: int
    timestep: float

    @property
    def fraction_done(self) -> float:
        """The fraction of the full denoising schedule done before this call, in ``[0, 1)``:
        ``(skipped + index) / schedule_steps`` (an edit at strength 0.5 starts at 0.5)."""
        return (self.skipped + self.index) / self.schedule_steps


BeforeStepHook = Callable[[StepStart], None]


def sigmas_for(backbone: Backbone, steps: int, latents_shape: torch.Size, strength: float = 1.0,
               edit: bool = True) -> tuple[object, torch.Tensor]:
    """The scheduler and the sigmas a run walks, ``(n + 1,)`` ending at 0; ``edit`` False takes
    the backbone's generation schedule."""
    scheduler = backbone.make_scheduler(edit)
    # Evenly spaced sigmas from 1 down to 1/steps, then the scheduler's shift, as FluxPipeline
    # passes them; the default would spend the last call at t = 0.001.
    uniform = [1.0 - index / steps for index in range(steps)]
    scheduler.set_timesteps(sigmas=uniform, device="cpu", **backbone.schedule_kwargs(latents_shape))
    skip = steps - min(steps, max(1, round(steps * strength)))
    scheduler.set_begin_index(skip)
    return scheduler, scheduler.sigmas[skip:]


@torch.inference_mode()
def sample(
    backbone: Backbone,
    condition: Condition,
    latents_shape: torch.Size,
    settings: SamplerSettings,
    source: torch.Tensor | None = None,
    callback: StepCallback | None = None,
    transformer_kwargs: dict | None = None,
    before_step: BeforeStepHook | None = None,
) -> torch.Tensor:
    """Integrate the backbone's flow from noise (or a noised source) to data.

    Args:
        backbone: any :class:`Backbone`.
        condition: from ``backbone.encode_prompt``; batch ``B``.
        latents_shape: ``(B, C, h, w)``.
        settings: steps, seed and strength.
        source: latents of the image to edit ``(B, C, h, w)``, or ``None`` for generation.
        callback: called after every step with a :class:`StepInfo`.
        transformer_kwargs: passed to every ``predict_velocity`` call.
        before_step: called with a :class:`StepStart` before every model call (LoRA fusion
            switches layers on the step fraction there).

    Returns:
        Final latents ``(B, C, h, w)`` in float32.
    """
    edit = source is not None
    steps = settings.steps or backbone.steps_for(edit)
    generator = torch.Generator().manual_seed(settings.seed)
    noise = backbone.latent_noise(latents_shape, generator) * settings.noise_scale_for(backbone, edit)
    scheduler, sigmas = sigmas_for(backbone, steps, latents_shape, settings.strength if edit else 1.0, edit)
    first = sigmas[0].item()
    latents = noise if source is None or first >= 1.0 else first * noise + (1.0 - first) * source.float()
    condition = condition.to(backbone.device)
    total = len(sigmas) - 1
    for index in range(total):
        sigma = sigmas[index].item()
        if before_step is not None:
            before_step(StepStart(index, total, steps - total, steps, sigma))
        timestep = torch.full((latents_shape[0],), sigma, device=backbone.device)
        velocity = backbone.predict_velocity(latents, timestep, source, condition, **(transformer_kwargs or {})).float()
        estimate = latents - sigma * velocity
        latents = scheduler.step(velocity, scheduler.timesteps[scheduler.step_index], latents, return_dict=False)[0]
        if callback is not None:
            callback(StepInfo(index + 1, total, sigmas[index + 1].item(), estimate, backbone))
    return latents
