"""Choosing a style's render settings from its pairs (engine/rendering/render_choice.py), and the
choice as the library stores it."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from engine.core.errors import InputError
from engine.core.imaging import resize_to
from engine.metrics.image_quality import psnr
from engine.rendering.full_resolution import RenderSettings, carry_to_full_resolution
from engine.rendering.render_choice import GUIDED_CANDIDATES, RENDER_CANDIDATES, STEP_CANDIDATES, RenderChoice, choose_render


def smooth_photo(width: int, height: int, seed: int) -> Image.Image:
    """Smooth random colours with some fine noise: local colour statistics vary across the photo."""
    generator = np.random.default_rng(seed)
    coarse = Image.fromarray((generator.random((6, 8, 3)) * 200 + 20).astype(np.uint8)).resize((width, height), Image.Resampling.BICUBIC)
    noise = generator.normal(0, 12, (height, width, 3))
    return Image.fromarray(np.clip(np.asarray(coarse) + noise, 0, 255).astype(np.uint8), mode="RGB")


def synthetic_edit(photo: Image.Image, steps: int = 0) -> Image.Image:
    """A working-size (1/4) edit no single affine colour map explains: a curve, a swap and a
    position-dependent tint (the same whatever the ``steps``)."""
    small = np.asarray(resize_to(photo, (photo.width // 4, photo.height // 4)), dtype=np.float64) / 255
    ramp = np.linspace(0, 1, small.shape[1])[None, :, None]
    edited = np.stack([small[..., 1] ** 0.5, small[..., 2] * small[..., 0], 1 - small[..., 0]], axis=-1) * (0.7 + 0.3 * ramp)
    return Image.fromarray((edited * 255).round().astype(np.uint8), mode="RGB")


def pairs_rendered_with(candidate: RenderSettings, count: int, seed: int = 0) -> list[tuple[Image.Image, Image.Image]]:
    """Before-images and, as after-images, their synthetic edit carried to full size with ``candidate``."""
    befores = [smooth_photo(96 + 8 * index, 72, seed + index) for index in range(count)]
    return [(before, carry_to_full_resolution(before, synthetic_edit(before), candidate)) for before in befores]


def test_the_candidates_are_distinct_guided_settings_with_the_default_first():
    assert GUIDED_CANDIDATES[0] == RenderSettings()
    assert len(set(GUIDED_CANDIDATES)) == len(GUIDED_CANDIDATES) == 24
    assert {candidate.render for candidate in GUIDED_CANDIDATES} == {"guided"}
    assert {candidate.guided_prior for candidate in GUIDED_CANDIDATES} == {"identity", "flat"}
    assert RENDER_CANDIDATES[0] == RenderSettings() and STEP_CANDIDATES[0] == 0  # the model's default steps first
    assert len(set(RENDER_CANDIDATES)) == len(RENDER_CANDIDATES) == 24 * len(STEP_CANDIDATES)


@pytest.mark.parametrize("candidate", GUIDED_CANDIDATES, ids=lambda item: f"r{item.guided_radius}-eps{item.guided_epsilon:g}-detail{item.guided_detail:g}-{item.guided_prior}")
def test_the_candidate_that_made_the_after_images_wins(candidate):
    calls = []

    def edit(before, steps):
        calls.append((id(before), steps))
        return synthetic_edit(before)

    pairs = pairs_rendered_with(candidate, 2)
    choice = choose_render(edit, pairs, score=psnr)
    assert choice.settings == candidate  # every step count edits alike here, so the tie keeps the default steps
    assert (choice.chosen_by, choice.pairs) == ("train", 2)
    assert [item for item, _ in choice.scores] == list(RENDER_CANDIDATES)
    scores = dict(choice.scores)
    assert scores[candidate] == 100.0  # an exact reproduction: the clamped error's PSNR
    assert max(score for item, score in choice.scores if item.guided_radius != candidate.guided_radius
               or item.guided_epsilon != candidate.guided_epsilon or item.guided_detail != candidate.guided_detail) < 60
    # Each pair edited once per step count, with the caller's image.
    assert calls == [(id(before), steps) for before, _ in pairs for steps in STEP_CANDIDATES]


def test_the_steps_whose_edit_made_the_after_images_win():
    def edit(before, steps):
        exact = synthetic_edit(before)
        return exact if steps == STEP_CANDIDATES[1] else Image.eval(exact, lambda value: min(255, value + 20))

    chosen = replace(GUIDED_CANDIDATES[3], edit_steps=STEP_CANDIDATES[1])
    choice = choose_render(edit, pairs_rendered_with(GUIDED_CANDIDATES[3], 2), score=psnr)
    assert choice.settings == chosen and dict(choice.scores)[chosen] == 100.0
    assert choice.describe() == f"guided, radius {chosen.guided_radius}, ε {chosen.guided_epsilon:g}, {chosen.edit_steps} sampling steps " \
                                "(chosen from 2 training pairs)"


def test_held_out_pairs_are_preferred_to_training_pairs():
    training, holdout = pairs_rendered_with(GUIDED_CANDIDATES[1], 2), pairs_rendered_with(GUIDED_CANDIDATES[4], 1, seed=5)
    choice = choose_render(synthetic_edit, training, holdout, score=psnr)
    assert (choice.settings, choice.chosen_by, choice.pairs) == (GUIDED_CANDIDATES[4], "holdout", 1)


def test_after_images_at_another_resolution_are_compared_at_the_before_images_size():
    before, after = pairs_rendered_with(GUIDED_CANDIDATES[2], 1)[0]
    choice = choose_render(synthetic_edit, [(before, after.resize((after.width * 2, after.height * 2), Image.Resampling.BICUBIC))],
                           score=psnr)
    assert choice.settings == GUIDED_CANDIDATES[2]


def test_pairs_at_the_working_size_are_left_out_and_alone_give_no_choice():
    at_working_size = [(synthetic_edit(before), synthetic_edit(before)) for before, _ in pairs_rendered_with(GUIDED_CANDIDATES[0], 2)]
    same_size_edit = lambda photo, steps: photo  # noqa: E731 (the model's result is as large as the pair)
    assert choose_render(same_size_edit, at_working_size, score=psnr) is None
    larger = pairs_rendered_with(GUIDED_CANDIDATES[3], 1)
    choice = choose_render(lambda photo, steps: photo if photo.width < 60 else synthetic_edit(photo), at_working_size + larger, score=psnr)
    assert (choice.settings, choice.pairs) == (GUIDED_CANDIDATES[3], 1)


def test_no_pairs_are_refused():
    with pytest.raises(InputError, match="at least one pair"):
        choose_render(synthetic_edit, [], score=psnr)


def test_a_choice_round_trips_through_json_and_describes_itself():
    choice = choose_render(synthetic_edit, [], pairs_rendered_with(RenderSettings(), 1), score=psnr)
    assert RenderChoice.from_json(choice.to_json()) == choice
    assert choice.describe() == "guided, radius 2, ε 0.001 (chosen from 1 held-out pair)"
    by_hand = choice.by_hand(RenderSettings("resize"))
    assert by_hand.describe() == "resize (bicubic upscaling) (set by hand)" and by_hand.scores == choice.scores
    assert RenderChoice(RenderSettings("guided", 4, 1e-4), "train", 3).describe() == "guided, radius 4, ε 0.0001 (chosen from 3 training pairs)"


def test_a_stored_choice_without_a_newer_field_reads_as_renders_were_before_it():
    stored = RenderChoice.from_json({"render": "guided", "guided_radius": 4, "guided_epsilon": 1e-4}).settings
    assert stored == RenderSettings("guided", 4, 1e-4, guided_prior="flat")  # the fit every render used before the prior existed
    assert stored.edit_steps == RenderSettings().edit_steps


@pytest.mark.parametrize("data", [None, [], {"guided_radius": 2}, {"render": "guided", "guided_radius": "wide"}, {"render": "blur", "guided_radius": 2, "guided_epsilon": 0.001},
                                  {"render": "guided", "guided_radius": 2, "guided_epsilon": 0.001, "chosen_by": "magic"}])
def test_a_malformed_stored_choice_is_refused(data):
    with pytest.raises(InputError):
        RenderChoice.from_json(data)
