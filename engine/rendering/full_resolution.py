"""From the model's working-size result to a result at the photo's own size.

Every edit runs the model on a working-size copy of the photo (:meth:`Backbone.fit_size`, a few
hundred pixels a side for the embedded model). :func:`carry_to_full_resolution` then returns the
result at the photo's width and height:

* ``guided`` (the default): the edit's colour change is fitted locally and applied to the full
  photo (:mod:`engine.rendering.guided_upsampling`), so every pixel of the photo's detail stays
  (``guided_detail`` below 1 keeps less of it, for styles that paint over fine detail);
* ``resize``: the working-size result upscaled (bicubic), the path before full-resolution
  rendering, kept for comparison;
* ``tiled``: the model edits a larger copy (``tiled_size`` on the long side) in overlapping
  working-size tiles (:mod:`engine.rendering.tiling`, which the callers run instead of the untiled
  edit), and the guided path carries that blend to the photo's size.

Photos above :data:`MAX_RENDER_PIXELS` are refused with a message; below it, peak memory stays
bounded because the guided path works in strips of rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from engine.core.configuration import option, require
from engine.core.errors import InputError
from engine.core.imaging import resize_to
from engine.rendering.guided_upsampling import PRIORS, apply_local_affine, fit_local_affine

RENDER_METHODS = ("guided", "resize", "tiled")
MAX_RENDER_PIXELS = 24_000_000  # 24 MP: the largest photo a full-resolution result is made for


@dataclass(frozen=True)
class RenderSettings:
    """How a working-size result is carried to the photo's resolution."""

    render: str = option("guided", "How the result reaches the photo's size: 'guided' applies the edit's local colour "
                                   "change to the full photo, keeping its detail; 'resize' upscales the model's result; "
                                   "'tiled' has the model edit a larger copy in overlapping working-size tiles, then "
                                   "carries it as 'guided' does.")
    guided_radius: int = option(2, "guided: the radius, in working-size pixels, of the windows the colour change is "
                                   "fitted over (larger is smoother).")
    guided_epsilon: float = option(1e-3, "guided: the regularisation of each window's fit (larger keeps flat areas "
                                         "closer to their mean colour change, smaller follows the edit more closely).")
    guided_detail: float = option(1.0, "guided: how much of the photo's fine detail (finer than one working-size pixel) "
                                       "the result keeps: 1 all of it, 0 none (for styles that paint over detail).")
    tiled_size: int = option(0, "tiled: the long side, in pixels, of the copy the model edits in tiles (0: 3 working "
                                "sides, e.g. 384 for the embedded model); never more than the photo's own long side.")
    tile_overlap: int = option(32, "tiled: how many pixels of the tiled copy neighbouring tiles share at least; their "
                                   "results are cross-faded over it (at most half the tile side, the working side, is used).")
    edit_steps: int = option(0, "Sampling steps of the model's edit when the edit itself sets none (its steps 0): chosen "
                                "per style with the rest of the render, as styles differ in how many steps serve them "
                                "best; 0 takes the model's default.")
    guided_prior: str = option("identity", "guided: what each window's fit leans towards where the photo is flat: 'identity' "
                                           "keeps the photo's own texture under the edit's colour change (an edit that "
                                           "changes nothing is carried exactly), 'flat' the edit's mean colour.")

    def __post_init__(self) -> None:
        require(self.render in RENDER_METHODS, f"render must be one of {', '.join(RENDER_METHODS)}, not {self.render!r}")
        require(0 <= self.guided_radius <= 16, "guided_radius must lie between 0 and 16")
        require(0.0 < self.guided_epsilon <= 1.0, "guided_epsilon must lie in (0, 1]")
        require(self.guided_prior in PRIORS, f"guided_prior must be one of {', '.join(PRIORS)}, not {self.guided_prior!r}")
        require(0.0 <= self.guided_detail <= 1.0, "guided_detail must lie in [0, 1]")
        require(self.tiled_size == 0 or 16 <= self.tiled_size <= 4096,
                "tiled_size must lie between 16 and 4096 pixels, or be 0 for 3 working sides")
        require(0 <= self.tile_overlap <= 1024, "tile_overlap must lie between 0 and 1024 pixels")
        require(0 <= self.edit_steps <= 1000, "edit_steps must lie between 1 and 1000 (0 for the model's default)")


def check_render_size(size: tuple[int, int], name: str = "the photo") -> None:
    """Refuse a photo larger than :data:`MAX_RENDER_PIXELS`, naming it and its size."""
    width, height = size
    if width * height > MAX_RENDER_PIXELS:
        raise InputError(f"{name} is {width}x{height} px ({width * height / 1e6:.1f} MP); full-resolution results are made "
                         f"for photos up to {MAX_RENDER_PIXELS // 1_000_000} MP: downscale it first")


def unit_tensor(image: Image.Image) -> torch.Tensor:
    """An RGB Pillow image to ``(3, H, W)`` float32 in ``[0, 1]``."""
    return torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0).permute(2, 0, 1)


def carry_to_full_resolution(photo: Image.Image, result: Image.Image, settings: RenderSettings | None = None) -> Image.Image:
    """``result``, the model's edit of ``photo`` at working size, at ``photo``'s size (RGB).

    The working-size source is ``photo`` resized to ``result``'s size exactly as
    :func:`engine.models.editing.edit_photo` made it (area averaging down). ``render="tiled"``
    carries as ``guided`` does: ``result`` is then the tiled blend (:func:`engine.rendering.tiling.edit_tiled`)."""
    settings = settings or RenderSettings()
    photo = photo.convert("RGB")
    check_render_size(photo.size)
    if result.size == photo.size:
        return result
    if settings.render == "resize":
        return resize_to(result, photo.size)
    working_photo = resize_to(photo, result.size)
    coefficients = fit_local_affine(unit_tensor(working_photo), unit_tensor(result), settings.guided_radius,
                                    settings.guided_epsilon, settings.guided_prior)
    guide = photo
    if settings.guided_detail < 1.0:
        # The photo with its detail finer than a working pixel scaled by guided_detail: a blend
        # with the working-size copy upscaled, in Pillow's uint8 arithmetic (no float copy).
        guide = Image.blend(resize_to(working_photo, photo.size), photo, settings.guided_detail)
    pixels = torch.from_numpy(np.array(guide)).permute(2, 0, 1)  # (3, H, W) uint8: no float copy of the whole photo
    full = apply_local_affine(coefficients, pixels)
    return Image.fromarray(full.permute(1, 2, 0).numpy(), mode="RGB")
