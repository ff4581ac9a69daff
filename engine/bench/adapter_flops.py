"""Arithmetic of one transformer forward with and without an unfolded two-style mix
(``python -m engine.bench.adapter_flops``): the floor of the unfolded mix's cost ratio before
any per-layer overhead, counted with ``torch.utils.flop_counter`` on the shipped model with the
adapter of ``engine.bench.style_speed`` (two style experts, two shared experts, rank 8)."""

from __future__ import annotations

import json

import torch
from torch.utils.flop_counter import FlopCounterMode

from engine.backbones.registry import load_backbone
from engine.bench.style_speed import randomise
from engine.moe_lora.adapter import MoELoraAdapter
from engine.moe_lora.config import MoELoraConfig


def main() -> int:
    backbone = load_backbone("embedded")
    adapter = MoELoraAdapter(backbone, MoELoraConfig())
    first, second = adapter.add_style(), adapter.add_style()
    randomise(adapter)
    side = backbone.native_resolution
    source = backbone.encode(torch.rand(1, 3, side, side) * 2 - 1)
    condition, noisy, timestep = backbone.encode_prompt([""]), torch.randn_like(source), torch.tensor([0.5])
    counts = {}
    for label, mix in (("base", None), ("two-style mix unfolded", {first: 0.5, second: 0.5})):
        adapter.route(mix) if mix else adapter.clear_routing()
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            backbone.predict_velocity(noisy, timestep, source, condition)
        counts[label] = counter.get_total_flops()
    adapter.remove()
    print(json.dumps({**{f"{label} GFLOP": round(value / 1e9, 3) for label, value in counts.items()},
                      "ratio": round(counts["two-style mix unfolded"] / counts["base"], 3)}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
