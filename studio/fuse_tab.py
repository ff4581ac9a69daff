"""The Fuse page: a subject LoRA and a style LoRA from the library, blended without training.

Pick the two, generate or edit a photo, choose the method (EST-LoRA by default; K-LoRA, merge, or
one side alone) and its sliders, and watch the steps; **Compare** renders EST-LoRA, K-LoRA and
merge side by side with the same seed. Favourite settings are saved as presets in the library.
Layout and wiring only; the handlers are in :mod:`studio.fuse_run`. Fusions queue under their own
concurrency id, so they never hold an edit up.
"""

from __future__ import annotations

from functools import partial

import gradio as gr

from engine.core.configuration import help_of
from engine.fusion import FusionConfig
from engine.fusion.config import METHODS
from engine.services.subject_jobs import SubjectJobs
from studio import fuse_run
from studio.context import StudioContext
from studio.messages import keeps_errors
from studio.subject_train_tab import build_subject_training

FUSE_QUEUE = "fuse"
PRIVATE = {"api_visibility": "private"}


def build_fuse_tab(context: StudioContext, subject_jobs: SubjectJobs | None = None) -> None:
    """Lay out the Fuse page inside the current Blocks context and wire its events; the *Train a
    subject* section below it trains with ``subject_jobs`` (made over the context unless given)."""
    subjects, styles = fuse_run.choices(context, fuse_run.SUBJECT_KINDS), fuse_run.choices(context, fuse_run.STYLE_KINDS)
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=320):
            with gr.Row():
                subject = gr.Dropdown(label="Subject", choices=subjects, value=subjects[0] if subjects else None,
                                      info="A subject LoRA (train one under **Train a subject** below) or an imported LoRA.",
                                      elem_id="fuse-subject")
                style = gr.Dropdown(label="Style", choices=styles, value=styles[0] if styles else None,
                                    info="A style from your library.", elem_id="fuse-style")
            mode = gr.Radio([fuse_run.GENERATE, fuse_run.EDIT], value=fuse_run.GENERATE, label="Mode", elem_id="fuse-mode")
            # The buttons come before the sliders so that they are in view at 1280x720.
            with gr.Row():
                run = gr.Button("Fuse", variant="primary", elem_id="fuse-run")
                compare = gr.Button("Compare EST · K-LoRA · merge", elem_id="fuse-compare")
            photo = gr.Image(label="Photo to edit", type="filepath", sources=["upload", "clipboard"], height=200,
                             visible=False, elem_id="fuse-photo")
            method = gr.Radio([(fuse_run.METHOD_LABELS[name], name) for name in METHODS], value="est", label="Method",
                              info=help_of(FusionConfig, "method"), elem_id="fuse-method")
            alpha = gr.Slider(0.0, 4.0, value=1.5, step=0.05, label="α (time weight)", info=help_of(FusionConfig, "alpha"), elem_id="fuse-alpha")
            style_bias = gr.Slider(-1.0, 1.0, value=0.0, step=0.05, label="Style bias", info=help_of(FusionConfig, "style_bias"),
                                   elem_id="fuse-style-bias")
            with gr.Row():
                subject_scale = gr.Slider(0.0, 2.0, value=1.0, step=0.05, label="Subject scale", elem_id="fuse-subject-scale")
                style_scale = gr.Slider(0.0, 2.0, value=1.0, step=0.05, label="Style scale", elem_id="fuse-style-scale")
            union_layers = gr.Checkbox(False, label="Allow LoRAs on different layers (layers='union')",
                                       info=help_of(FusionConfig, "layers"), elem_id="fuse-union-layers")
            with gr.Row():
                seed = gr.Number(label="Seed", value=0, precision=0, minimum=0, elem_id="fuse-seed")
                steps = gr.Slider(1, 50, value=context.backbone.steps_for(edit=False), step=1, label="Steps", elem_id="fuse-steps")
            with gr.Accordion("Presets", open=False, elem_id="fuse-presets"):
                with gr.Row(equal_height=True):
                    preset_name = gr.Textbox(label="Save these settings as", scale=3, elem_id="fuse-preset-name")
                    save = gr.Button("Save", scale=1, min_width=90, elem_id="fuse-preset-save")
                with gr.Row(equal_height=True):
                    preset = gr.Dropdown(label="Saved presets", choices=fuse_run.preset_names(context), scale=3, elem_id="fuse-preset")
                    load = gr.Button("Load", scale=1, min_width=90, elem_id="fuse-preset-load")
        with gr.Column(scale=3, min_width=360):
            status = gr.Markdown("Pick a subject and a style, then press **Fuse**.", elem_id="fuse-status")
            preview = gr.Image(label="Live preview", type="pil", interactive=False, visible=False, height=300, elem_id="fuse-preview")
            result = gr.Image(label="Result", type="pil", interactive=False, height=300, format="png", elem_id="fuse-result")
            compared = gr.Gallery(label="Side by side (same seed)", columns=3, height=260, object_fit="contain", elem_id="fuse-compare-gallery")
    # Below the page's two columns, so Fuse stays in view at 1280x720; open when there is no subject yet.
    build_subject_training(context, subject, subject_jobs, open_=not subjects)

    mode.change(lambda chosen: gr.update(visible=chosen == fuse_run.EDIT), mode, photo, queue=False, **PRIVATE)
    settings = [subject, style, mode, photo]
    sliders = [alpha, style_bias, subject_scale, style_scale, seed, steps, union_layers]
    run.click(keeps_errors(partial(fuse_run.run_fusion, context), outputs=3, at=2, title="Cannot fuse"), [*settings, method, *sliders], [preview, result, status],
              concurrency_limit=1, concurrency_id=FUSE_QUEUE, show_progress="minimal", **PRIVATE)
    compare.click(keeps_errors(partial(fuse_run.run_compare, context), outputs=2, at=1, title="Cannot compare"), [*settings, *sliders], [compared, status],
                  concurrency_limit=1, concurrency_id=FUSE_QUEUE, show_progress="minimal", **PRIVATE)
    preset_values = [subject, style, mode, method, alpha, style_bias, subject_scale, style_scale, seed, steps, union_layers]
    version = context.library_version

    def save_handler(name, version_value, *values):
        return fuse_run.save_preset(context, name, version_value, *values)

    save.click(keeps_errors(save_handler, outputs=3, at=1, title="Cannot save the preset"), [preset_name, version, *preset_values], [preset, status, version], **PRIVATE)
    load.click(keeps_errors(partial(fuse_run.load_preset, context), outputs=len(preset_values) + 1, at=len(preset_values),
                            title="Cannot load the preset"),
               preset, [*preset_values, status], concurrency_limit=None, show_progress="hidden", **PRIVATE)
    if version is not None:
        version.change(partial(fuse_run.refreshed, context), [subject, style, preset], [subject, style, preset],
                       queue=False, **PRIVATE)
