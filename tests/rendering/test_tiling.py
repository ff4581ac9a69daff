"""Tiled inference (engine/rendering/tiling.py): one tile is the untiled edit, sizes, blend weights, seams."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from engine.core.errors import ConfigError
from engine.models.backbones.embedded.backbone import EmbeddedBackbone
from engine.models.editing import edit_photo
from engine.models.sampling.sampler import SamplerSettings
from engine.rendering.full_resolution import RenderSettings, carry_to_full_resolution
from engine.rendering import tiling
from engine.rendering.tiling import (axis_weights, edit_for_render, edit_tiled, settings_for_render, tile_batches, tile_grid,
                                    tile_offsets)


@pytest.fixture(scope="module")
def backbone() -> EmbeddedBackbone:
    """The tiny model (32-px working side, 8-px patches) with a random output layer, so it is not the identity."""
    model = EmbeddedBackbone.from_config("tiny")
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for parameter in model.transformer.proj_out.parameters():
            parameter.copy_(0.05 * torch.randn(parameter.shape, generator=generator))
    return model


def noise_photo(width: int, height: int, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8), mode="RGB")


@pytest.mark.parametrize("noise_scale", [-1.0, 1.0])
@pytest.mark.parametrize(("size", "tiled_size"), [((32, 32), 0), ((80, 80), 32)])
def test_one_tile_with_overlap_is_the_untiled_edit(backbone, size, tiled_size, noise_scale):
    photo = noise_photo(*size)
    settings = SamplerSettings(steps=3, seed=5, noise_scale=noise_scale)
    render = RenderSettings("tiled", tiled_size=tiled_size, tile_overlap=8)
    assert tile_grid(backbone, size, tiled_size, 8).count == 1
    tiled = edit_for_render(backbone, photo, settings, render=render)
    untiled = edit_photo(backbone, photo, settings)
    assert tiled.size == untiled.size == (32, 32)
    assert np.array_equal(np.asarray(tiled), np.asarray(untiled))
    full_tiled = carry_to_full_resolution(photo, tiled, render)
    full_untiled = carry_to_full_resolution(photo, untiled, RenderSettings())
    assert np.array_equal(np.asarray(full_tiled), np.asarray(full_untiled))


@pytest.mark.parametrize("size", [(1, 1000), (999, 333), (333, 999)])
def test_the_result_keeps_the_photos_size(backbone, size):
    photo = noise_photo(*size)
    render = RenderSettings("tiled", tile_overlap=8)
    grid = tile_grid(backbone, size, 0, 8)
    assert grid.count > 1
    tiled = edit_for_render(backbone, photo, SamplerSettings(steps=1), render=render)
    assert tiled.size == grid.size
    result = carry_to_full_resolution(photo, tiled, render)
    assert result.size == size and result.mode == "RGB"


def test_the_tiled_copy_is_three_working_sides_clamped_to_the_photo(backbone):
    assert tile_grid(backbone, (999, 333), 0, 8).size == (96, 32)
    assert tile_grid(backbone, (999, 333), 64, 8).size == (64, 24)
    assert tile_grid(backbone, (64, 48), 0, 8).size == (64, 48)  # never above the photo
    assert tile_grid(backbone, (20, 10), 0, 8).size == backbone.fit_size(20, 10) == (48, 24)  # nor below the untiled copy


@pytest.mark.parametrize(("length", "tile", "overlap"), [(96, 32, 8), (96, 32, 16), (100, 32, 0), (384, 128, 32),
                                                         (1016, 32, 8), (200, 128, 64), (40, 32, 8), (32, 32, 8)])
def test_blend_weights_sum_to_one_along_an_axis(length, tile, overlap):
    offsets = tile_offsets(length, tile, overlap, 8 if length % 8 == 0 else 1)
    assert offsets[0] == 0 and offsets[-1] == max(0, length - tile)
    assert all(later - earlier <= tile - overlap for earlier, later in zip(offsets, offsets[1:]))
    weights = axis_weights(length, tile, offsets)
    total = torch.zeros(length, dtype=torch.float64)
    for weight, offset in zip(weights, offsets):
        total[offset:offset + tile] += weight
    assert torch.allclose(total, torch.ones_like(total), atol=1e-12)
    assert bool((weights > 0).all())


@pytest.mark.parametrize("size", [(999, 333), (512, 512), (1, 1000)])
def test_blend_weights_sum_to_one_over_the_image(backbone, size):
    grid = tile_grid(backbone, size, 0, 8)
    wx, wy = axis_weights(grid.size[0], grid.tile[0], grid.xs), axis_weights(grid.size[1], grid.tile[1], grid.ys)
    total = torch.zeros(grid.size[1], grid.size[0], dtype=torch.float64)
    for left, top, right, bottom in grid.boxes():
        total[top:bottom, left:right] += wy[grid.ys.index(top)][:, None] * wx[grid.xs.index(left)][None, :]
    assert torch.allclose(total, torch.ones_like(total), atol=1e-12)


def test_weights_ramp_smoothly_over_an_overlap():
    weights = axis_weights(56, 32, (0, 24))  # an 8-pixel overlap at 24..31
    assert torch.all(weights[0, :24] == 1) and torch.all(weights[1, 8:] == 1)
    assert bool((weights[0, 23:].diff() < 0).all()) and float(weights[0, 24:].diff().abs().max()) < 0.25


@pytest.mark.parametrize("overlap", [8, 16])
def test_a_constant_colour_tiled_edit_has_no_step_at_tile_borders(backbone, overlap):
    # For a constant photo every tile sees the same input, so the model's result repeats with its
    # 8-px patch grid; tile borders must change nothing across a column: each column-to-column
    # step equals the one at the same position in the patch grid of a single tile's edit.
    photo = Image.new("RGB", (96, 40), (120, 80, 200))
    grid = tile_grid(backbone, photo.size, 96, overlap)
    assert len(grid.xs) > 2 and len(grid.ys) == 2
    result = np.asarray(edit_tiled(backbone, photo, SamplerSettings(steps=2), tiled_size=96, overlap=overlap), dtype=np.float64)
    single = np.asarray(edit_photo(backbone, Image.new("RGB", (32, 32), (120, 80, 200)), SamplerSettings(steps=2)), dtype=np.float64)
    assert np.ptp(result) > 5  # the model does change the colour, in a pattern
    steps_x = np.abs(np.diff(result, axis=1)).mean(axis=(0, 2))
    steps_y = np.abs(np.diff(result, axis=0)).mean(axis=(1, 2))
    patch_x = np.abs(np.diff(single, axis=1)).mean(axis=(0, 2))
    patch_y = np.abs(np.diff(single, axis=0)).mean(axis=(1, 2))
    borders_x = sorted({x - 1 for x in grid.xs if x} | {x + grid.tile[0] - 1 for x in grid.xs[:-1]})
    borders_y = sorted({y - 1 for y in grid.ys if y} | {y + grid.tile[1] - 1 for y in grid.ys[:-1]})
    assert borders_x and borders_y
    for column in borders_x:
        assert abs(steps_x[column] - patch_x[column % 8 + 8]) < 1.0, column
    for row in borders_y:
        assert abs(steps_y[row] - patch_y[row % 8 + 8]) < 1.0, row


@pytest.mark.parametrize("batch_tokens", [16, 64, 4096])  # a 32-px tile of 8-px patches is 16 tokens
def test_progress_counts_the_steps_of_every_batch_of_tiles(backbone, monkeypatch, batch_tokens):
    monkeypatch.setattr(tiling, "TILE_BATCH_TOKENS", batch_tokens)
    calls = []
    grid = tile_grid(backbone, (999, 333), 0, 8)
    batches = len(tile_batches(grid.count, 16))
    assert batches == -(-grid.count // (batch_tokens // 16))
    edit_tiled(backbone, noise_photo(999, 333), SamplerSettings(steps=2), callback=lambda *call: calls.append(call[:2]),
               overlap=8)
    assert calls == [(step, 2 * batches) for step in range(1, 2 * batches + 1)]


def test_tile_batches_cover_every_tile_once_in_order_within_the_token_budget():
    assert tile_batches(5, 2048) == [[0, 1], [2, 3], [4]]
    assert tile_batches(3, 10_000) == [[0], [1], [2]]  # a tile over the budget still runs, alone
    assert tile_batches(0, 256) == []


@pytest.mark.parametrize("noise_scale", [0.0, 1.0])
def test_tiles_sampled_together_equal_tiles_sampled_one_at_a_time(backbone, monkeypatch, noise_scale):
    photo, settings = noise_photo(150, 90, seed=3), SamplerSettings(steps=3, seed=5, noise_scale=noise_scale)
    together = np.asarray(edit_tiled(backbone, photo, settings, tiled_size=96, overlap=8), dtype=np.int16)
    monkeypatch.setattr(tiling, "TILE_BATCH_TOKENS", 1)
    alone = np.asarray(edit_tiled(backbone, photo, settings, tiled_size=96, overlap=8), dtype=np.int16)
    assert together.shape == alone.shape and tile_grid(backbone, photo.size, 96, 8).count > 1
    assert np.abs(together - alone).max() <= 1  # float rounding of a batched matmul, at most one 8-bit level


def test_render_settings_check_the_tiled_options():
    assert RenderSettings("tiled", tiled_size=512, tile_overlap=0).render == "tiled"
    for bad in ({"tiled_size": 8}, {"tiled_size": 5000}, {"tile_overlap": -1}):
        with pytest.raises(ConfigError):
            RenderSettings("tiled", **bad)


@pytest.mark.parametrize("render", ["guided", "tiled"])
def test_a_styles_chosen_steps_apply_unless_the_edit_sets_its_own(backbone, render):
    photo = noise_photo(48, 40)

    def total_steps(settings: SamplerSettings, edit_steps: int) -> int:
        totals = []
        edit_for_render(backbone, photo, settings, callback=lambda step, total, preview: totals.append(total),
                        render=RenderSettings(render, tile_overlap=8, edit_steps=edit_steps))
        return totals[-1]  # the steps of every batch of tiles, counted as one run

    batches = total_steps(SamplerSettings(steps=1), 0)
    assert total_steps(SamplerSettings(), 3) == 3 * batches  # the style's choice
    assert total_steps(SamplerSettings(), 0) == backbone.default_steps * batches  # no choice: the model's default
    assert total_steps(SamplerSettings(steps=5), 3) == 5 * batches  # the edit's own steps win
    assert settings_for_render(None, RenderSettings(edit_steps=3)).steps == 3
