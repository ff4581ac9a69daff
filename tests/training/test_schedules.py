"""Training timesteps and the learning-rate schedule against their closed forms."""

import pytest
import torch

from engine.training.schedules import sample_timesteps, warmup_cosine


@pytest.mark.parametrize("distribution", ["logit-normal", "uniform"])
def test_shift_is_sd3_timestep_shift_of_the_unshifted_draw(distribution):
    minimum, shift = 0.05, 3.0
    plain = sample_timesteps(256, minimum, torch.Generator().manual_seed(1), distribution)
    shifted = sample_timesteps(256, minimum, torch.Generator().manual_seed(1), distribution, shift=shift)
    unit = (plain - minimum) / (1 - minimum)
    expected = minimum + (1 - minimum) * shift * unit / (1 + (shift - 1) * unit)
    torch.testing.assert_close(shifted, expected)
    assert shifted.min() >= minimum and shifted.max() <= 1
    assert shifted.median() > plain.median() + 0.1  # moved towards the noise end


def test_shift_must_be_positive():
    with pytest.raises(ValueError, match="positive"):
        sample_timesteps(4, 0.05, torch.Generator(), shift=0.0)


def test_warmup_then_cosine_to_zero():
    assert warmup_cosine(1.0, 10, 100, 0) == pytest.approx(0.1)
    assert warmup_cosine(1.0, 10, 100, 9) == pytest.approx(1.0)
    assert warmup_cosine(1.0, 10, 100, 55) == pytest.approx(0.5)
    assert warmup_cosine(1.0, 10, 100, 100) == pytest.approx(0.0)
