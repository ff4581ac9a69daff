"""The studio and a style's render choice: the Library details name it, the Edit tab renders with it."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image

from engine.models.sampling.sampler import SamplerSettings
from engine.rendering.full_resolution import RenderSettings, carry_to_full_resolution
from engine.rendering.render_choice import GUIDED_CANDIDATES, RenderChoice
from studio import library_run
from tests.studio.test_studio_build import context, edit_updates, result_pixels, tiny_backbone  # noqa: F401 (fixtures)

STORED = RenderSettings("guided", 4, 1e-4)


def test_the_library_details_show_the_render_choice(context) -> None:
    record = context.library.get_style("ink")
    assert "**Full-size render:** guided, radius 2, ε 0.001 (the default; no choice stored)" in library_run.details_markdown(record)
    record = context.library.set_render("ink", STORED)
    assert "**Full-size render:** guided, radius 4, ε 0.0001 (set by hand)" in library_run.details_markdown(record)
    measured = RenderChoice(RenderSettings(), "holdout", 1, tuple((candidate, 30.0) for candidate in GUIDED_CANDIDATES))
    assert library_run.render_line(replace(record, render=measured)) == \
        "guided, radius 2, ε 0.001 (chosen from 1 held-out pair)"


def test_an_edit_renders_with_the_styles_stored_choice(context, tmp_path: Path) -> None:
    photo = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (64, 96, 3), dtype=np.uint8), mode="RGB").save(photo)
    default = result_pixels(edit_updates(context, photo, "ink", 1.0)[-1])
    context.library.set_render("ink", STORED)
    stored = result_pixels(edit_updates(context, photo, "ink", 1.0)[-1])
    image = Image.open(photo).convert("RGB")
    working = context.editor.edit(image, {"ink": 1.0}, SamplerSettings(steps=3, seed=7, strength=1.0, noise_scale=1.0), prompt="identity")
    np.testing.assert_array_equal(stored, np.asarray(carry_to_full_resolution(image, working, STORED), dtype=np.int16))
    assert not np.array_equal(default, stored)
