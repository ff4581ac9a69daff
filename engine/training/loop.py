"""The resumable step loop every trainer runs, and the progress its callback receives.

A trainer supplies one optimizer step (``step(index) -> loss``), which draws its batch from a
generator seeded by the step index, and a ``save(steps_done)`` that writes a checkpoint
(:mod:`engine.training.checkpoint`). Resuming from the checkpoint at step ``k`` then replays steps
``k .. steps-1`` exactly as an uninterrupted run would, so both end on the same weights.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable


@dataclass
class TrainingProgress:
    """What the callback receives every step."""

    step: int
    total: int
    loss: float
    seconds_left: float
    preview: object = None  # a PIL image (before | preview | after) every sample_every steps


ProgressCallback = Callable[[TrainingProgress], None]
PREVIEWS_PER_RUN = 5  # a run shorter than this many times sample_every samples about this many previews


def preview_every(sample_every: int, steps: int) -> int:
    """Steps between previews in a run of ``steps``: ``sample_every`` at most, and
    ``steps // PREVIEWS_PER_RUN`` (at least 1) when that is fewer, so any run of 5 or more steps
    shows about 5 previews; 0 (no previews) when ``sample_every`` is 0."""
    if sample_every <= 0:
        return 0
    return min(sample_every, max(1, steps // PREVIEWS_PER_RUN))


def run_steps(step: Callable[[int], float], *, start: int, steps: int, checkpoint_every: int,
              save: Callable[[int], None] | None, sample_every: int, callback: ProgressCallback | None = None,
              preview: Callable[[], object] | None = None, should_stop: Callable[[], bool] | None = None) -> dict:
    """Run steps ``start .. steps-1``.

    ``save(done)`` is called after every ``checkpoint_every`` steps (never when it is ``None`` or
    ``checkpoint_every`` is 0); ``callback`` gets a :class:`TrainingProgress` after every step,
    with ``preview()``'s image every ``sample_every`` steps; ``should_stop()`` is polled before
    each step (Cancel in the studio) and ends the run early, leaving the last checkpoint.

    Returns:
        ``{"losses": [...], "stopped_at": step or None, "started_at": start}``.
    """
    losses, began = [], time.time()
    for index in range(start, steps):
        if should_stop is not None and should_stop():
            return {"losses": losses, "stopped_at": index, "started_at": start}
        loss = step(index)
        losses.append(loss)
        done = index + 1
        if save is not None and checkpoint_every and done % checkpoint_every == 0:
            save(done)
        if callback is not None:
            seconds_left = (time.time() - began) / (done - start) * (steps - done)
            sampled = preview is not None and sample_every and done % sample_every == 0
            callback(TrainingProgress(done, steps, loss, seconds_left, preview() if sampled else None))
    return {"losses": losses, "stopped_at": None, "started_at": start}
