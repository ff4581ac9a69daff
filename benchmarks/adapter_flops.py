"""Arithmetic of one transformer forward with and without an unfolded two-style mix
(``python -m benchmarks.adapter_flops``): the floor of the unfolded mix's cost ratio before
any per-layer overhead, counted with ``torch.utils.flop_counter`` on the shipped model with the
adapter of ``benchmarks.style_speed`` (two style experts, two shared experts, rank 8).

The adapter's inference path adds its up-projection in place (``addmm_``), which the counter's
built-in table leaves out, so an in-place matrix product is counted as its out-of-place twin."""

from __future__ import annotations

import argparse
import json

import torch
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.style_speed import randomise
from engine.adapters.moe.adapter import MoELoraAdapter
from engine.adapters.moe.config import TARGET_PRESETS, MoELoraConfig
from engine.models.backbones.registry import load_backbone


def addmm_in_place_flops(self_shape, first_shape, second_shape, **kwargs) -> int:
    """``self += first @ second``: 2 m k n, as for ``torch.addmm`` (shapes, as the counter passes them)."""
    rows, inner = first_shape
    return 2 * rows * inner * second_shape[1]


def count(model: str, targets: str) -> dict[str, int]:
    """Floating-point operations of one forward pass: ``base`` and ``two-style mix unfolded``."""
    backbone = load_backbone(model)
    adapter = MoELoraAdapter(backbone, MoELoraConfig(targets=targets))
    first, second = adapter.add_style(), adapter.add_style()
    randomise(adapter)
    side = backbone.native_resolution
    source = backbone.encode(torch.rand(1, 3, side, side) * 2 - 1)
    condition, noisy, timestep = backbone.encode_prompt([""]), torch.randn_like(source), torch.tensor([0.5])
    counts = {}
    for label, mix in (("base", None), ("two-style mix unfolded", {first: 0.5, second: 0.5})):
        adapter.route(mix) if mix else adapter.clear_routing()
        with torch.no_grad(), FlopCounterMode(display=False, custom_mapping={torch.ops.aten.addmm_: addmm_in_place_flops}) as counter:
            backbone.predict_velocity(noisy, timestep, source, condition)
        counts[label] = counter.get_total_flops()
    adapter.remove()
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.adapter_flops", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--targets", default=MoELoraConfig.targets, choices=list(TARGET_PRESETS),
                        help="Where the adapter goes (MoELoraConfig.targets).")
    arguments = parser.parse_args(argv)
    counts = count(arguments.model, arguments.targets)
    print(json.dumps({"targets": arguments.targets, **{f"{label} GFLOP": round(value / 1e9, 3) for label, value in counts.items()},
                      "ratio": round(counts["two-style mix unfolded"] / counts["base"], 3)}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
