"""Which render settings carry an edit with a style mix to the photo's size.

The rule the CLI's ``edit`` and the studio's Edit tab share: the stored render choice of the
style with the largest weight (the first of equal ones; :class:`RenderSettings` defaults for a
style without a choice, and for no style), with whatever the user gave explicitly on top. A
fusion edit (the CLI's ``fuse`` and the studio's Fuse page) takes its style side's choice the same
way, as a mix of that one style.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Mapping

from engine.library import StyleLibrary
from engine.rendering.full_resolution import RenderSettings


def render_for_mix(library: StyleLibrary | None, mix: Mapping[str, float], given: Mapping[str, Any] | None = None) -> RenderSettings:
    """The render settings for an edit with ``mix`` (style name to weight; zero weights are not in the
    mix). ``given``: the :class:`RenderSettings` fields the user set explicitly; they win."""
    mix = {name: float(weight) for name, weight in mix.items() if float(weight) != 0.0}
    settings = RenderSettings()
    if mix and library is not None:
        leading = max(mix, key=lambda name: mix[name])  # max keeps the first of equal weights
        settings = library.get_style(leading).render_settings
    return replace(settings, **dict(given or {}))
