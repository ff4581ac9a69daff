"""Blockiness (engine/metrics/blockiness.py): closed forms on staircases and noise."""

from __future__ import annotations

import pytest
import torch

from engine.core.errors import InputError
from engine.metrics.blockiness import blockiness, grid_crossings


def staircase(size: int, slope: float, step: float, period: int) -> torch.Tensor:
    """``slope * i + step * floor(i / period)`` along x plus the same along y: ``(1, 3, size, size)``."""
    ramp = slope * torch.arange(size, dtype=torch.float64) + step * torch.div(torch.arange(size), period, rounding_mode="floor")
    return (ramp[None, :] + ramp[:, None]).expand(1, 3, size, size)


def test_a_staircase_has_its_closed_form():
    slope, step = 0.002, 0.01
    # Inside a cell each neighbour differs by the slope, across a line by slope + step.
    expected = (slope + step) ** 2 / slope ** 2
    assert blockiness(staircase(64, slope, step, 8)).item() == pytest.approx(expected, rel=1e-6)


def test_the_grid_must_match_to_be_seen():
    image = staircase(96, 0.002, 0.01, 8)
    assert blockiness(image, period=8).item() > 30
    assert blockiness(image, period=13).item() < 1  # the lines of another grid miss every step


def test_noise_and_a_smooth_image_have_no_grid():
    torch.manual_seed(0)
    assert blockiness(torch.rand(2, 3, 128, 128)).tolist() == pytest.approx([1.0, 1.0], abs=0.08)
    assert blockiness(staircase(64, 0.002, 0.0, 8)).item() == pytest.approx(1.0)


def test_fractional_periods_round_to_the_nearest_border():
    crossings = grid_crossings(80, 25.6)
    # Lines at 25.6, 51.2 and 76.8 px fall on the borders 26, 51 and 77: pairs (25, 26), (50, 51), (76, 77).
    assert crossings.nonzero().flatten().tolist() == [25, 50, 76]


def test_bad_inputs_are_refused():
    with pytest.raises(InputError, match=r"\(B, C, H, W\)"):
        blockiness(torch.rand(3, 32, 32))
    with pytest.raises(InputError, match="too small"):
        blockiness(torch.rand(1, 3, 12, 40))
