"""A fusion prepared once per LoRA pair and settings: the checked pair, its scores and gamma.

Everything here is independent of the step, the prompt and the seed, so a studio session makes a
plan once and renders many images with it (:func:`engine.fusion.fuse.render_fusion`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Mapping

import torch

from engine.adapters.lora.files import LoraLayer
from engine.core.errors import InputError
from engine.fusion.config import FusionConfig
from engine.fusion.pair import LoraPair, check_pair
from engine.fusion.rule import SwitchRule
from engine.fusion.scores import balance_gamma, energies, l1_sums, top_k_sums
from engine.models.backbones.base import Backbone


@dataclass(frozen=True)
class FusionPlan:
    """A checked pair and what its method needs.

    ``subject_scores``/``style_scores`` ``(L,)`` float64 are the energies (EST) or top-K sums
    (K-LoRA) in ``pair.names`` order, ``None`` for the other methods; ``gamma`` is set for EST and
    K-LoRA (see :mod:`engine.fusion.scores`).
    """

    pair: LoraPair
    config: FusionConfig
    gamma: float | None = None
    subject_scores: torch.Tensor | None = None
    style_scores: torch.Tensor | None = None
    # Measured betas by what they depend on (see engine.fusion.fuse.beta_key): measured once per
    # pair, prompt and photo, as EST-LoRA does, however many seeds are rendered.
    beta_cache: dict = field(default_factory=dict, compare=False, repr=False)

    def rule(self, beta: float) -> SwitchRule:
        """The switch with discrepancy ``beta`` (the config's ``style_bias`` is added here)."""
        if self.gamma is None:
            raise InputError(f"the {self.config.method} method does not switch; only est and klora do")
        return SwitchRule(self.subject_scores, self.style_scores, self.gamma, self.config.alpha, beta + self.config.style_bias)

    def fold_options(self) -> list[tuple[float, float]]:
        """``(subject coefficient, style coefficient)`` per option: for a switching method option 0
        is the subject and option 1 the style; the other methods have one option."""
        config = self.config
        if config.switches:
            return [(config.subject_scale, 0.0), (0.0, config.style_scale)]
        return [{"subject": (config.subject_scale, 0.0), "style": (0.0, config.style_scale),
                 "merge": (config.subject_scale, config.style_scale)}[config.method]]

    def reference(self, side: str) -> "FusionPlan":
        """The plan of one LoRA alone at scale 1, for the samples beta is measured between. At
        scale 1, so the sliders change how strongly an update is applied, never the switch."""
        if side not in ("subject", "style"):
            raise InputError(f"side must be subject or style, not {side!r}")
        config = dataclasses.replace(self.config, method=side, subject_scale=1.0, style_scale=1.0)
        return FusionPlan(self.pair, config)


def plan_fusion(backbone: Backbone, subject: Mapping[str, LoraLayer], style: Mapping[str, LoraLayer],
                config: FusionConfig | None = None) -> FusionPlan:
    """Check the two LoRAs against ``backbone`` and each other, and compute the method's scores
    and gamma (once: they do not depend on the step)."""
    config = config or FusionConfig()
    if not isinstance(config, FusionConfig):
        raise InputError(f"config must be a FusionConfig, not {type(config).__name__}")
    pair = check_pair(backbone, subject, style, config.layers)
    names = pair.names
    if config.method == "est":
        subject_scores, style_scores = energies(pair.subject, names), energies(pair.style, names)
        gamma = balance_gamma(subject_scores, style_scores)
    elif config.method == "klora":
        # K-LoRA's gamma is the L1 ratio (its utils.get_ratio_between_content_and_style).
        gamma = balance_gamma(l1_sums(pair.subject, names), l1_sums(pair.style, names))
        subject_scores, style_scores = top_k_sums(pair.subject, pair.style, names)
    else:
        return FusionPlan(pair, config)
    return FusionPlan(pair, config, gamma, subject_scores, style_scores)
