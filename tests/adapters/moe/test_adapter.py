"""The multi-style MoE LoRA against closed forms and plain LoRA (peft), from non-zero weights."""

import pytest
import torch
from moe_fixtures import base_backbone, randomise
from peft import LoraConfig, inject_adapter_in_model

from engine.adapters.moe.adapter import MoELoraAdapter, target_layers
from engine.adapters.moe.config import MoELoraConfig
from engine.adapters.moe.layer import MoELoraLinear
from engine.core.errors import InputError
from engine.models.backbones.embedded.backbone import EmbeddedBackbone

TOKENS = (torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)),)


def make(config: MoELoraConfig, styles: int = 2, seed: int = 0):
    backbone = base_backbone(seed)
    adapter = MoELoraAdapter(backbone, config)
    keys = [adapter.add_style() for _ in range(styles)]
    return backbone, adapter, keys


def velocity(backbone, source=None):
    noisy = TOKENS[0]
    source = noisy * 0.5 if source is None else source
    return backbone.predict_velocity(noisy, torch.tensor([0.6, 0.3]), source, backbone.encode_prompt(["", ""]))


def test_untrained_adapter_changes_nothing():
    backbone, adapter, keys = make(MoELoraConfig(rank=2))
    base = velocity(backbone)
    adapter.route({keys[0]: 0.7, keys[1]: 0.3})
    torch.testing.assert_close(velocity(backbone), base)


def test_one_expert_moe_equals_plain_peft_lora():
    config = MoELoraConfig(rank=3, alpha=6.0, num_shared_experts=0, targets="attention")
    backbone, adapter, (key,) = make(config, styles=1)
    randomise(adapter)
    adapter.route({key: 1.0})
    ours = velocity(backbone)
    adapter.clear_routing()
    base_output = velocity(backbone)

    reference = base_backbone()
    names = list(adapter.layers)
    reference.transformer = inject_adapter_in_model(
        LoraConfig(r=3, lora_alpha=6.0, target_modules=names, init_lora_weights=False), reference.model.transformer
    )
    modules = dict(reference.model.transformer.named_modules())
    with torch.no_grad():
        for name, layer in adapter.layers.items():
            modules[f"{name}.lora_A.default"].weight.copy_(layer.style_down[key])
            modules[f"{name}.lora_B.default"].weight.copy_(layer.style_up[key])
    torch.testing.assert_close(velocity(reference), ours, atol=1e-5, rtol=1e-4)
    assert (ours - base_output).abs().max() > 1e-3


@pytest.mark.parametrize("mix", [{0: 1.0}, {0: 0.6, 1: 0.4}])
def test_folded_equals_unfolded_and_differs_from_base(mix):
    backbone, adapter, keys = make(MoELoraConfig(rank=2, num_shared_experts=2))
    randomise(adapter)
    base = velocity(backbone)
    named_mix = {keys[index]: weight for index, weight in mix.items()}
    adapter.route(named_mix)
    unfolded = velocity(backbone)
    with adapter.folded(named_mix):
        folded = velocity(backbone)
    torch.testing.assert_close(folded, unfolded, atol=1e-4, rtol=1e-4)
    assert (unfolded - base).abs().max() > 1e-3
    adapter.clear_routing()
    torch.testing.assert_close(velocity(backbone), base)  # unfolding restored the weights


def test_delta_weight_matches_the_closed_form():
    backbone, adapter, keys = make(MoELoraConfig(rank=2, alpha=4.0, num_shared_experts=2))
    randomise(adapter)
    layer = next(iter(adapter.layers.values()))
    with torch.no_grad():
        layer.style_mask[keys[0]][1] = 0.0
        layer.shared_mask[1, 0] = 0.0
    adapter.route({keys[0]: 0.75, keys[1]: 0.25})
    scale = 4.0 / 2
    expected = torch.zeros_like(layer.base_layer.weight)
    for key, weight in ((keys[0], 0.75), (keys[1], 0.25)):
        gates = torch.softmax(layer.style_router[key], dim=0)
        expected += weight * layer.style_up[key] @ torch.diag(layer.style_mask[key]) @ layer.style_down[key]
        for expert in range(2):
            shared = layer.shared_up[expert] @ torch.diag(layer.shared_mask[expert]) @ layer.shared_down[expert]
            expected += weight * gates[expert] * shared
    torch.testing.assert_close(layer.delta_weight(), scale * expected, atol=1e-5, rtol=1e-5)


def test_styles_do_not_interfere():
    backbone, adapter, keys = make(MoELoraConfig(rank=2))
    randomise(adapter)
    adapter.route({keys[0]: 1.0})
    before = velocity(backbone)
    with torch.no_grad():
        for layer in adapter.layers.values():
            layer.style_up[keys[1]].add_(1.0)
            layer.style_router[keys[1]].add_(3.0)
    torch.testing.assert_close(velocity(backbone), before)
    adapter.remove_style(keys[1])
    adapter.route({keys[0]: 1.0})
    torch.testing.assert_close(velocity(backbone), before)


def test_mixed_batch_routing_equals_per_sample_routing():
    backbone, adapter, keys = make(MoELoraConfig(rank=2, router="token"))
    randomise(adapter)
    adapter.route_batch([keys[0], keys[1]])
    batched = velocity(backbone)
    for index, key in enumerate(keys):
        adapter.route({key: 1.0})
        torch.testing.assert_close(batched[index], velocity(backbone)[index], atol=1e-5, rtol=1e-4)


def test_token_router_refuses_to_fold_and_top_k_keeps_k_experts():
    backbone, adapter, keys = make(MoELoraConfig(rank=2, router="token", num_shared_experts=3, gate="top_k", top_k=2))
    randomise(adapter)
    with pytest.raises(InputError, match="cannot be folded"):
        with adapter.folded({keys[0]: 1.0}):
            pass
    adapter.route({keys[0]: 1.0})
    velocity(backbone)
    gates = next(iter(adapter.layers.values())).last_gates
    assert ((gates > 0).sum(dim=-1) == 2).all()
    torch.testing.assert_close(gates.sum(dim=-1), torch.ones(gates.shape[:-1]))


def test_balance_loss_is_one_when_uniform():
    backbone, adapter, keys = make(MoELoraConfig(rank=2, num_shared_experts=4))
    adapter.route({keys[0]: 1.0})
    velocity(backbone)
    assert adapter.balance_loss().item() == pytest.approx(1.0)


def test_save_and_load_round_trip(tmp_path):
    backbone, adapter, keys = make(MoELoraConfig(rank=2))
    randomise(adapter)
    adapter.route({keys[1]: 1.0})
    expected = velocity(backbone)
    adapter.save(tmp_path / "adapter.safetensors", metadata={"note": "x"})
    fresh = base_backbone()
    loaded = MoELoraAdapter.load(tmp_path / "adapter.safetensors", fresh)
    assert loaded.style_keys == keys
    loaded.route({keys[1]: 1.0})
    torch.testing.assert_close(velocity(fresh), expected)


def test_target_presets_select_by_module_name():
    backbone = EmbeddedBackbone.from_config("tiny")
    attention = target_layers(backbone, "attention")
    assert attention and all(".attn." in name for name in attention)
    assert all(name.startswith("transformer_blocks.") for name in target_layers(backbone, "double"))
    assert all(name.startswith("single_transformer_blocks.") for name in target_layers(backbone, "single"))
    assert set(target_layers(backbone, "all")) == set(backbone.adapter_targets())
    adapter = MoELoraAdapter(backbone, MoELoraConfig(targets="feed_forward"))
    assert all(isinstance(dict(backbone.transformer.named_modules())[name], MoELoraLinear) for name in adapter.layers)
    assert set(backbone.adapter_targets()) == set(target_layers(backbone, "all"))  # names unchanged by wrapping


def test_all_and_io_adds_the_patch_embedding_and_output_projection():
    backbone = EmbeddedBackbone.from_config("tiny")
    blocks = target_layers(backbone, "all")
    assert target_layers(backbone, "all+io") == blocks + ["x_embedder", "proj_out"]
    adapter = MoELoraAdapter(backbone, MoELoraConfig(targets="all+io"))
    modules = dict(backbone.transformer.named_modules())
    assert isinstance(modules["x_embedder"], MoELoraLinear) and isinstance(modules["proj_out"], MoELoraLinear)
    assert target_layers(backbone, "all+io") == blocks + ["x_embedder", "proj_out"]  # unchanged by wrapping
    adapter.remove()
    assert isinstance(dict(backbone.transformer.named_modules())["proj_out"], torch.nn.Linear)


def test_unknown_style_and_parameter_count():
    backbone, adapter, keys = make(MoELoraConfig(rank=2, num_shared_experts=0, targets="attention"), styles=1)
    with pytest.raises(InputError, match="no expert"):
        adapter.route({"nope": 1.0})
    per_style = adapter.parameter_count()
    layer = next(iter(adapter.layers.values()))
    with torch.no_grad():
        layer.style_mask[keys[0]][0] = 0
    assert adapter.parameter_count() == per_style - (layer.in_features + layer.out_features)


def test_folding_under_inference_mode_leaves_the_model_trainable():
    backbone, adapter, keys = make(MoELoraConfig(rank=2))
    randomise(adapter)
    with torch.inference_mode():
        with adapter.folded({keys[0]: 1.0}):
            velocity(backbone)
    adapter.route({keys[0]: 1.0})
    loss = velocity(backbone).square().mean()
    loss.backward()
    assert next(iter(adapter.layers.values())).style_up[keys[0]].grad is not None


def test_adapter_targets_are_unchanged_by_a_token_router():
    backbone = EmbeddedBackbone.from_config("tiny")
    before = backbone.adapter_targets()
    MoELoraAdapter(backbone, MoELoraConfig(router="token"))
    assert backbone.adapter_targets() == before


def test_inference_cache_follows_routing_and_weight_changes():
    backbone, adapter, keys = make(MoELoraConfig(rank=2))
    randomise(adapter)
    adapter.route({keys[0]: 1.0})
    with torch.no_grad():
        first = velocity(backbone)
        layer = next(iter(adapter.layers.values()))
        layer.style_up[keys[0]].mul_(2.0)  # an in-place write must invalidate the cache
        changed = velocity(backbone)
    assert (changed - first).abs().max() > 1e-4
    with torch.enable_grad():
        reference = velocity(backbone).detach()
    torch.testing.assert_close(changed, reference)
    adapter.route({keys[1]: 1.0})
    with torch.no_grad():
        other = velocity(backbone)
    assert (other - changed).abs().max() > 1e-4


@pytest.mark.parametrize("router, batch_of_mixes", [("style", False), ("style", True), ("token", False), ("token", True)])
def test_inference_path_equals_training_path(router, batch_of_mixes):
    # Without gradients the update is accumulated in place into the base output; it must give
    # what the differentiable path gives, for one mix and for a batch of per-sample mixes.
    backbone, adapter, keys = make(MoELoraConfig(rank=2, router=router))
    randomise(adapter)
    if batch_of_mixes:
        adapter.route_batch([keys[0], keys[1]])
    else:
        adapter.route({keys[0]: 0.3, keys[1]: 0.7})
    with torch.enable_grad():
        training = velocity(backbone).detach()
    with torch.inference_mode():
        inference = velocity(backbone)
    adapter.clear_routing()
    with torch.inference_mode():
        base = velocity(backbone)
    torch.testing.assert_close(inference, training, atol=1e-5, rtol=1e-4)
    assert (inference - base).abs().max() > 1e-3


def test_inference_cache_follows_a_style_replaced_under_the_same_key():
    backbone, adapter, keys = make(MoELoraConfig(rank=2))
    randomise(adapter)
    adapter.route({keys[0]: 1.0})
    with torch.no_grad():
        before = velocity(backbone)
        for layer in adapter.layers.values():  # the routing tensor stays the same object
            layer.remove_style(keys[0])
            layer.add_style(keys[0])  # a fresh, zero expert under the old key
        after = velocity(backbone)
    with torch.enable_grad():
        reference = velocity(backbone).detach()
    torch.testing.assert_close(after, reference)
    assert (after - before).abs().max() > 1e-3


def test_routing_set_under_inference_mode_edits_unfolded():
    # Routing chosen inside torch.inference_mode gives inference tensors, which keep no version
    # counter; the unfolded path must still work, follow a change of mix and match the reference.
    backbone, adapter, keys = make(MoELoraConfig(rank=2))
    randomise(adapter)
    with torch.inference_mode():
        adapter.route({keys[0]: 1.0})
        first = velocity(backbone)
        adapter.route({keys[0]: 0.4, keys[1]: 0.6})
        mixed = velocity(backbone)
    adapter.route({keys[0]: 0.4, keys[1]: 0.6})
    with torch.enable_grad():
        reference = velocity(backbone).detach()
    torch.testing.assert_close(mixed, reference, atol=1e-5, rtol=1e-4)
    assert (mixed - first).abs().max() > 1e-3


def test_routing_the_same_mix_again_keeps_each_layers_inference_cache():
    backbone, adapter, keys = make(MoELoraConfig(rank=2))
    randomise(adapter)
    adapter.route({keys[0]: 0.5, keys[1]: 0.5})
    with torch.no_grad():
        first = velocity(backbone)
    layer = next(iter(adapter.layers.values()))
    cached = layer._cache
    adapter.clear_routing()
    adapter.route({keys[0]: 0.5, keys[1]: 0.5})
    with torch.no_grad():
        again = velocity(backbone)
    assert layer._cache is cached
    torch.testing.assert_close(again, first)
    adapter.route({keys[0]: 0.25, keys[1]: 0.75})
    with torch.no_grad():
        other = velocity(backbone)
    assert layer._cache is not cached
    assert (other - first).abs().max() > 1e-4


@pytest.mark.parametrize("gate", ["softmax", "top_k"])
def test_inference_drops_the_components_a_mix_switches_off(gate):
    # Pruned components, the styles outside the mix and a top-k gate's losers cost nothing at
    # inference, and the output still equals the differentiable path's.
    backbone, adapter, keys = make(MoELoraConfig(rank=3, gate=gate, top_k=1), styles=3)
    randomise(adapter)
    with torch.no_grad():
        for layer in adapter.layers.values():
            layer.style_mask[keys[0]][0] = 0.0
            layer.shared_mask[1, 2] = 0.0
    adapter.route({keys[0]: 0.6, keys[1]: 0.4})
    with torch.no_grad():
        inference = velocity(backbone)
    layer = next(iter(adapter.layers.values()))
    down_t, up_t, coefficients = layer._static_factors()
    active_shared = 3 * 2 - 1 if gate == "softmax" else int(layer.shared_mask[layer.gates()[0] > 0].sum())
    assert coefficients is None and down_t.shape[1] == up_t.shape[0] == 2 + 3 + active_shared
    with torch.enable_grad():
        reference = velocity(backbone).detach()
    torch.testing.assert_close(inference, reference, atol=1e-5, rtol=1e-4)
