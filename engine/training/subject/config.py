"""Settings of a subject LoRA training run, and the bounds on its photos."""

from __future__ import annotations

from dataclasses import dataclass, replace

from engine.adapters.moe.config import TARGET_PRESETS, MoELoraConfig
from engine.core.configuration import option, require
from engine.training.loop import preview_every

# DreamBooth (Ruiz et al. 2023) fine-tunes on 3 to 5 photos; more than 10 adds little for one
# subject and lengthens every epoch, fewer than 3 gives the model no views to tell the subject
# from one photo's background and framing.
MIN_PHOTOS = 3
MAX_PHOTOS = 10


@dataclass
class SubjectTrainingConfig:
    """How a subject LoRA is trained; how the defaults were chosen, and what they cost, is in
    docs/decisions/2026-11-24-subject-training-defaults.md."""

    steps: int = option(200, "Optimizer steps.")
    batch_size: int = option(4, "Augmented crops per step.")
    learning_rate: float = option(5e-3, "Peak AdamW learning rate of the LoRA factors.")
    warmup_steps: int = option(10, "Linear warm-up steps before the cosine decay.")
    rank: int = option(8, "LoRA rank r of every wrapped layer (Hu et al. 2021).")
    alpha: float = option(8.0, "LoRA scale numerator: the update is multiplied by alpha / rank.")
    # The style experts' placement, so a default subject and a default style fuse layer by layer (EST-LoRA's 'same').
    targets: str = option(MoELoraConfig.targets, f"Which linear layers get a LoRA, by module name: one of {', '.join(TARGET_PRESETS)} "
                                                 "(default: where style experts go, so the two fuse layer by layer).")
    min_crop: float = option(0.7, "Smallest random crop, as a fraction of a photo's short side (1 = no zoom).")
    flip: bool = option(True, "Random left-right flips; turn off for subjects whose sides differ (text, logos).")
    checkpoint_every: int = option(50, "Steps between resumable checkpoints (0: none).")
    sample_every: int = option(50, "Most steps between preview generations sent to the callback; a shorter run previews "
                                   "every steps // 5 steps (at least every step), so it shows about 5 (0: none).")
    seed: int = option(0, "Seed of the LoRA's initial weights, the crops, the noise and the sample generations.")

    def __post_init__(self) -> None:
        require(self.steps >= 1 and self.batch_size >= 1, "steps and batch_size must be at least 1")
        require(self.learning_rate > 0, "learning_rate must be positive")
        require(self.warmup_steps >= 0, "warmup_steps must not be negative")
        require(1 <= self.rank <= 256, "rank must lie between 1 and 256")
        require(self.alpha > 0, "alpha must be positive")
        require(self.targets in TARGET_PRESETS, f"targets must be one of {', '.join(TARGET_PRESETS)}")
        require(0.2 <= self.min_crop <= 1.0, "min_crop must lie between 0.2 and 1")
        require(self.checkpoint_every >= 0 and self.sample_every >= 0, "checkpoint_every and sample_every must not be negative")
        require(self.seed >= 0, "seed must not be negative")

    @property
    def preview_every(self) -> int:
        """Steps between the previews this run makes (:func:`engine.training.loop.preview_every`)."""
        return preview_every(self.sample_every, self.steps)

    @property
    def scale(self) -> float:
        """The LoRA scale ``alpha / r``."""
        return self.alpha / self.rank


PRESETS: dict[str, SubjectTrainingConfig] = {
    # For tests: a few steps of a rank-2 LoRA on the tiny models.
    "tiny": SubjectTrainingConfig(steps=6, batch_size=2, learning_rate=1e-2, warmup_steps=1, rank=2, alpha=2.0,
                                  checkpoint_every=0, sample_every=0),
    "default": SubjectTrainingConfig(),
}


def preset(name: str, **changes: object) -> SubjectTrainingConfig:
    """A copy of preset ``name`` with ``changes`` (validated again)."""
    require(name in PRESETS, f"there is no subject training preset {name!r}; use one of {', '.join(PRESETS)}")
    return replace(PRESETS[name], **changes)
