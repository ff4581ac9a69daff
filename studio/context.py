"""What every tab of the studio shares: the loaded model, the style library and the cross-tab
signal that says the library changed.

Tabs are built by ``build_<name>_tab(context)`` inside the page's Blocks. A tab that changes the
library (Train, Library, Fuse) ends its event chain by bumping ``context.library_version``
(``.success(context.bump, context.library_version, context.library_version)``); a tab that shows library content
(the Edit tab's style dropdowns, the Library gallery) listens to ``library_version.change`` and
refreshes, so a new style appears everywhere without a page reload.
"""

from __future__ import annotations

import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr

from engine.library import StyleLibrary
from engine.models.backbones.base import Backbone
from engine.models.backbones.registry import load_backbone
from engine.services.style_edit import StyleEditor


@dataclass
class StudioContext:
    """The state the studio's tabs share (one per served page, built by :func:`new_context`)."""

    backbone: Backbone  # the model edits run on; guarded by ``editor``'s lock while styles are folded
    model_spec: str  # how to load another copy of the model (training, exports): 'embedded', a folder or a hub id
    library: StyleLibrary
    editor: StyleEditor
    output_folder: Path  # results and exports for downloads; lives as long as the process
    library_version: gr.Number | None = None  # the cross-tab signal, made inside the Blocks by ``make_signal``
    _results: tempfile.TemporaryDirectory = field(default=None, repr=False)  # type: ignore[assignment]
    _workshop: Backbone | None = field(default=None, repr=False)
    workshop_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def workshop(self) -> Backbone:
        """A second copy of the model for library work (exports, deletions, imports), loaded on
        first use: loading the shared MoE adapter wraps a model's layers, and the editing model
        must never be wrapped by anything but the editor. Hold ``workshop_lock`` while using it."""
        if self._workshop is None:
            self._workshop = load_backbone(self.model_spec, dtype=self.backbone.dtype)
        return self._workshop

    def make_signal(self) -> gr.Number:
        """Create the hidden library-changed signal; call once inside the page's Blocks."""
        self.library_version = gr.Number(value=0, visible=False, elem_id="library-version")
        return self.library_version

    @staticmethod
    def bump(version: float | None) -> float:
        """The next value of the library-changed signal (its ``.change`` then fires)."""
        return float(version or 0) + 1


def new_context(backbone: Backbone, model_spec: str, library: StyleLibrary, workshop: Backbone | None = None) -> StudioContext:
    """A context over an open library; results go to a temporary folder removed at exit.
    ``workshop`` is the second model copy, when already loaded (else loaded on first use)."""
    results = tempfile.TemporaryDirectory(prefix="atelier-results-")
    return StudioContext(backbone=backbone, model_spec=model_spec, library=library, editor=StyleEditor(backbone, library),
                         output_folder=Path(results.name), _results=results, _workshop=workshop)
