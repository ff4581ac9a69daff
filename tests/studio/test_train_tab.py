"""The Train tab without a browser: its widgets, the upload checks and messages, removing a pair,
and training through the runner (start, a second Train, Cancel, the poll, resume, the library signal)."""

from __future__ import annotations

import html
import re
import threading
import time
import zipfile
from pathlib import Path

import gradio as gr
import pandas as pd
import pytest
from PIL import Image

import engine.training.pair_uploads as pair_uploads
from engine.core.configuration import help_of
from engine.library import StyleLibrary
from engine.models.backbones.registry import load_backbone
from engine.services.jobs import TrainingJobs
from engine.training.style_trainer import StyleTrainingConfig
from studio.context import new_context
from studio.train_run import (
    ADVANCED,
    IDLE,
    VIEW,
    attach,
    cancel_training,
    check_resume,
    check_training,
    config_from,
    default_of,
    discard_training,
    poll_training,
    resume_training,
    start_training,
)
from studio.train_tab import build_train_tab, setting_widget
from studio.train_uploads import MARK, NO_SELECTION, PairUploads, remove_pair, update_uploads
from tests.studio.studio_fixtures import add_random_styles, write_photo
from tests.training.tiny_styles import tiny_pairs

WAIT_S = 240  # a bound on a tiny run, so a hung thread fails the test instead of hanging it
# Quick settings in ADVANCED order: batch 2, one warm-up step, a preview every step, no checkpoints.
QUICK = {"batch_size": 2, "warmup_steps": 1, "sample_every": 1, "checkpoint_every": 0}


def advanced_values(**changes) -> list:
    values = {**{name: StyleTrainingConfig.__dataclass_fields__[name].default for name in ADVANCED}, **QUICK, **changes}
    return [values[name] for name in ADVANCED]


def shown(text: str) -> str:
    """A pattern for ``text`` as the page shows it in an error (HTML-escaped)."""
    return re.escape(html.escape(text))


def captions(gallery: gr.Gallery) -> list[str]:
    return [item["caption"] for item in gallery.value]


def gallery_items(gallery: gr.Gallery) -> list[tuple[str, str]]:
    """The gallery's value as an event hands it to a handler (``type='filepath'``)."""
    return [(item["image"]["path"], item["caption"]) for item in gallery.value]


def is_skip(update) -> bool:
    return update == gr.skip()


def view_of(values: tuple) -> dict:
    """A poll's outputs by name (the library signal, when present, under 'version')."""
    named = dict(zip(VIEW, values))
    if len(values) > len(VIEW):
        named["version"] = values[len(VIEW)]
    return named


@pytest.fixture(scope="module")
def tiny_backbone(tiny_model_folder: Path):
    return load_backbone(str(tiny_model_folder))


@pytest.fixture()
def context(tiny_backbone, tiny_model_folder: Path, tmp_path: Path):
    """A studio context over an empty library; training loads the tiny model folder by its spec."""
    library = StyleLibrary.open(tmp_path / "library")
    studio_context = new_context(tiny_backbone, str(tiny_model_folder), library)
    yield studio_context
    studio_context.editor.release()
    library.close()


def build(context, jobs: TrainingJobs | None = None) -> tuple[gr.Blocks, TrainingJobs]:
    with gr.Blocks() as page:
        context.make_signal()
        runner = build_train_tab(context, jobs)
    return page, runner


def photos(folder: Path, count: int = 4, offset: int = 40) -> tuple[list[str], list[str]]:
    """Tiny before/after photos with matching names, as the upload widgets hand them over."""
    befores, afters = [], []
    for pair in tiny_pairs(offset, count=count):
        for side, image, paths in (("before", pair.before, befores), ("after", pair.after, afters)):
            path = folder / side / f"{pair.name}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            image.save(path)
            paths.append(str(path))
    return befores, afters


def uploaded(context, befores, afters, zip_path=None) -> PairUploads:
    return update_uploads(PairUploads(), befores, afters, zip_path, context.output_folder)[0]


def test_the_tab_builds_with_stable_ids_defaults_and_help_texts(context) -> None:
    page, jobs = build(context)
    found = {block.elem_id: block for block in page.blocks.values() if getattr(block, "elem_id", None)}
    for elem_id in ("train-before", "train-after", "train-zip", "train-pairs", "train-remove", "train-name", "train-description",
                    "train-trigger", "train-steps", "train-advanced", "train-run", "train-cancel", "train-progress", "train-loss",
                    "train-preview", "train-status", "train-metrics", "train-resumable", "train-resume", "train-discard",
                    "train-batch-size", "train-learning-rate", "train-adversarial-weight", "train-seed", "train-sample-every"):
        assert elem_id in found, elem_id
    defaults = StyleTrainingConfig()
    assert found["train-steps"].value == defaults.steps and found["train-batch-size"].value == defaults.batch_size
    assert found["train-learning-rate"].value == defaults.learning_rate
    assert found["train-adversarial-weight"].info == help_of(StyleTrainingConfig, "adversarial_weight")
    # Settings are named in plain words, with the field's name in brackets; no jargon without an explanation.
    assert found["train-timestep-shift"].label == "Train more on noisy steps (timestep shift)"
    assert "noisy steps" in found["train-timestep-shift"].info
    assert "logit-normal' practises mostly on the middle" in found["train-timestep-sampling"].info
    assert found["train-batch-size"].label == "Batch size"
    assert isinstance(jobs, TrainingJobs) and jobs.state().status == "idle"
    # No training event uses the edit queue, and the poll never waits for a worker.
    assert all(fn.concurrency_id != "edit" for fn in page.fns.values())
    timers = [block for block in page.blocks.values() if isinstance(block, gr.Timer)]
    assert len(timers) == 1 and timers[0].active is False
    polls = [fn for fn in page.fns.values() if any(target[1] == "tick" for target in fn.targets)]
    assert len(polls) == 1 and polls[0].concurrency_limit is None


def test_uploads_pair_by_name_and_name_every_file_that_cannot_be_used(context, tmp_path: Path) -> None:
    befores, afters = photos(tmp_path, count=2)
    notes = tmp_path / "notes.txt"
    notes.write_text("not a photo")
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    square = write_photo(tmp_path / "after" / "square.png", (90, 90, 90), (40, 40))
    wide = write_photo(tmp_path / "before" / "square.png", (90, 90, 90), (80, 40))
    lonely = write_photo(tmp_path / "after" / "lonely.png", (10, 10, 10))
    with pytest.warns(UserWarning, match="notes.txt is a .txt file, not a photo"):
        state, gallery, text, selection = update_uploads(None, befores + [str(notes), str(broken), str(wide)],
                                                         afters + [str(square), str(lonely)], None, context.output_folder)
    by_name = {pair.name: pair for pair in state.shown()}
    assert [name for name, pair in by_name.items() if pair.usable] == ["p0", "p1"]
    assert "cannot be read as an image" in by_name["broken"].problem and "no after photo" in by_name["broken"].problem
    assert "different aspect ratios" in by_name["square"].problem
    assert by_name["lonely"].problem == "no before photo is named 'lonely'"
    assert "not a photo" in by_name["notes"].problem
    # Every name is in the gallery, the unusable ones marked, each a before|after sheet.
    assert captions(gallery) == [f"{MARK} broken", f"{MARK} lonely", f"{MARK} notes", "p0", "p1", f"{MARK} square"]
    for item in gallery.value:
        with Image.open(item["image"]["path"]) as sheet:
            assert sheet.width > sheet.height
    assert gallery.selected_index is None and gallery.preview is False
    assert "**2 pairs ready**" in text and "4 marked" in text and "notes.txt" in text and selection is None
    # Training is refused until the marked pairs are gone, naming them.
    with pytest.raises(gr.Error, match="4 pair\\(s\\) cannot be used"):
        check_training(TrainingJobs(context.library, "unused"), state, "Ink", "", "", 4, *advanced_values())


def test_a_huge_photo_is_refused_with_the_limit(context, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pair_uploads, "MAX_PAIR_PIXELS", 64 * 64)
    befores, afters = photos(tmp_path, count=2)
    big = write_photo(tmp_path / "big" / "p0.png", (1, 2, 3), (100, 80))
    with pytest.warns(UserWarning, match="100×80 px"):
        state, _, text, _ = update_uploads(None, befores, [str(big), afters[1]], None, context.output_folder)
    problem = state.shown()[0].problem
    assert "p0.png is 100×80 px" in problem and "the limit is 0.0 megapixels (64×64): downscale it" in problem
    assert "downscale it" in text


def test_a_zip_of_pairs_works_and_a_bad_one_is_explained(context, tmp_path: Path) -> None:
    befores, afters = photos(tmp_path / "set", count=3)
    archive = tmp_path / "pairs.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        for path in befores + afters:
            handle.write(path, f"set/{Path(path).parent.name}/{Path(path).name}")
    state = uploaded(context, None, None, str(archive))
    assert [pair.name for pair in state.shown() if pair.usable] == ["p0", "p1", "p2"]
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"not a zip")
    with pytest.warns(UserWarning, match="bad.zip is not a readable zip file"):
        state, _, text, _ = update_uploads(state, None, None, str(bad), context.output_folder)
    assert state.shown() == [] and "bad.zip is not a readable zip" in text and str(tmp_path) not in text
    rar = tmp_path / "pairs.rar"
    rar.write_bytes(b"rar")
    with pytest.warns(UserWarning, match="pairs.rar is not a .zip"):
        update_uploads(state, None, None, str(rar), context.output_folder)


def test_a_selected_pair_can_be_removed(context, tmp_path: Path) -> None:
    befores, afters = photos(tmp_path, count=3)
    state, gallery, _, _ = update_uploads(None, befores, afters, None, context.output_folder)
    with pytest.raises(gr.Error, match=NO_SELECTION):
        remove_pair(state, None, gallery_items(gallery))
    state, gallery, text, selection = remove_pair(state, 1, gallery_items(gallery))
    assert [pair.name for pair in state.shown()] == ["p0", "p2"]
    assert captions(gallery) == ["p0", "p2"] and selection is None and gallery.selected_index is None
    assert "**2 pairs ready**" in text and "1 pair(s) removed" in text
    # Removing the last but one leaves too few pairs, and Train says so.
    state, _, _, _ = remove_pair(state, 0, gallery_items(gallery))
    with pytest.raises(gr.Error, match="1 pair\\(s\\) uploaded; a style needs at least 2"):
        check_training(TrainingJobs(context.library, "unused"), state, "Ink", "", "", 4, *advanced_values())


def test_train_refuses_bad_names_taken_names_and_empty_settings(context, tmp_path: Path) -> None:
    add_random_styles(context.library, context.backbone, ["Ink"], tmp_path / "styles")
    state = uploaded(context, *photos(tmp_path, count=2))
    jobs = TrainingJobs(context.library, "unused")
    for name, message in (("", "style name is empty"), ("ink/wash", "contains '/'"), ("../up", "starts with '.'"),
                          ("ink", "a style named 'Ink' is already in the library")):
        with pytest.raises(gr.Error, match=shown(message)):
            check_training(jobs, state, name, "", "", 4, *advanced_values())
    with pytest.raises(gr.Error, match="Batch size is empty; enter a number \\(the default is 8\\)"):
        check_training(jobs, state, "Sepia", "", "", 4, *advanced_values(batch_size=None))
    with pytest.raises(gr.Error, match="learning_rate must be positive"):
        check_training(jobs, state, "Sepia", "", "", 4, *advanced_values(learning_rate=0))
    assert check_training(jobs, state, "Sepia", "", "", 4, *advanced_values()) == "Starting…"
    assert config_from(4, *advanced_values(seed=7)).seed == 7
    # A choice setting comes from a dropdown: the config checks the option, and an empty one is refused.
    assert config_from(4, *advanced_values(loss_weighting="velocity")).loss_weighting == "velocity"
    with pytest.raises(gr.Error, match="loss_weighting must be one of clean, velocity"):
        check_training(jobs, state, "Sepia", "", "", 4, *advanced_values(loss_weighting="x0"))
    with pytest.raises(gr.Error, match="What the error measures \\(loss weighting\\) is empty; choose one \\(the default is clean\\)"):
        check_training(jobs, state, "Sepia", "", "", 4, *advanced_values(loss_weighting=None))


def test_every_text_setting_is_a_dropdown_of_its_options() -> None:
    texts = [name for name in ADVANCED if isinstance(default_of(name), str)]
    assert {"loss_weighting", "timestep_sampling"} <= set(texts)
    for name in texts:
        widget = setting_widget(name)
        assert isinstance(widget, gr.Dropdown) and widget.value == default_of(name)
        for choice, _ in widget.choices:  # each option is one the config accepts
            assert getattr(config_from(4, *advanced_values(**{name: choice})), name) == choice


def test_train_runs_in_the_background_and_the_poll_bumps_the_library_signal_once(context, tmp_path: Path) -> None:
    _, jobs = build(context)
    state = uploaded(context, *photos(tmp_path, count=4))
    assert check_training(jobs, state, "Light", "brighter", "in light style", 3, *advanced_values()) == "Starting…"
    started = view_of(start_training(jobs, context.output_folder, state, "Light", "brighter", "in light style", 3, *advanced_values()))
    assert started["timer"].active is True and "Training **Light**" in started["status"]
    assert started["metrics"]["visible"] is False
    assert not list((Path(context.output_folder) / "train-pairs").iterdir())  # the runner copied the pairs; the page's copy is gone
    assert jobs.wait(WAIT_S).status == "finished"
    polled = view_of(poll_training(jobs, started["seen"], 0))
    assert polled["version"] == 1.0 and polled["timer"].active is False
    assert "**Light** is in your library" in polled["status"] and "width:100.0%" in polled["progress"]
    assert polled["metrics"]["visible"] is True and "held-out (1)" in polled["metrics"]["value"]
    frame = polled["loss"]
    assert isinstance(frame, pd.DataFrame) and sorted(frame["step"].unique()) == [1, 2, 3]
    assert set(frame["series"]) == {"loss per step", "average of 10 steps"}
    assert isinstance(polled["preview"]["value"], Image.Image) and "held-out pair 'p3'" in polled["preview"]["label"]
    assert [record.name for record in context.library.list_styles()] == ["Light"]
    # A later tick (or another page's) shows the same outcome without bumping again.
    again = view_of(poll_training(jobs, polled["seen"], 1))
    assert is_skip(again["version"]) and is_skip(again["loss"]) and is_skip(again["preview"])


def test_a_page_opened_after_a_run_shows_no_old_plot_and_labels_that_run_earlier(context, tmp_path: Path) -> None:
    _, jobs = build(context)
    assert view_of(attach(jobs))["status"] == IDLE  # nothing ran yet
    state = uploaded(context, *photos(tmp_path, count=2))
    start_training(jobs, context.output_folder, state, "Light", "", "", 3, *advanced_values())
    ended = jobs.wait(WAIT_S)
    assert ended.status == "finished" and ended.losses and ended.preview is not None
    loaded = view_of(attach(jobs))  # a new page, or the same page reloaded
    clock = time.strftime("%H:%M", time.localtime(ended.ended_at))
    assert loaded["status"].startswith(IDLE)
    assert f"*Last run (ended {clock}):* **Light** is in your library" in loaded["status"]
    assert loaded["loss"] is None and loaded["progress"] == "" and loaded["timer"].active is False
    assert loaded["preview"]["value"] is None and loaded["preview"]["label"] == "Preview"
    assert loaded["metrics"]["visible"] is False
    assert loaded["resumable"]["choices"] == [] and loaded["interrupted"]["visible"] is False


def test_train_twice_is_refused_and_cancel_keeps_the_library(context, tmp_path: Path) -> None:
    release = threading.Event()

    def slow_loader(spec: str):
        release.wait(WAIT_S)
        return load_backbone(spec)

    _, jobs = build(context, TrainingJobs(context.library, context.model_spec, load_model=slow_loader))
    state = uploaded(context, *photos(tmp_path, count=2))
    first = view_of(start_training(jobs, context.output_folder, state, "Dusk", "", "", 3, *advanced_values()))
    assert "loading a copy of the model" in first["status"] and "width:0.0%" in first["progress"]
    assert first["loss"] is None  # an empty plot until the first step (a plot first given no rows draws no lines)
    with pytest.raises(gr.Error, match=shown("'Dusk' is training now")):
        check_training(jobs, state, "Other", "", "", 3, *advanced_values())
    with pytest.raises(gr.Error, match=shown("'Dusk' is training now")):
        start_training(jobs, context.output_folder, state, "Other", "", "", 3, *advanced_values())
    with pytest.raises(gr.Error, match="training now"):
        check_resume(jobs, "dusk")
    # A page opened now shows the running job and polls it.
    assert view_of(attach(jobs))["timer"].active is True
    assert "Cancelling **Dusk**" in cancel_training(jobs)
    release.set()
    assert jobs.wait(WAIT_S).status == "cancelled"
    polled = view_of(poll_training(jobs, first["seen"], 0))
    assert "Cancelled **Dusk** before the first step; the library is unchanged." in polled["status"]
    assert is_skip(polled["version"]) and polled["timer"].active is False
    assert context.library.list_styles() == [] and jobs.state().job == 1
    assert is_skip(cancel_training(jobs))  # nothing to cancel: a notice, no change


def test_an_interrupted_run_is_listed_resumed_and_publishes(context, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, jobs = build(context)
    report = jobs._progress

    def report_then_cancel(job, progress):  # Cancel pressed right after step 2, with no timing involved
        report(job, progress)
        if progress.step == 2:
            jobs.cancel()

    monkeypatch.setattr(jobs, "_progress", report_then_cancel)
    state = uploaded(context, *photos(tmp_path, count=2))
    first = view_of(start_training(jobs, context.output_folder, state, "Dawn", "", "", 4, *advanced_values(checkpoint_every=1)))
    jobs.wait(WAIT_S)
    polled = view_of(poll_training(jobs, first["seen"], 0))
    assert "Cancelled **Dawn** at step 2 of 4" in polled["status"] and "Interrupted runs" in polled["status"]
    assert polled["resumable"]["choices"] == [("Dawn · step 2 of 4 · 2 pairs", "dawn")] and polled["resumable"]["value"] == "dawn"
    assert polled["interrupted"]["visible"] is True
    with pytest.raises(gr.Error, match="interrupted run"):
        check_training(jobs, state, "Dawn", "", "", 4, *advanced_values())
    monkeypatch.undo()
    with pytest.raises(gr.Error, match="Pick an interrupted run"):
        check_resume(jobs, None)
    assert check_resume(jobs, "dawn") == "Resuming…"
    resumed = view_of(resume_training(jobs, "dawn"))
    assert resumed["timer"].active is True and resumed["resumable"]["choices"] == [] and resumed["interrupted"]["visible"] is False
    assert jobs.wait(WAIT_S).status == "finished"
    done = view_of(poll_training(jobs, resumed["seen"], 4))
    assert done["version"] == 5.0 and sorted(done["loss"]["step"].unique()) == [3, 4]
    assert [record.name for record in context.library.list_styles()] == ["Dawn"]


def test_an_interrupted_run_can_be_discarded(context, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    started = threading.Event()

    def failing_loader(spec: str):
        started.wait(WAIT_S)  # fail only once the page has shown the start, as a real load would
        raise RuntimeError("no memory left")

    _, jobs = build(context, TrainingJobs(context.library, context.model_spec, load_model=failing_loader))
    state = uploaded(context, *photos(tmp_path, count=2))
    first = view_of(start_training(jobs, context.output_folder, state, "Fog", "", "", 2, *advanced_values()))
    started.set()
    jobs.wait(WAIT_S)
    with pytest.warns(UserWarning, match=shown("Training 'Fog' failed") + ".*RuntimeError: no memory left"):
        polled = view_of(poll_training(jobs, first["seen"], 0))
    assert "Training **Fog** failed before the first step" in polled["status"] and polled["timer"].active is False
    # Failed before training began: nothing to resume, nothing listed.
    assert polled["resumable"]["choices"] == [] and polled["interrupted"]["visible"] is False
    run = context.library.root / "checkpoints" / "cli-run"
    run.mkdir(parents=True)
    (run / "resume.json").write_text('{"expert_key": "k", "settings": {"training": {"steps": 10}, "pairs": 3}}')
    with pytest.raises(gr.Error, match="python -m engine train"):
        resume_training(jobs, "cli-run")
    with pytest.raises(gr.Error, match="Pick an interrupted run"):
        discard_training(jobs, None)
    listed, box = discard_training(jobs, "cli-run")
    assert listed["choices"] == [] and box["visible"] is False and not run.exists()


def test_a_too_long_name_is_refused_with_its_length_not_cut(context, tmp_path: Path) -> None:
    page, jobs = build(context)
    found = {block.elem_id: block for block in page.blocks.values() if getattr(block, "elem_id", None)}
    assert found["train-name"].max_length is None  # a browser maxlength would cut a pasted name without a word
    state = uploaded(context, *photos(tmp_path, count=2))
    long_name = "ink wash " * 22 + "xx"
    assert len(long_name) == 200
    with pytest.raises(gr.Error, match=shown("is 200 characters; names may have at most 64")):
        check_training(jobs, state, long_name, "", "", 4, *advanced_values())
    with pytest.raises(gr.Error, match=shown("is 200 characters; names may have at most 64")):
        start_training(jobs, context.output_folder, state, long_name, "", "", 4, *advanced_values())
    assert jobs.state().status == "idle"


def test_a_too_long_description_or_trigger_is_refused_not_cut(context, tmp_path: Path) -> None:
    page, jobs = build(context)
    found = {block.elem_id: block for block in page.blocks.values() if getattr(block, "elem_id", None)}
    assert found["train-description"].max_length is None and found["train-trigger"].max_length is None
    state = uploaded(context, *photos(tmp_path, count=2))
    with pytest.raises(gr.Error, match="description"):
        check_training(jobs, state, "Wash", "x" * 2001, "", 4, *advanced_values())
    with pytest.raises(gr.Error, match="trigger"):
        check_training(jobs, state, "Wash", "", "y" * 201, 4, *advanced_values())
    assert jobs.state().status == "idle"
