"""Version 5 of the embedded model: the patch grid moves at every generation step, never in an edit."""

import dataclasses

import torch

from engine.models.backbones.embedded.backbone import EmbeddedBackbone
from engine.models.backbones.embedded.config import PRESETS
from engine.training.model_growth import grow_into


def randomised(backbone: EmbeddedBackbone, seed: int) -> EmbeddedBackbone:
    """Non-identity weights everywhere, including the zero-initialised output layers."""
    generator = torch.Generator().manual_seed(seed)
    for parameter in backbone.model.parameters():
        parameter.data = 0.05 * torch.randn(parameter.shape, generator=generator)
    return backbone


def twins() -> tuple[EmbeddedBackbone, EmbeddedBackbone]:
    """Version 5 and the same weights with the generation grid shift off."""
    moving = randomised(EmbeddedBackbone.from_config("tiny-v5"), seed=1)
    still = EmbeddedBackbone.from_config(dataclasses.replace(PRESETS["tiny-v5"], generation_grid_shift=False))
    still.model.load_state_dict(moving.model.state_dict())
    return moving, still


def velocities(backbone: EmbeddedBackbone, source: torch.Tensor | None, time: float) -> torch.Tensor:
    generator = torch.Generator().manual_seed(2)
    noisy = torch.randn(1, 3, 32, 40, generator=generator)
    return backbone.predict_velocity(noisy, torch.tensor([time]), source, backbone.encode_prompt([""]))


def test_generation_steps_move_the_grid_and_edits_keep_it_still():
    moving, still = twins()
    source = torch.rand(1, 3, 32, 40) * 2 - 1
    moved = [time for time in (0.9, 0.7, 0.5, 0.3) if moving.sampling_grid_offset(torch.tensor([time]), generation=True) != (0, 0)]
    assert moved, "some generation steps must move the grid"
    for time in (0.9, 0.7, 0.5, 0.3):
        assert moving.sampling_grid_offset(torch.tensor([time])) == (0, 0)
        torch.testing.assert_close(velocities(moving, source, time), velocities(still, source, time))
    for time in moved:
        assert not torch.allclose(velocities(moving, None, time), velocities(still, None, time))


def test_version_five_grows_from_version_four_unchanged():
    four = randomised(EmbeddedBackbone.from_config("tiny-v4"), seed=3)
    five = EmbeddedBackbone.from_config("tiny-v5", seed=4)
    assert grow_into(four, five) == []
    source = torch.rand(1, 3, 32, 40) * 2 - 1
    torch.testing.assert_close(velocities(five, source, 0.6), velocities(four, source, 0.6))
