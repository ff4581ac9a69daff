"""The Library page: browse and search the styles, see one in full, rename it, edit its
description, trigger and full-size render, export it (LoRA file or style zip), delete it (after a confirmation),
and import a style zip or an external LoRA file.

Layout and wiring only; the handlers are in :mod:`studio.library_run`. The gallery refreshes
whenever any tab changes the library (``context.library_version``); every change made here bumps
that signal, so the Edit tab's style lists follow without a page reload.
"""

from __future__ import annotations

from functools import partial

import gradio as gr

from studio import library_run
from studio.context import StudioContext
from studio.messages import keeps_errors

PRIVATE = {"api_visibility": "private"}
# After "Delete…": bring the question and its buttons into view if the page cut them off (once drawn).
SHOW_QUESTION = ("() => { setTimeout(() => document.querySelector('#library-delete-row')"
                 "?.scrollIntoView({block: 'nearest', behavior: 'instant'}), 50); }")


def build_library_tab(context: StudioContext) -> None:
    """Lay out the Library page inside the current Blocks context and wire its events."""
    items, names = library_run.gallery_items(context, "")
    selected = gr.State(None)
    shown_names = gr.State(names)
    with gr.Row(equal_height=False):
        with gr.Column(scale=3, min_width=320):
            search = gr.Textbox(label="Search", placeholder="Type part of a name, description or trigger", elem_id="library-search")
            count = gr.Markdown(f"{len(names)} style(s) in `{context.library.root}`", elem_id="library-count")
            gallery = gr.Gallery(value=items, label="Styles", columns=3, height=440, object_fit="cover",
                                 allow_preview=False, elem_id="library-gallery")
            with gr.Accordion("Import a style", open=False, elem_id="library-import-section"):
                import_file = gr.File(label="A style .zip, or a LoRA .safetensors (diffusers/peft or kohya keys)",
                                      file_types=[".zip", ".safetensors"], type="filepath", height=110, elem_id="library-import-file")
                import_name = gr.Textbox(label="Name", info="Needed for a LoRA file; a zip keeps its own name if empty.",
                                         elem_id="library-import-name")
                with gr.Row():
                    import_description = gr.Textbox(label="Description", elem_id="library-import-description")
                    import_trigger = gr.Textbox(label="Trigger", elem_id="library-import-trigger")
                import_button = gr.Button("Import", variant="secondary", elem_id="library-import")
        with gr.Column(scale=4, min_width=360):
            status = gr.Markdown("", elem_id="library-status")
            details = gr.Markdown("Pick a style in the gallery.", elem_id="library-details")
            pairs = gr.Gallery(label="Pairs (before, after)", columns=6, height=220, object_fit="contain",
                               allow_preview=True, elem_id="library-pairs")
            with gr.Column(visible=False, elem_id="library-manage") as manage:
                with gr.Row(equal_height=True):
                    new_name = gr.Textbox(label="Name", scale=3, elem_id="library-rename-name")
                    rename = gr.Button("Rename", scale=1, min_width=110, elem_id="library-rename")
                with gr.Row(equal_height=True):
                    description = gr.Textbox(label="Description", scale=3, elem_id="library-description")
                    trigger = gr.Textbox(label="Trigger", scale=2, elem_id="library-trigger")
                    save = gr.Button("Save", scale=1, min_width=90, elem_id="library-save")
                # Only styles have a full-size render: a subject is drawn, not carried onto a photo.
                with gr.Row(equal_height=True, elem_id="library-render-row") as render_row:
                    render = gr.Dropdown(label="Full-size render", choices=library_run.render_options(), scale=3,
                                         info="How edits reach the photo's size; training chose one from the style's pairs.",
                                         elem_id="library-render")
                    set_render = gr.Button("Set render", scale=1, min_width=110, elem_id="library-set-render")
                with gr.Row():
                    export_lora = gr.Button("Export LoRA file", elem_id="library-export-lora")
                    export_zip = gr.Button("Export style zip", elem_id="library-export-zip")
                    delete = gr.Button("Delete…", variant="stop", elem_id="library-delete")
                # The question and its answers together, right under "Delete…", where the user clicked.
                with gr.Group(visible=False, elem_id="library-delete-row") as confirm_row:
                    question = gr.Markdown("", elem_id="library-delete-question")
                    with gr.Row():
                        confirm = gr.Button("Confirm delete", variant="stop", elem_id="library-delete-confirm")
                        keep = gr.Button("Keep it", elem_id="library-delete-cancel")
                download = gr.File(label="Exported file", visible=False, interactive=False, elem_id="library-download")

    version = context.library_version
    search.change(partial(library_run.refresh, context), search, [gallery, shown_names, count], queue=False, **PRIVATE)
    if version is not None:
        version.change(partial(library_run.refresh, context), search, [gallery, shown_names, count], queue=False, **PRIVATE)
    def select(names: list[str], event: gr.SelectData):
        # A new selection also drops a pending delete confirmation and the last style's download,
        # so "Confirm delete" only ever deletes the style it asked about.
        return (*library_run.select_style(context, names, event), gr.update(visible=False), gr.update(value=None, visible=False), "")

    gallery.select(select, shown_names,
                   [selected, details, pairs, new_name, description, trigger, manage, confirm_row, download, status], **PRIVATE,
                   ).then(partial(library_run.current_render, context), selected, [render, render_row], queue=False, **PRIVATE)
    set_render.click(keeps_errors(partial(library_run.set_render, context), outputs=3, at=1, title="Cannot set the render"),
                     [selected, render, version], [details, status, version], **PRIVATE,
                     ).success(partial(library_run.current_render, context), selected, [render, render_row], queue=False, **PRIVATE)
    rename.click(keeps_errors(partial(library_run.rename_style, context), outputs=4, at=2, title="Cannot rename"), [selected, new_name, version], [selected, details, status, version], **PRIVATE)
    save.click(keeps_errors(partial(library_run.save_details, context), outputs=3, at=1, title="Cannot save"), [selected, description, trigger, version], [details, status, version], **PRIVATE)
    export_lora.click(keeps_errors(partial(library_run.export_style, context, as_zip=False), outputs=2, at=1, title="Cannot export"), selected, [download, status],
                      concurrency_id="library", **PRIVATE)
    export_zip.click(keeps_errors(partial(library_run.export_style, context, as_zip=True), outputs=2, at=1, title="Cannot export"), selected, [download, status],
                     concurrency_id="library", **PRIVATE)
    delete.click(
        keeps_errors(library_run.ask_delete, outputs=3, at=2, title="Cannot delete"), selected, [confirm_row, question, status],
        concurrency_limit=None, show_progress="hidden", **PRIVATE,
    ).success(None, js=SHOW_QUESTION, **PRIVATE)
    keep.click(lambda: (gr.update(visible=False), "Kept."), None, [confirm_row, status], queue=False, **PRIVATE)
    confirm.click(keeps_errors(partial(library_run.delete_style, context), outputs=7, at=5, title="Cannot delete"), [selected, version],
                  [selected, details, pairs, manage, confirm_row, status, version], concurrency_id="library", **PRIVATE)
    import_button.click(keeps_errors(partial(library_run.import_file, context), outputs=2, at=0, title="Cannot import"),
                        [import_file, import_name, import_description, import_trigger, version], [status, version],
                        concurrency_id="library", **PRIVATE)
