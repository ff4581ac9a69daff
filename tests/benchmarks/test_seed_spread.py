"""The seed-spread benchmark: its measure in closed form, and a run on a tiny random model."""

from __future__ import annotations

import pytest
import torch

from benchmarks.dataset import area_fit
from benchmarks.seed_spread import parse_variant, run, seed_spread
from engine.core.errors import ConfigError
from engine.models.backbones.embedded.backbone import EmbeddedBackbone
from engine.training.style_trainer import StyleTrainingConfig


def test_seed_spread_is_the_rms_difference() -> None:
    first = torch.zeros(1, 3, 4, 4)
    second = first.clone()
    second[:, :, :2] = 0.2  # half the pixels differ by 0.2: RMS = 0.2 / sqrt(2)
    assert abs(seed_spread(first, second) - 0.2 / 2**0.5) < 1e-6
    assert seed_spread(first, first) == 0.0


def test_a_variant_is_the_default_or_overrides_of_the_training_config() -> None:
    assert parse_variant("default") == StyleTrainingConfig()
    variant = parse_variant("loss_weighting=velocity+timestep_sampling=uniform+steps=7")
    assert (variant.loss_weighting, variant.timestep_sampling, variant.steps) == ("velocity", "uniform", 7)
    with pytest.raises(ValueError, match="field=value"):
        parse_variant("speed=fast")
    with pytest.raises(ConfigError, match="timestep_sampling must be one of"):
        parse_variant("timestep_sampling=cosine")


def test_each_variant_is_trained_and_scored_against_the_base() -> None:
    torch.manual_seed(0)
    backbone = EmbeddedBackbone.from_config("tiny")
    variants = ["default", "loss_weighting=velocity"]
    report = run(backbone, "vintage", variants, steps=2, test_pairs=1, size_fn=area_fit(32))
    assert set(report) == {"style", "base", *variants}
    for method in ("base", *variants):
        scores = report[method]
        assert 0 < scores["psnr"] < 100 and -1 <= scores["ssim"] <= 1 and scores["seed_spread"] >= 0
    # The untrained model is an exact identity editor (zero proj_out), so its edits cannot depend on
    # the noise; the trained adapters start from it, so the measure is 0 only where it should be.
    assert report["base"]["seed_spread"] == 0.0
    assert all(report[variant]["training_seconds"] >= 0 for variant in variants)  # rounded to 0.1 s: a tiny run may show 0


def test_strengths_and_base_instructions_get_their_own_rows() -> None:
    torch.manual_seed(0)
    backbone = EmbeddedBackbone.from_config("tiny")
    report = run(backbone, "vintage", ["default"], steps=1, test_pairs=1, size_fn=area_fit(32),
                 strengths=(1.0, 0.5), prompts=("grey", "warmer"))
    assert set(report) == {"style", "base", "base, strength 0.5", "default", "default, strength 0.5", "base_instructions"}
    assert set(report["base_instructions"]) == {"grey", "warmer"}
    # The tiny model starts as an identity editor whatever the instruction, so nothing reads the noise.
    assert report["base_instructions"] == {"grey": 0.0, "warmer": 0.0}
    assert report["base, strength 0.5"]["seed_spread"] == 0.0
