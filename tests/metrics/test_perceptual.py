"""The random-feature style distance, its validation cases, and SSIM/PSNR against closed forms."""

import math

import pytest
import torch
from PIL import Image

from benchmarks.dataset import area_fit, benchmark_photos
from benchmarks.perceptual_validation import (
    cross_style_check,
    degradation_curves,
    format_report,
    increasing_fraction,
    nudge_check,
    working_photos,
)
from benchmarks.styles import STYLES
from engine.core.errors import ConfigError, InputError
from engine.metrics.image_scores import score_images, ssim, to_unit_tensor
from engine.metrics.perceptual import RandomFeatureConfig, RandomFeatures, default_features, structure_distance, style_distance


@pytest.fixture(scope="module")
def test_crops():
    return working_photos("test", area_fit(128))


def random_images(seed, shape=(2, 3, 40, 48)):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed))


def test_distances_are_zero_for_equal_images_and_positive_otherwise():
    a, b = random_images(0), random_images(1)
    assert torch.equal(style_distance(a, a), torch.zeros(2))
    assert torch.equal(structure_distance(a, a), torch.zeros(2))
    assert (style_distance(a, b) > 0).all() and (structure_distance(a, b) > 0).all()
    torch.testing.assert_close(style_distance(a, b), style_distance(b, a))


def test_style_distance_ignores_position_but_structure_does_not():
    photos = [to_unit_tensor(photo) for photo in working_photos("train", area_fit(128))]
    for index, photo in enumerate(photos):
        # Half a width of circular shift moves everything; only the seam adds new texture.
        moved = photo.roll(shifts=photo.shape[-1] // 2, dims=3)
        nearest_other = min(style_distance(photo, other).item() for other in photos if other is not photo)
        assert style_distance(photo, moved).item() < 0.5 * nearest_other, index
        assert structure_distance(photo, moved).item() > 0.3, index


def test_style_distance_compares_images_of_different_sizes():
    assert style_distance(random_images(0, (1, 3, 40, 48)), random_images(1, (1, 3, 56, 32))).item() > 0
    with pytest.raises(InputError, match="shape"):
        structure_distance(random_images(0, (1, 3, 40, 48)), random_images(1, (1, 3, 56, 32)))


def test_the_filters_are_fixed_by_the_seed():
    same = RandomFeatures(RandomFeatureConfig(seed=5))
    for first, second in zip(same.filters, RandomFeatures(RandomFeatureConfig(seed=5)).filters):
        assert torch.equal(first, second)
    assert not torch.equal(same.filters[0], RandomFeatures(RandomFeatureConfig(seed=6)).filters[0])
    half = same.config.channels // 2
    torch.testing.assert_close(same.filters[0][:half].sum(dim=(2, 3)), torch.zeros(half, 3), atol=1e-6, rtol=0)
    torch.testing.assert_close(same.filters[0].flatten(1).norm(dim=1), torch.ones(same.config.channels))


@pytest.mark.parametrize("values, match", [({"channels": 3}, "even"), ({"kernel_size": 4}, "odd"),
                                           ({"levels": 0}, "levels"), ({"energy_weight": -1.0}, "energy_weight")])
def test_bad_configs_are_refused(values, match):
    with pytest.raises(ConfigError, match=match):
        RandomFeatureConfig(**values)


def test_too_small_images_are_refused_with_the_minimum():
    with pytest.raises(InputError, match="at least 20 px"):
        style_distance(random_images(0, (1, 3, 16, 64)), random_images(1, (1, 3, 16, 64)))


def test_self_is_zero_and_nudged_style_is_nearer_than_the_unedited_photo(test_crops):
    ids = [photo_id for _, photo_id in benchmark_photos("test")][::4]
    checks = nudge_check(test_crops[::4], STYLES, default_features())
    failures = set()
    for name, check in checks.items():
        assert all(value == 0 for value in check.self_distance), name
        failures |= {(name, photo_id) for photo_id, nudged, unedited in zip(ids, check.nudged, check.unedited)
                     if not nudged < unedited}
    # The one known exception (also the only one on all 20 crops): city is flat colour fields,
    # which cartoon barely changes, so even a 3 % zoom moves its look more than the style does.
    assert failures <= {("cartoon", "city-left")}


def test_distance_rises_strictly_with_blur_and_noise(test_crops):
    curves = degradation_curves(test_crops[::5], default_features())
    for key, values in curves.items():
        assert increasing_fraction(values) == 1.0, (key, values)


def test_same_style_on_another_photo_is_nearer_than_another_style_for_most_pairs(test_crops):
    check = cross_style_check(test_crops[::4], STYLES, default_features())
    assert check.comparisons == 5 * 4 * 5 * 4
    # On all 10 held-out photos the share is 0.82 (plain Gram 0.66, pixels 0.67).
    assert check.fractions["style distance"] >= 0.75
    assert check.fractions["style distance"] > check.fractions["plain Gram"]
    assert check.fractions["style distance"] > check.fractions["pixel RMS"]


def test_report_formats_every_section(test_crops):
    from benchmarks.perceptual_validation import ValidationReport

    features = default_features()
    few = test_crops[:2]
    two_styles = {"vintage": STYLES["vintage"], "cartoon": STYLES["cartoon"]}
    report = ValidationReport(nudge_check(few, {"vintage": STYLES["vintage"]}, features), degradation_curves(few, features),
                              {"two crops": cross_style_check(few, two_styles, features)})
    text = format_report(report)
    assert "vintage" in text and "blur style" in text and "two crops" in text


def test_ssim_is_one_for_equal_images_and_matches_the_closed_form_for_constants():
    image = random_images(0, (1, 3, 32, 32))
    torch.testing.assert_close(ssim(image, image), torch.ones(1, dtype=torch.float64))
    # Constant images a and b: every window has those means and no variance, so
    # SSIM = (2ab + C1) / (a^2 + b^2 + C1) with C1 = (0.01 * data range)^2.
    a, b = 0.3, 0.7
    c1 = 0.01**2
    expected = (2 * a * b + c1) / (a * a + b * b + c1)
    result = ssim(torch.full((1, 3, 16, 16), a), torch.full((1, 3, 16, 16), b))
    assert math.isclose(result.item(), expected, rel_tol=1e-6)


def test_ssim_refuses_mismatched_or_tiny_images():
    with pytest.raises(InputError, match="shape"):
        ssim(random_images(0, (1, 3, 16, 16)), random_images(0, (1, 3, 16, 20)))
    with pytest.raises(InputError, match="11 px"):
        ssim(random_images(0, (1, 3, 8, 8)), random_images(1, (1, 3, 8, 8)))


def test_score_images_takes_pillow_images_and_gives_all_four_scores():
    grey = Image.new("RGB", (32, 24), (100, 100, 100))
    lighter = Image.new("RGB", (32, 24), (110, 100, 100))
    scores = score_images(lighter, grey)
    assert set(scores) == {"psnr", "ssim", "style", "structure"}
    # PSNR closed form: one channel off by 10/255 -> MSE = (10/255)^2 / 3.
    assert math.isclose(scores["psnr"].item(), 10 * math.log10(3 * 255**2 / 100), rel_tol=1e-5)
    assert scores["style"].item() > 0
    assert to_unit_tensor([grey, lighter]).shape == (2, 3, 24, 32)
    with pytest.raises(InputError, match="share a size"):
        to_unit_tensor([grey, Image.new("RGB", (8, 8))])
