"""Turning before/after pairs into training batches for one or several styles.

Each pair is resized so its short side is ``margin`` times the backbone's native side, then
every sample is a random native-size square crop taken at the same place in the before and the
after image, randomly flipped. Crops keep the style's local texture at the scale it will be
edited at, and the margin gives a few pixels of translation to 8 pairs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from engine.core.imaging import resize_to, to_tensor
from engine.models.backbones.base import Backbone
from engine.training.pairs import Pair


@dataclass
class StyleData:
    """One style's pairs as tensors ``(3, H, W)`` in ``[-1, 1]``."""

    key: str
    name: str
    befores: list[torch.Tensor]
    afters: list[torch.Tensor]


def prepare_style(backbone: Backbone, key: str, name: str, pairs: list[Pair], margin: float) -> StyleData:
    side = backbone.native_resolution
    multiple = backbone.resolution_multiple
    befores, afters = [], []
    for pair in pairs:
        short = min(pair.before.size)
        scale = side * margin / short
        size = tuple(max(side, round(dimension * scale / multiple) * multiple) for dimension in pair.before.size)
        befores.append(to_tensor(resize_to(pair.before, size))[0])
        afters.append(to_tensor(resize_to(pair.after.resize(pair.before.size), size))[0])
    return StyleData(key, name, befores, afters)


def sample_batch(styles: list[StyleData], size: int, batch_size: int, generator: torch.Generator):
    """``batch_size`` crops: before ``(B, 3, size, size)``, after (same), and the style key per sample."""
    befores, afters, keys = [], [], []
    for _ in range(batch_size):
        style = styles[int(torch.randint(len(styles), (1,), generator=generator))]
        index = int(torch.randint(len(style.befores), (1,), generator=generator))
        before, after = style.befores[index], style.afters[index]
        top = int(torch.randint(before.shape[1] - size + 1, (1,), generator=generator))
        left = int(torch.randint(before.shape[2] - size + 1, (1,), generator=generator))
        before = before[:, top : top + size, left : left + size]
        after = after[:, top : top + size, left : left + size]
        if float(torch.rand((), generator=generator)) < 0.5:
            before, after = before.flip(-1), after.flip(-1)
        befores.append(before)
        afters.append(after)
        keys.append(style.key)
    return torch.stack(befores), torch.stack(afters), keys
