"""One image in either mode, and progress over several sampling runs.

Fusion renders in two modes: *edit* (an input photo: :func:`engine.models.editing.edit_photo`) and
*generation* (no photo: :func:`engine.models.editing.generate_image` at a given size). Both take the same
``callback(step, total, preview)`` and ``before_step`` hook, so fusion calls every backbone and
sampler the same way.
"""

from __future__ import annotations

from PIL import Image

from engine.core.errors import InputError
from engine.models.backbones.base import Backbone
from engine.models.editing import PreviewCallback, generate_image
from engine.models.sampling.sampler import BeforeStepHook, SamplerSettings
from engine.rendering.full_resolution import RenderSettings
from engine.rendering.tiling import edit_for_render


def generation_size(backbone: Backbone, size: tuple[int, int] | None) -> tuple[int, int]:
    """``size`` (width, height) checked against the backbone, or its native square."""
    if size is None:
        return backbone.native_resolution, backbone.native_resolution
    multiple = backbone.resolution_multiple
    width, height = size
    if width < multiple or height < multiple or width % multiple or height % multiple:
        raise InputError(f"a generated image of {width}x{height} does not fit this model; give sides that are "
                         f"multiples of {multiple} (its native size is {backbone.native_resolution})")
    return width, height


def render(backbone: Backbone, settings: SamplerSettings, prompt: str = "", photo: Image.Image | None = None,
           size: tuple[int, int] | None = None, callback: PreviewCallback | None = None,
           before_step: BeforeStepHook | None = None, render_settings: RenderSettings | None = None) -> Image.Image:
    """Edit ``photo`` or, without one, generate an image of ``size`` (default: the native square).
    An edit is tiled when ``render_settings.render == "tiled"`` (:func:`engine.rendering.tiling.edit_tiled`)."""
    if photo is not None:
        return edit_for_render(backbone, photo, settings, prompt, callback, before_step, render_settings)
    return generate_image(backbone, generation_size(backbone, size), settings, prompt=prompt, callback=callback,
                          before_step=before_step)


class StagedProgress:
    """Reports ``stages`` sampling runs of equal length as one ``(step, total, preview)`` sequence,
    so a progress bar created at the first step (with the total it is given) runs once to the end.

    ``stage(index)`` is the callback of run ``index``: its step ``s`` of ``n`` is reported as
    ``index * n + s`` of ``stages * n``; :func:`stage_of` undoes that for a caller that knows
    ``stages`` (e.g. from :func:`engine.fusion.fuse.sampling_runs`) and wants to name the run.
    """

    def __init__(self, callback: PreviewCallback | None, stages: int) -> None:
        self.callback, self.stages = callback, stages

    def stage(self, index: int) -> PreviewCallback | None:
        if self.callback is None:
            return None

        def report(step: int, total: int, preview: Image.Image) -> None:
            self.callback(index * total + step, self.stages * total, preview)

        return report


def stage_of(step: int, total: int, stages: int) -> tuple[int, int, int]:
    """Which run a combined ``step`` of ``total`` (as :class:`StagedProgress` reports ``stages``
    runs) belongs to: ``(run index from 0, step within that run, steps per run)``."""
    stages = max(1, stages)
    per_run = max(1, total // stages)
    index = min(max(step - 1, 0) // per_run, stages - 1)
    return index, step - index * per_run, per_run
