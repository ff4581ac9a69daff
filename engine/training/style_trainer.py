"""Joint training of style experts in one shared MoE LoRA (flow matching + adversarial loss).

Per step, a global batch of crops from every style being trained is drawn from a generator
seeded by ``(seed, step)``; each process of an ``accelerate launch`` run takes its slice, and the
gradients are averaged across processes (one all-reduce of a flat buffer), so 1 and N processes
take the same steps at the same global batch, and a resumed run sees the batches an
uninterrupted one would.

Loss, per sample: rectified-flow matching, ``w(t) |v - (noise - after)|^2`` with the before-image
as the source, plus ``adversarial_weight`` times the hinge generator loss of a
:class:`~engine.training.discriminator.PatchDiscriminator` on ``x0 = x_t - t v``, switched on after
``adversarial_start`` steps.

The weighting ``w(t)`` is ``loss_weighting``: ``'velocity'`` (``w = 1``, the plain rectified-flow
loss) or ``'clean'`` (``w = t^2``, which is exactly the squared error of the clean-image estimate
``x0 = x_t - t v``). The velocity loss weights the x0 error by ``1 / t^2``, so the few-step,
low-noise end dominates a short run and the noisy end, where an edit takes its shape from the
source alone, gets little signal; ``'clean'`` scored better on the benchmark (BENCHMARKS.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from accelerate import Accelerator

from engine.adapters.moe.adapter import MoELoraAdapter
from engine.core.configuration import option, require
from engine.models.backbones.base import Backbone
from engine.training.checkpoint import load_checkpoint, save_checkpoint
from engine.training.discriminator import PatchDiscriminator, discriminator_loss, generator_loss
from engine.training.loop import ProgressCallback, preview_every, run_steps
from engine.training.schedules import TIMESTEP_DISTRIBUTIONS, sample_timesteps, warmup_cosine
from engine.training.style_data import TRAINING_SCALES, StyleData, crop_side, sample_batch

LOSS_WEIGHTINGS = ("clean", "velocity")


@dataclass
class StyleTrainingConfig:
    """Settings of a style training run."""

    steps: int = option(300, "Training steps: more steps learn the look more closely and take longer.")
    batch_size: int = option(8, "Photo crops looked at in each step (with several processes, a multiple of their count).")
    learning_rate: float = option(2e-3, "How big each learning step is at its largest (the AdamW learning rate of the style's weights); too high can make training unstable.")
    warmup_steps: int = option(20, "Steps at the start in which the step size grows from zero; after them it slowly shrinks again (a cosine decay).")
    loss_weighting: str = option("clean", "What the error measures: 'clean' compares the finished images (weights the flow loss by t^2, favouring the nearly clean steps); 'velocity' weighs every noise level the same (the plain rectified-flow loss).")
    timestep_sampling: str = option("logit-normal", f"Which noise levels training practises on: 'logit-normal' practises mostly on the middle levels and less on the nearly clean and nearly pure-noise ends; 'uniform' practises on all levels equally (one of {', '.join(TIMESTEP_DISTRIBUTIONS)}; engine.training.schedules).")
    timestep_shift: float = option(1.0, "Above 1, training practises more on the noisy steps, which shape the layout and broad colours; 1 leaves the noise levels as chosen above (the timestep shift s t / (1 + (s - 1) t) of SD3; engine.training.schedules).")
    adversarial_weight: float = option(0.0, "How much a second network that tells real after-photos from results (a discriminator, the adversarial loss) pushes training; 0, the default, turns it off (it did not help in the ablation in BENCHMARKS.md).")
    adversarial_start: int = option(100, "Step at which that second network starts to take part (the adversarial loss switches on).")
    discriminator_learning_rate: float = option(2e-4, "How big the second network's learning steps are (the discriminator's AdamW learning rate).")
    training_scale: str = option("native", "The scale pairs are learned at: 'native', the short side at the model's own side; 'working', "
                                           "the size an edit of the photo works at (engine.training.style_data; the two score alike).")
    crop_margin: float = option(1.15, "Pairs are enlarged to this many times that scale before a crop is cut out, so crops vary a little.")
    checkpoint_every: int = option(100, "Steps between saved checkpoints an interrupted run can resume from (0: none).")
    sample_every: int = option(50, "Most steps between preview samples sent to the callback; a shorter run samples every "
                                   "steps // 5 steps (at least every step), so it shows about 5 (0: none).")
    seed: int = option(0, "Start of the random numbers that pick the crops and the noise; the same seed repeats a run.")

    def __post_init__(self) -> None:
        require(self.steps >= 1 and self.batch_size >= 1, "steps and batch_size must be at least 1")
        require(self.learning_rate > 0, "learning_rate must be positive")
        require(self.loss_weighting in LOSS_WEIGHTINGS, f"loss_weighting must be one of {', '.join(LOSS_WEIGHTINGS)}")
        require(self.timestep_sampling in TIMESTEP_DISTRIBUTIONS, f"timestep_sampling must be one of {', '.join(TIMESTEP_DISTRIBUTIONS)}")
        require(self.timestep_shift > 0, "timestep_shift must be positive (1 leaves t unchanged)")
        require(self.adversarial_weight >= 0, "adversarial_weight must be non-negative")
        require(self.crop_margin >= 1.0, "crop_margin must be at least 1")
        require(self.training_scale in TRAINING_SCALES, f"training_scale must be one of {', '.join(TRAINING_SCALES)}")
        require(self.sample_every >= 0, "sample_every must not be negative (0: no previews)")

    @property
    def preview_every(self) -> int:
        """Steps between the previews this run makes (:func:`engine.training.loop.preview_every`)."""
        return preview_every(self.sample_every, self.steps)


def learning_rate_at(config: StyleTrainingConfig, step: int) -> float:
    return warmup_cosine(config.learning_rate, config.warmup_steps, config.steps, step)


class StyleTrainer:
    """Trains ``styles``' experts (and, unless ``train_shared`` is off, the shared experts) of ``adapter``."""

    def __init__(self, backbone: Backbone, adapter: MoELoraAdapter, styles: list[StyleData], config: StyleTrainingConfig,
                 train_shared: bool = True, accelerator: Accelerator | None = None) -> None:
        self.backbone, self.adapter, self.styles, self.config = backbone, adapter, styles, config
        self.accelerator = accelerator or Accelerator(cpu=True)
        world = self.accelerator.num_processes
        require(config.batch_size % world == 0, f"batch_size {config.batch_size} must be a multiple of the {world} processes")
        self.parameters = {name: tensor for name, tensor in self._named(adapter, [s.key for s in styles], train_shared)}
        for _, tensor in adapter.state_dict_tensors():
            tensor.requires_grad_(False)  # frozen unless trained here: other styles stay exactly as they were
        for tensor in self.parameters.values():
            tensor.requires_grad_(True)
        self.optimizer = torch.optim.AdamW(list(self.parameters.values()), lr=config.learning_rate, weight_decay=0.0)
        self.discriminator = None
        if config.adversarial_weight > 0:
            torch.manual_seed(config.seed)
            channels = backbone.encode(torch.zeros(1, 3, 8 * backbone.resolution_multiple, 8 * backbone.resolution_multiple)).shape[1]
            self.discriminator = PatchDiscriminator(channels).to(backbone.device)
            self.discriminator_optimizer = torch.optim.AdamW(self.discriminator.parameters(), lr=config.discriminator_learning_rate, betas=(0.5, 0.99))

    @staticmethod
    def _named(adapter: MoELoraAdapter, keys: list[str], shared: bool):
        wanted = {id(tensor) for tensor in adapter.parameters(keys, shared=shared)}
        for name, tensor in adapter.state_dict_tensors():
            if id(tensor) in wanted:
                yield name, tensor

    def _checkpoint_parts(self):
        groups = {"adapter": dict(self.adapter.state_dict_tensors())}
        optimizers = {"adapter": (self.optimizer, self.parameters)}
        if self.discriminator is not None:
            discriminator_state = dict(self.discriminator.named_parameters())
            groups["discriminator"] = self.discriminator.state_dict()
            optimizers["discriminator"] = (self.discriminator_optimizer, discriminator_state)
        return groups, optimizers

    def _average_gradients(self, tensors: list[torch.Tensor]) -> None:
        if self.accelerator.num_processes == 1:
            return
        flat = torch.cat([(t.grad if t.grad is not None else torch.zeros_like(t)).flatten() for t in tensors])
        flat = self.accelerator.reduce(flat, reduction="mean")
        offset = 0
        for tensor in tensors:
            tensor.grad = flat[offset : offset + tensor.numel()].view_as(tensor).clone()
            offset += tensor.numel()

    def _local_batch(self, step: int):
        """This process's slice of the global batch of ``step``, and its noise and timesteps."""
        generator = torch.Generator().manual_seed(self.config.seed * 1_000_003 + step)
        side = crop_side(self.styles, self.backbone.native_resolution, self.backbone.resolution_multiple)
        before, after, keys = sample_batch(self.styles, side, self.config.batch_size, generator)
        timesteps = sample_timesteps(self.config.batch_size, self.backbone.min_timestep, generator, self.config.timestep_sampling,
                                     self.config.timestep_shift)
        with torch.no_grad():
            source, target = self.backbone.encode(before), self.backbone.encode(after)
        noise = torch.randn(target.shape, generator=generator).to(target.device)
        rank, world = self.accelerator.process_index, self.accelerator.num_processes
        part = slice(rank * len(keys) // world, (rank + 1) * len(keys) // world)
        return source[part], target[part], noise[part], timesteps[part].to(target.device), keys[part]

    def flow_loss(self, step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The flow-matching loss on ``step``'s local batch, with what the adversarial part needs."""
        source, target, noise, timesteps, keys = self._local_batch(step)
        time_view = timesteps.view(-1, 1, 1, 1)
        noisy = (1 - time_view) * target + time_view * noise
        self.adapter.route_batch(keys)
        condition = self.backbone.encode_prompt([""] * len(keys))
        velocity = self.backbone.predict_velocity(noisy, timesteps, source, condition).float()
        squared_error = (velocity - (noise - target)) ** 2
        if self.config.loss_weighting == "clean":
            squared_error = squared_error * time_view**2  # = |x0_estimate - after|^2
        return torch.mean(squared_error), noisy, velocity, source, target, timesteps

    def step(self, step: int) -> float:
        loss, noisy, velocity, source, target, timesteps = self.flow_loss(step)
        time_view = timesteps.view(-1, 1, 1, 1)
        adversarial = self.discriminator is not None and step >= self.config.adversarial_start
        if adversarial:
            clean = noisy - time_view * velocity
            loss = loss + self.config.adversarial_weight * generator_loss(self.discriminator(clean, source, timesteps))
        if self.adapter.config.balance_weight:
            loss = loss + self.adapter.config.balance_weight * self.adapter.balance_loss()
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate_at(self.config, step)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        tensors = list(self.parameters.values())
        self._average_gradients(tensors)
        torch.nn.utils.clip_grad_norm_(tensors, 1.0)
        self.optimizer.step()
        if adversarial:
            self._discriminator_step(noisy.detach() - time_view * velocity.detach(), target, source, timesteps)
        return float(self.accelerator.reduce(loss.detach(), reduction="mean"))

    def _discriminator_step(self, fake, real, source, timesteps) -> None:
        loss = discriminator_loss(self.discriminator(real, source, timesteps), self.discriminator(fake, source, timesteps))
        self.discriminator_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self._average_gradients(list(self.discriminator.parameters()))
        self.discriminator_optimizer.step()

    def train(self, run_folder: Path | None = None, callback: ProgressCallback | None = None,
              preview: Callable[[], object] | None = None, should_stop: Callable[[], bool] | None = None) -> dict:
        """Run (or resume from ``run_folder``) to ``config.steps``. Returns the loss history.

        ``preview()`` makes a preview image every ``config.preview_every`` steps; ``should_stop()`` is
        polled each step (Cancel in the studio) and ends the run early without a new checkpoint
        (:func:`engine.training.loop.run_steps`).
        """
        start = 0
        if run_folder is not None:
            record = load_checkpoint(run_folder, *self._checkpoint_parts())
            start = record["step"] if record else 0
        history = run_steps(
            self.step, start=start, steps=self.config.steps, checkpoint_every=self.config.checkpoint_every,
            save=None if run_folder is None else lambda done: self.save(run_folder, done),
            sample_every=self.config.preview_every, preview=preview, should_stop=should_stop,
            callback=callback if self.accelerator.is_main_process else None,
        )
        self.adapter.clear_routing()
        for tensor in self.parameters.values():
            tensor.requires_grad_(False)
        return history

    def save(self, run_folder: Path, step: int) -> None:
        self.accelerator.wait_for_everyone()
        if self.accelerator.is_main_process:
            save_checkpoint(run_folder, step, *self._checkpoint_parts())
        self.accelerator.wait_for_everyone()
