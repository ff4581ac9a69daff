"""Settings of a training-free subject/style LoRA fusion (:class:`FusionConfig`).

Methods (see :mod:`engine.fusion` for the rules):

* ``est``: EST-LoRA ("Subject or Style: Adaptive and Training-Free Mixture of LoRAs", arXiv
  2508.02165): per layer and step, the subject or the style update by their energies.
* ``klora``: K-LoRA ("Unlocking Training-Free Fusion of Any Subject and Style LoRAs", CVPR 2025):
  the same switch on the sums of the top-K update entries.
* ``merge``: the weighted sum ``subject_scale * dW_c + style_scale * dW_s`` in every layer.
* ``subject`` / ``style``: one LoRA alone (the references EST's beta is measured between).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from engine.core.configuration import option
from engine.core.errors import InputError
from engine.fusion.pair import LAYER_POLICIES

METHODS = ("est", "klora", "merge", "subject", "style")
SWITCHING_METHODS = ("est", "klora")
# K-LoRA's beta for its "s" pattern (its code and paper); EST measures beta instead.
KLORA_BETA = 0.5
# 1 - cos lies in [0, 2].
MAX_BETA = 2.0
MAX_SCALE = 4.0


@dataclass
class FusionConfig:
    """How to fuse a subject LoRA with a style LoRA."""

    method: str = option("est", f"Fusion method: {', '.join(METHODS)}.")
    alpha: float = option(1.5, "EST/K-LoRA time weight: S = alpha * tau + beta, tau the fraction of denoising done; "
                               "larger hands more layers to the style as sampling proceeds (the papers use 1.5).")
    style_bias: float = option(0.0, "Added to beta: positive favours the style in every layer and step, negative the subject.")
    subject_scale: float = option(1.0, "Multiplies the subject LoRA's update where it is used (the switch itself ignores it).")
    style_scale: float = option(1.0, "Multiplies the style LoRA's update where it is used (the switch itself ignores it).")
    beta: float | None = option(None, "Style discrepancy beta in [0, 2]; None measures it for EST (1 - cosine of the "
                                      "embeddings of a subject-only and a style-only sample) and uses K-LoRA's 0.5 for klora.")
    beta_seed: int = option(0, "Seed of the two samples beta is measured between; fixed (EST-LoRA's code uses 0) so every "
                               "seed rendered with one pair and prompt uses the same beta, measured once.")
    dino_folder: str = option("", "A local folder holding DINO ViT-S/16 (facebook/dino-vits16) for beta; "
                                  "empty uses the offline style embedding (engine.fusion.embedding).")
    layers: str = option("same", "'same' refuses two LoRAs that change different layers; 'union' treats a layer one LoRA "
                                 "leaves out (e.g. one rank pruning emptied) as no change on that side.")

    def __post_init__(self) -> None:
        _check(self.method in METHODS, f"method must be one of {', '.join(METHODS)}, not {self.method!r}")
        _check(self.layers in LAYER_POLICIES, f"layers must be one of {', '.join(LAYER_POLICIES)}, not {self.layers!r}")
        _check(_finite(self.alpha) and 0.0 <= self.alpha <= 10.0, f"alpha must lie in [0, 10], not {self.alpha}")
        _check(_finite(self.style_bias) and -MAX_BETA <= self.style_bias <= MAX_BETA,
               f"style_bias must lie in [-{MAX_BETA}, {MAX_BETA}], not {self.style_bias}")
        for name in ("subject_scale", "style_scale"):
            value = getattr(self, name)
            _check(_finite(value) and 0.0 <= value <= MAX_SCALE, f"{name} must lie in [0, {MAX_SCALE}], not {value}")
        if self.beta is not None:
            _check(_finite(self.beta) and 0.0 <= self.beta <= MAX_BETA, f"beta must lie in [0, {MAX_BETA}] or be None, not {self.beta}")
        _check(isinstance(self.beta_seed, int) and 0 <= self.beta_seed < 2**63, "beta_seed must be a non-negative integer")
        _check(isinstance(self.dino_folder, str), "dino_folder must be a folder path as text ('' for the offline embedding)")

    @property
    def switches(self) -> bool:
        """True for the methods that choose a LoRA per layer and step."""
        return self.method in SWITCHING_METHODS

    @property
    def measures_beta(self) -> bool:
        """True when beta must be measured from two samples (EST without a given beta)."""
        return self.method == "est" and self.beta is None

    def base_beta(self) -> float | None:
        """The given beta, K-LoRA's constant for klora, or None when it must be measured."""
        if self.beta is not None:
            return self.beta
        return KLORA_BETA if self.method == "klora" else None


def _finite(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check(condition: bool, message: str) -> None:
    # Fusion settings come from sliders and command-line flags: an out-of-range value is the
    # user's input, so it is an InputError (engine.core.configuration.require raises ConfigError).
    if not condition:
        raise InputError(message)
