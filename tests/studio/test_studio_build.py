"""The studio without a browser: building the page, the edit handler's stream, and app.py's CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import gradio as gr
import pytest
from PIL import Image

from engine.backbones.registry import load_backbone
from engine.sampling.sampler import SamplerSettings
from studio.app import build_studio
from studio.edit_tab import check_request, run_edit
from studio.streaming import Finished, Progress, stream_call

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny_backbone(tiny_model_folder: Path):
    return load_backbone(str(tiny_model_folder))


def components(studio: gr.Blocks) -> dict[str, gr.components.Component]:
    return {block.elem_id: block for block in studio.blocks.values() if getattr(block, "elem_id", None)}


def test_build_studio_makes_the_edit_page_without_launching(tiny_backbone) -> None:
    studio = build_studio(tiny_backbone, model_label="tiny")
    assert isinstance(studio, gr.Blocks)
    assert not studio.is_running
    found = components(studio)
    for elem_id in ("edit-photo", "edit-run", "edit-steps", "edit-seed", "edit-strength", "edit-comparison", "edit-download"):
        assert elem_id in found, elem_id
    tabs = [block.label for block in studio.blocks.values() if isinstance(block, gr.Tab)]
    assert tabs == ["Edit"]
    # Defaults come from the backbone and SamplerSettings, help texts from the dataclass.
    assert found["edit-steps"].value == tiny_backbone.default_steps
    assert found["edit-seed"].value == SamplerSettings().seed
    assert found["edit-strength"].value == SamplerSettings().strength
    assert "same seed" in found["edit-seed"].info
    # The embedded model's instructions are offered as a list; generation is not an edit.
    choices = [choice[0] for choice in found["edit-prompt"].choices]
    assert choices == tiny_backbone.prompt_choices() and "blur" in choices and "generate" not in choices
    # Edits run in their own queue.
    edit_events = [fn for fn in studio.fns.values() if fn.api_name == "edit"]
    assert len(edit_events) == 1 and edit_events[0].concurrency_id == "edit"


def test_run_edit_streams_previews_then_a_comparison_and_a_png(tiny_backbone, tmp_path: Path) -> None:
    photo = tmp_path / "holiday.png"
    Image.new("RGB", (96, 64), (200, 120, 40)).save(photo)
    updates = list(run_edit(tiny_backbone, tmp_path / "results", str(photo), "blur", 3, 7, 1.0))
    previews = [update[0]["value"] for update in updates[1:-1]]
    assert previews and all(isinstance(image, Image.Image) for image in previews)
    final_preview, comparison, status, download = updates[-1]
    assert final_preview["visible"] is False
    before, after = comparison["value"]
    assert before.size == after.size == tiny_backbone.fit_size(96, 64)
    assert "seed 7" in status
    saved = Path(download["value"])
    assert saved.name == "holiday-atelier-seed7.png"
    with Image.open(saved) as image:
        assert image.format == "PNG" and image.size == after.size


def test_requests_the_engine_would_refuse_are_reported_in_the_page(tiny_backbone, tmp_path: Path) -> None:
    with pytest.raises(gr.Error, match="Upload a photo"):
        check_request(None, "", 4, 0, 1.0)
    with pytest.raises(gr.Error, match="strength"):
        check_request("photo.png", "", 4, 0, 1.5)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a picture")
    with pytest.raises(gr.Error):
        list(run_edit(tiny_backbone, tmp_path, str(broken), "", 4, 0, 1.0))


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


def test_an_engine_error_during_the_edit_restores_the_page_and_shows_its_message(tiny_backbone, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import studio.edit_tab as edit_tab
    from engine.errors import AtelierError

    def failing_edit(backbone, photo, settings, prompt="", callback=None):
        callback(1, 4, photo)
        raise AtelierError("the model ran out of <memory>")

    monkeypatch.setattr(edit_tab, "edit_photo", failing_edit)
    photo = tmp_path / "photo.png"
    Image.new("RGB", (32, 32)).save(photo)
    stream = run_edit(tiny_backbone, tmp_path, str(photo), "", 4, 0, 1.0)
    updates = []
    with pytest.raises(gr.Error) as raised:
        for update in stream:
            updates.append(update)
    assert raised.value.message == "the model ran out of &lt;memory&gt;"
    preview, comparison, status, _ = updates[-1]
    assert preview["visible"] is False and comparison["visible"] is True and "failed" in status
