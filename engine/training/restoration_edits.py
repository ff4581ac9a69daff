"""The restoration edits of version 3's pretraining: the source is a degraded photo, the target the photo.

Denoising asks the model for what an edge-preserving filter does without naming any style: the
best estimate of a noisy photo smooths flat areas, where the fine detail is mostly noise, and keeps
edges, where it is signal (the Wiener and bilateral-filter argument; Tomasi & Manduchi 1998). A base
that can do that has hidden states that tell texture from edges, which is what the cartoon study
found version 1 lacks (docs/decisions/2026-12-07-why-cartoon-is-not-learned.md).
Functions map a photo batch ``(B, 3, H, W)`` in ``[0, 1]`` and a generator to the degraded batch.
"""

from __future__ import annotations

from typing import Callable

import torch

NOISE_SIGMAS = (0.02, 0.10)  # the range a photo's noise level is drawn from, in [0, 1] units
EVALUATION_SIGMA = 0.05


def add_noise(photos: torch.Tensor, generator: torch.Generator, sigma: float | None = None) -> torch.Tensor:
    """Gaussian noise per pixel and channel at ``sigma`` (drawn from :data:`NOISE_SIGMAS` per photo
    when ``None``), clamped to ``[0, 1]`` as a camera's 8-bit output would be."""
    batch = photos.shape[0]
    if sigma is None:
        low, high = NOISE_SIGMAS
        sigmas = low + (high - low) * torch.rand(batch, generator=generator)
    else:
        sigmas = torch.full((batch,), sigma)
    noise = torch.randn(photos.shape, generator=generator) * sigmas.view(-1, 1, 1, 1)
    return (photos + noise.to(photos)).clamp(0, 1)


RESTORATION_DEGRADATIONS: dict[str, Callable[..., torch.Tensor]] = {"denoise": add_noise}
