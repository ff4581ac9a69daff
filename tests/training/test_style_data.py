"""Training pairs are learned at the scale the edit works at."""

import pytest
import torch
from PIL import Image

from engine.models.backbones.embedded.backbone import EmbeddedBackbone
from engine.training.pairs import Pair
from engine.training.style_data import crop_side, prepare_style, sample_batch, training_size


@pytest.fixture(scope="module")
def backbone():
    return EmbeddedBackbone.from_config("tiny", seed=0)  # native side 32, patches of 8


def pair(width: int, height: int) -> Pair:
    before = Image.new("RGB", (width, height), (90, 120, 150))
    return Pair("p", before, Image.new("RGB", (width, height), (200, 30, 30)), None, None)


def test_working_scale_is_the_size_an_edit_of_the_photo_works_at(backbone):
    for width, height in [(3000, 2000), (480, 480), (333, 999)]:
        assert training_size(backbone, width, height, 1.0, "working") == backbone.fit_size(width, height)
    # A margin enlarges that size, in whole patches.
    assert training_size(backbone, 3000, 2000, 1.25, "working") == (48, 32)


def test_native_scale_puts_the_short_side_at_margin_times_the_native_side(backbone):
    assert training_size(backbone, 3000, 2000, 1.0, "native") == (48, 32)
    with pytest.raises(ValueError, match="training_scale"):
        training_size(backbone, 30, 20, 1.0, "sideways")


def test_crops_fit_the_smallest_image_and_are_whole_patches(backbone):
    styles = [prepare_style(backbone, "x1", "wide", [pair(3000, 2000)], 1.0, "working"),   # 40x24 at working scale
              prepare_style(backbone, "x2", "square", [pair(500, 500)], 1.0, "working")]   # 32x32
    assert [tuple(style.befores[0].shape) for style in styles] == [(3, 24, 40), (3, 32, 32)]
    side = crop_side(styles, backbone.native_resolution, backbone.resolution_multiple)
    assert side == 24
    before, after, keys = sample_batch(styles, side, 6, torch.Generator().manual_seed(0))
    assert before.shape == after.shape == (6, 3, 24, 24)
    assert set(keys) <= {"x1", "x2"}
    # Before and after are cut at the same place: the after of this pair is one flat colour.
    assert torch.allclose(after[:, 0], after[:, 0, :1, :1].expand_as(after[:, 0]))
    assert crop_side(styles, 16, 8) == 16  # never larger than asked
