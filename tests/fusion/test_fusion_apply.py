"""Applying fusions to the tiny embedded model: invariances from non-identity weights, the step
fraction the switch sees, and bit-identical removal (the benchmarks' unfolded baselines are tested,
against this folded fusion, in tests/benchmarks/test_fusion_baselines.py)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image

from engine.adapters.lora.patch import applied_lora
from engine.core.imaging import resize_to
from engine.fusion import FusionConfig, applied_fusion, plan_fusion, render_fusion
from engine.fusion.fuse import sampling_runs
from engine.fusion.render import render, stage_of
from engine.models.editing import edit_photo
from engine.models.sampling.sampler import SamplerSettings, StepStart, sample, sigmas_for
from engine.rendering.full_resolution import RenderSettings, carry_to_full_resolution
from tests.fusion.fusion_fixtures import (  # noqa: F401 (pytest fixtures)
    SETTINGS, SHAPE, assert_unchanged, backbone, loras, photo, pixels, weight_snapshot)

pytestmark = pytest.mark.timeout(120)


def latents_with(backbone, plan, beta=None, settings=SETTINGS, source=None) -> torch.Tensor:
    with applied_fusion(backbone, plan, beta) as fusion:
        return sample(backbone, backbone.encode_prompt([""]), SHAPE, settings, source=source, before_step=fusion.before_step)


def plain_latents(backbone, settings=SETTINGS) -> torch.Tensor:
    return sample(backbone, backbone.encode_prompt([""]), SHAPE, settings)


def test_est_forced_to_the_subject_equals_the_subject_alone(backbone, loras):
    # alpha = beta = 0 gives S = 0, an infinite ratio in every layer: always the subject.
    est = plan_fusion(backbone, *loras, FusionConfig(method="est", alpha=0.0, beta=0.0))
    subject = plan_fusion(backbone, *loras, FusionConfig(method="subject"))
    with applied_fusion(backbone, est) as fusion:
        fused = sample(backbone, backbone.encode_prompt([""]), SHAPE, SETTINGS, before_step=fusion.before_step)
    assert [step.subject_layers for step in fusion.steps] == [len(est.pair.names)] * 6
    assert torch.equal(fused, latents_with(backbone, subject))


def test_est_forced_to_the_style_equals_the_style_alone(backbone, loras):
    est = plan_fusion(backbone, *loras, FusionConfig(method="est", beta=0.5))
    never_subject = dataclasses.replace(est, subject_scores=torch.zeros_like(est.subject_scores))
    style = plan_fusion(backbone, *loras, FusionConfig(method="style"))
    assert torch.equal(latents_with(backbone, never_subject), latents_with(backbone, style))


def test_merge_with_one_side_at_zero_equals_that_side_alone(backbone, loras):
    def latents(method, **scales):
        return latents_with(backbone, plan_fusion(backbone, *loras, FusionConfig(method=method, **scales)))

    assert torch.equal(latents("merge", style_scale=0.0), latents("subject"))
    assert torch.equal(latents("merge", subject_scale=0.0), latents("style"))
    assert torch.equal(latents("merge", subject_scale=0.0, style_scale=0.0), plain_latents(backbone))
    # Scales multiply the update: subject at 0.5 is half way (in weights) to the base.
    assert not torch.equal(latents("subject", subject_scale=0.5), latents("subject"))


def test_fused_output_differs_from_the_base_and_from_each_lora_alone(backbone, loras):
    base, subject = plain_latents(backbone), latents_with(backbone, plan_fusion(backbone, *loras, FusionConfig(method="subject")))
    style = latents_with(backbone, plan_fusion(backbone, *loras, FusionConfig(method="style")))
    for method in ("est", "klora", "merge"):
        plan = plan_fusion(backbone, *loras, FusionConfig(method=method, beta=0.5 if method == "est" else None))
        with applied_fusion(backbone, plan) as fusion:
            fused = sample(backbone, backbone.encode_prompt([""]), SHAPE, SETTINGS, before_step=fusion.before_step)
        for other in (base, subject, style):
            assert (fused - other).abs().max() > 1e-3, method
        if method != "merge":  # the switch really moves within the run
            counts = [step.subject_layers for step in fusion.steps]
            assert counts[0] > counts[-1] and counts == sorted(counts, reverse=True), (method, counts)


def test_switch_counts_equal_the_rule_at_the_recorded_step_fractions(backbone, loras):
    plan = plan_fusion(backbone, *loras, FusionConfig(method="est", beta=0.3, style_bias=0.1))
    rule = plan.rule(0.3)
    assert rule.beta == pytest.approx(0.4)
    with applied_fusion(backbone, plan, 0.3) as fusion:
        sample(backbone, backbone.encode_prompt([""]), SHAPE, SETTINGS, before_step=fusion.before_step)
    for step in fusion.steps:
        assert step.subject_layers == int(rule.choose(step.fraction_done).sum())
        assert step.strength == pytest.approx(1.5 * step.fraction_done + 0.4)


@pytest.mark.parametrize(("steps", "strength"), [(1, 1.0), (4, 1.0), (7, 1.0), (10, 0.5), (8, 0.3), (5, 0.9)])
def test_tau_is_the_real_step_fraction(backbone, steps, strength):
    settings = SamplerSettings(steps=steps, seed=0, strength=strength)
    seen: list[StepStart] = []
    source = torch.zeros(SHAPE)
    sample(backbone, backbone.encode_prompt([""]), SHAPE, settings, source=source, before_step=seen.append)
    _, sigmas = sigmas_for(backbone, steps, SHAPE, strength)
    run = len(sigmas) - 1
    assert [info.index for info in seen] == list(range(run))
    assert all(info.total == run and info.schedule_steps == steps and info.skipped == steps - run for info in seen)
    assert [info.timestep for info in seen] == pytest.approx(sigmas[:-1].tolist())
    # The embedded model's schedule is unshifted (sigma = 1 - i / steps), so the fraction of the
    # denoising done is exactly 1 - sigma at every call, and an edit at strength s starts at 1 - s.
    assert [info.fraction_done for info in seen] == pytest.approx([1.0 - info.timestep for info in seen], abs=1e-6)
    assert seen[0].fraction_done == pytest.approx((steps - run) / steps)


def test_the_fusion_sees_the_step_fraction_in_an_edit(backbone, loras, photo):
    plan = plan_fusion(backbone, *loras, FusionConfig(method="klora"))
    with applied_fusion(backbone, plan) as fusion:
        edit_photo(backbone, photo, SamplerSettings(steps=10, strength=0.5), before_step=fusion.before_step)
    assert [step.fraction_done for step in fusion.steps] == pytest.approx([0.5, 0.6, 0.7, 0.8, 0.9])


@pytest.mark.parametrize("config", [FusionConfig(method="est", beta=0.5), FusionConfig(method="klora"),
                                    FusionConfig(method="merge"), FusionConfig(method="style")],
                         ids=["est", "klora", "merge", "style"])
def test_removal_restores_the_backbone_bit_for_bit(backbone, loras, photo, config):
    snapshot = weight_snapshot(backbone)
    before = plain_latents(backbone)
    plan = plan_fusion(backbone, *loras, config)
    with applied_fusion(backbone, plan) as fusion:
        render(backbone, SamplerSettings(steps=3), photo=photo, before_step=fusion.before_step)
        render(backbone, SamplerSettings(steps=3), before_step=fusion.before_step)
    assert_unchanged(backbone, snapshot)
    with pytest.raises(RuntimeError, match="stop"), applied_fusion(backbone, plan) as fusion:
        fusion.before_step(StepStart(1, 3, 0, 3, 0.6))
        raise RuntimeError("stop")
    assert_unchanged(backbone, snapshot)
    assert torch.equal(plain_latents(backbone), before)


def test_render_fusion_measures_beta_once_and_reports_every_run(backbone, loras, photo):
    plan = plan_fusion(backbone, *loras, FusionConfig(method="est", beta_seed=7))
    calls = []
    result = render_fusion(backbone, plan, SamplerSettings(steps=4, seed=1), photo=photo,
                           callback=lambda step, total, preview: calls.append((step, total, preview.size)))
    assert [call[:2] for call in calls] == [(step, 12) for step in range(1, 13)]
    assert calls[0][2] == result.image.size == photo.size
    assert 0.0 < result.beta <= 2.0 and result.gamma > 0
    assert len(result.steps) == 4 and result.beta_samples is not None
    # beta is the discrepancy of the two reference samples: the single LoRAs at scale 1, beta_seed.
    with applied_fusion(backbone, plan.reference("style")):
        style_only = render(backbone, SamplerSettings(steps=4, seed=7), photo=photo)
    assert np.array_equal(pixels(style_only), pixels(result.beta_samples.style_sample))
    assert not np.array_equal(pixels(result.image), pixels(result.beta_samples.subject_sample))
    # Another seed of the same pair, prompt and photo reuses beta: one run only.
    calls.clear()
    again = render_fusion(backbone, plan, SamplerSettings(steps=4, seed=2), photo=photo,
                          callback=lambda step, total, preview: calls.append((step, total)))
    assert calls == [(step, 4) for step in range(1, 5)]
    assert again.beta == result.beta and again.beta_samples is result.beta_samples
    other_photo = render_fusion(backbone, plan, SamplerSettings(steps=4, seed=2), photo=photo.rotate(90))
    assert other_photo.beta_samples is not result.beta_samples


def test_the_callback_can_tell_which_sampling_run_a_step_is_in(backbone, loras, photo):
    # The CLI's bar sees one sequence (12 steps for Steps 4); stage_of names the run and its own step.
    config = FusionConfig(method="est", beta_seed=7)
    assert sampling_runs(config) == 3 and sampling_runs(config, beta_known=True) == 1
    assert sampling_runs(FusionConfig(method="est", beta=0.5)) == sampling_runs(FusionConfig(method="merge")) == 1
    plan = plan_fusion(backbone, *loras, config)
    calls = []
    render_fusion(backbone, plan, SamplerSettings(steps=4, seed=1), photo=photo,
                  callback=lambda step, total, preview: calls.append((step, total)))
    assert calls == [(step, 12) for step in range(1, 13)]
    staged = [stage_of(step, total, sampling_runs(config)) for step, total in calls]
    assert staged == [(run, step, 4) for run in range(3) for step in range(1, 5)]
    assert [stage_of(step, 4, 1) for step in range(1, 5)] == [(0, step, 4) for step in range(1, 5)]


def test_scales_do_not_move_the_switch(backbone, loras):
    one = plan_fusion(backbone, *loras, FusionConfig(method="est", beta=0.5))
    scaled = plan_fusion(backbone, *loras, FusionConfig(method="est", beta=0.5, subject_scale=0.3, style_scale=2.0))
    for tau in (0.0, 0.4, 0.8):
        assert torch.equal(one.rule(0.5).choose(tau), scaled.rule(0.5).choose(tau))
    assert one.reference("subject").config == scaled.reference("subject").config


def test_union_of_layer_sets_gives_missing_layers_a_zero_update(backbone, loras):
    subject, style = loras
    names = list(style)
    partial_style = {name: style[name] for name in names[: len(names) // 2]}
    style_only = plan_fusion(backbone, subject, partial_style, FusionConfig(method="style", layers="union"))
    assert set(style_only.pair.names) == set(subject)
    with applied_lora(backbone, partial_style):  # the partial LoRA folded on its own
        expected = plain_latents(backbone)
    torch.testing.assert_close(latents_with(backbone, style_only), expected, atol=1e-5, rtol=0)
    est = plan_fusion(backbone, subject, partial_style, FusionConfig(method="est", beta=0.5, layers="union"))
    missing = [index for index, name in enumerate(est.pair.names) if name not in partial_style]
    assert est.rule(0.5).choose(0.99)[missing].all()  # no style update there: the subject stays


def test_an_edited_photo_comes_back_at_its_own_size_through_the_render_path(backbone, loras):
    photo = Image.fromarray(np.random.default_rng(4).integers(0, 256, (57, 91, 3), dtype=np.uint8))
    plan = plan_fusion(backbone, *loras, FusionConfig(method="merge"))
    settings = SamplerSettings(steps=3, seed=1)
    result = render_fusion(backbone, plan, settings, photo=photo)
    with applied_fusion(backbone, plan) as fusion:
        working = render(backbone, settings, photo=photo, before_step=fusion.before_step)
    assert working.size != photo.size and result.image.size == photo.size
    assert np.array_equal(pixels(result.image), pixels(carry_to_full_resolution(photo, working)))
    resized = render_fusion(backbone, plan, settings, photo=photo, render_settings=RenderSettings(render="resize"))
    assert np.array_equal(pixels(resized.image), pixels(resize_to(working, photo.size)))
