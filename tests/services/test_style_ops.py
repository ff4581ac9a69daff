"""Library operations shared by the CLI and the studio (engine/services/style_ops.py), and editing with an
imported LoRA (engine/services/style_edit.py), on a tiny model with non-zero weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from engine.adapters.lora.files import read_lora_file
from engine.adapters.lora.patch import applied_lora
from engine.adapters.moe.adapter import MoELoraAdapter
from engine.core.errors import InputError
from engine.library import StyleLibrary
from engine.models.editing import edit_photo
from engine.services import style_ops
from engine.services.style_edit import StyleEditor
from tests.adapters.moe.moe_fixtures import base_backbone
from tests.studio.studio_fixtures import add_random_styles

SAMPLE = Image.new("RGB", (40, 32), (120, 60, 30))


@pytest.fixture()
def library(tmp_path: Path):
    with StyleLibrary.open(tmp_path / "library") as opened:
        add_random_styles(opened, base_backbone(), ["ink", "sepia", "grain"], tmp_path / "pairs")
        yield opened


def peft_lora(path: Path, backbone, rank: int = 2, seed: int = 0) -> Path:
    """A diffusers/peft-keyed LoRA with random factors on two layers."""
    generator = torch.Generator().manual_seed(seed)
    modules = dict(backbone.transformer.named_modules())
    tensors = {}
    for name in ("transformer_blocks.0.attn.to_q", "single_transformer_blocks.0.proj_out"):
        linear = modules[name]
        tensors[f"transformer.{name}.lora_A.weight"] = 0.3 * torch.randn(rank, linear.in_features, generator=generator)
        tensors[f"transformer.{name}.lora_B.weight"] = 0.3 * torch.randn(linear.out_features, rank, generator=generator)
    save_file(tensors, str(path))
    return path


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def test_an_exported_lora_reads_back_as_the_styles_update(library: StyleLibrary, tmp_path: Path) -> None:
    backbone = base_backbone()
    out = tmp_path / "ink.safetensors"
    report = style_ops.export_lora(library, "ink", backbone, out)
    assert report.exact
    layers = read_lora_file(out, backbone)
    record = library.get_style("ink")
    adapter = MoELoraAdapter.load(library.adapter_path(record), backbone)
    adapter.route({record.expert_key: 1.0})
    for name, layer in adapter.layers.items():
        torch.testing.assert_close(layers[name].delta(), layer.delta_weight(), atol=1e-5, rtol=1e-4)
    adapter.remove()
    assert all(not hasattr(module, "base_layer") for module in backbone.transformer.modules())  # unwrapped again


def test_deleting_a_style_keeps_the_others_bit_for_bit(library: StyleLibrary) -> None:
    backbone = base_backbone()
    editor = StyleEditor(base_backbone(), library)
    before = {name: pixels(editor.edit(SAMPLE, {name: 1.0})) for name in ("ink", "grain")}
    style_ops.delete_style(library, "sepia", backbone)
    assert sorted(record.name for record in library.list_styles()) == ["grain", "ink"]
    for name, image in before.items():
        np.testing.assert_array_equal(pixels(editor.edit(SAMPLE, {name: 1.0})), image)
    with pytest.raises(InputError, match="sepia"):
        editor.edit(SAMPLE, {"sepia": 1.0})
    editor.release()
    assert library.check(deep=True) == []


def test_a_style_zip_round_trips_under_a_new_name(library: StyleLibrary, tmp_path: Path) -> None:
    backbone = base_backbone()
    archive = tmp_path / "ink.zip"
    style_ops.export_zip(library, "ink", backbone, archive)
    record = style_ops.import_zip(library, archive, "ink copy")
    assert record.trigger == "in ink style" and len(record.pairs) == 2
    with pytest.raises(InputError, match="already"):
        style_ops.import_zip(library, archive, "ink")


def test_an_imported_peft_lora_edits_as_its_update_folded_in(library: StyleLibrary, tmp_path: Path) -> None:
    backbone = base_backbone()
    path = peft_lora(tmp_path / "outside.safetensors", backbone)
    record = style_ops.import_lora(library, path, "outside", backbone, "from elsewhere", "xyz", sample=SAMPLE)
    assert record.adapter.kind == "lora" and record.metrics["layers"] == 2 and record.trigger == "xyz"
    editing = base_backbone()
    plain = pixels(edit_photo(editing, SAMPLE))
    editor = StyleEditor(editing, library)
    styled = pixels(editor.edit(SAMPLE, {"outside": 1.0}))
    reference_model = base_backbone()
    with applied_lora(reference_model, read_lora_file(path, reference_model)):
        expected = pixels(edit_photo(reference_model, SAMPLE))
    np.testing.assert_array_equal(styled, expected)
    assert np.abs(styled - plain).max() > 0
    # Switching to a trained style and back to no style restores the model exactly.
    editor.edit(SAMPLE, {"ink": 1.0})
    np.testing.assert_array_equal(pixels(editor.edit(SAMPLE, {})), plain)
    with pytest.raises(InputError, match="on its own"):
        editor.edit(SAMPLE, {"outside": 1.0, "ink": 0.5})
    editor.release()


def test_an_imported_lora_is_checked_against_the_model(library: StyleLibrary, tmp_path: Path) -> None:
    backbone = base_backbone()
    wrong = tmp_path / "wrong.safetensors"
    save_file({"transformer.no_such_layer.lora_A.weight": torch.ones(2, 4),
               "transformer.no_such_layer.lora_B.weight": torch.ones(4, 2)}, str(wrong))
    with pytest.raises(InputError, match="no_such_layer"):
        style_ops.import_lora(library, wrong, "wrong", backbone)
    pickle = tmp_path / "lora.ckpt"
    pickle.write_bytes(b"\x80\x04")
    with pytest.raises(InputError, match="safetensors"):
        style_ops.import_lora(library, pickle, "pickled", backbone)
    with pytest.raises(InputError):
        style_ops.import_lora(library, peft_lora(tmp_path / "ok.safetensors", backbone), "../escape", backbone)
    assert sorted(record.name for record in library.list_styles()) == ["grain", "ink", "sepia"]


def kohya_lora(path: Path, backbone, rank: int = 2, alpha: float = 1.0, seed: int = 5) -> tuple[Path, dict[str, torch.Tensor]]:
    """A kohya-keyed LoRA (``lora_unet_<underscored path>``) with an alpha on two layers, and the
    update each layer should get, worked out here from the factors (``alpha / rank * up @ down``)."""
    generator = torch.Generator().manual_seed(seed)
    modules = dict(backbone.transformer.named_modules())
    tensors, deltas = {}, {}
    for name in ("transformer_blocks.0.attn.to_v", "single_transformer_blocks.0.proj_out"):
        linear, key = modules[name], "lora_unet_" + name.replace(".", "_")
        down = 0.3 * torch.randn(rank, linear.in_features, generator=generator)
        up = 0.3 * torch.randn(linear.out_features, rank, generator=generator)
        tensors.update({f"{key}.lora_down.weight": down, f"{key}.lora_up.weight": up, f"{key}.alpha": torch.tensor(alpha)})
        deltas[name] = (alpha / rank) * (up @ down)
    save_file(tensors, str(path))
    return path, deltas


def test_an_imported_kohya_lora_edits_as_its_update_even_after_a_trained_style(library: StyleLibrary, tmp_path: Path) -> None:
    path, deltas = kohya_lora(tmp_path / "kohya.safetensors", base_backbone())
    style_ops.import_lora(library, path, "kohya look", base_backbone(), trigger="kh")
    reference_model = base_backbone()
    modules = dict(reference_model.transformer.named_modules())
    with torch.no_grad():
        for name, delta in deltas.items():
            modules[name].weight.data = modules[name].weight.data.float() + delta
    expected = pixels(edit_photo(reference_model, SAMPLE))
    editor = StyleEditor(base_backbone(), library)
    plain = pixels(editor.edit(SAMPLE, {}))
    ink = pixels(editor.edit(SAMPLE, {"ink": 1.0}))  # leaves the shared adapter wrapped around the model
    np.testing.assert_array_equal(pixels(editor.edit(SAMPLE, {"kohya look": 1.0})), expected)
    half = pixels(editor.edit(SAMPLE, {"kohya look": 0.5}))
    assert np.abs(half - expected).max() > 0 and np.abs(half - plain).max() > 0
    np.testing.assert_array_equal(pixels(editor.edit(SAMPLE, {"ink": 1.0})), ink)
    np.testing.assert_array_equal(pixels(editor.edit(SAMPLE, {})), plain)
    editor.release()
    assert all(not hasattr(module, "base_layer") for module in editor.backbone.transformer.modules())


def test_deletion_rewrites_the_adapter_without_that_expert_only(library: StyleLibrary) -> None:
    def adapter_state() -> tuple[list[str], dict[str, torch.Tensor]]:
        adapter = MoELoraAdapter.load(library.adapter_path(library.get_style("ink")), base_backbone())
        keys, state = adapter.style_keys, adapter.state_dict()
        adapter.remove()
        return keys, state

    keys_before, before = adapter_state()
    removed = library.get_style("sepia").expert_key
    style_ops.delete_style(library, "sepia", base_backbone())
    keys_after, after = adapter_state()
    assert keys_after == [key for key in keys_before if key != removed]
    kept = {name: tensor for name, tensor in before.items() if not name.endswith("." + removed)}
    assert len(kept) < len(before) and sorted(after) == sorted(kept)
    for name, tensor in kept.items():
        assert torch.equal(after[name], tensor), name
    # Deleting the last styles of the adapter removes it; deleting an imported LoRA leaves the rest.
    style_ops.import_lora(library, peft_lora(library.root.parent / "x.safetensors", base_backbone()), "outside", base_backbone())
    for name in ("ink", "grain", "outside"):
        style_ops.delete_style(library, name, base_backbone())
    assert library.list_styles() == [] and library.check(deep=True) == []
    with pytest.raises(InputError, match="ink"):
        style_ops.delete_style(library, "ink", base_backbone())
