"""The Euler sampler against closed forms: velocity fields whose flow is known exactly."""

import pytest
import torch

from engine.core.errors import ConfigError
from engine.models.backbones.base import Backbone, Condition
from engine.models.sampling.sampler import SamplerSettings, sample, sigmas_for


class FieldBackbone(Backbone):
    """A backbone whose velocity is a given function ``field(x, t)``; encode/decode are identities."""

    name = "field"
    native_resolution = 8
    resolution_multiple = 1
    default_steps = 5

    def __init__(self, field):
        self.field = field
        self.transformer = torch.nn.Linear(1, 1)
        self.calls = []

    def encode(self, images):
        return images

    def decode(self, latents):
        return latents

    def encode_prompt(self, prompts):
        return Condition(prompts, {})

    def predict_velocity(self, noisy, timestep, source, condition, **kwargs):
        self.calls.append(timestep[0].item())
        return self.field(noisy, timestep.view(-1, 1, 1, 1), source)

    def adapter_targets(self):
        return []


SHAPE = torch.Size((2, 3, 4, 4))


@pytest.mark.parametrize("steps", [1, 3, 10])
def test_point_mass_flow_lands_exactly_on_the_data_point(steps):
    # For data concentrated at x0 the exact velocity is (x - x0) / t; Euler follows the straight
    # line exactly, so any number of steps lands on x0.
    target = torch.linspace(-1, 1, SHAPE.numel()).reshape(SHAPE)
    backbone = FieldBackbone(lambda x, t, source: (x - target) / t)
    result = sample(backbone, backbone.encode_prompt(["", ""]), SHAPE, SamplerSettings(steps=steps, seed=3))
    torch.testing.assert_close(result, target, atol=1e-5, rtol=0)
    assert len(backbone.calls) == steps


def test_constant_field_integrates_to_noise_minus_velocity():
    constant = torch.full(SHAPE, 0.25)
    backbone = FieldBackbone(lambda x, t, source: constant.expand_as(x))
    settings = SamplerSettings(steps=7, seed=11)
    result = sample(backbone, backbone.encode_prompt(["", ""]), SHAPE, settings)
    noise = torch.randn(SHAPE, generator=torch.Generator().manual_seed(11))
    torch.testing.assert_close(result, noise - constant, atol=1e-5, rtol=0)


def test_strength_starts_from_the_noised_source_and_skips_steps():
    source = torch.full(SHAPE, 0.5)
    backbone = FieldBackbone(lambda x, t, source_latents: (x - source_latents) / t)
    callbacks = []
    result = sample(backbone, backbone.encode_prompt(["", ""]), SHAPE, SamplerSettings(steps=10, strength=0.3),
                    source=source, callback=callbacks.append)
    assert len(backbone.calls) == 3
    assert backbone.calls[0] == pytest.approx(0.3)
    torch.testing.assert_close(result, source, atol=1e-5, rtol=0)
    assert [info.step for info in callbacks] == [1, 2, 3]
    assert callbacks[-1].timestep == 0.0


def test_callback_estimate_is_x_t_minus_t_v():
    target = torch.zeros(SHAPE)
    backbone = FieldBackbone(lambda x, t, source: (x - target) / t)
    estimates = []
    sample(backbone, backbone.encode_prompt(["", ""]), SHAPE, SamplerSettings(steps=4), callback=lambda info: estimates.append(info.preview()))
    # For a point mass the x0 estimate is exact at every step.
    for estimate in estimates:
        torch.testing.assert_close(estimate, target, atol=1e-5, rtol=0)


def test_same_seed_same_result_different_seed_different_result():
    backbone = FieldBackbone(lambda x, t, source: torch.sin(x) * t)
    condition = backbone.encode_prompt(["", ""])
    first = sample(backbone, condition, SHAPE, SamplerSettings(steps=3, seed=1))
    again = sample(backbone, condition, SHAPE, SamplerSettings(steps=3, seed=1))
    other = sample(backbone, condition, SHAPE, SamplerSettings(steps=3, seed=2))
    assert torch.equal(first, again)
    assert not torch.allclose(first, other)


def test_sigmas_are_uniform_and_end_at_zero():
    backbone = FieldBackbone(lambda x, t, source: x)
    _, sigmas = sigmas_for(backbone, 4, SHAPE)
    torch.testing.assert_close(sigmas, torch.tensor([1.0, 0.75, 0.5, 0.25, 0.0]))


@pytest.mark.parametrize("scale", [0.0, 0.4])
def test_constant_field_starts_from_scaled_noise(scale):
    constant = torch.full(SHAPE, 0.25)
    backbone = FieldBackbone(lambda x, t, source: constant.expand_as(x))
    result = sample(backbone, backbone.encode_prompt(["", ""]), SHAPE, SamplerSettings(steps=7, seed=11, noise_scale=scale))
    noise = torch.randn(SHAPE, generator=torch.Generator().manual_seed(11))
    torch.testing.assert_close(result, scale * noise - constant, atol=1e-5, rtol=0)


def test_default_noise_scale_is_the_backbones_for_edits_and_one_for_generation():
    # Euler's result is a function of the start alone: a zero start (edit_noise_scale 0) makes an
    # edit independent of the seed; a generation still starts from standard noise.
    backbone = FieldBackbone(lambda x, t, source: x - (0 if source is None else source))
    backbone.edit_noise_scale = 0.0
    source = torch.linspace(-1, 1, SHAPE.numel()).reshape(SHAPE)
    condition = backbone.encode_prompt(["", ""])
    edits = [sample(backbone, condition, SHAPE, SamplerSettings(steps=3, seed=seed), source=source) for seed in (1, 2)]
    assert torch.equal(edits[0], edits[1])
    noisy = [sample(backbone, condition, SHAPE, SamplerSettings(steps=3, seed=seed, noise_scale=1.0), source=source) for seed in (1, 2)]
    assert not torch.allclose(noisy[0], noisy[1])
    generations = [sample(backbone, condition, SHAPE, SamplerSettings(steps=3, seed=seed)) for seed in (1, 2)]
    assert not torch.allclose(generations[0], generations[1])


@pytest.mark.parametrize("values, message", [({"steps": -1}, "steps"), ({"strength": 0.0}, "strength"), ({"seed": -5}, "seed"),
                                             ({"noise_scale": 1.5}, "noise_scale"), ({"noise_scale": -0.5}, "noise_scale")])
def test_settings_validation(values, message):
    with pytest.raises(ConfigError, match=message):
        SamplerSettings(**values)


def test_generation_takes_the_backbones_generation_steps_and_shift_and_an_edit_does_not():
    backbone = FieldBackbone(lambda x, t, source: x - (0 if source is None else source))
    backbone.generation_steps, backbone.generation_shift = 3, 3.0
    condition = backbone.encode_prompt(["", ""])
    sample(backbone, condition, SHAPE, SamplerSettings(seed=0))
    # Shifted uniform sigmas 1, 2/3, 1/3: s * sigma / (1 + (s - 1) * sigma) with s = 3.
    torch.testing.assert_close(torch.tensor(backbone.calls), torch.tensor([1.0, 6 / 7, 3 / 5]))
    backbone.calls.clear()
    sample(backbone, condition, SHAPE, SamplerSettings(seed=0), source=torch.zeros(SHAPE))
    torch.testing.assert_close(torch.tensor(backbone.calls), torch.tensor([1.0, 0.8, 0.6, 0.4, 0.2]))


def test_unset_generation_schedule_falls_back_to_the_edit_schedule():
    backbone = FieldBackbone(lambda x, t, source: x)
    assert backbone.steps_for(edit=False) == backbone.steps_for(edit=True) == 5
    _, generation = sigmas_for(backbone, 4, SHAPE, edit=False)
    _, edit = sigmas_for(backbone, 4, SHAPE)
    torch.testing.assert_close(generation, edit)
