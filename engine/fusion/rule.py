"""The per-layer, per-step switch of EST-LoRA and K-LoRA, for all layers in one vectorised op.

Both papers (EST-LoRA, arXiv 2508.02165, and K-LoRA, CVPR 2025) use, for each LoRA-wrapped layer
at every step, with per-layer scores ``score_c`` (subject) and ``score_s`` (style)::

    S = alpha * tau + beta                       (tau: fraction of the denoising done)
    use dW_c  if  (score_c / gamma) / (score_s * S) > 1,  else dW_s

The scores and gamma do not depend on the step (:mod:`engine.fusion.scores`), so
``balanced = score_c / gamma`` and ``score_s`` are kept as ``(L,)`` tensors and a step's choice for
every layer is one elementwise expression, evaluated in float64 exactly as written above (so a
per-layer Python loop of the rule gives the same bits). Edge cases follow from IEEE arithmetic
as they would in the papers' code: ``score_s = 0`` gives an infinite ratio (subject);
``score_c = score_s = 0`` gives NaN (not ``> 1``: style; both updates are zero there anyway);
``S <= 0`` (only with a negative ``style_bias``) gives a ratio ``<= 0`` (style).

For ``S > 0`` the ratio falls as ``tau`` grows, so each layer switches at most once per run, from
subject to style: early steps (layout) follow the subject, late steps (texture) the style.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class SwitchRule:
    """The switch for ``L`` layers: ``subject_scores``, ``style_scores`` ``(L,)`` float64, ``gamma``,
    ``alpha`` and ``beta`` (the measured or given discrepancy plus the style bias)."""

    subject_scores: torch.Tensor
    style_scores: torch.Tensor
    gamma: float
    alpha: float
    beta: float

    def __post_init__(self) -> None:
        # Divided once here, not at every step: the step only changes S.
        object.__setattr__(self, "_balanced", self.subject_scores.double() / self.gamma)

    def strength(self, fraction_done: float) -> float:
        """``S = alpha * tau + beta``."""
        return self.alpha * fraction_done + self.beta

    def choose(self, fraction_done: float) -> torch.Tensor:
        """``(L,)`` bool: True where the layer uses the subject update at step fraction ``tau``."""
        return self._balanced / (self.style_scores.double() * self.strength(fraction_done)) > 1.0
