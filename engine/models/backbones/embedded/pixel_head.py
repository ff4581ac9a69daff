"""A convolutional pixel head over the unpatchified transformer output.

A token that maps linearly to its own ``p x p`` block cannot mix pixels across block borders, so
any error it makes steps at every border: the patch grid that shows in flat areas. The head
unpatchifies ``features`` channels per pixel and runs two 3x3 convolutions over them, the noisy
image and the source, so each output pixel sees its neighbours in the adjacent patches (the idea
of the per-patch pixel decoders of PixNerd, Wang et al. 2025, and DiP, Chen et al. 2025, in its
cheapest form).

The head's output is ``first three feature channels + conv(features, noisy, source)`` with the
last convolution zero-initialised, so a model whose transformer was trained with the linear head
(``features = 3``) starts, with this head added, exactly where it was.
"""

from __future__ import annotations

import torch
from torch import nn

IMAGE_CHANNELS = 3


class PixelHead(nn.Module):
    """``(B, F, H, W)`` features, noisy and source ``(B, 3, H, W)`` to a ``(B, 3, H, W)`` residual."""

    def __init__(self, features: int, hidden: int) -> None:
        super().__init__()
        if features < IMAGE_CHANNELS:
            raise ValueError(f"the pixel head needs at least {IMAGE_CHANNELS} feature channels, got {features}")
        self.mix = nn.Conv2d(features + 2 * IMAGE_CHANNELS, hidden, kernel_size=3, padding=1, padding_mode="replicate")
        self.activation = nn.GELU(approximate="tanh")
        self.out = nn.Conv2d(hidden, IMAGE_CHANNELS, kernel_size=3, padding=1, padding_mode="replicate")
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, features: torch.Tensor, noisy: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
        # The head keeps its own dtype (fp32) when the transformer runs in bfloat16.
        features = features.to(self.mix.weight.dtype)
        inputs = torch.cat([features, noisy.to(features.dtype), source.to(features.dtype)], dim=1)
        return features[:, :IMAGE_CHANNELS] + self.out(self.activation(self.mix(inputs)))
