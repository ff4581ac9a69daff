"""A subject LoRA and a style LoRA checked against a backbone and against each other.

Fusion switches between the two updates layer by layer, so by default both LoRAs must name the
same layers of the same model. :func:`check_pair` refuses, with an :class:`~engine.core.errors.InputError`
that says what to do: an empty LoRA, NaN or infinite weights, layers the backbone does not have
(or of other shapes: a LoRA for another model), layers of the backbone wrapped by another adapter,
two different layer sets (naming the layers that differ), a LoRA whose update is zero everywhere,
and the same LoRA on both sides (equal updates, whatever the file layout they were read from).

Two different layer sets are accepted only when asked for (``layers="union"``): a layer one LoRA
leaves out then gets a rank-0 (zero) update on that side, which is what leaving a layer out of a
LoRA file means (an exported style leaves out the layers rank pruning emptied). The switch then
keeps the one update there (see :mod:`engine.fusion.rule`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import torch
from torch import nn

from engine.adapters.lora.files import LoraLayer, check_lora_layers, linear_layer_shapes
from engine.core.errors import InputError
from engine.fusion.scores import layer_energy
from engine.models.backbones.base import Backbone

EXAMPLES = 3
LAYER_POLICIES = ("same", "union")
# Two updates whose difference has at most this fraction of their energy count as the same LoRA
# (float64 round-off of the closed form below is about 1e-16 of it).
SAME_LORA_TOLERANCE = 1e-10


@dataclass(frozen=True)
class LoraPair:
    """Both LoRAs over the same ordered layers: ``subject[name]`` and ``style[name]`` for every
    name in ``names`` (the order of the backbone's modules, so runs are reproducible)."""

    names: tuple[str, ...]
    subject: dict[str, LoraLayer]
    style: dict[str, LoraLayer]


def check_pair(backbone: Backbone, subject: Mapping[str, LoraLayer], style: Mapping[str, LoraLayer],
               layers: str = "same") -> LoraPair:
    """The two LoRAs as a :class:`LoraPair`, or an InputError naming what is wrong.

    ``layers``: ``"same"`` refuses two different layer sets; ``"union"`` fills the layers one LoRA
    leaves out with zero (rank-0) updates.
    """
    if layers not in LAYER_POLICIES:
        raise InputError(f"layers must be one of {', '.join(LAYER_POLICIES)}, not {layers!r}")
    shapes = linear_layer_shapes(backbone.transformer)
    check_lora_layers(subject, shapes, "the subject LoRA")
    check_lora_layers(style, shapes, "the style LoRA")
    only_subject = [name for name in subject if name not in style]
    only_style = [name for name in style if name not in subject]
    if (only_subject or only_style) and layers == "same":
        parts = []
        if only_subject:
            parts.append(f"only the subject LoRA changes {len(only_subject)} layer(s) ({_few(only_subject)})")
        if only_style:
            parts.append(f"only the style LoRA changes {len(only_style)} layer(s) ({_few(only_style)})")
        raise InputError("; ".join(parts) + ". Fusion switches between the two LoRAs layer by layer: pick two LoRAs trained "
                         "on the same layers, or fuse with layers='union' (--layers union) to treat a missing layer as no change")
    names = tuple(name for name in shapes if name in subject or name in style)
    modules = dict(backbone.transformer.named_modules())
    wrapped = [name for name in names if not isinstance(modules.get(name), nn.Linear)]
    if wrapped:
        raise InputError(f"{_few(wrapped)} is wrapped by another adapter; remove that adapter before fusing LoRAs")
    subject = {name: subject[name] if name in subject else _zero_layer(shapes[name]) for name in names}
    style = {name: style[name] if name in style else _zero_layer(shapes[name]) for name in names}
    for label, side in (("subject", subject), ("style", style)):
        if all(layer_energy(side[name]) == 0.0 for name in names):
            raise InputError(f"the {label} LoRA's update is zero in every layer (an untrained LoRA?); it would change nothing")
    if _same_updates(names, subject, style):
        raise InputError("the subject and the style LoRA are the same LoRA (equal updates in every layer); pick two different LoRAs")
    return LoraPair(names, subject, style)


def _zero_layer(shape: tuple[int, int]) -> LoraLayer:
    """A rank-0 LoRA of a ``(out, in)`` layer: ``down (0, in)``, ``up (out, 0)``, a zero update."""
    out_features, in_features = shape
    return LoraLayer(torch.zeros(0, in_features), torch.zeros(out_features, 0), 1.0)


def _same_updates(names: tuple[str, ...], subject: Mapping[str, LoraLayer], style: Mapping[str, LoraLayer]) -> bool:
    """True when ``sum ||dW_c - dW_s||_F^2 <= tolerance * sum (||dW_c||^2 + ||dW_s||^2)``.

    ``||X - Y||^2 = ||X||^2 + ||Y||^2 - 2 <X, Y>`` with ``<B_c A_c, B_s A_s> = sum((B_c^T B_s) * (A_c A_s^T))``,
    all from ``r x r`` products, so a kohya and a diffusers copy of one LoRA (other scales, other
    factor layouts) are recognised without forming any ``out x in`` matrix.
    """
    difference = total = 0.0
    for name in names:
        c, s = subject[name], style[name]
        energy_c, energy_s = layer_energy(c), layer_energy(s)
        cross = c.scale * s.scale * float(((c.up.double().T @ s.up.double()) * (c.down.double() @ s.down.double().T)).sum())
        difference += energy_c + energy_s - 2.0 * cross
        total += energy_c + energy_s
    return difference <= SAME_LORA_TOLERANCE * total


def _few(items) -> str:
    items = list(items)
    shown = ", ".join(str(item) for item in items[:EXAMPLES])
    return shown + (f" and {len(items) - EXAMPLES} more" if len(items) > EXAMPLES else "")
