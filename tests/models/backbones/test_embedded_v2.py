"""Version 2 of the embedded model: the pixel head, the grid shift, and growth from version 1."""

import dataclasses

import pytest
import torch

from engine.models.backbones.embedded.backbone import EmbeddedBackbone
from engine.models.backbones.embedded.config import PRESETS
from engine.models.backbones.patches import shift_grid, unshift_grid
from engine.training.model_growth import grow_into


def randomised(backbone: EmbeddedBackbone, seed: int) -> EmbeddedBackbone:
    """Non-identity weights everywhere, including the zero-initialised output layers."""
    generator = torch.Generator().manual_seed(seed)
    for parameter in backbone.model.parameters():
        parameter.data = 0.05 * torch.randn(parameter.shape, generator=generator)
    return backbone


def inputs(height=32, width=40):
    generator = torch.Generator().manual_seed(3)
    noisy, source = torch.randn(2, 3, height, width, generator=generator), torch.randn(2, 3, height, width, generator=generator)
    return noisy, torch.tensor([0.3, 0.8]), source, torch.tensor([0, 2])


@pytest.mark.parametrize("offset", [(0, 0), (3, 5), (7, 1)])
def test_shift_then_unshift_returns_the_image(offset):
    images = torch.randn(1, 3, 17, 24)
    shifted = shift_grid(images, offset, 8)
    assert shifted.shape[-2] % 8 == 17 % 8 and shifted.shape[-1] % 8 == 0
    assert torch.equal(unshift_grid(shifted, offset, 8, 17, 24), images)


def test_grown_model_computes_exactly_what_the_small_one_did():
    small = randomised(EmbeddedBackbone.from_config("tiny", seed=1), seed=1)
    large = EmbeddedBackbone.from_config("tiny-v2", seed=2)
    before = large.model(*inputs())
    new = grow_into(small, large)
    assert any(name.startswith("pixel_head.") for name in new)
    grown = large.model(*inputs())
    torch.testing.assert_close(grown, small.model(*inputs()), atol=1e-6, rtol=1e-6)
    assert not torch.allclose(grown, before)
    # The new parts then change the output once they are trained (here: perturbed).
    large.model.pixel_head.out.weight.data.normal_(0, 0.1)
    assert not torch.allclose(large.model(*inputs()), grown)


def test_pixel_head_mixes_pixels_across_patch_borders():
    model = randomised(EmbeddedBackbone.from_config("tiny-v2"), seed=4).model
    noisy, time, source, ids = inputs()
    base = model(noisy, time, source, ids)
    nudged = source.clone()
    nudged[..., 10, 7] += 1.0  # the last column of the first patch
    changed = (model(noisy, time, nudged, ids) - base).abs().sum(dim=(0, 1)) > 0
    assert changed[10, 8]  # reaches the first column of the next patch through the 3x3 convolutions
    assert changed[10, 6]


def test_a_grid_offset_changes_the_output_but_not_its_size():
    model = randomised(EmbeddedBackbone.from_config("tiny-v2"), seed=5).model
    plain = model(*inputs(), grid_offset=(0, 0))
    shifted = model(*inputs(), grid_offset=(3, 5))
    assert shifted.shape == plain.shape
    assert not torch.allclose(shifted, plain)


def test_sampling_offset_depends_on_the_step_only_and_can_be_off():
    backbone = EmbeddedBackbone.from_config("tiny-v2")
    first = backbone.sampling_grid_offset(torch.tensor([0.75, 0.75]))
    assert first == backbone.sampling_grid_offset(torch.tensor([0.75]))
    offsets = {backbone.sampling_grid_offset(torch.tensor([t])) for t in (1.0, 0.875, 0.75, 0.625, 0.5, 0.375, 0.25, 0.125)}
    assert len(offsets) > 4
    plain = EmbeddedBackbone.from_config(dataclasses.replace(PRESETS["tiny-v2"], grid_shift=False))
    assert plain.sampling_grid_offset(torch.tensor([0.75])) == (0, 0)


def test_version_two_saves_and_loads(tmp_path):
    backbone = randomised(EmbeddedBackbone.from_config("tiny-v2"), seed=6)
    backbone.save_pretrained(tmp_path)
    loaded = EmbeddedBackbone.from_pretrained(tmp_path)
    assert loaded.config == backbone.config
    torch.testing.assert_close(loaded.model(*inputs()), backbone.model(*inputs()))


def test_version_two_has_its_own_name_so_version_one_styles_are_not_applied_to_it(tmp_path):
    from engine.models.backbones.registry import load_backbone

    version_one, version_two = EmbeddedBackbone.from_config("tiny"), EmbeddedBackbone.from_config("tiny-v2")
    assert version_one.name == "atelier-embedded" and version_two.name == "atelier-embedded-v2"
    version_two.save_pretrained(tmp_path)
    assert load_backbone(str(tmp_path)).name == "atelier-embedded-v2"


def test_pixel_head_runs_under_a_bfloat16_transformer():
    model = randomised(EmbeddedBackbone.from_config("tiny-v2"), seed=7).model
    full = model(*inputs())
    model.transformer.to(torch.bfloat16)
    half = model(*inputs())
    assert half.dtype == torch.float32 and (half - full).abs().mean() < 0.05
