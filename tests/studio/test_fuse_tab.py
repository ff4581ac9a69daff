"""The Fuse page's handlers on a tiny model: a fusion streams previews then its result, Compare
renders the three methods with one seed, presets round-trip, and misuse gets a message."""

from __future__ import annotations

from pathlib import Path

import gradio as gr
import numpy as np
import pytest
from PIL import Image

from engine.services import style_ops
from studio import fuse_run
from studio.app import build_studio
from studio.streaming import Finished, Progress
from tests.adapters.moe.moe_fixtures import base_backbone
from tests.services.test_style_ops import peft_lora
from tests.studio.studio_fixtures import styled_context

SLIDERS = (1.5, 0.0, 1.0, 1.0, 3, 3, False)  # alpha, style bias, subject scale, style scale, seed, steps, union


@pytest.fixture()
def context(tmp_path: Path):
    with styled_context(tmp_path, ["cat", "ink"]) as studio_context:
        yield studio_context


def test_the_page_builds(context) -> None:
    studio = build_studio(context)
    found = {block.elem_id for block in studio.blocks.values() if getattr(block, "elem_id", None)}
    assert {"fuse-subject", "fuse-style", "fuse-method", "fuse-alpha", "fuse-style-bias", "fuse-run", "fuse-compare",
            "fuse-preset-save", "fuse-union-layers"} <= found


def test_a_fusion_streams_previews_and_leaves_the_workshop_model_as_it_was(context) -> None:
    workshop = context.workshop()
    before = {name: tensor.clone() for name, tensor in workshop.transformer.state_dict().items()}
    updates = list(fuse_run.run_fusion(context, "cat", "ink", fuse_run.GENERATE, None, "est", *SLIDERS))
    assert any(isinstance(update[0].get("value"), Image.Image) for update in updates[1:-1])
    preview, result, status = updates[-1]
    assert isinstance(result["value"], Image.Image) and "β" in status and "layers on the subject" in status
    for name, tensor in workshop.transformer.state_dict().items():
        assert np.array_equal(tensor.numpy(), before[name].numpy()), name


def test_the_status_counts_steps_as_the_user_set_them(context, monkeypatch: pytest.MonkeyPatch) -> None:
    # Steps 8 with EST: two beta samples (16 steps) then the fusion (8), not "step 2 of 24".
    assert [fuse_run.fusion_status(step, 24, 3) for step in (1, 3, 16, 17, 18, 24)] == [
        "Measuring β: step 1 of 16…", "Measuring β: step 3 of 16…", "Measuring β: step 16 of 16…",
        "Fusing: step 1 of 8…", "Fusing: step 2 of 8…", "Fusing: step 8 of 8…"]
    assert fuse_run.fusion_status(5, 8, 1) == "Fusing: step 5 of 8…"
    # Every progress event reaches the page (none skipped), so each status can be checked in order.
    monkeypatch.setattr(fuse_run, "stream_call", lambda work, name: iter_events(work))
    steps = SLIDERS[:-2] + (8, False)
    statuses = [update[2] for update in fuse_run.run_fusion(context, "cat", "ink", fuse_run.GENERATE, None, "est", *steps)]
    assert statuses[1:-1] == [f"Measuring β: step {step} of 16…" for step in range(1, 17)] + [
        f"Fusing: step {step} of 8…" for step in range(1, 9)]
    statuses = [update[2] for update in fuse_run.run_fusion(context, "cat", "ink", fuse_run.GENERATE, None, "merge", *steps)]
    assert statuses[1:-1] == [f"Fusing: step {step} of 8…" for step in range(1, 9)]


def iter_events(work):
    """:func:`studio.streaming.stream_call` in this thread, keeping every progress event."""
    events = []
    result = work(lambda step, total, preview: events.append(Progress(step, total, preview)))
    yield from events
    yield Finished(result)


def test_compare_renders_three_methods_with_one_seed(context) -> None:
    gallery, notes = list(fuse_run.run_compare(context, "cat", "ink", fuse_run.GENERATE, None, *SLIDERS))[-1]
    labels = [label for _, label in gallery["value"]]
    assert labels == ["EST-LoRA", "K-LoRA", "Merge"] and "Same seed (3)" in notes


def test_presets_save_and_load(context) -> None:
    values = ("cat", "ink", fuse_run.GENERATE, "klora", 1.2, 0.1, 0.9, 1.1, 5, 4, True)
    dropdown, status, version = fuse_run.save_preset(context, "my blend", 0, *values)
    assert dropdown["value"] == "my blend" and version == 1
    loaded = fuse_run.load_preset(context, "my blend")
    assert tuple(loaded[:-1]) == values


@pytest.mark.parametrize("subject, style, mode, message", [
    ("cat", "cat", fuse_run.GENERATE, "both sides"),
    (None, "ink", fuse_run.GENERATE, "pick a subject"),
    ("cat", "ink", fuse_run.EDIT, "upload a photo"),
])
def test_misuse_gets_a_message(context, subject, style, mode, message) -> None:
    with pytest.raises(gr.Error, match=message):
        list(fuse_run.run_fusion(context, subject, style, mode, None, "est", *SLIDERS))


def test_loras_on_different_layers_fuse_only_when_allowed(context, tmp_path: Path) -> None:
    # An imported LoRA on two layers against a style on every adapted layer: refused with the
    # engine's message (which names layers='union', the checkbox's label), fused when ticked.
    style_ops.import_lora(context.library, peft_lora(tmp_path / "two.safetensors", base_backbone()), "two layers", base_backbone())
    union = SLIDERS[:-1] + (True,)
    with pytest.raises(gr.Error, match="only the style LoRA changes.*layers=.*union"):
        list(fuse_run.run_fusion(context, "two layers", "ink", fuse_run.GENERATE, None, "est", *SLIDERS))
    preview, result, status = list(fuse_run.run_fusion(context, "two layers", "ink", fuse_run.GENERATE, None, "est", *union))[-1]
    assert isinstance(result["value"], Image.Image) and "layers on the subject" in status


def test_a_fusion_edit_comes_back_at_the_photos_size_with_the_styles_render_choice(context, tmp_path: Path) -> None:
    from engine.rendering.full_resolution import RenderSettings

    photo = tmp_path / "detail.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (50, 70, 3), dtype=np.uint8), mode="RGB").save(photo)

    def edited() -> np.ndarray:
        result = list(fuse_run.run_fusion(context, "cat", "ink", fuse_run.EDIT, str(photo), "merge", *SLIDERS))[-1][1]["value"]
        assert result.size == (70, 50)
        return np.asarray(result)

    defaults = edited()
    context.library.set_render("ink", RenderSettings("guided", 4, 1e-4))
    assert not np.array_equal(edited(), defaults)
    context.library.set_render("ink", RenderSettings())
    np.testing.assert_array_equal(edited(), defaults)
