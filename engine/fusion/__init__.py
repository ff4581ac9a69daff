"""Training-free fusion of a subject LoRA and a style LoRA on any backbone.

Inputs are two LoRAs as ``{module: LoraLayer}`` (what :func:`engine.adapters.lora.files.read_lora_file`
returns for Atelier's exported styles and for diffusers, peft and kohya files). Methods
(:class:`FusionConfig`):

* ``est``, EST-LoRA ("Subject or Style: Adaptive and Training-Free Mixture of LoRAs", arXiv
  2508.02165): per layer and step, use the subject update ``dW_c`` if
  ``(E_c / gamma) / (E_s * S) > 1`` else the style update ``dW_s``, with energies
  ``E = ||dW||_F^2`` (:mod:`.scores`), ``S = alpha * tau + beta``, ``tau`` the sampler's real step
  fraction and ``beta`` a measured style discrepancy (:mod:`.discrepancy`, :mod:`.embedding`).
* ``klora``, K-LoRA ("Unlocking Training-Free Fusion of Any Subject and Style LoRAs", CVPR 2025):
  the same switch on the sums of the top-``r_c * r_s`` entries of ``|dW|``, ``beta = 0.5``.
* ``merge``: ``subject_scale * dW_c + style_scale * dW_s``; ``subject`` / ``style``: one LoRA.

Better than the public code of both papers: scores and gamma are computed once per pair
(:mod:`.scores`), not at every layer call; ``tau`` comes from the sampler (:class:`StepStart`),
not a global call counter that assumes one step count, layer count and run; gamma is the ratio
of the score each rule compares (for EST an energy ratio, not an L1 ratio); and the choice of all
layers is one vectorised op per step (:mod:`.rule`) whose result is folded into the weights of the
changed layers only (:mod:`.folding`; each layer changes at most once per run, so fusion runs at
the speed of a single folded LoRA; :mod:`benchmarks.fusion_speed` measures it against the
alternatives, benchmark baselines in :mod:`benchmarks.fusion_baselines`: stacked unfolded factors
and the papers' per-call recomputation).

Entry points: :func:`fuse` (one image), :func:`plan_fusion` + :func:`render_fusion` (many images
of one pair), :func:`applied_fusion` (the context manager that installs a fusion and restores
the backbone bit for bit).
"""

from engine.fusion.applied import AppliedFusion, FusionStep, applied_fusion
from engine.fusion.config import METHODS, FusionConfig
from engine.fusion.discrepancy import BetaMeasurement, measure_beta
from engine.fusion.embedding import DinoEmbedding, OfflineStyleEmbedding, load_embedding, style_discrepancy
from engine.fusion.fuse import FusionResult, fuse, render_fusion
from engine.fusion.pair import LoraPair, check_pair
from engine.fusion.plan import FusionPlan, plan_fusion
from engine.fusion.rule import SwitchRule

__all__ = [
    "METHODS", "AppliedFusion", "BetaMeasurement", "DinoEmbedding", "FusionConfig", "FusionPlan", "FusionResult", "FusionStep",
    "LoraPair", "OfflineStyleEmbedding", "SwitchRule", "applied_fusion", "check_pair", "fuse", "load_embedding",
    "measure_beta", "plan_fusion", "render_fusion", "style_discrepancy",
]
