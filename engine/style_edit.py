"""Editing with styles from the library: one style, or a weighted mix of several.

The library's shared MoE adapter is loaded once per file version (keyed by its checksum) and
stays wrapped around the backbone; a style mix is folded into the base weights for the edit
(:meth:`MoELoraAdapter.folded`), so a styled edit costs what a plain edit costs.
"""

from __future__ import annotations

import threading
from typing import Mapping

from PIL import Image

from engine.backbones.base import Backbone
from engine.edit import PreviewCallback, edit_photo
from engine.errors import InputError
from engine.library import StyleLibrary
from engine.moe_lora.adapter import MoELoraAdapter
from engine.sampling.sampler import SamplerSettings

MAX_MIX = 3


class StyleEditor:
    """Edits photos with library styles on one backbone. Thread-safe: edits take a lock, since
    folding changes the backbone's weights for the duration of an edit."""

    def __init__(self, backbone: Backbone, library: StyleLibrary) -> None:
        self.backbone, self.library = backbone, library
        self._adapter: MoELoraAdapter | None = None
        self._adapter_sha256: str | None = None
        self._folded_mix: dict[str, float] | None = None  # kept folded while the same mix is asked for again
        self._lock = threading.Lock()

    def _adapter_for(self, sha256: str, path) -> MoELoraAdapter:
        if self._adapter_sha256 != sha256:
            if self._adapter is not None:
                self._adapter.remove()
                self._adapter, self._folded_mix = None, None
            self._adapter = MoELoraAdapter.load(path, self.backbone)
            self._adapter_sha256 = sha256
        return self._adapter

    def resolve(self, mix: Mapping[str, float]) -> tuple[MoELoraAdapter | None, dict[str, float]]:
        """Check a mix of style names and weights; return the adapter and the mix by expert key."""
        mix = {name: float(weight) for name, weight in mix.items() if float(weight) != 0.0}
        if len(mix) > MAX_MIX:
            raise InputError(f"a mix takes at most {MAX_MIX} styles; got {len(mix)}")
        if not mix:
            return None, {}
        records = [self.library.get_style(name) for name in mix]
        adapters = {record.adapter.sha256 for record in records}
        for record in records:
            if record.backbone != self.backbone.name:
                raise InputError(f"style {record.name!r} was trained for {record.backbone}, not {self.backbone.name}")
            if record.adapter.kind != "moe":
                raise InputError(f"style {record.name!r} is a {record.adapter.kind} adapter; mixing takes trained styles")
        if len(adapters) > 1:
            raise InputError("these styles live in different adapter files and cannot be mixed; retrain one into the shared adapter")
        adapter = self._adapter_for(records[0].adapter.sha256, self.library.adapter_path(records[0]))
        return adapter, {record.expert_key: mix[record.name] for record in records}

    def edit(self, photo: Image.Image, mix: Mapping[str, float], settings: SamplerSettings | None = None,
             callback: PreviewCallback | None = None, fold: bool = True, prompt: str = "") -> Image.Image:
        """Edit ``photo`` with a style mix (``{}`` for the plain base model, following ``prompt``).

        Styles are trained with the empty prompt, so a styled edit ignores ``prompt``.

        A foldable mix stays folded in the weights after the edit, so the next edit with the same
        mix costs a base edit and no folding; another mix, or none, unfolds it first.
        """
        with self._lock:
            adapter, keyed = self.resolve(mix)
            if self._adapter is not None and self._folded_mix is not None and (adapter is None or keyed != self._folded_mix or not fold):
                self._adapter.unfold()
                self._folded_mix = None
            if adapter is None:
                return edit_photo(self.backbone, photo, settings, prompt=prompt, callback=callback)
            if fold and adapter.config.foldable:
                if self._folded_mix != keyed:
                    adapter.fold(keyed)
                    self._folded_mix = keyed
                return edit_photo(self.backbone, photo, settings, callback=callback)
            adapter.route(keyed)
            try:
                return edit_photo(self.backbone, photo, settings, callback=callback)
            finally:
                adapter.clear_routing()

    def release(self) -> None:
        """Unfold and unwrap the adapter, leaving the backbone as it was loaded."""
        with self._lock:
            if self._adapter is not None:
                self._adapter.remove()
            self._adapter, self._adapter_sha256, self._folded_mix = None, None, None
