"""The style flow from the command line: train two styles, edit with one and a mix, list, show,
export, import and delete, on a tiny random model and a temporary library."""

import numpy as np
import pytest
import torch
from PIL import Image

from engine.cli import main
from engine.models.backbones.embedded.backbone import EmbeddedBackbone


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    backbone = EmbeddedBackbone.from_config("tiny", seed=0)
    with torch.no_grad():  # a trained base has a non-zero output layer; adapters need it to act
        weight = backbone.transformer.proj_out.weight
        weight.copy_(0.05 * torch.randn(weight.shape, generator=torch.Generator().manual_seed(0)))
    folder = tmp_path_factory.mktemp("model")
    backbone.save_pretrained(folder)
    return str(folder)


def write_pairs(folder, offset, count=4):
    generator = np.random.default_rng(abs(offset))
    for side in ("before", "after"):
        (folder / side).mkdir(parents=True, exist_ok=True)
    for index in range(count):
        image = Image.fromarray((generator.random((5, 6, 3)) * 160 + 48).astype("uint8")).resize((48, 40), Image.Resampling.BICUBIC)
        image.save(folder / "before" / f"photo{index}.png")
        shifted = np.clip(np.asarray(image).astype(int) + offset, 0, 255).astype("uint8")
        Image.fromarray(shifted).save(folder / "after" / f"photo{index}.png")
    return folder


def run(*argv):
    return main([str(item) for item in argv])


def test_train_edit_mix_export_import_delete(tmp_path, tiny_model, capsys):
    library = tmp_path / "library"
    photo = tmp_path / "photo.png"
    Image.new("RGB", (64, 48), (120, 100, 80)).save(photo)
    common = ("--library", library, "--model", tiny_model)
    assert run("train", "--pairs", write_pairs(tmp_path / "light", 40), "--style", "Light", "--steps", 6, "--batch-size", 2, *common) == 0
    assert "trained Light" in capsys.readouterr().out
    assert run("edit", "--input", photo, "--out", tmp_path / "light.png", "--style", "Light", *common) == 0
    light_before = np.asarray(Image.open(tmp_path / "light.png"))

    assert run("train", "--pairs", write_pairs(tmp_path / "dark", -40), "--style", "Dark", "--steps", 6, "--batch-size", 2, *common) == 0
    # Adding a style leaves the styles already there exactly as they were.
    assert run("edit", "--input", photo, "--out", tmp_path / "light2.png", "--style", "Light", *common) == 0
    assert np.array_equal(np.asarray(Image.open(tmp_path / "light2.png")), light_before)

    assert run("edit", "--input", photo, "--out", tmp_path / "mix.png", "--style", "Light", "--style", "Dark",
               "--weight", 0.5, "--weight", 0.5, *common) == 0
    assert run("edit", "--input", photo, "--out", tmp_path / "plain.png", "--model", tiny_model) == 0
    plain = np.asarray(Image.open(tmp_path / "plain.png"))
    assert not np.array_equal(light_before, plain)

    capsys.readouterr()
    assert run("styles", "list", "--library", library) == 0
    listing = capsys.readouterr().out
    assert "Light" in listing and "Dark" in listing and "2 style(s)" in listing
    assert run("styles", "show", "Dark", "--library", library) == 0
    assert '"holdout"' in capsys.readouterr().out

    archive = tmp_path / "light.zip"
    assert run("styles", "export", "Light", "--out", archive, *common) == 0
    lora_file = tmp_path / "light.safetensors"
    assert run("styles", "export", "Light", "--out", lora_file, *common) == 0
    assert "exact" in capsys.readouterr().out
    from engine.adapters.lora.files import read_lora_file
    from engine.models.backbones.registry import load_backbone

    assert read_lora_file(lora_file, load_backbone(tiny_model))
    assert run("styles", "delete", "Dark", *common) == 0
    assert run("edit", "--input", photo, "--out", tmp_path / "light3.png", "--style", "Light", *common) == 0
    assert np.array_equal(np.asarray(Image.open(tmp_path / "light3.png")), light_before)
    assert run("styles", "import", archive, "--name", "Light copy", "--library", library) == 0
    capsys.readouterr()
    assert run("styles", "list", "--library", library) == 0
    assert "Light copy" in capsys.readouterr().out


def test_train_takes_the_training_scale(tmp_path, tiny_model, capsys):
    library = tmp_path / "library"
    assert run("train", "--pairs", write_pairs(tmp_path / "pairs", 20), "--style", "Scaled", "--steps", 2, "--batch-size", 2,
               "--training-scale", "working", "--library", library, "--model", tiny_model) == 0
    capsys.readouterr()
    assert run("styles", "show", "Scaled", "--library", library) == 0
    assert '"training_scale": "working"' in capsys.readouterr().out
    assert run("train", "--pairs", tmp_path / "pairs", "--style", "Other", "--training-scale", "huge", "--library", library,
               "--model", tiny_model) == 2
    assert "training_scale" in capsys.readouterr().err


@pytest.mark.parametrize("problem, message", [
    ("taken", "already exists"), ("path", "contains"), ("one_pair", "at least 2"), ("unmatched", "no after/ match"),
])
def test_train_refuses_bad_input_with_one_line(tmp_path, tiny_model, capsys, problem, message):
    library = tmp_path / "library"
    pairs = write_pairs(tmp_path / "pairs", 30, count=1 if problem == "one_pair" else 3)
    if problem == "unmatched":
        (pairs / "after" / "photo0.png").rename(pairs / "after" / "other.png")
    name = "a/b" if problem == "path" else "Style"
    if problem == "taken":
        assert run("train", "--pairs", pairs, "--style", "Style", "--steps", 2, "--batch-size", 2, "--library", library, "--model", tiny_model) == 0
        capsys.readouterr()
    code = run("train", "--pairs", pairs, "--style", name, "--steps", 2, "--library", library, "--model", tiny_model)
    error = capsys.readouterr().err.strip()
    assert code == 2 and message in error and len(error.splitlines()) == 1


def test_bench_fast_reports_every_method(tmp_path, tiny_model, capfd):
    # capfd, not capsys: 'bench' runs the benchmarks as a child process.
    report = tmp_path / "bench.json"
    assert run("bench", "--fast", "--model", tiny_model, "--out", report) == 0
    table = capfd.readouterr().out
    for method in ("identity", "base", "moe", "moe-pruned", "lora"):
        assert f"| ink sketch | {method} |" in table
    import json

    data = json.loads(report.read_text())
    assert set(data["styles"]) == {"ink sketch", "vintage"}
    assert data["moe_parameters"] > 0 and data["lora_parameters"] > 0
    # Pruning to half of the components leaves fewer (but some) parameters live.
    assert 0 < data["moe_pruned_parameters"] < data["moe_parameters"]
    assert data["pruning"]["parameters_after"] == data["moe_pruned_parameters"]
