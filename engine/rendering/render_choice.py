"""Choosing a style's full-size render settings from its pairs, and the choice as stored with it.

Which guided radius, epsilon and detail carry a style's working-size edits to the photo's size best
depends on the style (a colour grade is explained by smooth, wide affine maps; a painterly style
by tighter ones), and so does how many sampling steps the edit takes (a style whose adapter
generalises less well from its few pairs, such as cartoon, loses less with fewer steps:
BENCHMARKS.md). :func:`choose_render` measures both: each pair's before-image is edited once per
step count of :data:`STEP_CANDIDATES`, each edit is carried to the pair's own size with every
guided candidate of :data:`GUIDED_CANDIDATES`, and the combination (:data:`RENDER_CANDIDATES`)
with the best mean score (PSNR) against the after-images wins. ``resize`` is no
candidate: it shows the model's patch grid at full size. The score is passed in
(:func:`engine.metrics.image_quality.psnr`): rendering and metrics are layers that do not import
each other.

:class:`RenderChoice` is what the library stores (JSON in ``styles.render``); a style without one
renders with :class:`RenderSettings` defaults.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Callable, Sequence

import torch
from PIL import Image

from engine.core.errors import ConfigError, InputError
from engine.core.imaging import resize_to
from engine.rendering.full_resolution import MAX_RENDER_PIXELS, RenderSettings, carry_to_full_resolution, unit_tensor
from engine.rendering.guided_upsampling import PRIORS

# The default first, so a tie keeps the default; then radius 1, 2, 4 by epsilon 1e-4, 1e-3, each
# keeping all of the photo's fine detail or half of it (painterly styles paint over detail), each
# with the fit leaning towards the identity or towards flat colour. Less than half the detail
# brings back the working-size patch grid (docs/decisions/2026-12-03-full-resolution-render.md).
GUIDED_CANDIDATES: tuple[RenderSettings, ...] = (RenderSettings(), *(
    RenderSettings("guided", radius, epsilon, detail, guided_prior=prior) for prior in PRIORS for detail in (1.0, 0.5)
    for radius in (1, 2, 4) for epsilon in (1e-4, 1e-3)
    if (radius, epsilon, detail, prior) != (2, 1e-3, 1.0, RenderSettings().guided_prior)))
# The model's default first (0), so a tie keeps it; then half of the embedded model's 8, which
# halves the edit's time (docs/decisions/2026-12-07-edit-steps-per-style.md).
STEP_CANDIDATES: tuple[int, ...] = (0, 4)
RENDER_CANDIDATES: tuple[RenderSettings, ...] = tuple(replace(candidate, edit_steps=steps) for steps in STEP_CANDIDATES
                                                      for candidate in GUIDED_CANDIDATES)
CHOSEN_BY = ("holdout", "train", "user")


@dataclass(frozen=True)
class RenderChoice:
    """A style's render settings and where they came from.

    ``chosen_by``: ``'holdout'`` or ``'train'`` (measured on ``pairs`` pairs of that split) or
    ``'user'`` (set by hand; ``pairs`` and ``scores`` keep the last measurement, if any).
    ``scores``: ``(candidate, mean PSNR in dB)`` for every candidate measured, in candidate order.
    """

    settings: RenderSettings
    chosen_by: str = "user"
    pairs: int = 0
    scores: tuple[tuple[RenderSettings, float], ...] = ()

    def __post_init__(self) -> None:
        if self.chosen_by not in CHOSEN_BY:
            raise InputError(f"a render choice is made by one of {', '.join(CHOSEN_BY)}, not {self.chosen_by!r}")

    def by_hand(self, settings: RenderSettings) -> RenderChoice:
        """The same measurement with ``settings`` set by the user."""
        return replace(self, settings=settings, chosen_by="user")

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self.settings), "chosen_by": self.chosen_by, "pairs": self.pairs,
                "scores": [{**asdict(candidate), "psnr": score} for candidate, score in self.scores]}

    @classmethod
    def from_json(cls, data: Any) -> RenderChoice:
        """The inverse of :meth:`to_json`; InputError for anything else."""
        try:
            return cls(settings_from_json(data), data.get("chosen_by", "user"), int(data.get("pairs", 0)),
                       tuple((settings_from_json(item), float(item["psnr"])) for item in data.get("scores", ())))
        except (AttributeError, KeyError, TypeError, ValueError, ConfigError) as error:
            raise InputError(f"a stored render choice is malformed ({error}); set the style's render again") from error

    def describe(self) -> str:
        """One line for people, e.g. ``guided, radius 2, ε 0.001 (chosen from 1 held-out pair)``."""
        return f"{describe_settings(self.settings)} ({self.origin()})"

    def origin(self) -> str:
        if self.chosen_by == "user":
            return "set by hand"
        split = "held-out" if self.chosen_by == "holdout" else "training"
        return f"chosen from {self.pairs} {split} pair{'s' if self.pairs != 1 else ''}"


# Fields added after choices were first stored, with the value every render had before each existed.
STORED_BEFORE_FIELD: dict[str, Any] = {"guided_prior": "flat"}


def settings_from_json(data: Any) -> RenderSettings:
    """:class:`RenderSettings` from a mapping of its fields: ``render`` is required, a field it
    lacks (one added after the choice was stored) takes the value renders had before the field
    existed (:data:`STORED_BEFORE_FIELD`), else its default; other keys are ignored."""
    values = {"render": str(data["render"]), **{name: value for name, value in STORED_BEFORE_FIELD.items() if name not in data}}
    for field in fields(RenderSettings):
        if field.name in data and field.name != "render":
            values[field.name] = type(field.default)(data[field.name])
    return RenderSettings(**values)


def describe_settings(settings: RenderSettings) -> str:
    if settings.render == "resize":
        return "resize (bicubic upscaling)"
    detail = "" if settings.guided_detail == RenderSettings().guided_detail else f", detail {settings.guided_detail:g}"
    prior = "" if settings.guided_prior == RenderSettings().guided_prior else f", leaning {settings.guided_prior}"
    guided = f"guided, radius {settings.guided_radius}, ε {settings.guided_epsilon:g}{detail}{prior}"
    steps = f", {settings.edit_steps} sampling steps" if settings.edit_steps else ""
    if settings.render == "tiled":
        size = f"{settings.tiled_size} px" if settings.tiled_size else "3 working sides"
        return f"tiled at {size}, overlap {settings.tile_overlap} px, then {guided}{steps}"
    return guided + steps


Score = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def choose_render(edit: Callable[[Image.Image, int], Image.Image], training: Sequence[tuple[Image.Image, Image.Image]],
                  holdout: Sequence[tuple[Image.Image, Image.Image]] = (), *, score: Score,
                  candidates: Sequence[RenderSettings] = RENDER_CANDIDATES) -> RenderChoice | None:
    """The candidate whose full-size results best match the after-images (highest mean ``score``).

    ``training``/``holdout``: ``(before, after)`` images at their own resolution; the held-out
    pairs are used when there are any, else the training pairs. ``edit(before, steps)`` returns the
    working-size result sampled with ``steps`` (0: the model's default); it is called once per pair
    and step count of the candidates (``edit_steps``). ``score(result, target)`` takes
    ``(1, 3, H, W)`` tensors in ``[0, 1]`` and returns ``(1,)``, higher is better (PSNR in dB).
    A pair above :data:`MAX_RENDER_PIXELS` is measured shrunk to fit. Ties go to the earlier candidate.
    A pair no larger than the model's working size tells no guided candidate from another and is
    left out; with no larger pair at all there is no choice (``None``: the style renders with the
    defaults).
    """
    pairs, chosen_by = (holdout, "holdout") if holdout else (training, "train")
    if not pairs or not candidates:
        raise InputError("choosing render settings needs at least one pair and one candidate")
    totals, measured = [0.0] * len(candidates), 0
    step_counts = list(dict.fromkeys(candidate.edit_steps for candidate in candidates))
    for original, after in pairs:
        first = edit(original, step_counts[0])  # the caller's own image object, so it may look up an edit it made already
        before = _within_cap(original.convert("RGB"))
        if first.size == before.size:
            continue  # at working size every guided candidate returns the edit itself
        working = {step_counts[0]: first, **{steps: edit(original, steps) for steps in step_counts[1:]}}
        measured += 1
        target = unit_tensor(resize_to(after.convert("RGB"), before.size)).unsqueeze(0)  # (1, 3, H, W) at the pair's size
        for index, candidate in enumerate(candidates):
            full = unit_tensor(carry_to_full_resolution(before, working[candidate.edit_steps], candidate)).unsqueeze(0)
            totals[index] += float(score(full, target)[0])
    if not measured:
        return None
    scores = tuple((candidate, round(total / measured, 4)) for candidate, total in zip(candidates, totals))
    best = max(range(len(scores)), key=lambda index: (scores[index][1], -index))
    return RenderChoice(candidates[best], chosen_by, measured, scores)


def _within_cap(photo: Image.Image) -> Image.Image:
    width, height = photo.size
    if width * height <= MAX_RENDER_PIXELS:
        return photo
    scale = math.sqrt(MAX_RENDER_PIXELS / (width * height))
    return resize_to(photo, (max(1, int(width * scale)), max(1, int(height * scale))))
