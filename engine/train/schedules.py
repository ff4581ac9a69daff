"""Schedules shared by the trainers: rectified-flow training timesteps and the learning rate."""

from __future__ import annotations

import math

import torch


def sample_timesteps(batch_size: int, minimum: float, generator: torch.Generator) -> torch.Tensor:
    """Logit-normal ``t`` (SD3, Esser et al. 2024) squeezed into ``[minimum, 1]``, where a
    backbone's x_0-to-velocity conversion is exact. Shape ``(batch_size,)``."""
    return minimum + (1 - minimum) * torch.sigmoid(torch.randn(batch_size, generator=generator))


def warmup_cosine(peak: float, warmup_steps: int, total_steps: int, step: int) -> float:
    """Learning rate at ``step``: linear warm-up to ``peak``, then cosine decay to 0 at ``total_steps``."""
    if step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return peak * 0.5 * (1 + math.cos(math.pi * progress))
