"""``python -m engine styles import FILE.safetensors --name NAME`` (external LoRAs) and the export
and delete of such a style, on a tiny model folder and a library with two trained styles."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from engine.adapters.lora.files import read_lora_file
from engine.adapters.lora.patch import applied_lora
from engine.cli import main
from engine.library import StyleLibrary
from engine.models.backbones.registry import load_backbone
from engine.models.editing import edit_photo
from engine.rendering.full_resolution import carry_to_full_resolution
from engine.services import style_ops
from tests.adapters.moe.moe_fixtures import base_backbone
from tests.services.test_style_ops import kohya_lora, peft_lora
from tests.studio.studio_fixtures import add_random_styles


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("model")
    base_backbone().save_pretrained(folder)
    return str(folder)


@pytest.fixture()
def library(tmp_path: Path, model: str) -> Path:
    with StyleLibrary.open(tmp_path / "library") as opened:
        add_random_styles(opened, load_backbone(model), ["ink", "sepia"], tmp_path / "pairs")
    return tmp_path / "library"


def run(*argv) -> int:
    return main([str(item) for item in argv])


def test_import_an_external_lora_edit_with_it_export_and_delete_it(tmp_path: Path, model: str, library: Path, capsys) -> None:
    lora = peft_lora(tmp_path / "outside.safetensors", load_backbone(model))
    common = ("--library", library, "--model", model)
    assert run("styles", "import", lora, "--name", "outside", "--description", "made elsewhere", "--trigger", "xyz", *common) == 0
    assert "imported outside (a LoRA of 2 layers)" in capsys.readouterr().out
    assert run("styles", "list", "out", "--library", library) == 0
    assert "outside" in capsys.readouterr().out
    with StyleLibrary.open(library) as opened:
        thumbnail = np.asarray(Image.open(opened.get_style("outside").thumbnail).convert("RGB"))
    reference_model = load_backbone(model)
    with applied_lora(reference_model, read_lora_file(lora, reference_model)):
        np.testing.assert_array_equal(thumbnail, np.asarray(edit_photo(reference_model, style_ops.sample_photo())))

    photo = tmp_path / "photo.png"
    Image.new("RGB", (48, 40), (120, 100, 80)).save(photo)
    assert run("edit", "--input", photo, "--out", tmp_path / "styled.png", "--style", "outside", *common) == 0
    with applied_lora(reference_model, read_lora_file(lora, reference_model)):
        working = edit_photo(reference_model, Image.open(photo).convert("RGB"))
    expected = np.asarray(carry_to_full_resolution(Image.open(photo), working))
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "styled.png").convert("RGB")), expected)

    copy = tmp_path / "copy.safetensors"
    assert run("styles", "export", "outside", "--out", copy, *common) == 0
    assert "copied as imported" in capsys.readouterr().out
    assert copy.read_bytes() == lora.read_bytes()
    with StyleLibrary.open(library) as opened:
        shared = opened.adapter_path(opened.get_style("ink")).read_bytes()
    assert run("styles", "delete", "outside", *common) == 0
    with StyleLibrary.open(library) as opened:
        assert [record.name for record in opened.list_styles()] == ["ink", "sepia"]
        assert opened.adapter_path(opened.get_style("ink")).read_bytes() == shared  # the trained styles' file is untouched


def test_a_kohya_lora_imports_with_its_alpha(tmp_path: Path, model: str, library: Path, capsys) -> None:
    path, deltas = kohya_lora(tmp_path / "kohya.safetensors", load_backbone(model), alpha=0.5)
    assert run("styles", "import", path, "--name", "kohya look", "--no-thumbnail", "--library", library, "--model", model) == 0
    with StyleLibrary.open(library) as opened:
        record = opened.get_style("kohya look")
        layers = read_lora_file(opened.adapter_path(record), load_backbone(model))
    assert record.adapter.kind == "lora" and record.thumbnail is None  # as asked
    for name, delta in deltas.items():
        torch.testing.assert_close(layers[name].delta(), delta)


@pytest.mark.parametrize("problem, message", [
    ("no_name", "--name"), ("pickle", "a style .zip or a LoRA .safetensors"), ("wrong_model", "no_such_layer"),
    ("taken", "already"), ("unsafe", "contains"),
])
def test_import_refuses_bad_input_with_one_line(tmp_path: Path, model: str, library: Path, capsys, problem, message) -> None:
    file = peft_lora(tmp_path / "good.safetensors", load_backbone(model))
    name = {"taken": "ink", "unsafe": "a/b"}.get(problem, "new")
    if problem == "pickle":
        file = tmp_path / "lora.ckpt"
        file.write_bytes(b"\x80\x04")
    elif problem == "wrong_model":
        file = tmp_path / "wrong.safetensors"
        save_file({"transformer.no_such_layer.lora_A.weight": torch.ones(2, 4),
                   "transformer.no_such_layer.lora_B.weight": torch.ones(4, 2)}, str(file))
    naming = () if problem == "no_name" else ("--name", name)
    code = run("styles", "import", file, *naming, "--library", library, "--model", model)
    error = capsys.readouterr().err.strip()
    assert code == 2 and message in error and len(error.splitlines()) == 1, error
    with StyleLibrary.open(library) as opened:
        assert [record.name for record in opened.list_styles()] == ["ink", "sepia"]
