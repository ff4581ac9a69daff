"""Version 3 of the embedded model: the detail-band head and growth into it from version 1."""

import pytest
import torch

from engine.core.errors import InputError

from engine.core.filters import gaussian_blur
from engine.models.backbones.embedded.backbone import EmbeddedBackbone
from engine.models.backbones.embedded.detail_bands import BAND_SIGMAS, apply_detail_gains, detail_bands
from engine.models.backbones.embedded.instructions import INSTRUCTIONS
from engine.training.model_growth import grow_into
from tests.models.backbones.test_embedded_v2 import inputs, randomised


def photo(height=32, width=40):
    return torch.rand(2, 3, height, width, generator=torch.Generator().manual_seed(7))


def test_bands_sum_to_the_source_minus_its_coarsest_blur():
    source = photo()
    bands = detail_bands(source, 3)
    assert bands.shape == (2, 3, 3, 32, 40)
    torch.testing.assert_close(bands.sum(dim=1), source - gaussian_blur(source, BAND_SIGMAS[2]))


def test_gains_of_minus_one_are_a_gaussian_blur_and_plus_one_on_the_first_band_an_unsharp_mask():
    source, colour = photo(), torch.zeros(2, 3, 32, 40)
    blurred = apply_detail_gains(colour, -torch.ones(2, 2, 32, 40), source)
    torch.testing.assert_close(blurred, gaussian_blur(source, BAND_SIGMAS[1]) - source)
    sharpen_gains = torch.zeros(2, 3, 32, 40)
    sharpen_gains[:, 0] = 1.0
    sharpened = source + apply_detail_gains(colour, sharpen_gains, source)
    torch.testing.assert_close(sharpened, source + (source - gaussian_blur(source, BAND_SIGMAS[0])))


def test_band_count_is_checked():
    with pytest.raises(ValueError, match="1 to 3"):
        detail_bands(photo(), 4)


def test_grown_model_computes_exactly_what_version_one_did_until_the_gains_move():
    small = randomised(EmbeddedBackbone.from_config("tiny", seed=1), seed=1)
    large = EmbeddedBackbone.from_config("tiny-v3", seed=2)
    before = large.model(*inputs())
    assert sorted(grow_into(small, large)) == ["instruction_pooled.weight", "instruction_tokens.weight"]  # the denoise rows
    grown = large.model(*inputs())
    torch.testing.assert_close(grown, small.model(*inputs()), atol=1e-6, rtol=1e-6)
    assert not torch.allclose(grown, before)
    large.model.transformer.proj_out.weight.data[-64:].normal_(0, 0.1)  # the last band's gains
    assert not torch.allclose(large.model(*inputs()), grown)


def test_generation_has_no_source_detail_to_gain():
    model = randomised(EmbeddedBackbone.from_config("tiny-v3"), seed=3).model
    noisy, time, _, ids = inputs()
    without_gains = randomised(EmbeddedBackbone.from_config("tiny-v3"), seed=3).model
    without_gains.transformer.proj_out.weight.data[-3 * 64:] = 0
    without_gains.transformer.proj_out.bias.data[-3 * 64:] = 0
    torch.testing.assert_close(model(noisy, time, None, ids), without_gains(noisy, time, None, ids))


def test_gain_scale_multiplies_what_the_transformer_predicts():
    source, colour, gains = photo(), torch.zeros(2, 3, 32, 40), torch.full((2, 3, 32, 40), -0.1)
    model = EmbeddedBackbone.from_config("tiny-v3").model
    model.transformer.proj_out.bias.data[-3 * 64:] = -0.1
    noisy, time, _, ids = inputs()
    source = source * 2 - 1
    expected = source + apply_detail_gains(colour, gains * model.config.detail_gain_scale, source)
    torch.testing.assert_close(model(noisy, time, source, ids), expected, atol=1e-5, rtol=1e-5)


def test_version_three_knows_denoise_after_the_version_one_instructions():
    backbone = EmbeddedBackbone.from_config("tiny-v3")
    assert backbone.model.vocabulary == (*INSTRUCTIONS, "denoise")
    assert "denoise" in backbone.prompt_choices()
    assert backbone.encode_prompt(["Denoise"]).tensors["instruction_ids"].tolist() == [len(INSTRUCTIONS)]
    with pytest.raises(InputError, match="denoise"):
        EmbeddedBackbone.from_config("tiny").encode_prompt(["denoise"])


def test_a_model_cannot_be_grown_into_one_that_forgets_denoise():
    with pytest.raises(InputError, match="restoration"):
        grow_into(EmbeddedBackbone.from_config("tiny-v3"), EmbeddedBackbone.from_config("tiny"))
