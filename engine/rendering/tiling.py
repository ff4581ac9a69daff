"""Tiled inference: the model edits a larger copy of the photo in overlapping working-size tiles.

``RenderSettings.render == "tiled"`` (:mod:`engine.rendering.full_resolution`). The untiled edit runs
the model once on a copy of the photo with the working area (a 128x128-pixel area for the embedded
model), so everything the model draws is at most that fine. Here the photo is downscaled to
``tiled_size`` pixels on its long side instead (default 3x the working side, never above the
photo's own long side, never below the untiled copy's), cut into square tiles of the working side
that overlap by at least ``tile_overlap`` pixels (at most half a tile), and each tile is edited by
:func:`engine.models.sampling.sampler.sample` exactly as an untiled edit of that tile would be
(:func:`engine.models.editing.edit_photo`: encode, the same condition, the same settings). The
tiles' results are blended with weights that form a partition of unity (:func:`axis_weights`:
raised-cosine ramps over each overlap, ``cos^2 + sin^2 = 1``), and the blend at ``tiled_size`` is
what :func:`~engine.rendering.full_resolution.carry_to_full_resolution` then carries to the photo's
size with the guided path.

* **Noise**: one noise image for the whole tiled copy, drawn from ``settings.seed`` as the sampler
  draws it; each tile's run gets its crop (:class:`_CroppedNoise`), so overlapping tiles start from
  the same noise where they overlap. (The embedded model edits from zero noise by default.)
* **Batches**: tiles are sampled together, up to :data:`TILE_BATCH_TOKENS` image tokens at a time
  (:func:`tile_batches`); beside the model only the tiled copy, its blend ``(3, H, W)`` and one
  batch of tiles are kept, whatever the number of tiles.
* **Progress**: ``callback(step, total, preview)`` counts the steps of all batches as one run
  (batch ``k`` of ``n``, step ``s`` of ``S``: ``k * S + s`` of ``n * S``); the preview is the
  estimate of the batch's first tile.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
from PIL import Image

from engine.core.errors import InputError
from engine.core.imaging import resize_to, to_pil, to_tensor
from engine.models.backbones.base import Backbone
from engine.models.editing import PreviewCallback, edit_photo, preview_callback
from engine.models.sampling.sampler import BeforeStepHook, SamplerSettings, sample
from engine.rendering.full_resolution import RenderSettings

DEFAULT_TILED_FACTOR = 3  # tiled_size 0: this many working sides on the long side
# Tiles are sampled together up to this many image tokens per batch: 16 of the embedded model's
# 256-token tiles, 4 of FLUX.1 Kontext's at 1024 px.
TILE_BATCH_TOKENS = 4096


@dataclass(frozen=True)
class TileGrid:
    """Where the tiles lie in the tiled copy of the photo.

    ``size``: the tiled copy ``(width, height)``; ``tile``: a tile's ``(width, height)`` (the
    working side, or the copy's side where that is shorter); ``xs``/``ys``: the tiles' left and
    top pixel offsets (multiples of the backbone's ``resolution_multiple``)."""

    size: tuple[int, int]
    tile: tuple[int, int]
    xs: tuple[int, ...]
    ys: tuple[int, ...]

    @property
    def count(self) -> int:
        return len(self.xs) * len(self.ys)

    def boxes(self) -> list[tuple[int, int, int, int]]:
        """``(left, top, right, bottom)`` of every tile, row by row."""
        width, height = self.tile
        return [(x, y, x + width, y + height) for y in self.ys for x in self.xs]


def tile_offsets(length: int, tile: int, overlap: int, multiple: int = 1) -> tuple[int, ...]:
    """Start offsets of tiles of ``tile`` pixels covering ``length`` pixels, neighbours overlapping
    by at least ``overlap`` pixels (less by under ``multiple`` where rounding to ``multiple``
    needs it), spread evenly from 0 to ``length - tile``."""
    if tile >= length:
        return (0,)
    if not 0 <= overlap < tile:
        raise InputError(f"the tile overlap must lie in [0, {tile}) pixels for {tile}-pixel tiles, not {overlap}")
    count = math.ceil((length - overlap) / (tile - overlap))
    last = length - tile
    offsets = [min(last, round(index * last / (count - 1) / multiple) * multiple) for index in range(count)]
    return tuple(sorted(set(offsets)))


def axis_weights(length: int, tile: int, offsets: tuple[int, ...]) -> torch.Tensor:
    """Blend weights along one axis, ``(len(offsets), tile)`` float64: tile ``i`` covers pixels
    ``offsets[i] .. offsets[i] + tile - 1``. Over the overlap of tiles ``i`` and ``i + 1`` the
    first falls as ``cos^2`` and the second rises as ``sin^2`` of the same angle (a raised
    cosine), so at every pixel the weights of the tiles covering it sum to one; elsewhere a
    tile's weight is 1. Where three tiles overlap (overlap above half a tile) the weights are
    divided by their sum, which keeps the partition of unity."""
    weights = torch.ones(len(offsets), tile, dtype=torch.float64)
    for index in range(len(offsets) - 1):
        start, stop = offsets[index + 1], offsets[index] + tile  # the overlap, in image pixels
        if stop <= start:
            continue
        angle = (torch.arange(stop - start, dtype=torch.float64) + 0.5) / (stop - start) * (math.pi / 2)
        weights[index, start - offsets[index]:] *= angle.cos() ** 2
        weights[index + 1, :stop - start] *= angle.sin() ** 2
    total = torch.zeros(max(length, offsets[-1] + tile), dtype=torch.float64)
    for index, offset in enumerate(offsets):
        total[offset:offset + tile] += weights[index]
    for index, offset in enumerate(offsets):
        weights[index] /= total[offset:offset + tile]
    return weights


def tiled_size_for(backbone: Backbone, photo_size: tuple[int, int], tiled_size: int,
                   working_size: int = 0) -> tuple[tuple[int, int], int]:
    """The tiled copy's ``(width, height)`` and the tile side for a photo of ``photo_size``.

    The long side is ``tiled_size`` (0: :data:`DEFAULT_TILED_FACTOR` working sides), clamped to
    the photo's long side but never below the untiled working copy's; sides are rounded to the
    backbone's ``resolution_multiple``. The tile side is the working side: the side of the square
    :meth:`Backbone.fit_size` gives for ``working_size`` (0: the native resolution)."""
    multiple = backbone.resolution_multiple
    side = backbone.fit_size(1, 1, working_size or None)[0]
    width, height = photo_size
    untiled = backbone.fit_size(width, height, working_size or None)
    long_side = min(tiled_size or DEFAULT_TILED_FACTOR * side, max(width, height))
    long_side = max(long_side, max(untiled))
    scale = long_side / max(width, height)
    size = tuple(max(multiple, round(length * scale / multiple) * multiple) for length in (width, height))
    return (size[0], size[1]), side


def tile_grid(backbone: Backbone, photo_size: tuple[int, int], tiled_size: int = 0, overlap: int = 32,
              working_size: int = 0) -> TileGrid:
    """The tiles a tiled edit of a photo of ``photo_size`` runs (see :func:`tiled_size_for`).
    ``overlap`` is capped at half a tile."""
    size, side = tiled_size_for(backbone, photo_size, tiled_size, working_size)
    tile = (min(side, size[0]), min(side, size[1]))
    multiple = backbone.resolution_multiple
    return TileGrid(size, tile, tile_offsets(size[0], tile[0], min(overlap, tile[0] // 2), multiple),
                    tile_offsets(size[1], tile[1], min(overlap, tile[1] // 2), multiple))


class _CroppedNoise:
    """A view of a backbone whose :meth:`latent_noise` returns a given crop of the global noise,
    so :func:`sample` is called as an untiled edit calls it; everything else is the backbone's."""

    def __init__(self, backbone: Backbone, noise: torch.Tensor) -> None:
        self._backbone, self._noise = backbone, noise

    def __getattr__(self, name: str):
        return getattr(self._backbone, name)

    def latent_noise(self, latents_shape: torch.Size, generator: torch.Generator) -> torch.Tensor:
        if tuple(latents_shape) != tuple(self._noise.shape):
            raise InputError(f"a tile's latents {tuple(latents_shape)} do not match its noise {tuple(self._noise.shape)}")
        return self._noise.to(self._backbone.device)


def tile_batches(count: int, tokens_per_tile: int) -> list[list[int]]:
    """Tile indices ``0..count-1`` in order, in batches of at most :data:`TILE_BATCH_TOKENS`
    image tokens (at least one tile each), so memory stays bounded at any working size."""
    size = max(1, TILE_BATCH_TOKENS // max(1, tokens_per_tile))
    return [list(range(start, min(start + size, count))) for start in range(0, count, size)]


def _tile_callback(callback: PreviewCallback | None, index: int, count: int) -> PreviewCallback | None:
    if callback is None:
        return None

    def report(step: int, total: int, preview: Image.Image) -> None:
        callback(index * total + step, count * total, preview)

    return report


def edit_tiled(backbone: Backbone, photo: Image.Image, settings: SamplerSettings | None = None, prompt: str = "",
               callback: PreviewCallback | None = None, before_step: BeforeStepHook | None = None,
               tiled_size: int = 0, overlap: int = 32) -> Image.Image:
    """Edit ``photo`` in overlapping tiles; returns the blended result at the tiled copy's size
    (:func:`tile_grid`), ``(W, H)`` with the photo's aspect ratio, for
    :func:`~engine.rendering.full_resolution.carry_to_full_resolution` to carry to the photo's size.

    Tiles run in batches of up to :data:`TILE_BATCH_TOKENS` tokens (:func:`tile_batches`): a batch
    ``(b, 3, th, tw)`` is encoded to ``(b, C, th / f, tw / f)`` latents (``f`` the backbone's pixels
    per latent), sampled with ``settings`` and each tile's crop of one global noise
    ``(1, C, H / f, W / f)``, decoded, and added into a ``(3, H, W)`` float32 blend with its weight
    ``wy (th,) x wx (tw,)`` (:func:`axis_weights`). A batch makes one model call per step instead of
    one per tile; on two CPU cores that measured within the noise of one tile at a time
    (docs/decisions/2026-12-04-tiled-render.md), the gain is in fewer calls. A photo whose tiled copy is one tile is edited exactly as :func:`edit_photo` edits that copy."""
    settings = settings or SamplerSettings()
    grid = tile_grid(backbone, photo.size, tiled_size, overlap, settings.working_size)
    tiled = resize_to(photo.convert("RGB"), grid.size)
    width, height = grid.size
    x_weights = axis_weights(width, grid.tile[0], grid.xs).float()
    y_weights = axis_weights(height, grid.tile[1], grid.ys).float()
    blend = torch.zeros(3, height, width)
    boxes = grid.boxes()
    multiple = backbone.resolution_multiple
    batches = tile_batches(len(boxes), (grid.tile[0] // multiple) * (grid.tile[1] // multiple))
    noise = None
    with torch.inference_mode():
        for number, batch in enumerate(batches):
            chosen = [boxes[index] for index in batch]
            source = backbone.encode(torch.cat([to_tensor(tiled.crop(box)) for box in chosen]).to(backbone.device))
            factor = grid.tile[1] // source.shape[-2]  # pixels per latent
            if noise is None:
                shape = (1, source.shape[1], height // factor, width // factor)
                noise = backbone.latent_noise(torch.Size(shape), torch.Generator().manual_seed(settings.seed)).cpu()
            crops = torch.cat([noise[..., top // factor:top // factor + source.shape[-2], left // factor:left // factor + source.shape[-1]]
                               for left, top, _, _ in chosen])
            latents = sample(_CroppedNoise(backbone, crops.contiguous()), backbone.encode_prompt([prompt] * len(chosen)),
                             source.shape, settings, source=source,
                             callback=preview_callback(_tile_callback(callback, number, len(batches))), before_step=before_step)
            decoded = backbone.decode(latents).float().cpu()  # (b, 3, th, tw) in [-1, 1]
            for (left, top, right, bottom), image in zip(chosen, decoded):
                weight = y_weights[grid.ys.index(top)][:, None] * x_weights[grid.xs.index(left)][None, :]  # (th, tw)
                blend[:, top:bottom, left:right] += weight * image
        return to_pil(blend.unsqueeze(0))[0]


def edit_for_render(backbone: Backbone, photo: Image.Image, settings: SamplerSettings | None = None, prompt: str = "",
                    callback: PreviewCallback | None = None, before_step: BeforeStepHook | None = None,
                    render: RenderSettings | None = None) -> Image.Image:
    """The model's edit of ``photo`` that ``render`` carries to full
    size: :func:`edit_tiled` for ``render="tiled"``, else :func:`edit_photo` at working size.
    ``render.edit_steps`` (a style's chosen steps) applies when ``settings`` sets no steps."""
    settings = settings_for_render(settings, render)
    if render is not None and render.render == "tiled":
        return edit_tiled(backbone, photo, settings, prompt, callback, before_step, render.tiled_size, render.tile_overlap)
    return edit_photo(backbone, photo, settings, prompt=prompt, callback=callback, before_step=before_step)


def settings_for_render(settings: SamplerSettings | None, render: RenderSettings | None) -> SamplerSettings:
    """``settings`` with ``render.edit_steps`` as its steps where it gives none (steps 0): steps the
    user sets win over the style's choice, which wins over the model's default."""
    settings = settings or SamplerSettings()
    if render is None or not render.edit_steps or settings.steps:
        return settings
    return replace(settings, steps=render.edit_steps)
