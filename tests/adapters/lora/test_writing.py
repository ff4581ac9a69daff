"""A LoRA written by engine.adapters.lora.writing reads back through Atelier's reader, with its header."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from engine.adapters.lora.files import read_lora_file
from engine.adapters.lora.writing import (check_lora_path, lora_config_metadata, model_spec_entries, settings_entry,
                                          write_lora_file)
from engine.core.errors import InputError
from tests.adapters.moe.moe_fixtures import base_backbone


def test_written_factors_read_back_as_the_same_update_with_the_header(tmp_path: Path) -> None:
    backbone = base_backbone()
    shapes = {name: module.weight.shape for name, module in backbone.transformer.named_modules()
              if isinstance(module, torch.nn.Linear)}
    names = sorted(shapes)[:2]
    generator = torch.Generator().manual_seed(1)
    factors = {name: (torch.randn(rank, shapes[name][1], generator=generator), torch.randn(shapes[name][0], rank, generator=generator))
               for name, rank in zip(names, (2, 3))}
    spec = model_spec_entries(title="ink", trigger="", architecture="atelier-embedded", description="lines")
    path = write_lora_file(tmp_path / "ink.safetensors", factors, spec, {"atelier.kind": "test"})
    layers = read_lora_file(path, backbone)
    for name, (down, up) in factors.items():
        torch.testing.assert_close(layers[name].delta(), up @ down)
    with safe_open(path, "pt") as handle:
        header = handle.metadata()
    assert header["modelspec.title"] == "ink" and header["atelier.kind"] == "test"
    config = json.loads(header["lora_adapter_metadata"])
    assert config["transformer.r"] == 2 and config["transformer.rank_pattern"] == {f"^{names[1]}": 3}


def test_bad_inputs_are_refused_with_a_message() -> None:
    with pytest.raises(InputError, match="must end in .safetensors"):
        check_lora_path("ink.pt")
    with pytest.raises(InputError, match=r"title is empty; give one \(the subject's name\)"):
        model_spec_entries(title=" ", trigger="", architecture="x", description="", title_hint="the subject's name")
    with pytest.raises(InputError, match="trigger must be text"):
        model_spec_entries(title="a", trigger=3, architecture="x", description="")
    with pytest.raises(InputError, match="JSON values only"):
        settings_entry({"when": object()})


def test_the_most_common_rank_is_r_and_alpha_mirrors_it() -> None:
    config = lora_config_metadata({"a": 4, "b": 4, "c": 2})
    assert config["transformer.r"] == 4 and config["transformer.lora_alpha"] == 4
    assert config["transformer.rank_pattern"] == config["transformer.alpha_pattern"] == {"^c": 2}
