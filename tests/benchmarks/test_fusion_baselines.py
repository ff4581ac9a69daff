"""The fusion benchmarks' baselines (benchmarks/fusion_baselines.py) on the tiny embedded model:
they agree with the product's folded fusion, and leave the backbone bit for bit as it was."""

from __future__ import annotations

import pytest
import torch

from benchmarks.fusion_baselines import Baseline, SwitchedLoraLinear
from engine.core.errors import InputError
from engine.fusion import FusionConfig, applied_fusion, plan_fusion
from engine.fusion.render import render
from engine.models.sampling.sampler import SamplerSettings, StepStart, sample
from tests.fusion.fusion_fixtures import (  # noqa: F401 (pytest fixtures)
    SETTINGS, SHAPE, assert_unchanged, backbone, loras, photo, weight_snapshot)

pytestmark = pytest.mark.timeout(120)


def sample_with(backbone, fusion) -> torch.Tensor:
    return sample(backbone, backbone.encode_prompt([""]), SHAPE, SETTINGS, before_step=fusion.before_step)


def folded_latents(backbone, loras, config) -> torch.Tensor:
    with applied_fusion(backbone, plan_fusion(backbone, *loras, config)) as fusion:
        return sample_with(backbone, fusion)


def baseline_latents(backbone, loras, baseline) -> torch.Tensor:
    with baseline.applied(backbone, baseline.plan(backbone, *loras)) as fusion:
        return sample_with(backbone, fusion)


def plain_latents(backbone) -> torch.Tensor:
    return sample(backbone, backbone.encode_prompt([""]), SHAPE, SETTINGS)


@pytest.mark.parametrize("method", ["est", "klora"])
def test_the_three_mechanisms_agree(backbone, loras, method):
    config = FusionConfig(method=method, beta=0.4)
    folded = folded_latents(backbone, loras, config)
    unfused = baseline_latents(backbone, loras, Baseline(config, "unfused"))
    per_call = baseline_latents(backbone, loras, Baseline(config, "per_call"))
    torch.testing.assert_close(unfused, folded, atol=2e-4, rtol=0)
    torch.testing.assert_close(per_call, folded, atol=2e-4, rtol=0)


def test_the_unfused_baseline_records_the_folded_fusions_switch(backbone, loras):
    config = FusionConfig(method="est", beta=0.5)
    with applied_fusion(backbone, plan_fusion(backbone, *loras, config)) as folded:
        sample_with(backbone, folded)
    baseline = Baseline(config, "unfused")
    with baseline.applied(backbone, baseline.plan(backbone, *loras)) as unfused:
        assert all(isinstance(backbone.transformer.get_submodule(name), SwitchedLoraLinear) for name in unfused.plan.pair.names)
        sample_with(backbone, unfused)
    assert unfused.steps == folded.steps


@pytest.mark.parametrize("baseline", [Baseline(FusionConfig(method="est", beta=0.5), "unfused"),
                                      Baseline(FusionConfig(method="klora"), "per_call")],
                         ids=["unfused", "per-call"])
def test_removal_restores_the_backbone_bit_for_bit(backbone, loras, photo, baseline):
    snapshot = weight_snapshot(backbone)
    before = plain_latents(backbone)
    plan = baseline.plan(backbone, *loras)
    with baseline.applied(backbone, plan) as fusion:
        render(backbone, SamplerSettings(steps=3), photo=photo, before_step=fusion.before_step)
        render(backbone, SamplerSettings(steps=3), before_step=fusion.before_step)
    assert_unchanged(backbone, snapshot)
    with pytest.raises(RuntimeError, match="stop"), baseline.applied(backbone, plan) as fusion:
        fusion.before_step(StepStart(1, 3, 0, 3, 0.6))
        raise RuntimeError("stop")
    assert_unchanged(backbone, snapshot)
    assert baseline.render(backbone, plan, SamplerSettings(steps=3)).size == (32, 32)
    assert_unchanged(backbone, snapshot)
    assert torch.equal(plain_latents(backbone), before)


def test_baselines_switch_est_and_klora_only(backbone, loras):
    with pytest.raises(InputError, match="applies to est and klora only, not merge"):
        Baseline(FusionConfig(method="merge"), "per_call")
    with pytest.raises(InputError, match="mechanism must be one of unfused, per_call"):
        Baseline(FusionConfig(method="est", beta=0.5), "fold")
    snapshot = weight_snapshot(backbone)
    per_call = Baseline(FusionConfig(method="klora"), "per_call")
    with pytest.raises(InputError, match="chooses from the plan's scores"):
        Baseline(FusionConfig(method="klora"), "unfused").applied(backbone, per_call.plan(backbone, *loras)).__enter__()
    plan = per_call.plan(backbone, *loras)
    with per_call.applied(backbone, plan):
        with pytest.raises(InputError, match="already applied"):
            per_call.applied(backbone, plan).__enter__()
        with pytest.raises(InputError, match="wrapped by another adapter"):  # the product's fusion refuses too
            plan_fusion(backbone, *loras)
    assert_unchanged(backbone, snapshot)
