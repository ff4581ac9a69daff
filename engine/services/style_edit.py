"""Editing with styles from the library: one style, or a weighted mix of several.

The library's shared MoE adapter is loaded once per file version (keyed by its checksum) and
stays wrapped around the backbone; a style mix is folded into the base weights for the edit
(:meth:`MoELoraAdapter.folded`), so a styled edit costs what a plain edit costs. An imported
plain LoRA (kind ``lora``) is folded the same way (:class:`engine.adapters.lora.patch.LoraPatch`),
on its own: mixing takes the styles of the shared adapter.
"""

from __future__ import annotations

import threading
from typing import Mapping

from PIL import Image

from engine.adapters.lora.files import read_lora_file
from engine.adapters.lora.patch import LoraPatch
from engine.adapters.moe.adapter import MoELoraAdapter
from engine.core.errors import InputError
from engine.library import StyleLibrary
from engine.models.backbones.base import Backbone
from engine.models.editing import PreviewCallback
from engine.models.sampling.sampler import SamplerSettings
from engine.rendering.full_resolution import RenderSettings
from engine.rendering.tiling import edit_for_render

MAX_MIX = 3


class StyleEditor:
    """Edits photos with library styles on one backbone. Thread-safe: edits take a lock, since
    folding changes the backbone's weights for the duration of an edit."""

    def __init__(self, backbone: Backbone, library: StyleLibrary) -> None:
        self.backbone, self.library = backbone, library
        self._adapter: MoELoraAdapter | None = None
        self._adapter_sha256: str | None = None
        self._folded_mix: dict[str, float] | None = None  # kept folded while the same mix is asked for again
        self._lora: tuple[str, float, LoraPatch] | None = None  # an imported LoRA folded in: (sha256, weight, patch)
        self._lock = threading.Lock()

    @property
    def lock(self) -> threading.Lock:
        """Held for the whole of an edit; hold it to change the library's files under a running edit."""
        return self._lock

    def _adapter_for(self, sha256: str, path) -> MoELoraAdapter:
        if self._adapter_sha256 != sha256:
            if self._adapter is not None:
                self._adapter.remove()
                self._adapter, self._folded_mix = None, None
            self._adapter = MoELoraAdapter.load(path, self.backbone)
            self._adapter_sha256 = sha256
        return self._adapter

    def _checked(self, mix: Mapping[str, float]) -> tuple[dict[str, float], list]:
        """The mix without zero weights and its records, or InputError for a mix that cannot edit."""
        mix = {name: float(weight) for name, weight in mix.items() if float(weight) != 0.0}
        if len(mix) > MAX_MIX:
            raise InputError(f"a mix takes at most {MAX_MIX} styles; got {len(mix)}")
        records = [self.library.get_style(name) for name in mix]
        for record in records:
            if record.backbone != self.backbone.name:
                raise InputError(f"style {record.name!r} was trained for {record.backbone}, not {self.backbone.name}")
            if record.adapter.kind == "lora" and len(records) > 1:
                raise InputError(f"style {record.name!r} is an imported LoRA, which edits on its own; mixing takes styles trained in Atelier")
            if record.adapter.kind not in ("moe", "lora"):
                raise InputError(f"{record.name!r} is a {record.adapter.kind}, not a style; pick a style to edit with")
        if len({record.adapter.sha256 for record in records}) > 1:
            raise InputError("these styles live in different adapter files and cannot be mixed; retrain one into the shared adapter")
        return mix, records

    def resolve(self, mix: Mapping[str, float]) -> tuple[MoELoraAdapter | None, dict[str, float]]:
        """Check a mix of style names and weights; return the adapter and the mix by expert key
        (``(None, {})`` for no style, or for an imported LoRA, which is not in the shared adapter)."""
        mix, records = self._checked(mix)
        if not records or records[0].adapter.kind == "lora":
            return None, {}
        adapter = self._adapter_for(records[0].adapter.sha256, self.library.adapter_path(records[0]))
        return adapter, {record.expert_key: mix[record.name] for record in records}

    def edit(self, photo: Image.Image, mix: Mapping[str, float], settings: SamplerSettings | None = None,
             callback: PreviewCallback | None = None, fold: bool = True, prompt: str = "",
             render: RenderSettings | None = None) -> Image.Image:
        """Edit ``photo`` with a style mix (``{}`` for the plain base model, following ``prompt``).

        The result has the working size, or with ``render.render == "tiled"`` the tiled copy's
        (:func:`engine.rendering.tiling.edit_tiled`); ``carry_to_full_resolution`` with the same
        ``render`` takes it to the photo's size.

        Styles are trained with the empty prompt, so a styled edit ignores ``prompt``.

        A foldable mix stays folded in the weights after the edit, so the next edit with the same
        mix costs a base edit and no folding; another mix, or none, unfolds it first. An imported
        LoRA is always folded (``fold`` concerns the shared adapter) and kept folded the same way.
        """
        with self._lock:
            checked, records = self._checked(mix)
            lora = records[0] if records and records[0].adapter.kind == "lora" else None
            wanted = None if lora is None else (lora.adapter.sha256, checked[lora.name])
            # Unfold whatever this edit does not reuse before loading anything, so the weights an
            # adapter wraps or a LoRA patches are always the base model's.
            if self._lora is not None and self._lora[:2] != wanted:
                self._lora[2].remove()
                self._lora = None
            adapter, keyed = self.resolve(mix)
            if self._adapter is not None and self._folded_mix is not None and (adapter is None or keyed != self._folded_mix or not fold):
                self._adapter.unfold()
                self._folded_mix = None
            if lora is not None:
                if self._lora is None:
                    # With the shared adapter wrapped but unrouted, LoraPatch folds into its base layers.
                    layers = read_lora_file(self.library.adapter_path(lora), self.backbone)
                    self._lora = (*wanted, LoraPatch(self.backbone, layers, wanted[1]))
                return edit_for_render(self.backbone, photo, settings, callback=callback, render=render)
            if adapter is None:
                return edit_for_render(self.backbone, photo, settings, prompt=prompt, callback=callback, render=render)
            if fold and adapter.config.foldable:
                if self._folded_mix != keyed:
                    adapter.fold(keyed)
                    self._folded_mix = keyed
                return edit_for_render(self.backbone, photo, settings, callback=callback, render=render)
            adapter.route(keyed)
            try:
                return edit_for_render(self.backbone, photo, settings, callback=callback, render=render)
            finally:
                adapter.clear_routing()

    def release(self) -> None:
        """Unfold and unwrap the adapter, leaving the backbone as it was loaded."""
        with self._lock:
            if self._lora is not None:
                self._lora[2].remove()
                self._lora = None
            if self._adapter is not None:
                self._adapter.remove()
            self._adapter, self._adapter_sha256, self._folded_mix = None, None, None
