"""The public entry points: fuse a subject LoRA and a style LoRA into one image.

``fuse(backbone, subject_layers, style_layers, config, prompt=..., photo=..., settings=...,
callback=...)`` checks the pair, measures beta when EST needs it (two extra sampling runs), then
renders with the fusion applied and returns the image; the backbone is left as it was. With a
photo it edits (:func:`engine.models.editing.edit_photo`); without one it generates (``size``, default the
model's native square). ``callback(step, total, preview)`` sees all runs as one sequence
(:func:`sampling_runs` says how many there are; :func:`engine.fusion.render.stage_of` which one a step is in).

For many images of one pair, make the plan once (:func:`engine.fusion.plan.plan_fusion`) and call
:func:`render_fusion`, which also reports beta, gamma and the per-step switch.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from typing import Mapping

from PIL import Image

from engine.adapters.lora.files import LoraLayer
from engine.fusion.applied import FusionStep, applied_fusion
from engine.fusion.config import FusionConfig
from engine.fusion.discrepancy import BETA_RUNS, BetaMeasurement, measure_beta
from engine.fusion.embedding import ImageEmbedding, load_embedding
from engine.fusion.plan import FusionPlan, plan_fusion
from engine.fusion.render import StagedProgress, generation_size, render
from engine.models.backbones.base import Backbone
from engine.models.editing import PreviewCallback
from engine.models.sampling.sampler import SamplerSettings
from engine.rendering.full_resolution import RenderSettings, carry_to_full_resolution, check_render_size


@dataclass
class FusionResult:
    """A fused image and how it was made: the beta used (None for the methods that do not
    switch), gamma, the switch at every step, and the two samples beta was measured between."""

    image: Image.Image
    beta: float | None
    gamma: float | None
    steps: list[FusionStep] = field(default_factory=list)
    beta_samples: BetaMeasurement | None = None


def render_fusion(backbone: Backbone, plan: FusionPlan, settings: SamplerSettings | None = None, prompt: str = "",
                  photo: Image.Image | None = None, size: tuple[int, int] | None = None,
                  callback: PreviewCallback | None = None, embedding: ImageEmbedding | None = None,
                  render_settings: RenderSettings | None = None) -> FusionResult:
    """Render one image with ``plan`` applied; measures beta first when the plan needs it. An
    edited photo comes back at its own size (the model works at its working size; the beta
    samples stay there).

    Args:
        backbone: the model the plan was made for.
        plan: from :func:`~engine.fusion.plan.plan_fusion`.
        settings: steps, seed and (edits) strength; the beta samples use the same but with
            ``plan.config.beta_seed``, and are measured once per prompt and photo (cached on the plan).
        prompt: the prompt or edit instruction ("" for the model's default).
        photo: the photo to edit, or None to generate.
        size: (width, height) of a generated image; default the native square.
        callback: ``callback(step, total, preview)`` over the beta samples and the fused run.
        embedding: the image embedding for beta; default from ``plan.config.dino_folder``.
        render_settings: how an edit is carried to the photo's size
            (:func:`engine.rendering.full_resolution.carry_to_full_resolution`).
    """
    settings = settings or SamplerSettings()
    if photo is None:
        size = generation_size(backbone, size)  # checked before any sampling
    else:
        check_render_size(photo.size)
    config = plan.config
    measurement = None
    beta = config.base_beta() if config.switches else None
    if config.measures_beta:
        beta_settings = dataclasses.replace(settings, seed=config.beta_seed)
        key = beta_key(prompt, photo, size, beta_settings, config.dino_folder if embedding is None else embedding)
        measurement = plan.beta_cache.get(key)
    progress = StagedProgress(callback, sampling_runs(config, beta_known=measurement is not None))
    if config.measures_beta:
        if measurement is None:
            embedding = embedding or load_embedding(config.dino_folder)
            measurement = measure_beta(backbone, plan, beta_settings, prompt, photo, size, embedding, progress=progress)
            plan.beta_cache[key] = measurement
        beta = measurement.beta
    with applied_fusion(backbone, plan, beta) as fusion:
        image = render(backbone, settings, prompt, photo, size, progress.stage(progress.stages - 1), fusion.before_step,
                       render_settings)
    if photo is not None:
        image = carry_to_full_resolution(photo, image, render_settings)
    return FusionResult(image, beta, plan.gamma, fusion.steps, measurement)


def sampling_runs(config: FusionConfig, beta_known: bool = False) -> int:
    """How many sampling runs :func:`render_fusion` reports through its callback, in order: the
    subject-only and style-only samples beta is measured between (EST without a given beta, unless
    ``beta_known``: measured before for this prompt and photo), then the fusion itself."""
    return BETA_RUNS + 1 if config.measures_beta and not beta_known else 1


def beta_key(prompt: str, photo: Image.Image | None, size: tuple[int, int] | None, settings: SamplerSettings,
             embedding: object) -> tuple:
    """What a measured beta depends on besides the pair: prompt, photo (by content), size,
    sampling settings (with the beta seed) and the embedding."""
    digest = None if photo is None else (photo.size, photo.mode, hashlib.sha256(photo.tobytes()).hexdigest())
    return prompt, digest, size, settings.steps, settings.seed, settings.strength, embedding


def fuse(backbone: Backbone, subject_layers: Mapping[str, LoraLayer], style_layers: Mapping[str, LoraLayer],
         config: FusionConfig | None = None, *, prompt: str = "", photo: Image.Image | None = None,
         size: tuple[int, int] | None = None, settings: SamplerSettings | None = None,
         callback: PreviewCallback | None = None) -> Image.Image:
    """Fuse ``subject_layers`` and ``style_layers`` (``{module: LoraLayer}`` as
    :func:`engine.adapters.lora.files.read_lora_file` returns) into one image; see the module docstring."""
    plan = plan_fusion(backbone, subject_layers, style_layers, config)
    return render_fusion(backbone, plan, settings, prompt, photo, size, callback).image
