"""Schedules shared by the trainers: rectified-flow training timesteps and the learning rate."""

from __future__ import annotations

import math

import torch

TIMESTEP_DISTRIBUTIONS = ("logit-normal", "uniform")


def sample_timesteps(batch_size: int, minimum: float, generator: torch.Generator,
                     distribution: str = "logit-normal", shift: float = 1.0) -> torch.Tensor:
    """Training ``t`` in ``[minimum, 1]``, where a backbone's x_0-to-velocity conversion is exact.
    Shape ``(batch_size,)``.

    ``logit-normal`` is SD3's (Esser et al. 2024): it concentrates on mid-range ``t`` and puts
    almost no mass near 1 (0.03 % above 0.97). ``uniform`` covers the whole range evenly, including
    the sampler's first call at ``t = 1``, where an edit's output is decided from pure noise.
    ``shift`` > 1 then moves every ``t`` towards the noise end by SD3's timestep shift
    ``s t / (1 + (s - 1) t)`` (Esser et al. 2024, section 5.3.2; FLUX.1 samples and trains with it).
    """
    if shift <= 0:
        raise ValueError(f"timestep shift must be positive, got {shift}")
    if distribution == "logit-normal":
        unit = torch.sigmoid(torch.randn(batch_size, generator=generator))
    elif distribution == "uniform":
        unit = torch.rand(batch_size, generator=generator)
    else:
        raise ValueError(f"unknown timestep distribution {distribution!r}; choose from {', '.join(TIMESTEP_DISTRIBUTIONS)}")
    unit = shift * unit / (1 + (shift - 1) * unit)
    return minimum + (1 - minimum) * unit


def warmup_cosine(peak: float, warmup_steps: int, total_steps: int, step: int) -> float:
    """Learning rate at ``step``: linear warm-up to ``peak``, then cosine decay to 0 at ``total_steps``."""
    if step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return peak * 0.5 * (1 + math.cos(math.pi * progress))


def steps_run(steps: int, stop_at: int) -> int:
    """The steps a run takes of its ``steps``-step schedule: the first ``stop_at`` when it is cut
    short at one of its checkpoints (``stop_at`` > 0), else all of them."""
    return stop_at or steps
