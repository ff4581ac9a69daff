"""Version 4 of the embedded model: band gains guided by each band's local energy, and growth into it from version 3."""

import pytest
import torch

from engine.core.errors import ConfigError, InputError
from engine.models.backbones.embedded.backbone import EmbeddedBackbone
from engine.models.backbones.embedded.config import EmbeddedConfig
from engine.models.backbones.embedded.detail_bands import (
    GUIDED_TERMS,
    apply_detail_gains,
    apply_guided_detail_gains,
    band_guides,
    detail_bands,
)
from engine.training.model_growth import grow_into
from tests.models.backbones.test_embedded_v2 import inputs, randomised
from tests.models.backbones.test_embedded_v3 import photo

BANDS = 3


def coefficients(whole=0.0, whole_guided=0.0, dark=0.0, dark_guided=0.0, height=32, width=40):
    maps = [torch.full((2, BANDS, height, width), float(value)) for value in (whole, whole_guided, dark, dark_guided)]
    return torch.cat(maps, dim=1)


def test_without_guided_or_dark_terms_the_head_is_version_three():
    source, colour = photo(), torch.rand(2, 3, 32, 40)
    gains = torch.randn(2, BANDS, 32, 40, generator=torch.Generator().manual_seed(1))
    guided = torch.cat([gains, torch.zeros(2, (GUIDED_TERMS - 1) * BANDS, 32, 40)], dim=1)
    torch.testing.assert_close(apply_guided_detail_gains(colour, guided, source), apply_detail_gains(colour, gains, source))


def test_the_dark_term_gains_only_the_negative_side_of_each_band():
    source, colour = photo(), torch.zeros(2, 3, 32, 40)
    bands = detail_bands(source, BANDS)
    torch.testing.assert_close(apply_guided_detail_gains(colour, coefficients(dark=2.0), source), 2.0 * bands.clamp(max=0).sum(dim=1))
    # a whole-band gain of 1 with a dark gain of -1 keeps only the light side
    torch.testing.assert_close(apply_guided_detail_gains(colour, coefficients(whole=1.0, dark=-1.0), source), bands.clamp(min=0).sum(dim=1))


def test_guides_are_zero_on_a_flat_image_and_grow_with_the_detail():
    flat = torch.full((1, 3, 32, 96), 0.4)
    assert band_guides(detail_bands(flat, BANDS)).abs().max() < 1e-6
    textured = flat.clone()
    textured[..., :, 48:] += 0.2 * torch.randn(1, 3, 32, 48, generator=torch.Generator().manual_seed(2))
    guides = band_guides(detail_bands(textured, BANDS))
    assert guides.shape == (1, BANDS, 32, 96)
    assert float(guides.min()) >= 0 and float(guides.max()) < 1
    assert float(guides[0, 0, :, 80:].mean()) > 0.5  # fine noise is mostly in the finest band
    for band in range(BANDS):  # far from the textured half, each band's guide stays low
        assert float(guides[0, band, :, 80:].mean()) > 10 * float(guides[0, band, :, :8].mean())


def test_a_guided_gain_of_minus_one_smooths_flat_areas_more_than_textured_ones():
    flat = torch.full((1, 3, 32, 40), 0.4)
    source = flat + 0.01 * torch.randn(1, 3, 32, 40, generator=torch.Generator().manual_seed(3))
    source[..., :, 20:] += 0.2 * torch.randn(1, 3, 32, 20, generator=torch.Generator().manual_seed(4))
    # gain -1 in flat areas, rising to 0 where the guide reaches 1: an edge-preserving smoothing
    out = source + apply_guided_detail_gains(torch.zeros_like(source), coefficients(whole=-1.0, whole_guided=1.0, height=32), source)
    removed = (source - out).abs()
    detail = detail_bands(source, BANDS).sum(dim=1).abs()
    flat_share = float(removed[..., :, 2:12].mean() / detail[..., :, 2:12].mean())
    textured_share = float(removed[..., :, 28:38].mean() / detail[..., :, 28:38].mean())
    assert flat_share > 0.4 and textured_share < 0.3 and flat_share > 2 * textured_share


def test_grown_model_computes_exactly_what_version_three_did_until_the_guided_terms_move():
    small = randomised(EmbeddedBackbone.from_config("tiny-v3", seed=1), seed=1)
    large = EmbeddedBackbone.from_config("tiny-v4", seed=2)
    assert large.name == "atelier-embedded-v4"
    before = large.model(*inputs())
    assert grow_into(small, large) == []
    grown = large.model(*inputs())
    torch.testing.assert_close(grown, small.model(*inputs()), atol=1e-6, rtol=1e-6)
    assert not torch.allclose(grown, before)
    large.model.transformer.proj_out.weight.data[-64:].normal_(0, 0.1)  # the last band's guided dark-side gains
    assert not torch.allclose(large.model(*inputs()), grown)


def test_guides_need_bands_and_a_model_keeps_its_guides_when_grown():
    with pytest.raises(ConfigError, match="detail_guides needs detail_bands"):
        EmbeddedConfig(detail_guides=True)
    with pytest.raises(InputError, match="band guides"):
        grow_into(EmbeddedBackbone.from_config("tiny-v4"), EmbeddedBackbone.from_config("tiny-v3"))
