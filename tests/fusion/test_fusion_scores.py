"""Per-layer scores, gamma and the switch rule against closed forms and a per-layer reference loop."""

from __future__ import annotations

import math

import pytest
import torch

import engine.fusion.scores as scores
from engine.adapters.lora.files import LoraLayer
from engine.core.errors import InputError
from engine.fusion import FusionConfig, applied_fusion, plan_fusion
from engine.fusion.rule import SwitchRule
from engine.fusion.scores import OUTLIER_FACTOR, balance_gamma, energies, layer_energy, top_k_sum, top_k_sums
from engine.models.sampling.sampler import SamplerSettings, sample
from tests.adapters.moe.moe_fixtures import base_backbone
from tests.fusion.fusion_fixtures import random_lora


@pytest.mark.parametrize(("out_features", "in_features", "rank"), [(24, 40, 3), (6, 5, 4), (8, 8, 8)],
                         ids=["gram-form", "product-form", "full-rank"])
def test_energy_equals_the_squared_frobenius_norm_of_the_update(out_features, in_features, rank):
    generator = torch.Generator().manual_seed(rank)
    layer = LoraLayer(torch.randn(rank, in_features, generator=generator), torch.randn(out_features, rank, generator=generator), 0.7)
    closed_form = float((0.7 * layer.up.double() @ layer.down.double()).square().sum())
    assert layer_energy(layer) == pytest.approx(closed_form, rel=1e-12)
    # The sum of squared singular values, the paper's definition.
    singular = torch.linalg.svdvals(layer.delta().double())
    assert layer_energy(layer) == pytest.approx(float(singular.square().sum()), rel=1e-6)


def test_energies_follow_the_given_layer_order():
    layers = {"a": LoraLayer(torch.ones(1, 2), torch.ones(3, 1), 1.0), "b": LoraLayer(torch.ones(1, 2), 2 * torch.ones(3, 1), 1.0)}
    assert energies(layers, ["b", "a"]).tolist() == [24.0, 6.0]
    assert energies(layers, ["a"]).dtype == torch.float64


def test_top_k_sum_on_a_small_matrix():
    # dW = up @ down is the outer product [1, -4, 2] x [1, -0.5, 3]: |dW| entries
    # 1, .5, 3 / 4, 2, 12 / 2, 1, 6. A rank-1 subject and a rank-2 style give K = 2: 12 + 6.
    subject = LoraLayer(torch.tensor([[1.0, -0.5, 3.0]]), torch.tensor([[1.0], [-4.0], [2.0]]), 1.0)
    style = LoraLayer(torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]), torch.tensor([[1.0, 0.0], [0.0, -2.0], [0.5, 0.0]]), 1.0)
    subject_sums, style_sums = top_k_sums({"layer": subject}, {"layer": style}, ["layer"])
    assert subject_sums.tolist() == [18.0]
    assert style_sums.tolist() == [3.0]  # style |dW|: 1 and 2 and 0.5, the rest 0: top 2 = 2 + 1
    assert top_k_sum(subject, 100) == pytest.approx(31.5)  # K beyond the entries: all of them


def test_gamma_is_the_mean_ratio_without_outliers_and_without_one_sided_layers():
    subject = torch.tensor([1.0, 2.0, 3.0, 100.0, 5.0, 0.0], dtype=torch.float64)
    style = torch.tensor([1.0, 1.0, 1.0, 1.0, 0.0, 7.0], dtype=torch.float64)
    mean = (1 + 2 + 3 + 100) / 4
    assert 100 >= OUTLIER_FACTOR * mean > 3
    assert balance_gamma(subject, style) == pytest.approx(2.0)
    with pytest.raises(InputError, match="never change the same layer"):
        balance_gamma(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0]))


def reference_choice(subject_scores, style_scores, gamma, alpha, beta, tau) -> list[bool]:
    """The papers' rule, one layer at a time, in Python floats."""
    choices = []
    for subject_score, style_score in zip(subject_scores, style_scores):
        strength = alpha * tau + beta
        numerator, denominator = subject_score / gamma, style_score * strength
        if denominator == 0.0:  # Python raises here; IEEE (the papers' tensors) gives NaN or a signed infinity
            ratio = math.nan if numerator == 0.0 else math.copysign(math.inf, numerator) * math.copysign(1.0, denominator)
        else:
            ratio = numerator / denominator
        choices.append(ratio > 1)
    return choices


@pytest.mark.parametrize("beta", [0.5, 0.0, -0.3, 1.7])
def test_vectorised_choice_equals_the_per_layer_loop(beta):
    generator = torch.Generator().manual_seed(0)
    subject_scores = torch.rand(50, generator=generator, dtype=torch.float64) * 3
    style_scores = torch.rand(50, generator=generator, dtype=torch.float64) * 3
    subject_scores[[3, 7]] = 0.0
    style_scores[[7, 11]] = 0.0
    gamma = balance_gamma(subject_scores, style_scores)
    rule = SwitchRule(subject_scores, style_scores, gamma, 1.5, beta)
    for tau in [0.0, 0.1, 0.25, 1 / 3, 0.5, 0.9]:
        expected = reference_choice(subject_scores.tolist(), style_scores.tolist(), gamma, 1.5, beta, tau)
        assert rule.choose(tau).tolist() == expected
    assert rule.choose(0.5)[11] and not rule.choose(0.5)[7]  # style 0: subject; both 0: style


def test_each_layer_switches_at_most_once_from_subject_to_style():
    generator = torch.Generator().manual_seed(1)
    rule = SwitchRule(torch.rand(30, generator=generator, dtype=torch.float64) + 0.1,
                      torch.rand(30, generator=generator, dtype=torch.float64) + 0.1, 1.0, 1.5, 0.2)
    choices = torch.stack([rule.choose(step / 20) for step in range(20)]).int()
    assert (choices[1:] <= choices[:-1]).all()  # never back from style to subject
    assert choices[0].sum() > choices[-1].sum()


def test_scores_are_computed_once_per_plan_not_per_step(monkeypatch):
    backbone = base_backbone(0)
    subject, style = random_lora(backbone, seed=1), random_lora(backbone, seed=2)
    plans = [plan_fusion(backbone, subject, style, FusionConfig(method=method, beta=0.5)) for method in ("est", "klora")]

    def refuse(*arguments):
        raise AssertionError("a score was recomputed while sampling")

    monkeypatch.setattr(scores, "layer_energy", refuse)
    monkeypatch.setattr(scores, "top_k_sum", refuse)
    for plan in plans:
        with applied_fusion(backbone, plan) as fusion:
            sample(backbone, backbone.encode_prompt([""]), torch.Size((1, 3, 32, 32)), SamplerSettings(steps=4),
                   before_step=fusion.before_step)
        assert len(fusion.steps) == 4
