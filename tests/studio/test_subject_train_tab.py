"""The Fuse page's *Train a subject* section without a browser: the upload checks and their
messages, refusals (a bad photo, too few or too many photos, a bad or taken name, a style
training), Cancel, and a tiny run that ends in the library with the Fuse dropdown picking it."""

from __future__ import annotations

import threading
from pathlib import Path

import gradio as gr
import pytest

from engine.library import StyleLibrary
from engine.services.subject_jobs import SubjectJobs
from engine.training.subject import list_subjects
from studio import subject_train_run as run
from studio.app import build_studio
from studio.context import new_context
from tests.adapters.moe.moe_fixtures import base_backbone
from tests.studio.studio_fixtures import add_random_styles, write_photo

WAIT_S = 900  # a bound on a tiny run (minutes on two busy cores), so a hung thread fails the test instead of hanging it


@pytest.fixture()
def context(tmp_path: Path):
    library = StyleLibrary.open(tmp_path / "library")
    add_random_styles(library, base_backbone(), ["ink"], tmp_path / "pairs")
    studio_context = new_context(base_backbone(), "tiny", library, workshop=base_backbone())
    try:
        yield studio_context
    finally:
        studio_context.editor.release()
        library.close()


def tiny_jobs(context, busy=None, loaded: threading.Event | None = None) -> SubjectJobs:
    def load(spec: str):
        if loaded is not None:
            loaded.wait(WAIT_S)
        return base_backbone()

    return SubjectJobs(context.library, context.model_spec, load_model=load, busy=busy)


def photos(folder: Path, count: int) -> list[str]:
    return [str(write_photo(folder / f"view-{index}.png", (30 * index % 255, 90, 160 - 10 * index), size=(48, 40)))
            for index in range(count)]


def view_of(values: tuple) -> dict:
    return dict(zip(run.VIEW, values))


def test_the_fuse_page_has_the_section(context) -> None:
    studio = build_studio(context)
    found = {block.elem_id for block in studio.blocks.values() if getattr(block, "elem_id", None)}
    assert {"subject-train", "subject-photos", "subject-name", "subject-steps", "subject-run", "subject-cancel",
            "subject-status", "subject-progress", "subject-loss", "subject-preview", "fuse-run"} <= found


def test_uploads_are_counted_and_a_bad_file_is_named(tmp_path: Path) -> None:
    good = photos(tmp_path, 4)
    assert run.check_uploads(good) == "4 photos ready."
    assert "at least 3" in run.check_uploads(good[:2])
    assert "at most 10" in run.check_uploads(photos(tmp_path / "many", 11))
    fake = tmp_path / "notes.jpg"
    fake.write_text("shopping: milk\n")
    message = run.check_uploads([*good[:2], str(fake)])
    assert "notes.jpg" in message and "Cannot use this photo" in message
    text = tmp_path / "list.txt"
    text.write_text("x")
    assert "list.txt is a .txt file" in run.check_uploads([*good, str(text)])
    assert run.check_uploads(None) == ""


@pytest.mark.parametrize(("count", "bad_name", "expected"), [
    (2, "", "at least 3"),
    (11, "", "at most 10"),
    (4, "bad/name", "style name"),
    (4, "", "style name is empty"),
    (4, "Ink", "already has a style or subject named"),
])
def test_train_refuses_with_a_message_and_starts_nothing(context, tmp_path: Path, count, bad_name, expected) -> None:
    jobs = tiny_jobs(context)
    name = bad_name if bad_name or expected.startswith("style name is empty") else "my cat"
    with pytest.raises(gr.Error, match=expected):
        run.start_subject(jobs, photos(tmp_path, count), name, 3)
    assert jobs.state().status == "idle"
    assert list_subjects(context.library) == []


def test_a_damaged_photo_is_refused_by_name(context, tmp_path: Path) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(gr.Error, match="broken.png"):
        run.start_subject(tiny_jobs(context), [*photos(tmp_path, 3), str(broken)], "my cat", 3)


def test_no_subject_starts_while_a_style_trains(context, tmp_path: Path) -> None:
    jobs = tiny_jobs(context, busy=lambda: "sepia")
    with pytest.raises(gr.Error, match="the style &#x27;sepia&#x27; is training now"):
        run.start_subject(jobs, photos(tmp_path, 3), "my cat", 3)


def test_a_tiny_run_publishes_the_subject_and_the_fuse_dropdown_picks_it(context, tmp_path: Path) -> None:
    jobs = tiny_jobs(context)
    started = view_of(run.start_subject(jobs, photos(tmp_path, 3), "my cat", 2))
    assert "my cat" in started["status"]
    with pytest.raises(gr.Error, match="is training now"):  # a second Train while it runs
        run.start_subject(jobs, photos(tmp_path / "other", 3), "my dog", 2)
    state = jobs.wait(WAIT_S)
    assert state.status == "finished", state.error
    assert [step for step, _ in state.losses] == [1, 2]
    assert state.preview is not None and state.preview_step == 2  # a 2-step run previews every step (the preview_every rule)
    values = run.poll_subject(context, jobs, started["seen"], 2)
    shown, subject, version = view_of(values[:len(run.VIEW)]), values[len(run.VIEW)], values[-1]
    assert "is in your library" in shown["status"]
    assert subject["value"] == "my cat" and "my cat" in subject["choices"]
    assert version == 3
    again = run.poll_subject(context, jobs, shown["seen"], 3)  # announced once
    assert again[-1] == gr.skip() and again[len(run.VIEW)] == gr.skip()
    record = context.library.get_style("my cat")
    assert record.adapter.kind == "subject" and len(record.pairs) == 3
    assert not any((context.library.root / "checkpoints" / "_subjects").glob("*"))


def test_cancel_leaves_the_library_as_it_was(context, tmp_path: Path) -> None:
    loaded = threading.Event()
    jobs = tiny_jobs(context, loaded=loaded)
    run.start_subject(jobs, photos(tmp_path, 3), "my cat", 1000)
    assert "Cancelling" in run.cancel_subject(jobs)
    loaded.set()
    state = jobs.wait(WAIT_S)
    assert state.status == "cancelled"
    assert "the library is unchanged" in run.status_text(state)
    assert list_subjects(context.library) == []
    assert not (context.library.root / "checkpoints" / "_subjects" / "my-cat").exists()
    assert run.cancel_subject(jobs) == gr.skip()  # nothing to cancel: a note, no error


def test_cancel_during_training_stops_at_the_next_step(context, tmp_path: Path) -> None:
    jobs = tiny_jobs(context)
    run.start_subject(jobs, photos(tmp_path, 3), "my cat", 1000)
    for _ in range(WAIT_S * 10):
        if jobs.state().step >= 1:
            break
        threading.Event().wait(0.1)
    jobs.cancel()
    state = jobs.wait(WAIT_S)
    assert state.status == "cancelled" and 1 <= state.step < 1000
    assert list_subjects(context.library) == []
    assert context.library.check_name_free("my cat", "{taken}") is None  # the name can be trained again at once
