"""``python -m engine fuse`` in-process on a tiny embedded model: LoRA files and library records
(a trained MoE style exported on the fly, an imported LoRA, a subject), and its error lines."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from PIL import Image
from safetensors.torch import save_file

from engine.adapters.moe.adapter import MoELoraAdapter
from engine.adapters.moe.config import MoELoraConfig
from engine.cli import main
from engine.library import AdapterSource, NewStyle, StyleLibrary
from tests.adapters.moe.moe_fixtures import base_backbone, randomise
from tests.fusion.fusion_fixtures import random_lora

pytestmark = pytest.mark.timeout(180)


def write_lora(path: Path, layers) -> Path:
    """A diffusers-layout LoRA file (scale folded into lora_B, no alpha: scale 1)."""
    tensors = {}
    for name, layer in layers.items():
        tensors[f"transformer.{name}.lora_A.weight"] = layer.down.contiguous()
        tensors[f"transformer.{name}.lora_B.weight"] = (layer.up * layer.scale).contiguous()
    save_file(tensors, path)
    return path


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny model folder, two LoRA files and a library with two MoE styles, a LoRA and a subject."""
    folder = tmp_path_factory.mktemp("fuse-cli")
    backbone = base_backbone(0)
    backbone.save_pretrained(folder / "model")
    subject_file = write_lora(folder / "subject.safetensors", random_lora(backbone, seed=1))
    style_file = write_lora(folder / "style.safetensors", random_lora(backbone, seed=2))
    adapter = MoELoraAdapter(backbone, MoELoraConfig(rank=2, num_shared_experts=1, targets="all"))  # the layers random_lora covers
    keys = [adapter.add_style(), adapter.add_style()]
    randomise(adapter, seed=3)
    adapter.save(folder / "moe.safetensors")
    adapter.remove()
    with StyleLibrary.open(folder / "library") as library:
        library.publish_styles([NewStyle("Ink", expert_key=keys[0]), NewStyle("Paint", expert_key=keys[1])],
                               AdapterSource(folder / "moe.safetensors", "moe", backbone.name))
        library.publish_styles([NewStyle("Grain")], AdapterSource(style_file, "lora", backbone.name))
        library.publish_styles([NewStyle("Teapot")], AdapterSource(subject_file, "subject", backbone.name))
    photo = folder / "photo.png"
    Image.linear_gradient("L").resize((48, 32)).convert("RGB").save(photo)
    return {"model": folder / "model", "library": folder / "library", "subject": subject_file, "style": style_file, "photo": photo}


def fuse(setup, *arguments) -> int:
    return main(["fuse", "--model", str(setup["model"]), "--library", str(setup["library"]), "--steps", "3",
                 *map(str, arguments)])


def error_line(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    return [line for line in lines if line.startswith("error: ")][-1]


def test_a_file_subject_with_a_library_style_generates(setup, tmp_path, capsys):
    out = tmp_path / "fused.png"
    assert fuse(setup, "--subject", setup["subject"], "--style", "Ink", "--out", out) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out} (32x32; method est, beta " in printed and "subject layers per step [" in printed
    with Image.open(out) as image:
        assert image.size == (32, 32)


def test_library_subject_and_imported_lora_edit_a_photo(setup, tmp_path, capsys):
    out = tmp_path / "edited.jpg"
    assert fuse(setup, "--subject", "Teapot", "--style", "Grain", "--input", setup["photo"], "--method", "klora",
                "--alpha", 1.0, "--style-bias", 0.2, "--out", out) == 0
    printed = capsys.readouterr().out
    assert "method klora, beta 0.500 + style bias 0.2, gamma " in printed  # K-LoRA's constant beta
    assert f"wrote {out} (48x32;" in printed
    with Image.open(out) as image:
        assert image.size == (48, 32)  # the photo's own size (the tiny model edits at 40 x 24)


def test_two_styles_of_one_adapter_file_are_two_loras(setup, tmp_path):
    assert fuse(setup, "--subject", "Ink", "--style", "Paint", "--method", "merge", "--subject-scale", 0.5,
                "--out", tmp_path / "merged.png") == 0


@pytest.mark.parametrize(("subject", "style", "message"), [
    ("subject", "subject", "are the same LoRA \\(same file checksum\\)"),
    ("Grain", "style", "are the same LoRA \\(same file checksum\\)"),
    ("Ink", "ink", "are the same LoRA"),
    ("missing.safetensors", "Ink", "LoRA file missing.safetensors not found"),
    ("Nobody", "Ink", "Nobody"),
])
def test_errors_are_one_line(setup, tmp_path, capsys, subject, style, message):
    def spec(value):
        return setup[value] if value in setup else value

    assert fuse(setup, "--subject", spec(subject), "--style", spec(style), "--out", tmp_path / "x.png") == 2
    assert re.search(message, error_line(capsys))
    assert not (tmp_path / "x.png").exists()


def test_bad_options_fail_before_the_model_loads(setup, tmp_path, capsys):
    pickled = tmp_path / "weights.ckpt"
    pickled.write_bytes(b"whatever it holds, it is not read")
    assert fuse(setup, "--subject", pickled, "--style", "Ink", "--out", tmp_path / "x.png") == 2
    assert ".safetensors files only" in error_line(capsys)
    assert fuse(setup, "--subject", "Ink", "--style", "Paint", "--alpha", -2, "--out", tmp_path / "x.png") == 2
    assert "alpha must lie in [0, 10]" in error_line(capsys)
    assert fuse(setup, "--subject", "Ink", "--style", "Paint", "--out", tmp_path / "x.tga") == 2
    assert error_line(capsys)


def test_a_fusion_edit_is_carried_with_the_library_styles_render_choice(setup, tmp_path):
    """As ``edit --style`` does: unset render options take the style's stored choice; given ones win."""
    import shutil

    import numpy as np

    from engine.rendering.full_resolution import RenderSettings

    library = tmp_path / "library"
    shutil.copytree(setup["library"], library)
    with StyleLibrary.open(library) as opened:
        opened.set_render("Grain", RenderSettings("guided", 4, 1e-4))
    photo = tmp_path / "detail.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 64, 3), dtype=np.uint8), mode="RGB").save(photo)
    common = ["fuse", "--model", str(setup["model"]), "--library", str(library), "--steps", "2", "--subject", "Teapot",
              "--style", "Grain", "--input", str(photo), "--method", "merge"]

    def result(name: str, *flags: str) -> np.ndarray:
        assert main([*common, *flags, "--out", str(tmp_path / name)]) == 0
        with Image.open(tmp_path / name) as image:
            return np.asarray(image.convert("RGB"))

    stored = result("stored.png")
    np.testing.assert_array_equal(stored, result("flags.png", "--guided-radius", "4", "--guided-epsilon", "1e-4"))
    assert not np.array_equal(stored, result("defaults.png", "--guided-radius", "2", "--guided-epsilon", "1e-3"))
