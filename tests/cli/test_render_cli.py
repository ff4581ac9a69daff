"""A style's render choice on the command line: ``styles show`` prints it, ``styles set-render``
overrides it, and ``edit --style`` uses it unless --render options are given."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.cli import main
from engine.library import StyleLibrary
from engine.models.backbones.registry import load_backbone
from engine.rendering.full_resolution import RenderSettings, carry_to_full_resolution
from engine.rendering.render_choice import RENDER_CANDIDATES
from engine.services.mix_render import render_for_mix
from engine.services.style_edit import StyleEditor
from tests.cli.test_styles_cli import library, model, run  # noqa: F401 (fixtures)

STORED = RenderSettings("guided", 4, 1e-4)


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    """A 96x80 photo with detail, larger than the working size."""
    path = tmp_path / "photo.png"
    array = np.random.default_rng(0).integers(0, 256, (80, 96, 3), dtype=np.uint8)
    Image.fromarray(array, mode="RGB").save(path)
    return path


def expected(model: str, library: Path, photo: Path, mix: dict[str, float], render: RenderSettings) -> np.ndarray:
    """The CLI's result computed here: the styled working-size edit carried with ``render``."""
    image = Image.open(photo).convert("RGB")
    with StyleLibrary.open(library) as opened:
        editor = StyleEditor(load_backbone(model), opened)
        try:
            working = editor.edit(image, mix)
        finally:
            editor.release()
    return np.asarray(carry_to_full_resolution(image, working, render))


def written(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def test_set_render_and_show(library: Path, capsys) -> None:
    assert run("styles", "show", "ink", "--library", library) == 0
    shown = json.loads(capsys.readouterr().out)["render"]
    assert shown == {**asdict(RenderSettings()), "origin": "defaults (no choice stored)"}
    assert run("styles", "set-render", "ink", "--guided-radius", 4, "--guided-epsilon", "1e-4", "--library", library) == 0
    assert capsys.readouterr().out.strip() == "ink: full-size render guided, radius 4, ε 0.0001 (set by hand)"
    assert run("styles", "show", "ink", "--library", library) == 0
    shown = json.loads(capsys.readouterr().out)["render"]
    assert shown == {**asdict(STORED), "origin": "set by hand"}
    assert run("styles", "set-render", "ink", "--render", "resize", "--library", library) == 0  # the rest is kept
    with StyleLibrary.open(library) as opened:
        assert opened.get_style("ink").render_settings == RenderSettings("resize", 4, 1e-4)
        assert opened.get_style("sepia").render is None


def test_set_render_refuses_nothing_given_and_bad_values(library: Path, capsys) -> None:
    assert run("styles", "set-render", "ink", "--library", library) == 2
    assert "give at least one of --render, --guided-radius, --guided-epsilon" in capsys.readouterr().err
    assert run("styles", "set-render", "ink", "--guided-radius", 99, "--library", library) != 0
    assert "guided_radius must lie between 0 and 16" in capsys.readouterr().err
    with StyleLibrary.open(library) as opened:
        assert opened.get_style("ink").render is None


def test_edit_uses_the_styles_stored_choice_unless_render_options_are_given(model: str, library: Path, photo: Path,
                                                                            tmp_path: Path) -> None:
    with StyleLibrary.open(library) as opened:
        opened.set_render("ink", STORED)
    common = ("--input", photo, "--model", model, "--library", library, "--style", "ink")
    assert run("edit", *common, "--out", tmp_path / "stored.png") == 0
    stored = expected(model, library, photo, {"ink": 1.0}, STORED)
    np.testing.assert_array_equal(written(tmp_path / "stored.png"), stored)
    assert not np.array_equal(stored, expected(model, library, photo, {"ink": 1.0}, RenderSettings()))  # the choice matters here

    assert run("edit", *common, "--out", tmp_path / "flags.png", "--guided-radius", 2, "--guided-epsilon", "1e-3") == 0
    np.testing.assert_array_equal(written(tmp_path / "flags.png"), expected(model, library, photo, {"ink": 1.0}, RenderSettings()))
    assert run("edit", *common, "--out", tmp_path / "resize.png", "--render", "resize") == 0
    np.testing.assert_array_equal(written(tmp_path / "resize.png"),
                                  expected(model, library, photo, {"ink": 1.0}, RenderSettings("resize", 4, 1e-4)))


def test_a_mix_renders_with_the_choice_of_its_heaviest_style(model: str, library: Path, photo: Path, tmp_path: Path) -> None:
    with StyleLibrary.open(library) as opened:
        opened.set_render("sepia", STORED)
        assert render_for_mix(opened, {"ink": 0.7, "sepia": 0.3}) == RenderSettings()
        assert render_for_mix(opened, {"ink": 0.3, "sepia": 0.7}) == STORED
        assert render_for_mix(opened, {"ink": 0.5, "sepia": 0.5}) == RenderSettings()  # equal weights: the first
        assert render_for_mix(opened, {"ink": 0.3, "sepia": 0.7}, {"render": "resize"}) == RenderSettings("resize", 4, 1e-4)
        assert render_for_mix(opened, {}) == render_for_mix(None, {}) == RenderSettings()
    mix = ("--style", "ink", "--weight", 0.3, "--style", "sepia", "--weight", 0.7)
    assert run("edit", "--input", photo, "--model", model, "--library", library, *mix, "--out", tmp_path / "mix.png") == 0
    np.testing.assert_array_equal(written(tmp_path / "mix.png"), expected(model, library, photo, {"ink": 0.3, "sepia": 0.7}, STORED))


def write_pairs(folder: Path, size: tuple[int, int], count: int = 3) -> Path:
    generator = np.random.default_rng(3)
    for index in range(count):
        for side in ("before", "after"):
            (folder / side).mkdir(parents=True, exist_ok=True)
            array = generator.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
            Image.fromarray(array, mode="RGB").save(folder / side / f"{index}.png")
    return folder


def test_choose_render_measures_on_given_pairs_and_refuses_working_size_ones(library: Path, model: str, tmp_path: Path,
                                                                            capsys) -> None:
    assert load_backbone(model).fit_size(40, 24) == (40, 24)  # pairs of this size are the working size itself
    small = write_pairs(tmp_path / "small", (40, 24))
    assert run("styles", "choose-render", "ink", "--pairs", small, "--library", library, "--model", model) == 2
    assert "no larger than the model's working size" in capsys.readouterr().err
    larger = write_pairs(tmp_path / "larger", (96, 72))
    assert run("styles", "choose-render", "ink", "--pairs", larger, "--library", library, "--model", model) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("ink: full-size render guided") and printed[0].endswith("(chosen from 3 training pairs)")
    assert len(printed) == 1 + len(RENDER_CANDIDATES)  # the choice, then each candidate's mean PSNR
    with StyleLibrary.open(library) as opened:
        record = opened.get_style("ink")
    assert record.render.chosen_by == "train" and record.render.pairs == 3 and len(record.render.scores) == len(RENDER_CANDIDATES)
