"""A style's render choice in the library: stored at publishing, set by hand, kept through a
shared adapter's replacement, carried by a style zip."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from library_fixtures import adapter_source, new_style, write_adapter, write_pairs

from engine.core.errors import InputError
from engine.library import StyleLibrary, export_style_zip, import_style_zip
from engine.rendering.full_resolution import RenderSettings
from engine.rendering.render_choice import GUIDED_CANDIDATES, RenderChoice

MEASURED = RenderChoice(RenderSettings("guided", 4, 1e-3), "holdout", 1, tuple((candidate, 30.0 + index) for index, candidate in
                                                                                 enumerate(GUIDED_CANDIDATES)))


def publish(library: StyleLibrary, tmp_path: Path, pairs, render: RenderChoice | None) -> None:
    library.publish_styles([replace(new_style("ink", pairs, "e0"), render=render)], adapter_source(write_adapter(tmp_path / "a.safetensors", ["e0"])))


def test_a_published_choice_is_stored_and_a_missing_one_means_the_defaults(library, tmp_path, pairs):
    publish(library, tmp_path, pairs, MEASURED)
    assert library.get_style("ink").render == MEASURED
    assert library.get_style("ink").render_settings == RenderSettings("guided", 4, 1e-3)
    library.publish_styles([new_style("sepia", write_pairs(tmp_path / "more"), "e1")],
                           adapter_source(write_adapter(tmp_path / "b.safetensors", ["e1"])))
    assert library.get_style("sepia").render is None and library.get_style("sepia").render_settings == RenderSettings()


def test_set_render_overrides_by_hand_and_keeps_the_measurement(library, tmp_path, pairs):
    publish(library, tmp_path, pairs, MEASURED)
    record = library.set_render("INK", RenderSettings("resize"))
    assert record.render == RenderChoice(RenderSettings("resize"), "user", 1, MEASURED.scores)
    assert library.get_style("ink").render_settings == RenderSettings("resize")


def test_set_render_on_a_style_without_a_choice(library, tmp_path, pairs):
    publish(library, tmp_path, pairs, None)
    assert library.set_render("ink", RenderSettings(guided_radius=1)).render == RenderChoice(RenderSettings(guided_radius=1))


def test_set_render_refuses_an_unknown_style_and_other_values(library, tmp_path, pairs):
    publish(library, tmp_path, pairs, MEASURED)
    with pytest.raises(InputError, match="there is no style 'inc'"):
        library.set_render("inc", RenderSettings())
    with pytest.raises(InputError, match="render settings must be RenderSettings"):
        library.set_render("ink", {"render": "guided"})
    assert library.get_style("ink").render == MEASURED


def test_the_choice_survives_a_shared_adapter_replacement_and_a_style_zip(library, tmp_path, pairs):
    publish(library, tmp_path, pairs, MEASURED)
    old = library.get_style("ink").adapter.id
    library.replace_adapter(old, adapter_source(write_adapter(tmp_path / "c.safetensors", ["e0", "e1"], seed=1)),
                            [new_style("sepia", write_pairs(tmp_path / "more"), "e1")])
    assert library.get_style("ink").render == MEASURED
    export_style_zip(library, "ink", tmp_path / "ink.zip", write_adapter(tmp_path / "ink-alone.safetensors", ["e0"]), expert_key="e0")
    assert import_style_zip(library, tmp_path / "ink.zip", "ink copy").render == MEASURED
