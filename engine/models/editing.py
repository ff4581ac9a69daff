"""Editing and generating single photos: the call the CLI and the studio make."""

from __future__ import annotations

from typing import Callable

import torch
from PIL import Image

from engine.core.imaging import resize_to, to_pil, to_tensor
from engine.models.backbones.base import Backbone
from engine.models.sampling.sampler import BeforeStepHook, SamplerSettings, StepCallback, StepInfo, sample

PreviewCallback = Callable[[int, int, Image.Image], None]


def preview_callback(on_preview: PreviewCallback | None) -> StepCallback | None:
    """Adapt a ``(step, total, image)`` preview function to the sampler's step callback."""
    if on_preview is None:
        return None

    def callback(info: StepInfo) -> None:
        on_preview(info.step, info.total, to_pil(info.preview())[0])

    return callback


def edit_photo(
    backbone: Backbone,
    photo: Image.Image,
    settings: SamplerSettings | None = None,
    prompt: str = "",
    callback: PreviewCallback | None = None,
    before_step: BeforeStepHook | None = None,
) -> Image.Image:
    """Edit one RGB photo at the backbone's native area, keeping its aspect ratio.

    ``callback(step, total, preview)`` receives the current estimate of the result after each
    step; ``before_step`` (see :func:`~engine.models.sampling.sampler.sample`) runs before each model
    call. The result has the working size (see :meth:`Backbone.fit_size`; ``settings.working_size``
    sets its area); :func:`engine.rendering.full_resolution.carry_to_full_resolution` takes it to
    the photo's size.
    """
    settings = settings or SamplerSettings()
    working = resize_to(photo.convert("RGB"), backbone.fit_size(*photo.size, settings.working_size or None))
    with torch.inference_mode():
        source = backbone.encode(to_tensor(working).to(backbone.device))
        condition = backbone.encode_prompt([prompt])
        latents = sample(backbone, condition, source.shape, settings, source=source, callback=preview_callback(callback),
                         before_step=before_step)
        return to_pil(backbone.decode(latents))[0]


def generate_image(
    backbone: Backbone,
    size: tuple[int, int],
    settings: SamplerSettings | None = None,
    prompt: str = "",
    callback: PreviewCallback | None = None,
    before_step: BeforeStepHook | None = None,
) -> Image.Image:
    """Generate an image of ``size`` (width, height; multiples of the backbone's patch) with no source.

    ``callback`` and ``before_step`` as for :func:`edit_photo`."""
    settings = settings or SamplerSettings()
    width, height = size
    with torch.inference_mode():
        probe = backbone.encode(torch.zeros(1, 3, height, width, device=backbone.device))
        condition = backbone.encode_prompt([prompt])
        latents = sample(backbone, condition, probe.shape, settings, callback=preview_callback(callback), before_step=before_step)
        return to_pil(backbone.decode(latents))[0]
