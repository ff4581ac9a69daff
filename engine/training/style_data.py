"""Turning before/after pairs into training batches for one or several styles.

Each pair is resized to the scale it will be edited at, then every sample is a random square
crop taken at the same place in the before and the after image, randomly flipped.

``training_scale`` says what that scale is:

- ``'working'``: the size an edit of this photo works at (:meth:`Backbone.fit_size`, about the
  native area with the photo's aspect ratio), times ``margin``. Crops are as large as the
  smallest image allows, up to the native side. A 3:2 photo is edited at 160x104 on a
  128-px model, so its strokes and outlines are learned at the size the model draws them.
- ``'native'``: the short side is ``margin`` times the native side and crops are native-size,
  whatever the aspect ratio (a 3:2 photo is then learned 1.4 times larger than it is edited).

The choice was measured: docs/decisions/2026-12-07-working-scale-training.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from engine.core.imaging import resize_to, to_tensor
from engine.models.backbones.base import Backbone
from engine.training.pairs import Pair

TRAINING_SCALES = ("working", "native")


@dataclass
class StyleData:
    """One style's pairs as tensors ``(3, H, W)`` in ``[-1, 1]``."""

    key: str
    name: str
    befores: list[torch.Tensor]
    afters: list[torch.Tensor]


def training_size(backbone: Backbone, width: int, height: int, margin: float, scale: str) -> tuple[int, int]:
    """The ``(width, height)`` a ``width x height`` pair is trained at (see the module docstring)."""
    multiple = backbone.resolution_multiple
    if scale == "working":
        working = backbone.fit_size(width, height)
        return tuple(max(multiple, round(side * margin / multiple) * multiple) for side in working)
    if scale != "native":
        raise ValueError(f"training_scale must be one of {', '.join(TRAINING_SCALES)}, not {scale!r}")
    side = backbone.native_resolution
    factor = side * margin / min(width, height)
    return tuple(max(side, round(dimension * factor / multiple) * multiple) for dimension in (width, height))


def prepare_style(backbone: Backbone, key: str, name: str, pairs: list[Pair], margin: float,
                  scale: str = "native") -> StyleData:
    befores, afters = [], []
    for pair in pairs:
        size = training_size(backbone, *pair.before.size, margin, scale)
        befores.append(to_tensor(resize_to(pair.before, size))[0])
        afters.append(to_tensor(resize_to(pair.after.resize(pair.before.size), size))[0])
    return StyleData(key, name, befores, afters)


def crop_side(styles: list[StyleData], largest: int, multiple: int) -> int:
    """The side of the square crops: the smallest image's short side, at most ``largest``, in
    whole multiples of ``multiple`` (the patch size)."""
    shortest = min(min(image.shape[-2:]) for style in styles for image in style.befores)
    return max(multiple, min(largest, shortest) // multiple * multiple)


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
