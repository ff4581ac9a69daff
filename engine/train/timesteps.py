"""Training timesteps for rectified flow."""

from __future__ import annotations

import torch


def sample_timesteps(batch_size: int, minimum: float, generator: torch.Generator) -> torch.Tensor:
    """Logit-normal ``t`` (SD3, Esser et al. 2024) squeezed into ``[minimum, 1]``, where a
    backbone's x_0-to-velocity conversion is exact. Shape ``(batch_size,)``."""
    return minimum + (1 - minimum) * torch.sigmoid(torch.randn(batch_size, generator=generator))
