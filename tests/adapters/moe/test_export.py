"""Exporting one style of the MoE LoRA as a standard LoRA, and reading LoRA files back, against
closed forms, peft, and diffusers' own ``load_lora_weights``; all from random non-zero weights."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from diffusers import FluxKontextPipeline
from moe_fixtures import base_backbone, randomise
from peft import LoraConfig, inject_adapter_in_model, set_peft_model_state_dict
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from engine.adapters.lora.files import lora_delta, read_lora_file
from engine.adapters.moe.adapter import MoELoraAdapter
from engine.adapters.moe.config import MoELoraConfig
from engine.adapters.moe.export import export_style_lora
from engine.core.errors import InputError
from engine.models.backbones.kontext import KontextBackbone
from tests.models.backbones.kontext_fixtures import TINY_SEQUENCE_LENGTH, tiny_kontext_folder  # noqa: F401 - fixture

pytestmark = pytest.mark.timeout(120)
NOISY = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
EXPORT = dict(title="Watercolour", trigger="in watercolour", architecture="atelier-embedded")


def prune(adapter: MoELoraAdapter, key: str) -> dict[str, int]:
    """Switch off some components: one of the style's in the first layer, a whole shared expert in
    the second, everything in the third. Returns the live rank per layer for ``key``."""
    names = list(adapter.layers)
    layers = list(adapter.layers.values())
    with torch.no_grad():
        layers[0].style_mask[key][1] = 0.0
        layers[1].shared_mask[1] = 0.0
        layers[2].style_mask[key].zero_()
        layers[2].shared_mask.zero_()
    return {name: int(layer.style_mask[key].sum() + layer.shared_mask.sum()) for name, layer in zip(names, layers)
            if layer.style_mask[key].sum() + layer.shared_mask.sum() > 0}


def make_moe(config: MoELoraConfig, seed: int = 0):
    backbone = base_backbone(seed)
    adapter = MoELoraAdapter(backbone, config)
    keys = [adapter.add_style(), adapter.add_style()]
    randomise(adapter)
    return backbone, adapter, keys


def velocity(backbone):
    return backbone.predict_velocity(NOISY, torch.tensor([0.6, 0.3]), NOISY * 0.5, backbone.encode_prompt(["", ""]))


def closed_form_delta(layer, key: str, gates: torch.Tensor) -> torch.Tensor:
    """(alpha/r) * (B_s diag(m_s) A_s + sum_k g_k B_k diag(m_k) A_k), written out."""
    delta = layer.style_up[key] @ torch.diag(layer.style_mask[key]) @ layer.style_down[key]
    for expert in range(layer.config.num_shared_experts):
        delta = delta + gates[expert] * layer.shared_up[expert] @ torch.diag(layer.shared_mask[expert]) @ layer.shared_down[expert]
    return layer.config.scale * delta


# Exact export of a style-level router ------------------------------------------------------
def test_exported_layers_equal_the_style_closed_form(tmp_path):
    backbone, adapter, keys = make_moe(MoELoraConfig(rank=3, alpha=6.0, num_shared_experts=2))
    live_ranks = prune(adapter, keys[0])
    path = tmp_path / "style.safetensors"
    report = export_style_lora(adapter, keys[0], path, **EXPORT, description="soft washes",
                               training_settings={"steps": 500, "lr": 1e-4})
    assert report.exact and report.error == 0.0 and report.ranks == live_ranks
    assert len(live_ranks) == len(adapter.layers) - 1  # the fully pruned layer is left out
    assert min(live_ranks.values()) < max(live_ranks.values())  # per-layer ranks differ

    layers = read_lora_file(path, backbone)
    assert set(layers) == set(live_ranks)
    for name, layer in adapter.layers.items():
        expected = closed_form_delta(layer, keys[0], torch.softmax(layer.style_router[keys[0]], dim=0)).detach()
        if name in layers:
            assert layers[name].scale == 1.0 and layers[name].down.shape[0] == live_ranks[name]
            torch.testing.assert_close(lora_delta(layers)[name], expected, atol=1e-6, rtol=1e-5)
        else:
            assert expected.abs().max() == 0
    other = read_lora_file(export_style_lora(adapter, keys[1], tmp_path / "other.safetensors", **EXPORT).path, backbone)
    assert not torch.allclose(other[next(iter(other))].delta(), layers[next(iter(other))].delta())

    with safe_open(path, framework="pt") as handle:
        header, tensor_names = handle.metadata(), set(handle.keys())
    assert tensor_names == {f"transformer.{name}.lora_{side}.weight" for name in live_ranks for side in "AB"}
    assert header["format"] == "pt" and header["modelspec.title"] == "Watercolour"
    assert header["modelspec.architecture"] == "atelier-embedded" and header["modelspec.trigger_phrase"] == "in watercolour"
    assert header["modelspec.description"] == "soft washes"
    assert json.loads(header["atelier.training_settings"]) == {"steps": 500, "lr": 1e-4}
    assert float(header["atelier.export_error"]) == 0.0
    config = json.loads(header["lora_adapter_metadata"])
    assert config["transformer.lora_alpha"] == config["transformer.r"]
    assert config["transformer.alpha_pattern"] == config["transformer.rank_pattern"] != {}


def test_peft_and_diffusers_loaders_reproduce_the_style(tmp_path):
    """A plain peft LoRA built from the file, and diffusers' load_lora_adapter, both give the
    velocity of Atelier's adapter routed to the style, with scale exactly 1 in every layer."""
    backbone, adapter, keys = make_moe(MoELoraConfig(rank=3, alpha=6.0, num_shared_experts=2))
    live_ranks = prune(adapter, keys[1])
    path = tmp_path / "style.safetensors"
    export_style_lora(adapter, keys[1], path, **EXPORT)
    adapter.route({keys[1]: 1.0})
    ours = velocity(backbone)
    adapter.clear_routing()
    base = velocity(backbone)
    assert (ours - base).abs().max() > 1e-3

    with safe_open(path, framework="pt") as handle:
        metadata = json.loads(handle.metadata()["lora_adapter_metadata"])
    config = LoraConfig(**{key.removeprefix("transformer."): value for key, value in metadata.items()})
    state = {key.removeprefix("transformer."): value for key, value in load_file(path).items()}
    with_peft = base_backbone()
    inject_adapter_in_model(config, with_peft.transformer)
    result = set_peft_model_state_dict(with_peft.transformer, state)
    assert not result.unexpected_keys

    with_diffusers = base_backbone()
    with_diffusers.transformer.load_lora_adapter(str(path), prefix="transformer", use_safetensors=True)

    for reference in (with_peft, with_diffusers):
        lora_layers = {name: module for name, module in reference.transformer.named_modules() if hasattr(module, "scaling")}
        assert {name: next(iter(module.r.values())) for name, module in lora_layers.items()} == live_ranks
        assert all(scale == 1.0 for module in lora_layers.values() for scale in module.scaling.values())
        torch.testing.assert_close(velocity(reference), ours, atol=1e-5, rtol=1e-4)


# THE KEY TEST: diffusers' FluxKontextPipeline.load_lora_weights --------------------------------
def test_kontext_pipeline_with_the_exported_lora_equals_atelier(tiny_kontext_folder, tmp_path):  # noqa: F811
    backbone = KontextBackbone.from_pretrained(str(tiny_kontext_folder))
    adapter = MoELoraAdapter(backbone, MoELoraConfig(rank=2, alpha=3.0, num_shared_experts=2))
    keys = [adapter.add_style(), adapter.add_style()]
    randomise(adapter, seed=3)
    live_ranks = prune(adapter, keys[0])
    path = tmp_path / "kontext-style.safetensors"
    report = export_style_lora(adapter, keys[0], path, title="Pop art", trigger="", architecture="flux-1-dev")
    assert report.exact and report.ranks == live_ranks

    generator = torch.Generator().manual_seed(0)
    noisy, source = torch.randn(1, 4, 16, 12, generator=generator), torch.randn(1, 4, 16, 12, generator=generator)
    condition = backbone.encode_prompt(["pop art"])
    picture = Image.fromarray(np.random.default_rng(0).integers(0, 256, size=(32, 24, 3), dtype=np.uint8))
    call = dict(image=picture, prompt="pop art", height=32, width=24,
                max_area=32 * 24, num_inference_steps=2, guidance_scale=2.5, max_sequence_length=TINY_SEQUENCE_LENGTH,
                output_type="latent", _auto_resize=False)
    adapter.route({keys[0]: 1.0})
    with torch.inference_mode():
        ours = backbone.predict_velocity(noisy, torch.tensor([0.7]), source, condition)
        ours_sampled = backbone.pipeline(**call, generator=torch.Generator().manual_seed(4)).images

    pipeline = FluxKontextPipeline.from_pretrained(str(tiny_kontext_folder))
    fresh = KontextBackbone(pipeline, backbone.settings)
    with torch.inference_mode():
        base = fresh.predict_velocity(noisy, torch.tensor([0.7]), source, condition)
    pipeline.load_lora_weights(str(path))
    lora_layers = {name: module for name, module in pipeline.transformer.named_modules() if hasattr(module, "scaling")}
    assert {name: next(iter(module.r.values())) for name, module in lora_layers.items()} == live_ranks
    assert all(scale == 1.0 for module in lora_layers.values() for scale in module.scaling.values())
    with torch.inference_mode():
        theirs = fresh.predict_velocity(noisy, torch.tensor([0.7]), source, condition)
        theirs_sampled = pipeline(**call, generator=torch.Generator().manual_seed(4)).images
    assert (ours - base).abs().max() > 1e-2
    torch.testing.assert_close(theirs, ours, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(theirs_sampled, ours_sampled, atol=1e-5, rtol=1e-5)


# Token router and rank truncation ----------------------------------------------------------
@pytest.mark.parametrize("router", ["style", "token"])
def test_truncation_error_falls_with_rank_and_only_the_exact_case_is_zero(tmp_path, router):
    backbone, adapter, keys = make_moe(MoELoraConfig(rank=2, alpha=2.0, num_shared_experts=2, router=router, targets="attention"))
    full = export_style_lora(adapter, keys[0], tmp_path / "full.safetensors", **EXPORT)
    assert max(full.ranks.values()) == 6
    if router == "style":
        assert full.exact and full.error == full.truncation_error == full.routing_error == 0.0
    else:
        assert not full.exact and full.truncation_error == 0.0 and full.error == full.routing_error > 0.01
    errors = []
    for rank in range(1, 7):
        report = export_style_lora(adapter, keys[0], tmp_path / f"rank{rank}.safetensors", **EXPORT, max_rank=rank)
        assert max(report.ranks.values()) == rank
        with safe_open(report.path, framework="pt") as handle:
            assert float(handle.metadata()["atelier.export_error"]) == report.error
        errors.append(report)
    truncation = [report.truncation_error for report in errors]
    assert all(a > b for a, b in zip(truncation, truncation[1:-1])) and truncation[-1] == 0.0
    assert all(a >= b for a, b in zip([r.error for r in errors], [r.error for r in errors][1:]))
    assert errors[-1].error == full.error

    # The truncated file holds the best rank-2 approximation of each layer's (static-gate) update.
    exact, truncated = read_lora_file(full.path, backbone), read_lora_file(errors[1].path, backbone)
    discarded, total = 0.0, 0.0
    for name, layer in exact.items():
        singular_values = torch.linalg.svdvals(layer.delta().double())
        discarded += float(singular_values[2:].square().sum())
        total += float(singular_values.square().sum())
        torch.testing.assert_close(torch.linalg.svdvals(truncated[name].delta().double())[:2], singular_values[:2],
                                   atol=1e-5, rtol=1e-5)
    if router == "style":
        assert errors[1].truncation_error == pytest.approx(math.sqrt(discarded / total), rel=1e-4)


def test_token_router_exports_the_static_gate_of_its_bias(tmp_path):
    backbone, adapter, keys = make_moe(MoELoraConfig(rank=2, num_shared_experts=3, router="token", gate="top_k", top_k=2))
    path = export_style_lora(adapter, keys[1], tmp_path / "token.safetensors", **EXPORT).path
    layers = read_lora_file(path, backbone)
    for name, layer in adapter.layers.items():
        logits = layer.style_router[keys[1]].detach()
        top = torch.topk(logits, 2)
        gates = torch.zeros_like(logits).scatter(0, top.indices, torch.softmax(top.values, dim=0))
        expected = closed_form_delta(layer, keys[1], gates).detach()
        torch.testing.assert_close(layers[name].delta(), expected, atol=1e-6, rtol=1e-5)
        assert layers[name].down.shape[0] == 2 + 2 * 2  # the expert top-k leaves out is dropped


def test_export_restores_routing_and_refuses_bad_arguments(tmp_path):
    backbone, adapter, keys = make_moe(MoELoraConfig(rank=2))
    adapter.route({keys[0]: 0.3, keys[1]: 0.7})
    routed = velocity(backbone)
    export_style_lora(adapter, keys[1], tmp_path / "a.safetensors", **EXPORT)
    assert adapter.routing.keys == keys
    torch.testing.assert_close(velocity(backbone), routed)
    bad = [
        (dict(style_key="nope"), "no expert"),
        (dict(title=" "), "title is empty"),
        (dict(max_rank=0), "max_rank"),
        (dict(training_settings={"when": object()}), "JSON"),
        (dict(path=tmp_path / "a.pt"), "safetensors"),
    ]
    for change, message in bad:
        arguments = dict(adapter=adapter, style_key=keys[0], path=tmp_path / "b.safetensors", **EXPORT) | change
        with pytest.raises(InputError, match=message):
            export_style_lora(**arguments)
    assert not (tmp_path / "b.safetensors").exists()
    for layer in adapter.layers.values():
        with torch.no_grad():
            layer.style_mask[keys[0]].zero_()
            layer.shared_mask.zero_()
    with pytest.raises(InputError, match="nothing to export"):
        export_style_lora(adapter, keys[0], tmp_path / "c.safetensors", **EXPORT)


# Reading external files --------------------------------------------------------------------
def known_factors(seed: int, rank: int, out_features: int, in_features: int):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(rank, in_features, generator=generator), torch.randn(out_features, rank, generator=generator)


def test_kohya_file_reads_back_to_the_same_update(tmp_path):
    backbone = base_backbone()
    down_q, up_q = known_factors(1, 4, 32, 32)
    down_out, up_out = known_factors(2, 3, 32, 160)
    tensors = {
        "lora_unet_transformer_blocks_0_attn_to_q.lora_down.weight": down_q,
        "lora_unet_transformer_blocks_0_attn_to_q.lora_up.weight": up_q,
        "lora_unet_transformer_blocks_0_attn_to_q.alpha": torch.tensor(2.0),
        "lora_unet_single_transformer_blocks_0_proj_out.lora_down.weight": down_out,  # no alpha: alpha = rank
        "lora_unet_single_transformer_blocks_0_proj_out.lora_up.weight": up_out,
    }
    save_file(tensors, tmp_path / "kohya.safetensors")
    deltas = lora_delta(read_lora_file(tmp_path / "kohya.safetensors", backbone))
    assert set(deltas) == {"transformer_blocks.0.attn.to_q", "single_transformer_blocks.0.proj_out"}
    torch.testing.assert_close(deltas["transformer_blocks.0.attn.to_q"], 0.5 * up_q @ down_q)
    torch.testing.assert_close(deltas["single_transformer_blocks.0.proj_out"], up_out @ down_out)


def test_kohya_flux_layout_goes_through_diffusers_converter(tiny_kontext_folder, tmp_path):  # noqa: F811
    """BFL's fused qkv of a double block is split into to_q, to_k, to_v by diffusers' converter."""
    backbone = KontextBackbone.from_pretrained(str(tiny_kontext_folder))
    down_qkv, up_qkv = known_factors(3, 2, 3 * 32, 32)
    down_proj, up_proj = known_factors(4, 2, 32, 32)
    tensors = {
        "lora_unet_double_blocks_0_img_attn_qkv.lora_down.weight": down_qkv,
        "lora_unet_double_blocks_0_img_attn_qkv.lora_up.weight": up_qkv,
        "lora_unet_double_blocks_0_img_attn_qkv.alpha": torch.tensor(1.0),
        "lora_unet_double_blocks_0_img_attn_proj.lora_down.weight": down_proj,
        "lora_unet_double_blocks_0_img_attn_proj.lora_up.weight": up_proj,
        "lora_unet_double_blocks_0_img_attn_proj.alpha": torch.tensor(8.0),
    }
    save_file(tensors, tmp_path / "bfl.safetensors")
    deltas = lora_delta(read_lora_file(tmp_path / "bfl.safetensors", backbone))
    full = 0.5 * up_qkv @ down_qkv
    for index, name in enumerate(("to_q", "to_k", "to_v")):
        torch.testing.assert_close(deltas[f"transformer_blocks.0.attn.{name}"], full[32 * index : 32 * (index + 1)])
    torch.testing.assert_close(deltas["transformer_blocks.0.attn.to_out.0"], 4.0 * up_proj @ down_proj)


def test_peft_key_variants_read_the_same(tmp_path):
    backbone, adapter, keys = make_moe(MoELoraConfig(rank=2, targets="attention"))
    path = export_style_lora(adapter, keys[0], tmp_path / "style.safetensors", **EXPORT).path
    expected = lora_delta(read_lora_file(path, backbone))
    tensors = load_file(path)
    for rename in (lambda key: key.removeprefix("transformer."),
                   lambda key: key.removeprefix("transformer.").replace(".weight", ".default.weight")):
        save_file({rename(key): value for key, value in tensors.items()}, tmp_path / "variant.safetensors")
        deltas = lora_delta(read_lora_file(tmp_path / "variant.safetensors", backbone))
        assert deltas.keys() == expected.keys()
        for name in expected:
            torch.testing.assert_close(deltas[name], expected[name])
    # An alpha per module scales by alpha / r, as diffusers reads network alphas.
    name = next(iter(expected))
    rank = tensors[f"transformer.{name}.lora_A.weight"].shape[0]
    save_file({**tensors, f"transformer.{name}.alpha": torch.tensor(2.0 * rank)}, tmp_path / "alpha.safetensors")
    torch.testing.assert_close(lora_delta(read_lora_file(tmp_path / "alpha.safetensors", backbone))[name], 2.0 * expected[name])


def bad_files():
    down, up = known_factors(5, 2, 32, 32)
    good = {"transformer.transformer_blocks.0.attn.to_q.lora_A.weight": down,
            "transformer.transformer_blocks.0.attn.to_q.lora_B.weight": up}
    return [
        ({}, "no tensors"),
        ({"transformer.blocks.7.attn.to_q.lora_A.weight": down, "transformer.blocks.7.attn.to_q.lora_B.weight": up},
         "does not have .*blocks.7.attn.to_q"),
        ({**good, "transformer.transformer_blocks.0.attn.to_k.lora_A.weight": down[:, :16].clone(),
          "transformer.transformer_blocks.0.attn.to_k.lora_B.weight": up.clone()}, "to_k .*layer is 32 x 32"),
        ({"transformer.transformer_blocks.0.attn.to_q.lora_A.weight": down.clone().index_fill_(1, torch.tensor([3]), math.nan),
          "transformer.transformer_blocks.0.attn.to_q.lora_B.weight": up}, "NaN"),
        ({"transformer.transformer_blocks.0.attn.to_q.lora_A.weight": down}, "incomplete"),
        ({"transformer.transformer_blocks.0.attn.to_q.lora_A.weight": down.reshape(2, 32, 1, 1),
          "transformer.transformer_blocks.0.attn.to_q.lora_B.weight": up}, "not a matrix"),
        ({**good, "text_encoder.text_model.encoder.layers.0.self_attn.q_proj.lora_A.weight": down.clone(),
          "text_encoder.text_model.encoder.layers.0.self_attn.q_proj.lora_B.weight": up.clone()}, "text encoder"),
        ({**good, "transformer.transformer_blocks.0.attn.to_q.lora_magnitude_vector": up[:, 0].clone()}, "not LoRA factors"),
        ({"lora_unet_transformer_blocks_9_attn_to_q.lora_down.weight": down,
          "lora_unet_transformer_blocks_9_attn_to_q.lora_up.weight": up}, "does not have .*blocks_9"),
    ]


@pytest.mark.parametrize("tensors, message", bad_files())
def test_bad_files_are_input_errors(tmp_path, tensors, message):
    backbone = base_backbone()
    save_file(tensors, tmp_path / "bad.safetensors")
    with pytest.raises(InputError, match=message):
        read_lora_file(tmp_path / "bad.safetensors", backbone)


def test_missing_and_non_safetensors_files_are_input_errors(tmp_path):
    backbone = base_backbone()
    with pytest.raises(InputError, match="not found"):
        read_lora_file(tmp_path / "missing.safetensors", backbone)
    (tmp_path / "pickle.safetensors").write_bytes(b"\x80\x04not a safetensors file")
    with pytest.raises(InputError, match="not a readable safetensors"):
        read_lora_file(tmp_path / "pickle.safetensors", backbone)
