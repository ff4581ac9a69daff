"""Guided upsampling (engine/rendering/guided_upsampling.py): closed forms and shapes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from engine.core.assets import load_shipped_photo
from engine.core.errors import InputError
from engine.core.imaging import resize_to
from engine.rendering.guided_upsampling import (
    apply_local_affine,
    fit_local_affine,
    guided_upsample,
    source_positions,
    upsample_columns,
)

COLOUR_MATRIX = torch.tensor([[0.8, 0.1, 0.05], [0.05, 0.7, 0.1], [0.1, 0.0, 0.6]])
COLOUR_OFFSET = torch.tensor([0.05, 0.1, 0.15])


def unit_tensor(image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1).contiguous()


def colour_map(images: torch.Tensor) -> torch.Tensor:
    return torch.einsum("ij,jyx->iyx", COLOUR_MATRIX, images) + COLOUR_OFFSET[:, None, None]


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(1.0 / ((a.double() - b.double()) ** 2).mean()))


def eight_bit(images: torch.Tensor) -> torch.Tensor:
    return (images * 255).round() / 255


def test_a_global_affine_colour_map_is_recovered_at_full_resolution():
    photo = load_shipped_photo("city")  # 512 x 341
    full = unit_tensor(photo)
    working = unit_tensor(resize_to(photo, (160, 104)))
    result = guided_upsample(working, colour_map(working), full, radius=2, epsilon=1e-7)
    target = colour_map(full)
    # Written as 8-bit, the result is within 0.5 dB of the exact map written as 8-bit (lossless).
    assert psnr(eight_bit(result), target) > psnr(eight_bit(target), target) - 0.5
    # And far above what upscaling the working-size edit gives.
    upscaled = F.interpolate(colour_map(working)[None], size=full.shape[1:], mode="bicubic", align_corners=False)[0]
    assert psnr(result, target) > psnr(upscaled, target) + 15


def test_the_identity_edit_gives_the_photo_back():
    photo = unit_tensor(load_shipped_photo("Garden"))
    working = F.interpolate(photo[None], scale_factor=0.25, mode="area")[0]
    assert psnr(guided_upsample(working, working, photo, epsilon=1e-7), photo) > 45


def test_the_identity_prior_carries_an_unchanged_photo_exactly_at_any_epsilon():
    photo = unit_tensor(load_shipped_photo("Garden"))
    working = F.interpolate(photo[None], scale_factor=0.25, mode="area")[0]
    coefficients = fit_local_affine(working, working, radius=2, epsilon=1e-2, prior="identity")
    identity = torch.cat([torch.eye(3).reshape(9), torch.zeros(3)])
    torch.testing.assert_close(coefficients, identity[:, None, None].expand_as(coefficients), atol=1e-6, rtol=0)
    assert psnr(apply_local_affine(coefficients, photo), photo) > 100
    # The ridge towards zero shrinks the same fit and loses the photo's contrast.
    assert psnr(guided_upsample(working, working, photo, radius=2, epsilon=1e-2, prior="flat"), photo) < 40


@pytest.mark.parametrize("prior, transform", [("identity", torch.eye(3)), ("flat", torch.zeros(3, 3))])
def test_a_flat_window_falls_back_to_its_prior(prior, transform):
    source = torch.full((3, 5, 5), 0.4)
    edit = torch.rand(3, 5, 5, generator=torch.Generator().manual_seed(1))
    coefficients = fit_local_affine(source, edit, radius=4, epsilon=1e-3, prior=prior)
    mean_change = edit.mean(dim=(1, 2)) - (0.4 if prior == "identity" else 0.0)
    torch.testing.assert_close(coefficients[:9, 2, 2], transform.reshape(9))
    torch.testing.assert_close(coefficients[9:, 2, 2], mean_change.float(), atol=1e-5, rtol=0)


def test_coefficients_are_a_per_window_least_squares_fit():
    torch.manual_seed(0)
    source = torch.rand(3, 6, 5)
    transform, offset = torch.randn(3, 3), torch.randn(3)
    edit = torch.einsum("ij,jyx->iyx", transform, source) + offset[:, None, None]
    coefficients = fit_local_affine(source, edit, radius=1, epsilon=1e-9)
    assert torch.allclose(coefficients[:9].permute(1, 2, 0), transform.reshape(9).expand(6, 5, 9), atol=1e-4)
    assert torch.allclose(coefficients[9:].permute(1, 2, 0), offset.expand(6, 5, 3), atol=1e-4)


def test_separable_upsampling_equals_bilinear_interpolation():
    coefficients = torch.rand(12, 7, 5)
    expected = F.interpolate(coefficients[None], size=(23, 19), mode="bilinear", align_corners=False)[0]
    columns = upsample_columns(coefficients, 19)
    first, second, weight = source_positions(7, 23, 0, 23)
    assert torch.allclose(torch.lerp(columns[:, first], columns[:, second], weight[:, None]), expected, atol=1e-6)


@pytest.mark.parametrize("size", [(1, 1000), (999, 333), (37, 1)])
def test_any_size_is_kept_and_strips_do_not_change_the_result(size):
    width, height = size
    torch.manual_seed(1)
    photo = torch.rand(3, height, width)
    coefficients = fit_local_affine(torch.rand(3, 4, 6), torch.rand(3, 4, 6))
    whole = apply_local_affine(coefficients, photo, strip_rows=height)
    assert whole.shape == (3, height, width)
    assert torch.equal(apply_local_affine(coefficients, photo, strip_rows=7), whole)


def test_bad_inputs_are_refused():
    with pytest.raises(InputError, match="must both be"):
        fit_local_affine(torch.rand(3, 4, 4), torch.rand(3, 4, 5))
    with pytest.raises(InputError, match="epsilon > 0"):
        fit_local_affine(torch.rand(3, 4, 4), torch.rand(3, 4, 4), epsilon=0)
    with pytest.raises(InputError, match="prior"):
        fit_local_affine(torch.rand(3, 4, 4), torch.rand(3, 4, 4), prior="towards grey")
    with pytest.raises(InputError, match="coefficients must be"):
        apply_local_affine(torch.rand(9, 4, 4), torch.rand(3, 8, 8))


def test_an_eight_bit_photo_gives_the_eight_bit_result_of_the_float_path():
    torch.manual_seed(2)
    photo = (torch.rand(3, 40, 30) * 255).round().to(torch.uint8)
    coefficients = fit_local_affine(torch.rand(3, 5, 4), torch.rand(3, 5, 4))
    expected = (apply_local_affine(coefficients, photo.float() / 255.0) * 255).round().to(torch.uint8)
    assert torch.equal(apply_local_affine(coefficients, photo, strip_rows=9), expected)


def test_applying_equals_bilinear_coefficients_times_the_photo():
    torch.manual_seed(3)
    coefficients, photo = torch.randn(12, 5, 7), torch.rand(3, 37, 41)
    upsampled = F.interpolate(coefficients[None], size=(37, 41), mode="bilinear", align_corners=False)[0]
    expected = (torch.einsum("ijyx,jyx->iyx", upsampled[:9].reshape(3, 3, 37, 41), photo) + upsampled[9:]).clamp(0, 1)
    assert torch.allclose(apply_local_affine(coefficients, photo, strip_rows=4), expected, atol=1e-5)
