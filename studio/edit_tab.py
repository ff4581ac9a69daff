"""The Edit page: upload a photo, pick a style or mix up to three, watch the steps, compare, download.

Layout and wiring only; the handlers are in :mod:`studio.edit_run`.

* the controls take their defaults from the backbone and :class:`SamplerSettings`, and their help
  texts from the dataclass metadata, so the page and the CLI describe a setting the same way;
* the style dropdowns list the library's styles for this model and refresh when another tab
  changes the library (``context.library_version``), with no page reload;
* clicking *Edit* first checks the request with no concurrency limit, then ``.success()`` runs
  the edit in the ``edit`` queue, which training never uses, so an edit never waits for training.
"""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from engine.core.configuration import help_of
from engine.library import StyleLibrary
from engine.models.sampling.sampler import SamplerSettings
from engine.services.style_edit import MAX_MIX
from studio.context import StudioContext
from studio.edit_run import NO_STYLE, check_photo, check_request, default_setting, run_edit
from studio.messages import keeps_errors

# Edits share the backbone, so they run one at a time in their own queue.
EDIT_QUEUE = "edit"
STEPS_CEILING = 50
SEED_CEILING = 2**32 - 1
MAX_WEIGHT = 1.5
EDITABLE_KINDS = ("moe", "lora")


def photo_upload(**kwargs) -> gr.Image:
    """``gr.Image(type="filepath")`` that hands the upload to the handler unread.

    ``gr.Image`` opens every upload with Pillow before any handler runs, so a file that is no
    image (a text file named .jpg) fails inside Gradio with no message to the user. This one
    passes the uploaded file's path as it is; :func:`studio.edit_run.read_photo` reads it and says
    what is wrong. (Its own ``preprocess`` on the instance, not a subclass: Gradio writes a
    ``.pyi`` file next to the module of every component class defined.)
    """
    image = gr.Image(type="filepath", **kwargs)
    as_gradio_reads_it = image.preprocess

    def preprocess(payload):
        if payload is not None and payload.path and not (payload.url or "").startswith("data:"):
            return str(payload.path)
        return as_gradio_reads_it(payload)

    image.preprocess = preprocess
    return image


def style_choices(library: StyleLibrary, backbone_name: str) -> list[str]:
    """The styles an edit on ``backbone_name`` can use, after the 'None' choice."""
    names = [record.name for record in library.list_styles()
             if record.backbone == backbone_name and record.adapter.kind in EDITABLE_KINDS]
    return [NO_STYLE] + names


def refreshed_dropdowns(context: StudioContext, *values: str | None) -> list[dict]:
    """New choices for every style dropdown, keeping each pick that still exists."""
    choices = style_choices(context.library, context.backbone.name)
    return [gr.update(choices=choices, value=value if value in choices else NO_STYLE) for value in values]


def build_edit_tab(context: StudioContext) -> None:
    """Lay out the Edit page inside the current Blocks context and wire its events."""
    backbone = context.backbone
    choices = style_choices(context.library, backbone.name)
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=320):
            # The photo 200 px tall and no help line under the first style: Edit stays in view at
            # 1280x720, so pressing it never needs a scroll that takes the tabs and status off-screen.
            photo = photo_upload(label="Photo", sources=["upload", "clipboard"], height=200, elem_id="edit-photo")
            # What is wrong with the photo or the request, next to the photo, until the next action.
            message = gr.Markdown("", elem_id="edit-message")
            style_rows, style_inputs, dropdowns = [], [], []
            for index in range(MAX_MIX):
                with gr.Row(visible=index == 0, equal_height=True) as row:
                    dropdown = gr.Dropdown(
                        label="Style" if index == 0 else f"Mix in style {index + 1}",
                        choices=choices, value=choices[1] if index == 0 and len(choices) > 1 else NO_STYLE,
                        scale=3, elem_id=f"edit-style-{index + 1}",
                    )
                    weight = gr.Slider(label="Weight", minimum=0.0, maximum=MAX_WEIGHT, step=0.05, value=1.0,
                                       scale=2, min_width=140, elem_id=f"edit-weight-{index + 1}")
                style_rows.append(row)
                dropdowns.append(dropdown)
                style_inputs += [dropdown, weight]
            add_style = gr.Button("+ Mix in another style", size="sm", variant="secondary", elem_id="edit-add-style")
            shown_rows = gr.State(1)
            choices_of_prompt = backbone.prompt_choices()
            if choices_of_prompt is None:
                prompt = gr.Textbox(label="Prompt", info="Used when no style is picked.",
                                    placeholder="What to change, e.g. 'make it a watercolour'", elem_id="edit-prompt")
            else:
                prompt = gr.Dropdown(label="Instruction (without a style)", choices=choices_of_prompt, value=choices_of_prompt[0],
                                     info="What the base model does when the style is 'None'; 'identity' reproduces the photo.",
                                     elem_id="edit-prompt")
            edit = gr.Button("Edit", variant="primary", size="lg", elem_id="edit-run")
            with gr.Accordion("Settings", open=False, elem_id="edit-settings"):
                # 0 by default, so a style's chosen steps (its render settings) apply unless set here.
                steps = gr.Slider(label="Steps", info=help_of(SamplerSettings, "steps"), minimum=0,
                                  maximum=max(STEPS_CEILING, 2 * backbone.default_steps), step=1,
                                  value=0, elem_id="edit-steps")
                seed = gr.Number(label="Seed", info=help_of(SamplerSettings, "seed"), value=default_setting("seed"),
                                 minimum=0, maximum=SEED_CEILING, precision=0, elem_id="edit-seed")
                strength = gr.Slider(label="Strength", info=help_of(SamplerSettings, "strength"), minimum=0.05,
                                     maximum=1.0, step=0.05, value=default_setting("strength"), elem_id="edit-strength")
                noise_scale = gr.Slider(label="Noise scale", minimum=0.0, maximum=1.0, step=0.05, value=backbone.edit_noise_scale,
                                        info="Scale of the starting noise: 0 gives the same result for every seed; "
                                             "1 is standard sampling, where the seed matters.", elem_id="edit-noise-scale")
        with gr.Column(scale=3, min_width=360):
            status = gr.Markdown("Upload a photo, pick a style, then press **Edit**.", elem_id="edit-status")
            preview = gr.Image(label="Live preview", type="pil", interactive=False, visible=False, height=420,
                               buttons=[], elem_id="edit-preview")
            comparison = gr.ImageSlider(label="Before / after", type="filepath", interactive=False,
                                        max_height=420, buttons=["fullscreen"], elem_id="edit-comparison")
            download = gr.DownloadButton("Download result (PNG)", visible=False, elem_id="edit-download")
            recent = gr.State([])
            gallery = gr.Gallery(label="Recent results", columns=8, rows=1, height=130, allow_preview=False, preview=False,
                                 object_fit="cover", elem_id="edit-recent")

    def show_next_row(shown: int):
        shown = min(shown + 1, MAX_MIX)
        return [shown, *[gr.update(visible=index < shown) for index in range(MAX_MIX)], gr.update(visible=shown < MAX_MIX)]

    add_style.click(show_next_row, shown_rows, [shown_rows, *style_rows, add_style], queue=False, api_visibility="private")

    def edit_handler(recent_value, photo_path, prompt_value, steps_value, seed_value, strength_value, noise_scale_value,
                     *styles_and_weights):
        yield from run_edit(context.editor, Path(context.output_folder), recent_value, photo_path, prompt_value,
                            steps_value, seed_value, strength_value, noise_scale_value, *styles_and_weights)

    photo.change(check_photo, photo, message, concurrency_limit=None, show_progress="hidden", api_visibility="private")

    def check_handler(*values):
        return (*check_request(*values), "")

    edit.click(
        keeps_errors(check_handler, outputs=3, at=2, title="Cannot edit"), [photo, steps, seed, strength, noise_scale, *style_inputs],
        [status, download, message], concurrency_limit=None, show_progress="hidden", api_visibility="private",
    ).success(
        # A failure while editing stays in the status above the result.
        keeps_errors(edit_handler, outputs=6, at=2, title="Edit failed"),
        [recent, photo, prompt, steps, seed, strength, noise_scale, *style_inputs],
        [preview, comparison, status, download, recent, gallery],
        concurrency_limit=1, concurrency_id=EDIT_QUEUE, show_progress="minimal", api_name="edit",
    )
    if context.library_version is not None:
        context.library_version.change(lambda *values: refreshed_dropdowns(context, *values), dropdowns, dropdowns,
                                       queue=False, api_visibility="private")
