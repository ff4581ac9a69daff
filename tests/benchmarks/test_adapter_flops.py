import torch
from torch.utils.flop_counter import FlopCounterMode

from benchmarks import adapter_flops
from benchmarks.adapter_flops import addmm_in_place_flops
from engine.models.backbones.embedded.backbone import EmbeddedBackbone


def test_an_in_place_matrix_product_counts_as_its_out_of_place_twin():
    result, first, second = torch.zeros(6, 5), torch.randn(6, 3), torch.randn(3, 5)
    with FlopCounterMode(display=False, custom_mapping={torch.ops.aten.addmm_: addmm_in_place_flops}) as in_place:
        result.addmm_(first, second)
    with FlopCounterMode(display=False) as out_of_place:
        torch.addmm(result, first, second)
    assert in_place.get_total_flops() == out_of_place.get_total_flops() == 2 * 6 * 3 * 5


def test_unfolded_mix_adds_the_adapters_closed_form_arithmetic(monkeypatch):
    backbone = EmbeddedBackbone.from_config("tiny")
    monkeypatch.setattr(adapter_flops, "load_backbone", lambda model: backbone)
    counts = adapter_flops.count("embedded", "attention")
    side = backbone.native_resolution // backbone.config.patch_size
    image, context, rank = side * side, backbone.config.instruction_tokens, 8 * 4  # two style + two shared experts of rank 8

    def tokens(name: str) -> int:
        """Tokens a layer sees: double blocks keep image and instruction streams apart, single
        blocks run on both concatenated."""
        if name.startswith("single_transformer_blocks."):
            return image + context
        return context if ("add_" in name or "to_add_out" in name) else image

    layers = {name: module for name, module in backbone.transformer.named_modules()
              if isinstance(module, torch.nn.Linear) and ".attn." in name}
    expected = sum(2 * tokens(name) * rank * (layer.in_features + layer.out_features) for name, layer in layers.items())
    expected += len(layers) * 2 * 1 * 2 * 2  # per layer, once: the mix (1, 2 styles) @ per-style gates (2, 2 shared)
    assert counts["two-style mix unfolded"] - counts["base"] == expected
