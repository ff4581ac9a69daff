"""The discriminator of the adversarial loss in style training.

What it sees: the predicted clean latents ``x0 = x_t - t * v`` (for the embedded model, pixels)
concatenated in channels with the source latents and a constant plane holding ``t``, so it judges
"is this a plausible *styled version of this source* at this noise level" (a conditional
PatchGAN, Isola et al. 2017, with the timestep conditioning of latent adversarial diffusion
distillation, Sauer et al. 2024). Real samples are the true after-images at the same ``t``.

Architecture: four 4x4 convolutions (stride 2, 2, 1, 1) with spectral normalisation (Miyato et
al. 2018) and leaky ReLUs, giving one logit per patch. Loss: hinge (Lim & Ye 2017).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm


class PatchDiscriminator(nn.Module):
    def __init__(self, latent_channels: int, width: int = 32) -> None:
        super().__init__()
        in_channels = 2 * latent_channels + 1
        self.first = spectral_norm(nn.Conv2d(in_channels, width, 4, stride=2, padding=1))
        self.second = spectral_norm(nn.Conv2d(width, 2 * width, 4, stride=2, padding=1))
        self.third = spectral_norm(nn.Conv2d(2 * width, 2 * width, 3, stride=1, padding=1))
        self.logits = spectral_norm(nn.Conv2d(2 * width, 1, 3, stride=1, padding=1))

    def forward(self, clean: torch.Tensor, source: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        """``clean``, ``source``: ``(B, C, h, w)``; ``timestep``: ``(B,)``. Returns patch logits ``(B, 1, h/4, w/4)``."""
        time_plane = timestep.view(-1, 1, 1, 1).expand(-1, 1, *clean.shape[2:]).to(clean.dtype)
        hidden = torch.cat([clean, source.to(clean.dtype), time_plane], dim=1)
        hidden = F.leaky_relu(self.first(hidden), 0.2)
        hidden = F.leaky_relu(self.second(hidden), 0.2)
        hidden = F.leaky_relu(self.third(hidden), 0.2)
        return self.logits(hidden)


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Hinge loss for the discriminator."""
    return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()


def generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Hinge loss for the generator (the adapter)."""
    return -fake_logits.mean()
