"""Pretraining the embedded base editing model (``python -m engine.training.pretrain``).

Recipe (fixed seed; data in :mod:`engine.training.photo_pool`):

* Tasks per sample: identity edits (source = target), generation (no source) and the generic
  instruction edits of :mod:`engine.training.generic_edits`, in the proportions of
  :class:`PretrainConfig`.
* Loss: rectified-flow matching on the velocity, ``|v_pred - (noise - x_0)|^2``, through the
  backbone contract (the model predicts ``x_0``; Li & He 2025 pair x-prediction with this
  v-loss). ``t`` is logit-normal (SD3, Esser et al. 2024) mapped into ``[min_timestep, 1]``.
* AdamW with linear warm-up then cosine decay. An EMA of the weights is kept too; the raw weights
  are shipped by default, since over a short run the EMA lags behind them.
* Data for step ``k`` comes from a generator seeded by ``(seed, k)``, so a resumed run sees the
  same batches as an uninterrupted one.
* Version 2 options: start from a trained model (``init_from``, grown by
  :mod:`engine.training.model_growth`), add the downloaded photo pool (``extra_photos``, made by
  :mod:`engine.training.photo_download`), move the patch grid by a random offset per step
  (``grid_shift``), and run the forward pass in bfloat16 autocast (``bf16``).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from accelerate import Accelerator

from engine.core.configuration import option, require, to_dict
from engine.core.errors import ConfigError
from engine.core.files import write_text_atomic
from engine.models.backbones.base import Condition
from engine.models.backbones.embedded.backbone import ASSETS, EmbeddedBackbone
from engine.models.backbones.embedded.config import PRESETS
from engine.models.backbones.embedded.instructions import GENERATE, IDENTITY, vocabulary
from engine.training.checkpoint import load_checkpoint, save_checkpoint
from engine.training.generic_edits import GENERIC_EDIT_FUNCTIONS
from engine.training.model_growth import grow_into
from engine.training.photo_pool import SHARED_PHOTOS, CropSampler, buckets, load_photos, split
from engine.training.restoration_edits import RESTORATION_DEGRADATIONS
from engine.training.schedules import sample_timesteps, steps_run, warmup_cosine


@dataclass
class PretrainConfig:
    """Settings of a pretraining run."""

    preset: str = option("small", "Model size preset of engine.models.backbones.embedded.config.PRESETS.")
    steps: int = option(2000, "Optimizer steps (0 with init_from: write the grown model as it is).")
    batch_size: int = option(8, "Crops per step (one aspect-ratio bucket per step).")
    learning_rate: float = option(4e-4, "Peak AdamW learning rate.")
    warmup_steps: int = option(200, "Linear warm-up steps before the cosine decay.")
    weight_decay: float = option(0.01, "AdamW weight decay.")
    ema_decay: float = option(0.999, "Decay of the exponential moving average of the weights (warmed up as (1+k)/(10+k)).")
    shipped_weights: str = option("raw", "Which weights to write: 'raw' (the optimizer's) or 'ema'; over a run of a few thousand steps the EMA lags behind.")
    identity_fraction: float = option(0.3, "Share of samples that are identity edits.")
    generate_fraction: float = option(0.3, "Share of samples that are generations with no source.")
    seed: int = option(0, "Seed of the initial weights and of every batch.")
    checkpoint_every: int = option(250, "Steps between resumable checkpoints.")
    photos: str = option(str(SHARED_PHOTOS), "Folder of training photos (scikit-image's are added).")
    output: str = option(str(ASSETS), "Folder the finished model (EMA weights, config, card) is written to.")
    run_folder: str = option("runs/pretrain", "Folder for checkpoints and the training log.")
    init_from: str = option("", "Folder of a trained embedded model to start from (grown to the preset); empty starts from random weights.")
    extra_photos: str = option("", "Folder of more training photos (python -m engine.training.photo_download); all of them train.")
    extra_share: float = option(0.5, "Share of crops drawn from extra_photos (the rest from photos), so a large pool of "
                                     "astronomy and artwork does not outweigh the everyday photos.")
    grid_shift: bool = option(False, "Move the patch grid by a random 0..p-1 px offset per step, so no pixel border is always a patch border.")
    stop_at: int = option(0, "Stop after this many steps and write the model, the schedule still that of `steps` (a run "
                             "cut short at one of its checkpoints; resuming with a later stop_at, or none, goes on exactly); "
                             "0 runs every step.")
    bf16: bool = option(False, "Run forward and backward passes in bfloat16 autocast (weights and optimizer stay fp32).")

    def __post_init__(self) -> None:
        require(self.preset in PRESETS, f"preset must be one of {', '.join(PRESETS)}")
        require(self.steps >= 1 or (self.steps == 0 and bool(self.init_from)),
                "steps must be at least 1 (0 only with init_from: the grown model, trained no further)")
        require(self.batch_size >= 1, "batch_size must be at least 1")
        require(0 <= self.identity_fraction + self.generate_fraction <= 1, "identity and generate fractions must sum to at most 1")
        require(0 <= self.extra_share <= 1, "extra_share must lie in [0, 1]")
        require(0 < self.ema_decay < 1, "ema_decay must lie in (0, 1)")
        require(0 <= self.stop_at <= self.steps, "stop_at must lie between 0 (no stop) and steps")
        require(self.shipped_weights in ("raw", "ema"), "shipped_weights must be 'raw' or 'ema'")


def task_batch(config: PretrainConfig, sampler: CropSampler, size: tuple[int, int], generator: torch.Generator):
    """One batch: target and source images in ``[-1, 1]`` (source ``None`` rows are zeros with a
    generate instruction) and instruction ids ``(B,)``."""
    known = vocabulary(PRESETS[config.preset].restoration_edits)
    edits = tuple(name for name in known if name not in (IDENTITY, GENERATE))
    photos = sampler.batch(size, config.batch_size, generator)
    draws = torch.rand(config.batch_size, generator=generator)
    edit_choice = torch.randint(len(edits), (config.batch_size,), generator=generator)
    targets, sources, ids = [], [], []
    for photo, draw, edit in zip(photos, draws, edit_choice):
        if draw < config.identity_fraction:
            target, source, name = photo, photo, IDENTITY
        elif draw < config.identity_fraction + config.generate_fraction:
            target, source, name = photo, None, GENERATE
        elif (name := edits[int(edit)]) in RESTORATION_DEGRADATIONS:
            target, source = photo, RESTORATION_DEGRADATIONS[name](photo[None], generator)[0]
        else:
            target, source = GENERIC_EDIT_FUNCTIONS[name](photo[None])[0], photo
        targets.append(target * 2 - 1)
        sources.append(torch.zeros_like(photo) if source is None else source * 2 - 1)
        ids.append(known.index(name))
    return torch.stack(targets), torch.stack(sources), torch.tensor(ids)


def learning_rate_at(config: PretrainConfig, step: int) -> float:
    return warmup_cosine(config.learning_rate, config.warmup_steps, config.steps, step)


def flow_matching_loss(backbone: EmbeddedBackbone, targets, sources, ids, timesteps, noise,
                       grid_offset: tuple[int, int] = (0, 0)) -> torch.Tensor:
    """Mean squared error between predicted and true velocity ``noise - x_0``.

    ``targets``, ``sources``, ``noise``: ``(B, 3, H, W)``; ``ids``, ``timesteps``: ``(B,)``.
    Rows whose instruction is ``generate`` are run without a source by the zero source image,
    which is exactly what the model sees in generation mode.
    """
    time = timesteps.view(-1, 1, 1, 1)
    noisy = (1 - time) * targets + time * noise
    condition = Condition([], {"instruction_ids": ids})
    velocity = backbone.predict_velocity(noisy, timesteps, sources, condition, grid_offset=grid_offset)
    return torch.mean((velocity.float() - (noise - targets)) ** 2)


def pretrain(config: PretrainConfig, log=print, facts: dict | None = None) -> EmbeddedBackbone:
    """Run (or resume) pretraining and return the model with ``config.shipped_weights``; writes
    nothing to ``config.output``. ``facts``, when given, receives facts of the run for the card."""
    photos = load_photos(Path(config.photos))
    train_names, _ = split(list(photos))
    arrays = [photos[name] for name in train_names]
    weights = None
    if config.extra_photos:
        extra = list(load_photos(Path(config.extra_photos), include_skimage=False).values())
        weights = [(1 - config.extra_share) / len(arrays)] * len(arrays) + [config.extra_share / len(extra)] * len(extra)
        arrays += extra
    sampler = CropSampler.from_arrays(arrays, weights)
    if facts is not None:
        facts["training_photos"] = len(arrays)
    log(f"training on {len(arrays)} photos")
    backbone = EmbeddedBackbone.from_config(config.preset, seed=config.seed)
    if config.init_from:
        new = grow_into(EmbeddedBackbone.from_pretrained(config.init_from), backbone)
        log(f"started from {config.init_from}; {len(new)} new tensors")
    model = backbone.model.train().requires_grad_(True)
    sizes = buckets(backbone.native_resolution, backbone.resolution_multiple)
    ema = {name: value.detach().clone() for name, value in model.state_dict().items()}
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay, betas=(0.9, 0.99))
    run_folder = Path(config.run_folder)
    parameters = dict(model.named_parameters())
    groups, optimizers = {"model": model.state_dict(), "ema": ema}, {"model": (optimizer, parameters)}
    record = load_checkpoint(run_folder, groups, optimizers)
    start = record["step"] if record else 0
    last_step = steps_run(config.steps, config.stop_at)
    if start > last_step:
        raise ConfigError(f"{run_folder} holds a checkpoint of step {start}, past the {last_step} steps asked for: "
                          "give a later stop_at, or another run folder")
    accelerator = Accelerator(cpu=True)
    model, optimizer = accelerator.prepare(model, optimizer)
    run_folder.mkdir(parents=True, exist_ok=True)
    log_file = (run_folder / "log.jsonl").open("a")
    began = time.time()
    for step in range(start, last_step):
        generator = torch.Generator().manual_seed(config.seed * 1_000_003 + step)
        size = sizes[int(torch.randint(len(sizes), (1,), generator=generator))]
        targets, sources, ids = task_batch(config, sampler, size, generator)
        timesteps = sample_timesteps(config.batch_size, backbone.config.min_timestep, generator)
        noise = torch.randn(targets.shape, generator=generator)
        patch = backbone.config.patch_size
        offset = tuple(int(v) for v in torch.randint(patch, (2,), generator=generator)) if config.grid_shift else (0, 0)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate_at(config, step)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=config.bf16):
            loss = flow_matching_loss(backbone, targets, sources, ids, timesteps, noise, offset)
        optimizer.zero_grad(set_to_none=True)
        accelerator.backward(loss)
        accelerator.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        with torch.no_grad():
            # Warm-up as diffusers' EMAModel does, so early weights do not linger in the average.
            decay = min(config.ema_decay, (1 + step) / (10 + step))
            for name, value in accelerator.unwrap_model(model).state_dict().items():
                ema[name].lerp_(value, 1 - decay) if value.is_floating_point() else ema[name].copy_(value)
        if (step + 1) % 25 == 0 or step == start:
            elapsed = time.time() - began
            record = {"step": step + 1, "loss": round(loss.item(), 5), "lr": learning_rate_at(config, step), "elapsed_s": round(elapsed, 1)}
            log_file.write(json.dumps(record) + "\n")
            log_file.flush()
            log(f"step {step + 1}/{config.steps} loss {loss.item():.4f} ({elapsed / (step + 1 - start):.2f} s/step)")
        if (step + 1) % config.checkpoint_every == 0 or step + 1 == last_step:
            save_checkpoint(run_folder, step + 1, {"model": accelerator.unwrap_model(model).state_dict(), "ema": ema}, optimizers)
    log_file.close()
    final = EmbeddedBackbone.from_config(config.preset)
    final.model.load_state_dict(ema if config.shipped_weights == "ema" else accelerator.unwrap_model(model).state_dict())
    return final


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m engine.training.pretrain", description=__doc__.splitlines()[0])
    import dataclasses

    for field in dataclasses.fields(PretrainConfig):
        kind = type(field.default)
        parse = (lambda text: text.lower() in ("1", "true", "yes")) if kind is bool else kind
        parser.add_argument(f"--{field.name.replace('_', '-')}", type=parse, default=field.default, help=field.metadata["help"])
    parser.add_argument("--skip-eval", action="store_true", help="Write the model without measuring it (quick trials).")
    parser.add_argument("--evaluate-only", action="store_true",
                        help="Train nothing: measure the model already in --output again (after a change to its sampling "
                             "settings in config.json or to the evaluation) and rewrite its metrics.json and MODEL_CARD.md.")
    arguments = vars(parser.parse_args(argv))
    skip_eval, evaluate_only = arguments.pop("skip_eval"), arguments.pop("evaluate_only")
    config = PretrainConfig(**arguments)
    if evaluate_only:
        reevaluate(Path(config.output), Path(config.photos))
        return
    torch.manual_seed(config.seed)
    began = time.time()
    run_facts: dict = {}
    backbone = pretrain(config, facts=run_facts)
    log_lines = [json.loads(line) for line in (Path(config.run_folder) / "log.jsonl").read_text().splitlines()]
    wall = sum_wall_time(log_lines)
    facts = {"pretrain": to_dict(config), "pretrain_wall_time_s": round(wall, 1),
             "parameters": sum(p.numel() for p in backbone.model.parameters()), **run_facts}
    history = archive_history(Path(config.output))
    backbone.save_pretrained(config.output, extra=facts)
    if not skip_eval:
        from engine.training.base_eval import evaluate_base
        from engine.training.model_card import write_model_card

        metrics = evaluate_base(backbone, Path(config.photos))
        write_text_atomic(Path(config.output) / "metrics.json", json.dumps(metrics, indent=2))
        write_model_card(Path(config.output), {**facts, "model": to_dict(backbone.config)}, metrics, history)
    print(f"wrote {config.output} in {time.time() - began:.0f} s")


def reevaluate(folder: Path, photos: Path) -> None:
    """Measure the model in ``folder`` again and rewrite its metrics and card; the run's facts are
    the ones its ``config.json`` kept, and its history rows stay as they are (the weights are the same)."""
    from engine.training.base_eval import evaluate_base
    from engine.training.model_card import write_model_card

    backbone = EmbeddedBackbone.from_pretrained(folder)
    facts = json.loads((folder / "config.json").read_text())
    history = read_history(folder)
    metrics = evaluate_base(backbone, photos)
    write_text_atomic(folder / "metrics.json", json.dumps(metrics, indent=2))
    write_model_card(folder, facts, metrics, history)


def archive_history(output: Path) -> list[dict]:
    """Before a new model replaces the one in ``output``: add the old model's summary row to
    ``history.json`` there (its numbers move to the card's history) and return all rows."""
    from engine.training.model_card import HISTORY_FILE, summary_row

    history = read_history(output)
    if (output / "metrics.json").is_file() and (output / "config.json").is_file():
        old = summary_row(json.loads((output / "config.json").read_text()), json.loads((output / "metrics.json").read_text()))
        if old not in history:
            history.append(old)
            write_text_atomic(output / HISTORY_FILE, json.dumps(history, indent=2))
    return history


def read_history(folder: Path) -> list[dict]:
    """The earlier models' summary rows kept in ``folder``'s ``history.json``, oldest first."""
    from engine.training.model_card import HISTORY_FILE

    path = folder / HISTORY_FILE
    return json.loads(path.read_text()) if path.is_file() else []


def sum_wall_time(records: list[dict]) -> float:
    """Training wall time over resumed segments: each segment's log restarts ``elapsed_s``."""
    total, last = 0.0, 0.0
    for record in records:
        if record["elapsed_s"] < last:
            total += last
        last = record["elapsed_s"]
    return total + last


if __name__ == "__main__":
    main()
