"""The studio without a browser: building the page, the Edit tab's handlers, and app.py's CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
import torch
from PIL import Image

from engine.core.errors import AtelierError
from engine.library import StyleLibrary
from engine.models.backbones.registry import load_backbone
from engine.models.sampling.sampler import SamplerSettings
from studio.app import build_studio
from studio.context import new_context
from studio.edit_run import check_request, mix_from, run_edit
from studio.edit_tab import style_choices
from studio.streaming import Finished, Progress, stream_call
from tests.studio.studio_fixtures import add_random_styles

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny_backbone(tiny_model_folder: Path):
    """The tiny model with a random output layer, so that its blocks (and styles) change the output."""
    backbone = load_backbone(str(tiny_model_folder))
    with torch.no_grad():
        weight = backbone.transformer.proj_out.weight
        weight.copy_(0.05 * torch.randn(weight.shape, generator=torch.Generator().manual_seed(0)))
    return backbone


@pytest.fixture()
def context(tiny_backbone, tmp_path: Path):
    """A studio context over a library holding two styles with random weights."""
    library = StyleLibrary.open(tmp_path / "library")
    add_random_styles(library, tiny_backbone, ["ink", "sepia"], tmp_path / "pairs")
    studio_context = new_context(tiny_backbone, "tiny", library)
    yield studio_context
    studio_context.editor.release()  # the backbone is shared by the module's tests
    library.close()


def components(studio: gr.Blocks) -> dict[str, gr.components.Component]:
    return {block.elem_id: block for block in studio.blocks.values() if getattr(block, "elem_id", None)}


def test_build_studio_makes_the_edit_page_without_launching(context) -> None:
    studio = build_studio(context)
    assert isinstance(studio, gr.Blocks)
    assert not studio.is_running
    found = components(studio)
    for elem_id in ("edit-photo", "edit-style-1", "edit-weight-1", "edit-style-3", "edit-add-style", "edit-run",
                    "edit-steps", "edit-seed", "edit-strength", "edit-comparison", "edit-download", "edit-recent"):
        assert elem_id in found, elem_id
    backbone = context.backbone
    # Defaults come from the backbone and SamplerSettings, help texts from the dataclass.
    assert found["edit-steps"].value == 0  # the style's chosen steps, else the model's default
    assert found["edit-seed"].value == SamplerSettings().seed
    assert found["edit-strength"].value == SamplerSettings().strength
    assert "same seed" in found["edit-seed"].info
    # The library's styles are offered, the first picked; generation is not an edit instruction.
    assert [choice[0] for choice in found["edit-style-1"].choices] == ["None", "ink", "sepia"]
    assert found["edit-style-1"].value == "ink" and found["edit-style-2"].value == "None"
    choices = [choice[0] for choice in found["edit-prompt"].choices]
    assert choices == backbone.prompt_choices() and "blur" in choices and "generate" not in choices
    # Edits run in their own queue.
    edit_events = [fn for fn in studio.fns.values() if fn.api_name == "edit"]
    assert len(edit_events) == 1 and edit_events[0].concurrency_id == "edit"


def test_style_choices_list_only_this_models_styles(context, tmp_path: Path) -> None:
    assert style_choices(context.library, context.backbone.name) == ["None", "ink", "sepia"]
    assert style_choices(context.library, "another-model") == ["None"]


def edit_updates(context, photo: Path, *styles_and_weights, prompt: str = "identity", seed: int = 7,
                 noise_scale: float = 1.0) -> list:
    return list(run_edit(context.editor, context.output_folder, [], str(photo), prompt, 3, seed, 1.0, noise_scale,
                         *styles_and_weights))


def result_pixels(final_update) -> np.ndarray:
    """The result file of an edit's last update (its comparison's after side), as int16 pixels."""
    with Image.open(final_update[1]["value"][1]) as image:
        return np.asarray(image.convert("RGB"), dtype=np.int16)


def test_a_photo_over_the_full_resolution_cap_gets_a_message(context, tmp_path: Path) -> None:
    photo = tmp_path / "huge.png"
    Image.new("RGB", (6000, 4001)).save(photo)
    with pytest.raises(gr.Error, match="up to 24 MP: downscale it first"):
        edit_updates(context, photo, "ink", 1.0)


def test_run_edit_streams_previews_then_a_comparison_a_png_and_a_recent_result(context, tmp_path: Path) -> None:
    photo = tmp_path / "holiday.png"
    Image.new("RGB", (96, 64), (200, 120, 40)).save(photo)
    updates = edit_updates(context, photo, "ink", 1.0, "None", 1.0, "None", 1.0)
    previews = [update[0]["value"] for update in updates[1:-1]]
    assert previews and all(isinstance(image, Image.Image) for image in previews)
    final_preview, comparison, status, download, recent, gallery = updates[-1]
    assert final_preview["visible"] is False
    # The model works at its working size; the comparison and the download have the photo's.
    assert context.backbone.fit_size(96, 64) != (96, 64)
    assert all(preview.size == context.backbone.fit_size(96, 64) for preview in previews)
    before, after = comparison["value"]
    with Image.open(before) as shown_before, Image.open(after) as shown_after:
        assert shown_before.size == shown_after.size == (96, 64)
        assert np.asarray(shown_before.convert("RGB"), dtype=np.int16).mean(axis=(0, 1)) == pytest.approx((200, 120, 40), abs=2)
    assert "seed 7" in status and "ink" in status and "96×64 px" in status
    saved = Path(download["value"])
    assert saved.name == "holiday-atelier-seed7.png" and str(saved) == after
    with Image.open(saved) as image:
        assert image.format == "PNG" and image.size == (96, 64)
    assert recent == [(str(saved), "ink · seed 7")] and gallery["value"] == recent


def test_a_style_a_mix_and_no_style_give_three_different_results(context, tmp_path: Path) -> None:
    photo = tmp_path / "photo.png"
    Image.new("RGB", (64, 64), (90, 160, 40)).save(photo)

    def result(*styles_and_weights) -> np.ndarray:
        return result_pixels(edit_updates(context, photo, *styles_and_weights)[-1])

    plain = result("None", 1.0, "None", 1.0, "None", 1.0)
    ink = result("ink", 1.0, "None", 1.0, "None", 1.0)
    mixed = result("ink", 0.5, "sepia", 0.5, "None", 1.0)
    again = result("ink", 1.0, "None", 1.0, "None", 1.0)
    assert np.abs(plain - ink).max() > 0 and np.abs(ink - mixed).max() > 0
    np.testing.assert_array_equal(ink, again)  # the same style and seed give the same edit


def test_edits_from_zero_noise_do_not_depend_on_the_seed_and_do_not_name_it(context, tmp_path: Path) -> None:
    photo = tmp_path / "photo.png"
    Image.new("RGB", (64, 64), (90, 160, 40)).save(photo)
    runs = [edit_updates(context, photo, "ink", 1.0, seed=seed, noise_scale=0.0)[-1] for seed in (1, 2)]
    results = [result_pixels(update) for update in runs]
    np.testing.assert_array_equal(results[0], results[1])
    noisy = [result_pixels(edit_updates(context, photo, "ink", 1.0, seed=seed)[-1]) for seed in (1, 2)]
    assert np.abs(noisy[0] - noisy[1]).max() > 0
    status, download = runs[0][2], Path(runs[0][3]["value"])
    assert "no noise" in status and "seed" not in status
    assert download.name == "photo-atelier.png"


def test_mixes_are_read_from_the_rows_and_checked() -> None:
    assert mix_from(["ink", 1.0, "None", 0.3, "sepia", 0.4]) == {"ink": 1.0, "sepia": 0.4}
    assert mix_from(["None", 1.0, "None", 1.0]) == {}
    with pytest.raises(AtelierError, match="twice"):
        mix_from(["ink", 1.0, "ink", 0.5])
    with pytest.raises(AtelierError, match="weight 0"):
        mix_from(["ink", 0.0, "None", 1.0])


def test_requests_the_engine_would_refuse_are_reported_in_the_page(context, tmp_path: Path) -> None:
    with pytest.raises(gr.Error, match="Upload a photo"):
        check_request(None, 4, 0, 1.0, 0.0, "ink", 1.0)
    with pytest.raises(gr.Error, match="strength"):
        check_request("photo.png", 4, 0, 1.5, 0.0, "ink", 1.0)
    with pytest.raises(gr.Error, match="noise_scale"):
        check_request("photo.png", 4, 0, 1.0, 2.0, "ink", 1.0)
    with pytest.raises(gr.Error, match="twice"):
        check_request("photo.png", 4, 0, 1.0, 0.0, "ink", 1.0, "ink", 1.0)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a picture")
    with pytest.raises(gr.Error):
        edit_updates(context, broken, "ink", 1.0)
    missing_style = tmp_path / "photo.png"
    Image.new("RGB", (32, 32)).save(missing_style)
    with pytest.raises(gr.Error, match="gone"):
        edit_updates(context, missing_style, "gone", 1.0)


def test_stream_call_forwards_progress_and_reraises_errors() -> None:
    image = Image.new("RGB", (8, 8))

    def work(callback):
        callback(1, 2, image)
        return "done"

    events = list(stream_call(work))
    assert isinstance(events[-1], Finished) and events[-1].value == "done"
    assert all(isinstance(event, Progress) for event in events[:-1])

    def failing(callback):
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        list(stream_call(failing))


def test_app_help_answers_without_loading_a_model() -> None:
    result = subprocess.run([sys.executable, "app.py", "--help"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    for option in ("--host", "--port", "--model"):
        assert option in result.stdout


def test_app_reports_a_missing_model_in_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    missing = tmp_path / "no-model-here"
    missing.mkdir()
    result = subprocess.run([sys.executable, "app.py", "--model", str(missing)], cwd=REPO, capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 2
    assert result.stderr.startswith("atelier: ") and "Traceback" not in result.stderr


def test_port_comes_from_the_flag_then_the_environment_then_7860(monkeypatch: pytest.MonkeyPatch) -> None:
    import app

    monkeypatch.delenv("GRADIO_SERVER_PORT", raising=False)
    assert app.parse_args([]).port == 7860 and app.parse_args([]).host == "127.0.0.1"
    monkeypatch.setenv("GRADIO_SERVER_PORT", "7999")
    assert app.parse_args([]).port == 7999
    assert app.parse_args(["--port", "8123"]).port == 8123
    assert app.parse_args([]).model == "embedded"


def test_an_engine_error_during_the_edit_restores_the_page_and_shows_its_message(context, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def failing_edit(photo, mix, settings, callback=None, prompt="", render=None):
        callback(1, 4, photo)
        raise AtelierError("the model ran out of <memory>")

    monkeypatch.setattr(context.editor, "edit", failing_edit)
    photo = tmp_path / "photo.png"
    Image.new("RGB", (32, 32)).save(photo)
    stream = run_edit(context.editor, tmp_path, [], str(photo), "", 4, 0, 1.0, None, "ink", 1.0)
    updates = []
    with pytest.raises(gr.Error) as raised:
        for update in stream:
            updates.append(update)
    assert raised.value.message == "the model ran out of &lt;memory&gt;"
    preview, comparison, status, *_ = updates[-1]
    assert preview["visible"] is False and comparison["visible"] is True and "failed" in status
