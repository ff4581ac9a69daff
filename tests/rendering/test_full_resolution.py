"""Full-resolution results (engine/rendering/full_resolution.py): sizes, methods and limits."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from engine.core.errors import ConfigError, InputError
from engine.core.imaging import resize_to
from engine.rendering.full_resolution import MAX_RENDER_PIXELS, RenderSettings, carry_to_full_resolution


def noise_photo(width: int, height: int, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8), mode="RGB")


def warmer(image: Image.Image) -> Image.Image:
    array = np.asarray(image, dtype=np.float32)
    return Image.fromarray(np.clip(array * [1.1, 1.0, 0.8] + [10, 0, 0], 0, 255).round().astype(np.uint8), mode="RGB")


@pytest.mark.parametrize("size", [(1, 1000), (999, 333), (6000, 4000)])
@pytest.mark.parametrize("render", ["guided", "resize"])
def test_the_result_has_the_photo_size(size, render):
    photo = Image.new("RGB", size, (90, 120, 150))
    working = resize_to(photo, (max(1, size[0] // 40), max(1, size[1] // 40)))
    result = carry_to_full_resolution(photo, warmer(working), RenderSettings(render=render))
    assert result.size == size and result.mode == "RGB"


def test_guided_keeps_the_photo_detail_that_resize_loses():
    photo = noise_photo(400, 300)
    working = resize_to(photo, (100, 75))
    target = np.asarray(warmer(photo), dtype=np.float64)

    def error(render: str) -> float:
        result = carry_to_full_resolution(photo, warmer(working), RenderSettings(render=render, guided_epsilon=1e-6))
        return float(np.sqrt(((np.asarray(result, dtype=np.float64) - target) ** 2).mean()))

    assert error("guided") < 0.25 * error("resize")


def test_guided_detail_scales_the_detail_finer_than_a_working_pixel():
    photo = noise_photo(400, 300, seed=2)
    working = resize_to(photo, (100, 75))
    smooth = resize_to(working, photo.size)  # the photo without its sub-working-pixel detail

    def carried(detail: float) -> np.ndarray:
        settings = RenderSettings(guided_epsilon=1e-6, guided_detail=detail)
        return np.asarray(carry_to_full_resolution(photo, warmer(working), settings), dtype=np.float64)

    full, none, half = carried(1.0), carried(0.0), carried(0.5)
    assert np.array_equal(full, np.asarray(carry_to_full_resolution(photo, warmer(working), RenderSettings(guided_epsilon=1e-6))))
    # A global affine map is recovered, so each result is that map of its guide (to rounding).
    assert np.abs(full - np.asarray(warmer(photo), dtype=np.float64)).mean() < 1.0
    assert np.abs(none - np.asarray(warmer(smooth), dtype=np.float64)).mean() < 1.0
    assert np.abs(half - (full + none) / 2).mean() < 1.0
    assert np.abs(full - none).mean() > 20.0  # noise: most of its energy is finer than a working pixel


def test_a_result_already_at_the_photo_size_is_returned_as_it_is():
    photo = noise_photo(64, 48)
    result = warmer(photo)
    assert carry_to_full_resolution(photo, result) is result


def test_photos_over_the_cap_and_bad_settings_are_refused():
    side = int(MAX_RENDER_PIXELS ** 0.5) + 1
    with pytest.raises(InputError, match="up to 24 MP: downscale it first"):
        carry_to_full_resolution(Image.new("RGB", (side, side)), Image.new("RGB", (16, 16)))
    with pytest.raises(ConfigError, match="render must be one of guided, resize"):
        RenderSettings(render="tiles")
    with pytest.raises(ConfigError, match=r"guided_detail must lie in \[0, 1\]"):
        RenderSettings(guided_detail=1.5)
