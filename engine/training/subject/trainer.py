"""Training a subject LoRA in the backbone's generation mode (DreamBooth-style, with a LoRA).

DreamBooth (Ruiz et al. 2023, "DreamBooth: Fine Tuning Text-to-Image Diffusion Models for
Subject-Driven Generation") teaches a generator one subject from a few photos by fine-tuning it
to denoise those photos under a prompt holding a rare trigger. Here only a LoRA (Hu et al. 2021)
is trained, and the loss is the rectified-flow matching loss the style trainer uses
(:mod:`engine.training.style_trainer`), in generation mode: there is no source image, the target
``x_0`` is an augmented crop of a subject photo, and per sample::

    x_t = (1 - t) x_0 + t noise,   loss = | v(x_t, t, prompt) - (noise - x_0) |^2

with ``t`` logit-normal in ``[min_timestep, 1]``. The prompt is the trigger on a backbone with a
text encoder (Kontext); the embedded model has a fixed instruction set with no room for a new
word, so it is conditioned on its generation default (``""``, the ``generate`` instruction) and
the LoRA itself is the trigger: switched on, the model generates the subject.

DreamBooth's prior-preservation loss is left out: it keeps a fully fine-tuned model able to draw
other members of the subject's class under the class prompt, but a LoRA is opt-in (the base
model is untouched when the subject is not chosen), and on the embedded model the subject and
the prior would share the one generation condition, so the two losses would pull against each
other.

Batches are drawn from a generator seeded by ``(seed, step)``, so a run resumed from a
checkpoint sees the batches an uninterrupted one would and ends on the same weights.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from engine.models.backbones.base import Backbone
from engine.training.checkpoint import load_checkpoint, save_checkpoint
from engine.training.loop import ProgressCallback, run_steps
from engine.training.schedules import sample_timesteps, warmup_cosine
from engine.training.subject.augment import sample_crops
from engine.training.subject.config import SubjectTrainingConfig
from engine.training.subject.lora import SubjectLora

# Seeds of the fixed evaluation batches, far from any training step's.
EVALUATION_OFFSET = 10_000_000
EVALUATION_BATCHES = 4


class SubjectTrainer:
    """Trains ``lora`` on ``photos`` (tensors ``(3, H, W)`` from
    :func:`engine.training.subject.augment.prepare_photos`) under ``prompt``."""

    def __init__(self, backbone: Backbone, lora: SubjectLora, photos: list[torch.Tensor], config: SubjectTrainingConfig,
                 prompt: str) -> None:
        self.backbone, self.lora, self.photos, self.config = backbone, lora, photos, config
        # One prompt for every sample: encoded once (for Kontext, CLIP and T5 are the slow part).
        self.condition = backbone.encode_prompt([prompt])
        self.parameters = lora.parameters()
        for tensor in self.parameters.values():
            tensor.requires_grad_(True)
        self.optimizer = torch.optim.AdamW(list(self.parameters.values()), lr=config.learning_rate, weight_decay=0.0)

    def batch(self, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The targets ``x_0`` ``(B, C, h, w)`` (encoded crops), noise of the same shape and ``t`` ``(B,)``."""
        generator = torch.Generator().manual_seed(seed)
        side = self.backbone.native_resolution
        crops = sample_crops(self.photos, side, self.config.batch_size, self.config.min_crop, self.config.flip, generator)
        timesteps = sample_timesteps(self.config.batch_size, self.backbone.min_timestep, generator)
        with torch.no_grad():
            target = self.backbone.encode(crops.to(self.backbone.device)).float()
        noise = torch.randn(target.shape, generator=generator).to(target.device)
        return target, noise, timesteps.to(target.device)

    def flow_loss(self, seed: int) -> torch.Tensor:
        """The mean flow-matching loss on the batch drawn from ``seed`` (no source image)."""
        target, noise, timesteps = self.batch(seed)
        time_view = timesteps.view(-1, 1, 1, 1)
        noisy = (1 - time_view) * target + time_view * noise
        velocity = self.backbone.predict_velocity(noisy, timesteps, None, self.condition.repeat(len(timesteps))).float()
        return torch.mean((velocity - (noise - target)) ** 2)

    def evaluation_loss(self) -> float:
        """The flow loss on fixed batches that no training step draws: before and after training
        (or with :meth:`SubjectLora.disabled`, the base model's) are directly comparable."""
        with torch.no_grad():
            losses = [self.flow_loss(EVALUATION_OFFSET + self.config.seed * 1_000 + index).item() for index in range(EVALUATION_BATCHES)]
        return sum(losses) / len(losses)

    def step(self, step: int) -> float:
        loss = self.flow_loss(self.config.seed * 1_000_003 + step)
        for group in self.optimizer.param_groups:
            group["lr"] = warmup_cosine(self.config.learning_rate, self.config.warmup_steps, self.config.steps, step)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(self.parameters.values()), 1.0)
        self.optimizer.step()
        return float(loss.detach())

    def train(self, run_folder: Path | None = None, callback: ProgressCallback | None = None,
              preview: Callable[[], object] | None = None, should_stop: Callable[[], bool] | None = None) -> dict:
        """Run (or resume from ``run_folder``'s checkpoint) to ``config.steps``.

        ``callback`` gets a :class:`~engine.training.loop.TrainingProgress` every step, with
        ``preview()``'s image every ``config.preview_every`` steps; ``should_stop()`` is polled before each
        step and ends the run early (the last checkpoint stays for resuming).

        Returns:
            ``{"losses": [...], "stopped_at": step or None, "started_at": first step run}``.
        """
        start = 0
        if run_folder is not None:
            record = load_checkpoint(run_folder, *self._checkpoint_parts())
            start = record["step"] if record else 0
        history = run_steps(
            self.step, start=start, steps=self.config.steps, checkpoint_every=self.config.checkpoint_every,
            save=None if run_folder is None else lambda done: save_checkpoint(run_folder, done, *self._checkpoint_parts()),
            sample_every=self.config.preview_every, callback=callback, preview=preview, should_stop=should_stop,
        )
        for tensor in self.parameters.values():
            tensor.requires_grad_(False)
        return history

    def _checkpoint_parts(self):
        return {"lora": self.parameters}, {"lora": (self.optimizer, self.parameters)}
