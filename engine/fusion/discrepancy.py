"""EST-LoRA's style discrepancy ``beta``, measured once per LoRA pair, prompt, photo and seed.

EST-LoRA (arXiv 2508.02165): render one image with only the subject LoRA and one with only the
style LoRA, with the same prompt, seed and settings (and the same photo when editing), embed both
and take ``beta = 1 - cos``. A large discrepancy (the style changes the look a lot) raises ``S``
in every step and so hands more layers to the style. Both samples use the LoRAs at scale 1
(:meth:`FusionPlan.reference`), so the subject/style sliders never move the switch.
"""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image

from engine.fusion.applied import applied_fusion
from engine.fusion.embedding import ImageEmbedding, OfflineStyleEmbedding, style_discrepancy
from engine.fusion.plan import FusionPlan
from engine.fusion.render import StagedProgress, render
from engine.models.backbones.base import Backbone
from engine.models.editing import PreviewCallback
from engine.models.sampling.sampler import SamplerSettings

BETA_RUNS = 2  # sampling runs beta is measured from: the subject-only and the style-only sample


@dataclass(frozen=True)
class BetaMeasurement:
    """The measured ``beta`` and the two samples it was measured between."""

    beta: float
    subject_sample: Image.Image
    style_sample: Image.Image


def measure_beta(backbone: Backbone, plan: FusionPlan, settings: SamplerSettings, prompt: str = "",
                 photo: Image.Image | None = None, size: tuple[int, int] | None = None,
                 embedding: ImageEmbedding | None = None, callback: PreviewCallback | None = None,
                 progress: StagedProgress | None = None, first_stage: int = 0) -> BetaMeasurement:
    """Render the subject-only and the style-only sample and return their discrepancy.

    ``callback(step, total, preview)`` sees the two runs as one sequence; or ``progress`` reports
    them as its stages ``first_stage`` and ``first_stage + 1`` (part of a longer sequence).
    """
    if progress is None:
        progress, first_stage = StagedProgress(callback, BETA_RUNS), 0
    samples = []
    for offset, side in enumerate(("subject", "style")):
        with applied_fusion(backbone, plan.reference(side)):
            samples.append(render(backbone, settings, prompt, photo, size, progress.stage(first_stage + offset)))
    beta = style_discrepancy(samples[0], samples[1], embedding or OfflineStyleEmbedding())
    return BetaMeasurement(beta, samples[0], samples[1])
