"""A perceptual style distance that needs no download: statistics of a fixed, seeded, random
multi-scale convolutional network.

Learned perceptual metrics (LPIPS, Gram matrices of VGG, DINO features) need weights this project
cannot ship or fetch. Random filters go a long way for texture: Ustyuzhaninov, Brendel, Gatys &
Bethge (2016), "Texture synthesis using shallow convolutional networks with random filters", show
that Gram matrices of one layer of random multi-scale filters with a ReLU capture natural textures.
The network here:

* an image pyramid of ``levels`` (each level area-averaged to half the side of the previous one),
  so the same 5 x 5 filters answer to 1 px lines and to strokes and shading several pixels wide;
* per level ``channels`` unit-norm random filters from a seeded generator: half with their spatial
  mean removed per input channel ("texture" filters: blind to flat colour, they answer to edges,
  lines and grain), half as drawn ("colour" filters: they answer to hue and tone); then a ReLU.

:func:`style_distance` (position-free: it compares a style's look across different photos): per
level, the Gram matrix ``G = F F^T / (H W)`` is split into the channel correlations
``R_ij = G_ij / sqrt(G_ii G_jj)`` and the log energies ``log G_ii``, and the distance is

    RMS(R_a - R_b) + energy_weight * RMS(log G_ii,a - log G_ii,b),

averaged over levels. The split is this module's change to the plain Gram distance, whose
energies follow each photo's content and contrast, so it ranks styles poorly; the energy term,
weighted down, keeps the distance sensitive to contrast and exposure changes, which the
correlations alone barely see. :mod:`benchmarks.perceptual_validation` measures how often each
distance ranks a style's outputs together (docs/decisions/2026-11-23-style-distance.md).

:func:`structure_distance` (where things are): the LPIPS form of Zhang, Isola, Efros, Shechtman &
Wang (2018), "The unreasonable effectiveness of deep features as a perceptual metric", on the random
features: unit-normalised over channels per pixel, squared differences averaged over space and
levels, uniform channel weights (no learned ones); in ``[0, 2]``. It is sensitive to shifts of a
pixel or two, so use it with aligned images (an edit against its target), not across photos.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from engine.core.configuration import option, require
from engine.core.errors import InputError

# Added to channel energies before the square root and the logarithm: a channel that never fires
# (energy 0) then compares as a weak one instead of as minus infinity. Typical energies are 1e-2.
ENERGY_FLOOR = 1e-4


@dataclass(frozen=True)
class RandomFeatureConfig:
    """The fixed random network and the style distance's weighting; changing any value changes
    every distance, so compare numbers only under one configuration."""

    seed: int = option(2016, "seed of the random filters (the year of Ustyuzhaninov et al.)")
    channels: int = option(64, "random filters per pyramid level, half texture and half colour")
    kernel_size: int = option(5, "side of each square filter in pixels")
    levels: int = option(3, "pyramid levels; level l sees the image at 1 / 2**l of its side")
    energy_weight: float = option(0.05, "weight of the log channel energies against the channel correlations")

    def __post_init__(self) -> None:
        require(self.channels >= 2 and self.channels % 2 == 0, "channels must be an even number >= 2")
        require(self.kernel_size >= 1 and self.kernel_size % 2 == 1, "kernel_size must be odd and >= 1")
        require(self.levels >= 1, "levels must be >= 1")
        require(self.energy_weight >= 0, "energy_weight must be >= 0")

    @property
    def min_side(self) -> int:
        """The smallest image side whose coarsest level still fits one filter."""
        return self.kernel_size * 2 ** (self.levels - 1)


@dataclass(frozen=True)
class StyleDescriptor:
    """Per pyramid level: channel correlations ``(B, C, C)`` and log channel energies ``(B, C)``."""

    correlations: list[torch.Tensor]
    log_energies: list[torch.Tensor]


class RandomFeatures:
    """The seeded filter bank and its features; build once, reuse for many images."""

    def __init__(self, config: RandomFeatureConfig | None = None):
        self.config = config or RandomFeatureConfig()
        generator = torch.Generator().manual_seed(self.config.seed)
        size, half = self.config.kernel_size, self.config.channels // 2
        self.filters = []
        for _ in range(self.config.levels):
            # Drawn in float64 so the filters are the same bits on every machine.
            weights = torch.randn(self.config.channels, 3, size, size, generator=generator, dtype=torch.float64)
            weights[:half] -= weights[:half].mean(dim=(2, 3), keepdim=True)
            weights /= weights.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
            self.filters.append(weights.float())

    def features(self, images: torch.Tensor) -> list[torch.Tensor]:
        """ReLU responses per level, ``[(B, C, H_l, W_l)]``, for ``(B, 3, H, W)`` in ``[0, 1]``."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise InputError(f"expected images (B, 3, H, W), got {tuple(images.shape)}")
        if min(images.shape[-2:]) < self.config.min_side:
            raise InputError(f"images of {tuple(images.shape[-2:])} px are too small for the style metric; "
                             f"it needs sides of at least {self.config.min_side} px")
        level = images.float() - 0.5
        responses = []
        for index, weights in enumerate(self.filters):
            if index:
                level = F.avg_pool2d(level, 2)
            responses.append(F.relu(F.conv2d(level, weights)))
        return responses

    @torch.no_grad()
    def describe(self, images: torch.Tensor) -> StyleDescriptor:
        """The style statistics of ``(B, 3, H, W)`` images in ``[0, 1]``."""
        correlations, log_energies = [], []
        for response in self.features(images):
            flat = response.flatten(2)
            gram = flat @ flat.transpose(1, 2) / flat.shape[-1]
            energies = gram.diagonal(dim1=1, dim2=2) + ENERGY_FLOOR
            scale = energies.sqrt()
            correlations.append(gram / (scale[:, :, None] * scale[:, None, :]))
            log_energies.append(energies.log())
        return StyleDescriptor(correlations, log_energies)


def descriptor_distance(a: StyleDescriptor, b: StyleDescriptor, energy_weight: float) -> torch.Tensor:
    """The style distance ``(B,)`` between two descriptors of equal batch size (or one of 1)."""
    per_level = []
    for correlation_a, correlation_b, energy_a, energy_b in zip(a.correlations, b.correlations,
                                                                a.log_energies, b.log_energies):
        correlation_rms = (correlation_a - correlation_b).pow(2).mean(dim=(1, 2)).sqrt()
        energy_rms = (energy_a - energy_b).pow(2).mean(dim=1).sqrt()
        per_level.append(correlation_rms + energy_weight * energy_rms)
    return torch.stack(per_level).mean(dim=0)


_DEFAULT_FEATURES: RandomFeatures | None = None


def default_features() -> RandomFeatures:
    """The network of the default :class:`RandomFeatureConfig`, built on first use."""
    global _DEFAULT_FEATURES
    if _DEFAULT_FEATURES is None:
        _DEFAULT_FEATURES = RandomFeatures()
    return _DEFAULT_FEATURES


@torch.no_grad()
def style_distance(prediction: torch.Tensor, target: torch.Tensor, features: RandomFeatures | None = None) -> torch.Tensor:
    """Style distance ``(B,)`` of ``(B, 3, H, W)`` images in ``[0, 1]``; the two may differ in
    size (the statistics are averages over positions) but not in batch size."""
    if prediction.shape[0] != target.shape[0]:
        raise InputError(f"batch sizes differ, {prediction.shape[0]} vs {target.shape[0]}")
    features = features or default_features()
    return descriptor_distance(features.describe(prediction), features.describe(target), features.config.energy_weight)


@torch.no_grad()
def structure_distance(prediction: torch.Tensor, target: torch.Tensor, features: RandomFeatures | None = None) -> torch.Tensor:
    """LPIPS-form distance ``(B,)`` on the random features (uniform weights), in ``[0, 2]``;
    the images must have the same shape."""
    if prediction.shape != target.shape:
        raise InputError(f"images differ in shape, {tuple(prediction.shape)} vs {tuple(target.shape)}; resize one to the other")
    features = features or default_features()
    per_level = []
    for a, b in zip(features.features(prediction), features.features(target)):
        # LPIPS's normalisation and epsilon: a pixel where no unit fires compares as all-zero.
        a = a / (a.norm(dim=1, keepdim=True) + 1e-10)
        b = b / (b.norm(dim=1, keepdim=True) + 1e-10)
        per_level.append((a - b).pow(2).sum(dim=1).flatten(1).mean(dim=1))
    return torch.stack(per_level).mean(dim=0)
