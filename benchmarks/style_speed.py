"""Cost of styles at edit and training time, as ratios measured side by side
(``python -m benchmarks.style_speed``).

* Edit: a base edit, an edit with one style folded into the weights, with a two-style mix
  folded (the steady state of the studio and CLI, which keep a mix folded while it is reused),
  with the two-style mix unfolded (the adapter path run at every layer), and unfolded with a
  new mix at every edit (each layer rebuilds its cached factors); each timed against base edits
  in its own interleaved run. And the one-off cost of folding.
* Training: one optimizer step of the MoE LoRA (one style expert plus the shared experts) against
  one step of a plain peft LoRA whose rank equals the MoE's total rank (all components of the
  style and shared experts), same batch, same layers.
"""

from __future__ import annotations

import argparse
import itertools

import torch
from peft import LoraConfig, inject_adapter_in_model

from benchmarks.report import add_out_argument, publish
from benchmarks.timing import interleaved_medians
from engine.adapters.moe.adapter import MoELoraAdapter, target_layers
from engine.adapters.moe.config import TARGET_PRESETS, MoELoraConfig
from engine.core.imaging import to_pil
from engine.models.backbones.registry import load_backbone
from engine.models.editing import edit_photo
from engine.models.sampling.sampler import SamplerSettings


def randomise(adapter: MoELoraAdapter) -> None:
    """Non-zero experts, so the unfolded path does real work (a trained adapter's cost)."""
    with torch.no_grad():
        for name, tensor in adapter.state_dict_tensors():
            if "mask" not in name:
                tensor.normal_(0, 0.01)


def edit_costs(model: str, repeats: int, targets: str = MoELoraConfig.targets) -> dict:
    """Seconds per edit and ratios to a base edit on a second, unadapted copy of the model."""
    plain, backbone = load_backbone(model), load_backbone(model)
    adapter = MoELoraAdapter(backbone, MoELoraConfig(targets=targets))
    first, second = adapter.add_style(), adapter.add_style()
    randomise(adapter)
    side = backbone.native_resolution
    photo = to_pil(torch.rand(1, 3, side, side) * 2 - 1)[0]
    settings = SamplerSettings()

    def styled_edit():
        edit_photo(backbone, photo, settings)

    def unfolded():
        # Routed afresh at each edit; the same mix again reuses every layer's cached factors.
        adapter.route({first: 0.5, second: 0.5})
        styled_edit()
        adapter.clear_routing()

    new_mixes = itertools.cycle([0.4, 0.6])

    def unfolded_new_mix():
        # A mix unlike the last one at every edit: every layer rebuilds its factors once.
        weight = next(new_mixes)
        adapter.route({first: weight, second: 1 - weight})
        styled_edit()
        adapter.clear_routing()

    def base():
        edit_photo(plain, photo, settings)

    # Each variant against base edits in its own interleaved run: the layers keep one cached
    # mix, so interleaving two unfolded variants would make both rebuild at every edit.
    seconds = interleaved_medians({"base": base, "two-style mix unfolded": unfolded}, repeats)
    pair = interleaved_medians({"base": base, "two-style mix unfolded, a new mix each edit": unfolded_new_mix}, repeats)
    for label, value in pair.items():
        seconds.setdefault(label, seconds["base"] * value / pair["base"])
    for label, mix in (("one style folded", {first: 1.0}), ("two-style mix folded", {first: 0.5, second: 0.5})):
        # Steady state: the studio and CLI keep a mix folded while it is reused (StyleEditor).
        adapter.fold(mix)
        pair = interleaved_medians({"base": base, label: styled_edit}, repeats)
        adapter.unfold()
        seconds[label] = seconds["base"] * pair[label] / pair["base"]
    fold = interleaved_medians({"fold": lambda: (adapter.fold({first: 1.0}), adapter.unfold())}, repeats)["fold"]
    report = {name: {"seconds": round(value, 4), "ratio_to_base": round(value / seconds["base"], 3)} for name, value in seconds.items()}
    report["fold and unfold (once per mix change)"] = {"seconds": round(fold, 4)}
    return report


def training_costs(model: str, repeats: int, batch_size: int, targets: str = MoELoraConfig.targets) -> dict:
    config = MoELoraConfig(targets=targets)
    moe_backbone, lora_backbone = load_backbone(model), load_backbone(model)
    moe = MoELoraAdapter(moe_backbone, config)
    key = moe.add_style()
    moe.route_batch([key] * batch_size)
    total_rank = config.rank * (1 + config.num_shared_experts)
    names = target_layers(lora_backbone, config.targets)
    transformer = inject_adapter_in_model(LoraConfig(r=total_rank, lora_alpha=total_rank, target_modules=names), lora_backbone.transformer)
    lora_parameters = [p for n, p in transformer.named_parameters() if "lora_" in n]
    for parameter in lora_parameters:
        parameter.requires_grad_(True)
    moe_parameters = moe.parameters([key])
    for parameter in moe_parameters:
        parameter.requires_grad_(True)
    side = moe_backbone.native_resolution
    generator = torch.Generator().manual_seed(0)
    source, target, noise = (torch.rand(batch_size, 3, side, side, generator=generator) * 2 - 1 for _ in range(3))
    timesteps = torch.rand(batch_size, generator=generator) * 0.9 + 0.05
    noisy = (1 - timesteps.view(-1, 1, 1, 1)) * target + timesteps.view(-1, 1, 1, 1) * noise

    def step(backbone, parameters, optimizer):
        def run():
            condition = backbone.encode_prompt([""] * batch_size)
            velocity = backbone.predict_velocity(noisy, timesteps, source, condition)
            loss = torch.mean((velocity - (noise - target)) ** 2)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return run

    seconds = interleaved_medians({
        "moe_lora_step": step(moe_backbone, moe_parameters, torch.optim.AdamW(moe_parameters, lr=1e-4)),
        "plain_lora_step": step(lora_backbone, lora_parameters, torch.optim.AdamW(lora_parameters, lr=1e-4)),
    }, repeats)
    return {"total_rank": total_rank, "batch_size": batch_size, **{name: round(value, 4) for name, value in seconds.items()},
            "ratio": round(seconds["moe_lora_step"] / seconds["plain_lora_step"], 3)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.style_speed", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="embedded", help="Backbone to measure (default: the shipped model).")
    parser.add_argument("--repeats", type=int, default=10, help="Interleaved repeats per variant.")
    parser.add_argument("--batch-size", type=int, default=8, help="Training batch size.")
    parser.add_argument("--targets", default=MoELoraConfig.targets, choices=list(TARGET_PRESETS),
                        help="Where the MoE LoRA goes (default: the MoE LoRA's default).")
    add_out_argument(parser)
    arguments = parser.parse_args(argv)
    publish({"targets": arguments.targets,
             "edit": edit_costs(arguments.model, arguments.repeats, arguments.targets),
             "training": training_costs(arguments.model, arguments.repeats, arguments.batch_size, arguments.targets)},
            arguments.out)


if __name__ == "__main__":
    main()
