"""Training a style chooses its full-size render settings on its pairs and stores them with it."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.core.imaging import load_photo
from engine.library import StyleLibrary
from engine.metrics.image_quality import psnr
from engine.models.sampling.sampler import SamplerSettings
from engine.rendering.render_choice import RENDER_CANDIDATES, choose_render
from engine.services.style_edit import StyleEditor
from engine.training.add_style import StyleRequest, train_style
from tests.adapters.moe.moe_fixtures import base_backbone
from tests.training.test_add_style import ONE_STEP, write_pairs
from tests.training.tiny_styles import tiny_pairs

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def library(tmp_path: Path):
    opened = StyleLibrary.open(tmp_path / "library")
    yield opened
    opened.close()


def test_training_stores_a_choice_made_on_the_training_pairs(library, tmp_path):
    record = train_style(library, base_backbone(), StyleRequest("bright", write_pairs(tmp_path / "pairs")), ONE_STEP)
    choice = record.render
    assert choice is not None and (choice.chosen_by, choice.pairs) == ("train", 3)  # three pairs: none held out
    assert record.render_settings == choice.settings in RENDER_CANDIDATES
    assert [candidate for candidate, _ in choice.scores] == list(RENDER_CANDIDATES)
    assert dict(choice.scores)[choice.settings] == max(score for _, score in choice.scores)
    assert library.get_style("bright").render == choice  # stored, not only returned

    # The scores are those of the published style's own edits of the stored full-size pairs.
    editor = StyleEditor(base_backbone(), library)
    try:
        stored = [(pair.before, pair.after) for pair in library.get_style("bright").pairs]
        images = [(load_photo(before), load_photo(after)) for before, after in stored]
        again = choose_render(lambda photo, steps: editor.edit(photo, {"bright": 1.0}, SamplerSettings(steps=steps)), images,
                              score=psnr)
    finally:
        editor.release()
    for (candidate, score), (same, recomputed) in zip(choice.scores, again.scores):
        assert candidate == same and score == pytest.approx(recomputed, abs=0.05)


def test_with_a_held_out_pair_the_choice_is_made_on_it(library, tmp_path):
    folder = write_pairs(tmp_path / "pairs", -40)
    extra = tiny_pairs(-40, count=4)[3]
    extra.before.save(folder / "before" / "p3.png")
    extra.after.save(folder / "after" / "p3.png")
    record = train_style(library, base_backbone(), StyleRequest("dim", folder), ONE_STEP)
    assert (record.render.chosen_by, record.render.pairs) == ("holdout", 1)
    assert record.metrics["holdout"]["psnr"] > 0  # the metrics are measured as before
