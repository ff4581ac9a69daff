"""The Library page's handlers, called as the page calls them, on a tiny model and library."""

from __future__ import annotations

import zipfile
from dataclasses import replace
from pathlib import Path

import gradio as gr
import pytest
import torch
from safetensors.torch import save_file

from engine.adapters.lora.files import read_lora_file
from engine.rendering.full_resolution import RenderSettings
from engine.rendering.render_choice import GUIDED_CANDIDATES
from studio import library_run
from studio.app import build_studio
from tests.studio.studio_fixtures import styled_context


@pytest.fixture()
def context(tmp_path: Path):
    with styled_context(tmp_path, ["ink", "sepia"]) as studio_context:
        yield studio_context


def select(context, name: str):
    names = library_run.gallery_items(context, "")[1]
    return library_run.select_style(context, names, gr.SelectData(None, {"index": names.index(name), "value": None}))


def test_the_page_builds_with_the_gallery_of_styles(context) -> None:
    studio = build_studio(context)
    found = {block.elem_id: block for block in studio.blocks.values() if getattr(block, "elem_id", None)}
    for elem_id in ("library-gallery", "library-search", "library-details", "library-rename-name", "library-rename",
                    "library-delete", "library-delete-confirm", "library-export-lora", "library-export-zip",
                    "library-import-file", "library-import-name", "library-import", "library-status"):
        assert elem_id in found, elem_id
    assert [item["caption"] for item in found["library-gallery"].value] == ["ink", "sepia"]


def test_search_and_details(context) -> None:
    update, names, count = library_run.refresh(context, "sep")
    assert names == ["sepia"] and "1 style(s)" in count
    selected, details, pairs, name, description, trigger, manage = select(context, "ink")
    assert selected == "ink" and "ink look" in details and "held-out pairs" in details
    assert len(pairs["value"]) == 4 and pairs["visible"] and manage["visible"] is True  # two pairs, before and after each
    assert (name, description, trigger) == ("ink", "ink look", "in ink style")


def test_the_render_menu_shows_the_styles_render_and_sets_it_by_hand(context) -> None:
    studio = build_studio(context)
    found = {block.elem_id: block for block in studio.blocks.values() if getattr(block, "elem_id", None)}
    assert "library-render" in found and "library-set-render" in found
    shown = library_run.current_render(context, "ink")[0]
    assert shown["value"] == "guided, radius 2, ε 0.001" and shown["value"] in shown["choices"]
    assert "resize (bicubic upscaling)" in shown["choices"] and library_run.TILED_OPTION in shown["choices"]
    assert len(shown["choices"]) == len(GUIDED_CANDIDATES) + 2  # every guided candidate, tiled and resize
    assert "guided, radius 2, ε 0.001, leaning flat" in shown["choices"]
    details, status, version = library_run.set_render(context, "ink", "guided, radius 4, ε 0.001, detail 0.5", 7)
    assert version == 8 and "now reaches the photo's size" in status and "(set by hand)" in details
    settings = context.library.get_style("ink").render_settings
    assert (settings.guided_radius, settings.guided_epsilon, settings.guided_detail) == (4, 1e-3, 0.5)
    assert library_run.current_render(context, "ink")[0]["value"] == "guided, radius 4, ε 0.001, detail 0.5"
    assert context.library.get_style("sepia").render is None  # the other style is untouched
    with pytest.raises(gr.Error, match="pick one of the render settings"):
        library_run.set_render(context, "ink", "sharpest", 8)


def test_the_tiled_entry_keeps_the_styles_guided_settings_and_shows_them(context) -> None:
    library_run.set_render(context, "ink", "guided, radius 4, ε 0.001, detail 0.5", 1)
    details, status, _ = library_run.set_render(context, "ink", library_run.TILED_OPTION, 2)
    settings = context.library.get_style("ink").render_settings
    assert (settings.render, settings.guided_radius, settings.guided_detail) == ("tiled", 4, 0.5)
    assert "tiled at 3 working sides" in status and "radius 4" in status
    shown = library_run.current_render(context, "ink")[0]
    assert shown["value"].startswith("tiled at 3 working sides") and shown["value"] in shown["choices"]
    library_run.set_render(context, "ink", "resize (bicubic upscaling)", 3)
    library_run.set_render(context, "ink", library_run.TILED_OPTION, 4)
    assert context.library.get_style("ink").render_settings == RenderSettings(render="tiled")
    with pytest.raises(gr.Error, match="Pick a style"):
        library_run.set_render(context, None, "resize (bicubic upscaling)", 8)


def test_every_menu_entry_keeps_the_styles_chosen_sampling_steps(context) -> None:
    context.library.set_render("ink", RenderSettings("guided", 4, 1e-3, 1.0, edit_steps=4))
    shown = library_run.current_render(context, "ink")[0]
    assert shown["value"] == "guided, radius 4, ε 0.001, 4 sampling steps" and shown["value"] in shown["choices"]
    for label in ("guided, radius 1, ε 0.0001", library_run.TILED_OPTION, "resize (bicubic upscaling)"):
        library_run.set_render(context, "ink", label, 1)
        assert context.library.get_style("ink").render_settings.edit_steps == 4, label


def test_rename_save_and_every_change_bumps_the_signal(context) -> None:
    selected, details, status, version = library_run.rename_style(context, "ink", "ink wash", 3)
    assert selected == "ink wash" and version == 4 and "Renamed" in status
    details, status, version = library_run.save_details(context, "ink wash", "soft <b>washes</b>", "wash", 4)
    assert "soft &lt;b&gt;washes&lt;/b&gt;" in details and version == 5
    with pytest.raises(gr.Error, match="already"):
        library_run.rename_style(context, "ink wash", "sepia", 5)
    with pytest.raises(gr.Error, match="Pick a style"):
        library_run.rename_style(context, None, "x", 5)
    for unsafe in ("../ink", "a/b", "", "   "):
        with pytest.raises(gr.Error):
            library_run.rename_style(context, "ink wash", unsafe, 5)
    assert [record.name for record in context.library.list_styles()] == ["ink wash", "sepia"]
    assert library_run.refresh(context, "wash")[1] == ["ink wash"]


def test_exports_give_a_lora_file_and_a_style_zip(context) -> None:
    download, status = library_run.export_style(context, "sepia", as_zip=False)
    layers = read_lora_file(download["value"], context.backbone)
    assert layers and "exact" in status
    download, _ = library_run.export_style(context, "sepia", as_zip=True)
    assert zipfile.is_zipfile(download["value"])


def test_delete_needs_a_confirmation_and_leaves_the_other_style(context) -> None:
    confirm_row, question, status = library_run.ask_delete("ink")
    assert confirm_row["visible"] is True and "Delete" in question and status == ""
    assert [record.name for record in context.library.list_styles()] == ["ink", "sepia"]
    steps = list(library_run.delete_style(context, "ink", 1))
    assert len(steps) == 1 and steps[0][-1] == 2 and "Deleted" in steps[0][-2]
    assert [record.name for record in context.library.list_styles()] == ["sepia"]
    with pytest.raises(gr.Error, match="ink"):
        list(library_run.delete_style(context, "ink", 2))


def test_a_deletion_waits_for_the_running_edit_and_says_so(context) -> None:
    context.editor.lock.acquire()  # as an edit in progress holds it
    steps = library_run.delete_style(context, "ink", 1)
    waiting = next(steps)
    assert "edit is running" in waiting[-2] and waiting[0] == gr.update()
    assert [record.name for record in context.library.list_styles()] == ["ink", "sepia"]  # nothing changed under the edit
    context.editor.lock.release()  # the edit finishes
    deleted = next(steps)
    assert "Deleted" in deleted[-2] and deleted[-1] == 2
    assert [record.name for record in context.library.list_styles()] == ["sepia"]
    assert not context.editor.lock.locked()


def test_a_bad_zip_is_named_as_the_user_chose_it_with_advice_that_fits(context, tmp_path: Path) -> None:
    # Gradio hands the handler a temporary copy of the upload that keeps the file's own name.
    upload = tmp_path / "gradio" / "3f9c2a7e1b" / "fake.zip"
    upload.parent.mkdir(parents=True)
    upload.write_bytes(b"this is a text file renamed to .zip")
    with pytest.raises(gr.Error) as caught:
        library_run.import_file(context, str(upload), None, "", "", 0)
    message = caught.value.message
    assert message == "fake.zip is not a zip file; choose a style .zip exported from Atelier"
    # A zip that is not a style (no style.json): the same name and advice.
    with zipfile.ZipFile(upload, "w") as handle:
        handle.writestr("notes.txt", "hello")
    with pytest.raises(gr.Error) as caught:
        library_run.import_file(context, str(upload), None, "", "", 0)
    message = caught.value.message
    assert message.startswith("fake.zip has no style.json") and message.endswith("choose a style .zip exported from Atelier")
    assert str(tmp_path) not in message and "gradio" not in message


def test_imports_refuse_wrong_files_and_take_a_lora(context, tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(gr.Error, match="not a style zip or a LoRA"):
        library_run.import_file(context, str(text), "x", "", "", 0)
    corrupt = tmp_path / "broken.zip"
    corrupt.write_bytes(b"PK not really")
    with pytest.raises(gr.Error, match="not a zip file"):
        library_run.import_file(context, str(corrupt), None, "", "", 0)
    with pytest.raises(gr.Error, match="No file|Choose"):
        library_run.import_file(context, None, "x", "", "", 0)
    modules = dict(context.backbone.transformer.named_modules())
    linear = modules["transformer_blocks.0.attn.to_q"]
    lora = tmp_path / "outside.safetensors"
    save_file({"transformer.transformer_blocks.0.attn.to_q.lora_A.weight": torch.randn(2, linear.in_features),
               "transformer.transformer_blocks.0.attn.to_q.lora_B.weight": torch.randn(linear.out_features, 2)}, str(lora))
    with pytest.raises(gr.Error, match="name"):
        library_run.import_file(context, str(lora), "", "", "", 0)
    status, version = library_run.import_file(context, str(lora), "outside", "made elsewhere", "xyz", 0)
    assert "Imported" in status and version == 1
    assert context.library.get_style("outside").adapter.kind == "lora"
    with pytest.raises(gr.Error, match="\\.\\./"):
        library_run.import_file(context, str(lora), "../up", "", "", 1)


def test_an_imported_kohya_lora_shows_with_its_thumbnail_and_edits(context, tmp_path: Path) -> None:
    from PIL import Image

    from tests.services.test_style_ops import kohya_lora

    path, _ = kohya_lora(tmp_path / "kohya.safetensors", context.backbone)
    status, version = library_run.import_file(context, str(path), "kohya look", "from kohya_ss", "kh", 4)
    assert "kohya look" in status and version == 5
    items, names = library_run.gallery_items(context, "kohya")
    assert names == ["kohya look"] and Path(items[0][0]).is_file()  # the sample photo edited with it
    _, details, pairs, *_ = select(context, "kohya look")
    assert "imported LoRA" in details and pairs["value"] == [] and pairs["visible"] is False
    photo = Image.new("RGB", (40, 32), (120, 60, 30))
    assert context.editor.edit(photo, {"kohya look": 1.0}).tobytes() != context.editor.edit(photo, {}).tobytes()
    with pytest.raises(gr.Error, match="already"):
        library_run.import_file(context, str(path), "Kohya Look", "", "", 5)


def test_a_subject_has_no_render_menu(context, monkeypatch: pytest.MonkeyPatch) -> None:
    record = context.library.get_style("ink")
    subject = replace(record, adapter=replace(record.adapter, kind="subject"))
    monkeypatch.setattr(context.library, "get_style", lambda name: subject if name == "cat" else record)
    menu, row = library_run.current_render(context, "cat")
    assert row["visible"] is False and menu["value"] is None
    assert "Full-size render" not in library_run.details_markdown(subject)
    assert "Full-size render" in library_run.details_markdown(record)
    assert library_run.current_render(context, "ink")[1]["visible"] is True
