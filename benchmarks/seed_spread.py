"""How much a styled edit depends on its starting noise, per training setting
(``python -m benchmarks.seed_spread``).

A benchmark style is a deterministic function of the photo, so a good styled edit should not
depend on the sampler's seed: the unadapted model's edits of two seeds differ by a few thousandths RMS
(on ``[0, 1]``). Styled edits of the shipped model differ far more, and show it as an 8 x 8 grid
of per-patch colour offsets (one patch is one token). For each of ``--variants`` (``default``, or
``field=value`` overrides of :class:`StyleTrainingConfig` joined by ``+``), a new style is trained
from its 8 training pairs with the default settings of ``python -m engine train`` otherwise, then
scored on held-out pairs: PSNR and SSIM of the seed-0 edit against the target, and the *seed
spread*, the RMS difference between the seed-0 and seed-1 edits. ``--strengths`` scores each edit
also from the noised photo part-way down the schedule, and ``--base-prompts`` the base model's own
pretrained instructions, which show that its colour edits read the noise too (BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import dataclasses

import torch

from benchmarks.dataset import SizeFunction, benchmark_pairs
from benchmarks.report import add_out_argument, publish
from benchmarks.style_benchmark import as_pairs, train_adapter
from engine.adapters.moe.config import MoELoraConfig
from engine.core.errors import ConfigError
from engine.metrics.image_scores import score_images, to_unit_tensor
from engine.models.backbones.registry import load_backbone
from engine.models.editing import edit_photo
from engine.models.sampling.sampler import SamplerSettings
from engine.training.generic_edits import GENERIC_EDIT_FUNCTIONS
from engine.training.style_trainer import StyleTrainingConfig


def seed_spread(first: torch.Tensor, second: torch.Tensor) -> float:
    """RMS difference of two ``(1, 3, H, W)`` images in ``[0, 1]``."""
    return float(((first - second) ** 2).mean().sqrt())


def score_edits(edit, pairs, strength: float = 1.0, noise_scale: float = 1.0) -> dict[str, float]:
    """Mean PSNR, SSIM (seed 0 against the target) and seed spread (seeds 0 and 1) of ``edit`` at
    sampler ``strength`` (below 1 the edit starts from the noised photo, part-way down the schedule)
    and starting-noise scale ``noise_scale``."""
    totals = {"psnr": 0.0, "ssim": 0.0, "seed_spread": 0.0}
    for pair in pairs:
        first, second = (edit(pair.before, SamplerSettings(seed=seed, strength=strength, noise_scale=noise_scale)) for seed in (0, 1))
        scores = score_images(first, pair.after)
        totals["psnr"] += float(scores["psnr"][0])
        totals["ssim"] += float(scores["ssim"][0])
        totals["seed_spread"] += seed_spread(to_unit_tensor(first), to_unit_tensor(second))
    return {name: round(value / len(pairs), 4) for name, value in totals.items()}


def instruction_spreads(backbone, pairs, prompts: list[str], noise_scale: float = 1.0) -> dict[str, float]:
    """Seed spread of the unadapted model's own instruction edits (``engine.training.generic_edits``)
    on the test photos: how much the base model itself reads the noise when an edit changes colour."""
    spreads = {}
    for prompt in prompts:
        total = 0.0
        for pair in pairs:
            first, second = (edit_photo(backbone, pair.before, SamplerSettings(seed=seed, noise_scale=noise_scale), prompt=prompt) for seed in (0, 1))
            total += seed_spread(to_unit_tensor(first), to_unit_tensor(second))
        spreads[prompt] = round(total / len(pairs), 4)
    return spreads


def row_name(name: str, strength: float) -> str:
    return name if strength == 1.0 else f"{name}, strength {strength:g}"


def parse_variant(text: str) -> StyleTrainingConfig:
    """``default``, or ``field=value`` overrides of the training defaults joined by ``+``
    (``loss_weighting=velocity+timestep_sampling=uniform``)."""
    if text == "default":
        return StyleTrainingConfig()
    fields = {field.name: type(field.default) for field in dataclasses.fields(StyleTrainingConfig)}
    overrides = {}
    for part in text.split("+"):
        name, _, value = part.partition("=")
        if name not in fields or not value:
            raise ValueError(f"variant {text!r}: write 'default' or field=value with a field of StyleTrainingConfig")
        overrides[name] = fields[name](value)
    return StyleTrainingConfig(**overrides)


def run(backbone, style: str, variants: list[str], steps: int | None, test_pairs: int,
        size_fn: SizeFunction | None = None, strengths: tuple[float, ...] = (1.0,), prompts: tuple[str, ...] = (),
        noise_scale: float = 1.0) -> dict:
    """Rows ``base`` and one per variant, each at every sampler strength (rows named
    ``"<name>, strength <s>"`` below 1), plus ``base_instructions`` for ``prompts``."""
    size_fn = size_fn or backbone.fit_size
    train = as_pairs(benchmark_pairs(style, "train", size_fn))
    test = as_pairs(benchmark_pairs(style, "test", size_fn)[:test_pairs])
    def edit(photo, settings):  # with whatever adapter is folded into the backbone at the time
        return edit_photo(backbone, photo, settings)

    report = {"style": style, **{row_name("base", strength): score_edits(edit, test, strength, noise_scale) for strength in strengths}}
    if prompts:
        report["base_instructions"] = instruction_spreads(backbone, test, list(prompts), noise_scale)
    for variant in variants:
        torch.manual_seed(0)
        config = parse_variant(variant)
        adapter, keys, seconds, _ = train_adapter(backbone, MoELoraConfig(), {style: train}, steps or config.steps, config.seed, config)
        with adapter.folded({keys[style]: 1.0}):
            for strength in strengths:
                report[row_name(variant, strength)] = {**score_edits(edit, test, strength, noise_scale), "training_seconds": round(seconds, 1)}
        adapter.remove()
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.seed_spread", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--style", default="vintage", help="The benchmark style to train.")
    parser.add_argument("--variants", default="default,loss_weighting=velocity",
                        help="Comma-separated training settings to compare: 'default', or field=value overrides "
                             "of StyleTrainingConfig joined by '+'.")
    parser.add_argument("--steps", type=int, default=0, help="Training steps (0: the trainer's default).")
    parser.add_argument("--test-pairs", type=int, default=8)
    parser.add_argument("--strengths", default="1", help="Comma-separated sampler strengths to score each edit at (in (0, 1]).")
    parser.add_argument("--base-prompts", default="",
                        help="Comma-separated instructions of the base model (engine.training.generic_edits) whose seed spread to report too.")
    parser.add_argument("--noise-scale", type=float, default=1.0,
                        help="Scale of the starting noise (SamplerSettings.noise_scale); the spread is measured at standard "
                             "noise, 1, as the figures in BENCHMARKS.md were. At 0 every edit is seed-independent.")
    add_out_argument(parser)
    arguments = parser.parse_args(argv)
    variants = [name.strip() for name in arguments.variants.split(",") if name.strip()]
    for variant in variants:
        try:
            parse_variant(variant)
        except (ValueError, ConfigError) as error:
            parser.error(str(error))
    try:
        strengths = tuple(float(value) for value in arguments.strengths.split(","))
    except ValueError:
        parser.error(f"--strengths must be numbers separated by commas, not {arguments.strengths!r}")
    if not all(0 < strength <= 1 for strength in strengths):
        parser.error("every strength must lie in (0, 1]")
    if not 0 <= arguments.noise_scale <= 1:
        parser.error("--noise-scale must lie in [0, 1]")
    prompts = tuple(prompt.strip() for prompt in arguments.base_prompts.split(",") if prompt.strip())
    unknown = [prompt for prompt in prompts if prompt not in GENERIC_EDIT_FUNCTIONS]
    if unknown:
        parser.error(f"unknown instruction(s) {', '.join(unknown)}; the model knows {', '.join(GENERIC_EDIT_FUNCTIONS)}")
    report = run(load_backbone(arguments.model), arguments.style, variants, arguments.steps or None, arguments.test_pairs,
                 strengths=strengths, prompts=prompts, noise_scale=arguments.noise_scale)
    publish(report, arguments.out)


if __name__ == "__main__":
    main()
