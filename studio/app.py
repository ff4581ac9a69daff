"""The studio's page: a header and one tab per task, built without side effects until launch.

``build_studio(context)`` returns the :class:`gradio.Blocks` for a :class:`StudioContext` (the
loaded model and the open style library; nothing is served or queued at import or build time); ``launch_studio(studio, ...)`` turns on the queue and serves it, bound to
127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from engine.services.jobs import TrainingJobs
from engine.services.subject_jobs import SubjectJobs
from studio.context import StudioContext
from studio.edit_tab import build_edit_tab
from studio.fuse_tab import build_fuse_tab
from studio.library_tab import build_library_tab
from studio.train_tab import build_train_tab

TITLE = "Atelier"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
# Uploads above this are refused by the server: room for a 24 MP photo (the render cap) even as a
# 16-bit PNG, far below what would strain memory.
MAX_UPLOAD = "200mb"
HEADER = """\
# Atelier
A desktop studio for few-shot, multi-style image editing. **Edit** a photo in a style from your
library or a mix of styles, **Train** a new style from a few before/after pairs, and browse the **Library**.
"""
CSS = """
.gradio-container { max-width: 1360px !important; margin: 0 auto; }
#atelier-header h1 { margin-bottom: 0.25rem; }
#atelier-header p { margin-top: 0; }
#atelier-model { text-align: right; color: var(--body-text-color-subdued); font-size: var(--text-sm); }
/* Galleries keep square tiles in a fixed number of columns, however few items they hold
   (Gradio's grid stretches one or two items over the whole width). */
#library-gallery .grid-container, #edit-recent .grid-container {
  grid-template-rows: none !important; grid-auto-rows: max-content !important; }
#library-gallery .grid-container { grid-template-columns: repeat(3, minmax(0, 1fr)) !important; }
#edit-recent .grid-container { grid-template-columns: repeat(8, minmax(0, 1fr)) !important; }
#library-gallery .thumbnail-item, #edit-recent .thumbnail-item { aspect-ratio: 1; height: auto; }
/* Step previews fill their frame as the before/after slider does. */
#edit-preview img { width: 100%; height: 100%; object-fit: contain; }
"""


def studio_theme() -> gr.themes.Base:
    """Gradio's default look in orange, with the fonts served by Gradio itself (no network).

    Gradio ships a partial SemiBold face of Source Sans Pro, so semibold text would fall back to
    another font letter by letter; the Bold face is complete and stands in for it.
    """
    return gr.themes.Default(
        primary_hue="orange",
        secondary_hue="slate",
        font=[gr.themes.LocalFont("Source Sans Pro", weights=(400, 700)), "ui-sans-serif", "system-ui", "sans-serif"],
    )


def model_caption(model_label: str) -> str:
    """How the header names the model: a model folder by its name, anything else as given."""
    path = Path(model_label).expanduser()
    return path.name if path.is_dir() and path.name else model_label


def build_studio(context: StudioContext) -> gr.Blocks:
    """Build the studio's page over a loaded model and an open library."""
    with gr.Blocks(title=TITLE, analytics_enabled=False) as studio:
        context.make_signal()
        with gr.Row(equal_height=True):
            gr.Markdown(HEADER, elem_id="atelier-header")
            gr.Markdown(f"Model: `{model_caption(context.model_spec)}` · {context.backbone.name}<br>"
                        f"Library: `{context.library.root}`", elem_id="atelier-model")
        # One training at a time on the two cores: each runner refuses to start while the other runs.
        style_jobs = TrainingJobs(context.library, context.model_spec, busy=lambda: subject_jobs.training_name())
        subject_jobs = SubjectJobs(context.library, context.model_spec, busy=style_jobs.training_name)
        with gr.Tabs(elem_id="atelier-tabs"):
            with gr.Tab("Edit", id="edit"):
                build_edit_tab(context)
            with gr.Tab("Train", id="train"):
                build_train_tab(context, style_jobs)
            with gr.Tab("Library", id="library"):
                build_library_tab(context)
            with gr.Tab("Fuse", id="fuse"):
                build_fuse_tab(context, subject_jobs)
        # A page (re)loaded after the library changed must list the styles as they are now.
        studio.load(context.bump, context.library_version, context.library_version, queue=False, api_visibility="private")
    return studio


def launch_studio(
    studio: gr.Blocks,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    max_file_size: str | int = MAX_UPLOAD,
    **launch_kwargs,
) -> None:
    """Serve the studio with its queue on; blocks until the server stops (Ctrl+C). No share link is
    made (the studio is a desktop app), and it answers on ``host`` only (this machine by default)."""
    studio.queue(default_concurrency_limit=1)
    studio.launch(
        server_name=host,
        server_port=port,
        share=False,
        max_file_size=max_file_size,
        theme=studio_theme(),
        css=CSS,
        **launch_kwargs,
    )
