"""Bad inputs to fusion give one clear InputError and leave the backbone untouched."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from safetensors.torch import save_file

from engine.adapters.lora.files import LoraLayer, read_lora_file
from engine.core.errors import InputError
from engine.fusion import FusionConfig, applied_fusion, fuse, plan_fusion
from engine.fusion.applied import AppliedFusion
from engine.models.backbones.embedded.backbone import EmbeddedBackbone
from engine.models.backbones.embedded.config import PRESETS
from tests.adapters.moe.moe_fixtures import base_backbone
from tests.fusion.fusion_fixtures import assert_unchanged, random_lora, weight_snapshot

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def backbone():
    return base_backbone(0)


@pytest.fixture(scope="module")
def loras(backbone):
    return random_lora(backbone, seed=1), random_lora(backbone, seed=2)


def test_different_layer_sets_name_the_layers_that_differ(backbone, loras):
    subject, style = loras
    names = list(style)
    with pytest.raises(InputError, match=f"only the style LoRA changes 2 layer\\(s\\) \\({names[0]}, {names[1]}\\).*union"):
        plan_fusion(backbone, {name: subject[name] for name in names[2:]}, style)
    with pytest.raises(InputError, match=f"only the subject LoRA changes 1 layer\\(s\\) \\({names[-1]}\\)"):
        plan_fusion(backbone, subject, {name: style[name] for name in names[:-1]})


def test_a_lora_for_another_backbone_is_refused(backbone, loras):
    other = EmbeddedBackbone.from_config(dataclasses.replace(PRESETS["tiny"], head_dim=8))
    with pytest.raises(InputError, match="the style LoRA.*another model"):
        plan_fusion(backbone, loras[0], random_lora(other, seed=3))
    kontext_names = {"transformer_blocks.0.attn.to_q_lora_only_in_flux": LoraLayer(torch.ones(1, 4), torch.ones(4, 1), 1.0)}
    with pytest.raises(InputError, match="the subject LoRA has weights for 1 layer\\(s\\) this model does not have"):
        plan_fusion(backbone, kontext_names, loras[1])


def test_empty_nan_and_zero_loras_are_refused(backbone, loras):
    subject, style = loras
    with pytest.raises(InputError, match="the subject LoRA holds no LoRA weights"):
        plan_fusion(backbone, {}, style)
    name = next(iter(style))
    broken = dict(style)
    broken[name] = LoraLayer(style[name].down.clone(), style[name].up.clone(), 1.0)
    broken[name].up[0, 0] = float("nan")
    with pytest.raises(InputError, match=f"the style LoRA: the weights of {name} contain NaN"):
        plan_fusion(backbone, subject, broken)
    untrained = {key: LoraLayer(layer.down, torch.zeros_like(layer.up), layer.scale) for key, layer in style.items()}
    with pytest.raises(InputError, match="style LoRA's update is zero in every layer"):
        plan_fusion(backbone, subject, untrained)


def test_a_file_with_unknown_keys_is_refused(backbone, loras, tmp_path):
    tensors = {f"transformer.{name}.lora_A.weight": layer.down for name, layer in loras[0].items()}
    tensors |= {f"transformer.{name}.lora_B.weight": layer.up for name, layer in loras[0].items()}
    tensors["transformer.pos_embed.frequencies"] = torch.ones(3)
    path = tmp_path / "odd.safetensors"
    save_file(tensors, path)
    with pytest.raises(InputError, match="odd.safetensors has tensors that are not LoRA factors"):
        read_lora_file(path, backbone)


def test_the_same_lora_on_both_sides_is_refused_in_any_layout(backbone, loras):
    subject = loras[0]
    with pytest.raises(InputError, match="the same LoRA"):
        plan_fusion(backbone, subject, subject)
    # The same update stored another way: scale folded into up, factors copied.
    refolded = {name: LoraLayer(layer.down.clone(), layer.up * layer.scale, 1.0) for name, layer in subject.items()}
    with pytest.raises(InputError, match="the same LoRA"):
        plan_fusion(backbone, subject, refolded)
    nearly = dict(refolded)
    name = next(iter(nearly))
    nearly[name] = LoraLayer(nearly[name].down, nearly[name].up * 1.01, 1.0)
    plan_fusion(backbone, subject, nearly)  # a different LoRA, however close, is fused


@pytest.mark.parametrize(("settings", "message"), [
    ({"method": "blend"}, "method must be one of est, klora, merge, subject, style"),
    ({"alpha": -1.0}, "alpha must lie in"),
    ({"alpha": float("nan")}, "alpha must lie in"),
    ({"style_bias": 3.0}, "style_bias must lie in"),
    ({"subject_scale": -0.1}, "subject_scale must lie in"),
    ({"style_scale": float("inf")}, "style_scale must lie in"),
    ({"beta": 2.5}, "beta must lie in"),
    ({"layers": "all"}, "layers must be one of same, union"),
])
def test_config_values_are_checked(settings, message):
    with pytest.raises(InputError, match=message):
        FusionConfig(**settings)


def test_misuse_of_an_applied_fusion_is_refused_and_changes_nothing(backbone, loras):
    snapshot = weight_snapshot(backbone)
    est = plan_fusion(backbone, *loras, FusionConfig(method="est"))
    with pytest.raises(InputError, match="EST needs the style discrepancy beta"):
        AppliedFusion(backbone, est)
    merge = plan_fusion(backbone, *loras, FusionConfig(method="merge"))
    with applied_fusion(backbone, merge):
        with pytest.raises(InputError, match="already applied"):
            AppliedFusion(backbone, merge)
    assert_unchanged(backbone, snapshot)
    with pytest.raises(InputError, match="does not fit this model"):
        fuse(backbone, *loras, FusionConfig(method="merge"), size=(30, 32))
    assert_unchanged(backbone, snapshot)


def test_layers_wrapped_by_another_adapter_are_refused(loras):
    from engine.adapters.moe.adapter import MoELoraAdapter
    from engine.adapters.moe.config import MoELoraConfig

    wrapped = base_backbone(0)
    adapter = MoELoraAdapter(wrapped, MoELoraConfig(rank=2, num_shared_experts=0))
    try:
        with pytest.raises(InputError, match="wrapped by another adapter"):
            plan_fusion(wrapped, *loras)
    finally:
        adapter.remove()
    plan_fusion(wrapped, *loras)  # fine once the adapter is removed
