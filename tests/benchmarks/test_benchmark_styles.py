"""The five benchmark styles: deterministic, size-preserving, resolution-aware, distinct from the
pretraining edits, and their building blocks against closed forms."""

import numpy as np
import pytest
from PIL import Image

from benchmarks.dataset import area_fit, load_benchmark_photo
from benchmarks.perceptual_validation import nudge
from benchmarks.styles import LUMA_WEIGHTS, ORANGE, STYLES, TEAL, dog_lines, kuwahara, palette_quantise, teal_orange
from engine.core.imaging import resize_to
from engine.metrics.image_scores import to_unit_tensor
from engine.metrics.perceptual import style_distance
from engine.training.generic_edits import GENERIC_EDIT_FUNCTIONS

PHOTOS = ("skimage-astronaut", "Garden", "plasma-EveningGlow")


@pytest.fixture(scope="module")
def photos():
    fit = area_fit(128)
    return [resize_to(image, fit(*image.size)) for image in map(load_benchmark_photo, PHOTOS)]


def test_registry_has_five_named_styles_of_both_kinds():
    assert len(STYLES) == 5
    assert all(spec.name == name and spec.description for name, spec in STYLES.items())
    assert {spec.kind for spec in STYLES.values()} == {"global", "local"}


@pytest.mark.parametrize("name", list(STYLES))
def test_style_is_deterministic_and_keeps_size_and_mode(name, photos):
    for photo in photos:
        first, second = STYLES[name](photo), STYLES[name](photo.copy())
        assert first.mode == "RGB" and first.size == photo.size
        assert first.tobytes() == second.tobytes()
        assert first.tobytes() != photo.tobytes()


@pytest.mark.parametrize("name", list(STYLES))
def test_style_applied_at_384_px_looks_like_the_style_at_128_px(name):
    # Resolution-awareness: styling at 384 px and shrinking must give the look of styling at
    # 128 px, clearly nearer to it than the unstyled photo is. (The ratio is ~0.05 for the global
    # styles, ~0.2 for ink, ~0.55 for cartoon and oil, whose finest strokes average out when shrunk.)
    photo = load_benchmark_photo("skimage-coffee")
    small_size = area_fit(128)(*photo.size)
    at_small = to_unit_tensor(STYLES[name](resize_to(photo, small_size)))
    shrunk = to_unit_tensor(resize_to(STYLES[name](resize_to(photo, area_fit(384)(*photo.size))), small_size))
    unstyled = to_unit_tensor(resize_to(photo, small_size))
    assert style_distance(at_small, shrunk).item() < 0.7 * style_distance(at_small, unstyled).item()


def test_no_generic_pretraining_edit_reproduces_a_style(photos):
    # Each style's output is farther from every generic edit of the photo than from the same
    # style applied to a 3 % zoomed copy of the photo.
    for name, style in STYLES.items():
        for photo in photos:
            target = to_unit_tensor(style(photo))
            own = style_distance(target, to_unit_tensor(style(nudge(photo)))).item()
            for edit_name, edit in GENERIC_EDIT_FUNCTIONS.items():
                assert style_distance(target, edit(to_unit_tensor(photo))).item() > own, (name, edit_name)


def test_teal_orange_on_mid_grey_matches_the_closed_form():
    # Grey 0.5: the S-curve keeps 0.5, there is no chroma, and shadow and highlight weights are
    # both 0.25, so the output is 0.5 + 0.75 * 0.25 * (teal chroma + orange chroma).
    grey = Image.new("RGB", (16, 16), (128, 128, 128))
    value = 128 / 255
    curved = 0.3 * value + 0.7 * value * value * (3 - 2 * value)
    tint = 0.75 * ((1 - curved) ** 2 * (TEAL - TEAL @ LUMA_WEIGHTS) + curved**2 * (ORANGE - ORANGE @ LUMA_WEIGHTS))
    expected = np.round(np.clip(curved + tint, 0, 1) * 255)
    assert np.array_equal(np.asarray(teal_orange(grey))[0, 0], expected.astype(np.uint8))


def test_dog_lines_leave_flat_areas_uninked_and_ink_the_dark_side_of_a_step():
    flat = np.full((32, 32), 0.3, dtype=np.float32)
    assert np.array_equal(dog_lines(flat, 0.5), np.ones_like(flat))
    step = np.zeros((32, 32), dtype=np.float32)
    step[:, 16:] = 1.0
    lines = dog_lines(step, 0.5)
    assert lines[:, 15].max() < 0.05  # the dark pixel next to the edge is inked
    assert lines[:, 16].min() == 1.0 and lines[:, :8].min() == 1.0


def test_kuwahara_keeps_a_step_edge_that_a_box_filter_would_smear():
    step = np.zeros((24, 24, 3), dtype=np.float32)
    step[:, 12:] = [0.9, 0.6, 0.3]
    np.testing.assert_allclose(kuwahara(step, 3.0), step, atol=1e-4)


def test_palette_quantise_keeps_an_image_with_fewer_colours_than_the_palette():
    colours = np.array([[0.1, 0.2, 0.3], [0.8, 0.1, 0.1], [0.5, 0.9, 0.4]], dtype=np.float32)
    image = colours[np.arange(48 * 48).reshape(48, 48) * 7 % 3]
    np.testing.assert_allclose(palette_quantise(image, 16), image, atol=1e-5)  # float32 means
