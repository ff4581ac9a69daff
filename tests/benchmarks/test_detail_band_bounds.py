"""The detail-band bounds recover gains they were built from (closed forms)."""

import torch

from benchmarks.detail_band_bounds import apply_constant_gains, apply_style_guided, fit_constant_gains, fit_style_guided, patch_oracle
from engine.models.backbones.patches import pack, unpack


def photos(count=2):
    generator = torch.Generator().manual_seed(0)
    return [torch.rand(1, 3, 24, 32, generator=generator) for _ in range(count)]


def test_constant_gains_and_offset_are_recovered():
    known = torch.tensor([-0.8, 0.3, 0.1, 0.05])
    pairs = [(photo, apply_constant_gains(photo, known)) for photo in photos()]
    torch.testing.assert_close(fit_constant_gains(pairs, offset=True), known, atol=1e-4, rtol=1e-4)


def test_patch_oracle_is_exact_for_a_per_patch_shift_plus_gains_and_no_worse_than_the_shift_alone():
    before = photos(1)[0]
    shift = unpack(torch.randn(1, 12, 3, generator=torch.Generator().manual_seed(1)).repeat_interleave(64, dim=-1) * 0.1, 8, 24, 32)
    after = apply_constant_gains(before, torch.tensor([-1.0, -0.5, 0.2])) + shift
    shifted, with_gains = patch_oracle(before, after)
    torch.testing.assert_close(with_gains, after, atol=1e-4, rtol=1e-4)
    assert ((shifted - after) ** 2).mean() > ((with_gains - after) ** 2).mean()
    assert pack(shifted - before, 8).shape == (1, 12, 192)


def test_style_wide_guided_coefficients_and_offset_are_recovered():
    known = torch.linspace(-0.6, 0.5, 12)
    known = torch.cat([known, torch.tensor([0.02, -0.03, 0.01])])
    pairs = [(photo, apply_style_guided(photo, known)) for photo in photos(3)]
    torch.testing.assert_close(fit_style_guided(pairs), known, atol=2e-3, rtol=2e-3)
