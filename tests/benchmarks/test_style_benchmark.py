"""The five-style benchmark's configuration: the LoRA placement it measures reaches the adapters."""

from __future__ import annotations

import pytest
import torch

from benchmarks.style_benchmark import BenchmarkConfig, run_benchmark
from engine.adapters.moe.adapter import target_layers
from engine.adapters.moe.config import MoELoraConfig
from engine.core.errors import ConfigError
from engine.models.backbones.embedded.backbone import EmbeddedBackbone


def _run(backbone, targets: str) -> dict:
    config = BenchmarkConfig(steps_per_style=1, test_pairs=1, styles="vintage", baselines=True, targets=targets)
    return run_benchmark(backbone, config, log=lambda message: None)


def test_the_placement_reaches_the_moe_and_the_per_style_loras() -> None:
    torch.manual_seed(0)
    backbone = EmbeddedBackbone.from_config("tiny")
    every, single = _run(backbone, "all"), _run(backbone, "single")
    assert every["moe"]["targets"] == "all" and single["moe"]["targets"] == "single"
    assert single["config"]["targets"] == "single"
    # Parameters scale with the layers LoRA sits on, for the MoE and the baselines alike.
    layers = {name: len(target_layers(backbone, name)) for name in ("all", "single")}
    assert 0 < layers["single"] < layers["all"]
    assert 0 < single["moe_parameters"] < every["moe_parameters"]
    assert 0 < single["lora_parameters"] < every["lora_parameters"]


def test_a_moe_config_that_disagrees_with_the_placement_is_refused() -> None:
    backbone = EmbeddedBackbone.from_config("tiny")
    config = BenchmarkConfig(steps_per_style=1, test_pairs=1, styles="vintage", targets="single")
    with pytest.raises(ValueError, match="puts LoRA on 'all'"):
        run_benchmark(backbone, config, MoELoraConfig(targets="all"), log=lambda message: None)
    with pytest.raises(ConfigError, match="targets must be one of"):
        BenchmarkConfig(targets="everywhere")
