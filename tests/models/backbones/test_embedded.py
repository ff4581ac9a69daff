"""The embedded backbone: shapes, modes, identity at initialisation, saving and the contract."""

import pytest
import torch
from torch import nn

from engine.core.errors import ConfigError, InputError
from engine.models.backbones.embedded.backbone import EmbeddedBackbone
from engine.models.backbones.embedded.config import EmbeddedConfig
from engine.models.backbones.patches import grid_positions, pack, unpack
from engine.models.backbones.registry import load_backbone


def randomised(backbone: EmbeddedBackbone, seed: int = 1) -> EmbeddedBackbone:
    """Give the zero-initialised output layer random weights, so the model is not the identity."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in backbone.transformer.proj_out.parameters():
            parameter.copy_(0.05 * torch.randn(parameter.shape, generator=generator))
    return backbone


def test_pack_unpack_round_trip_and_order():
    images = torch.randn(2, 3, 16, 24)
    tokens = pack(images, 8)
    assert tokens.shape == (2, 6, 192)
    assert torch.equal(unpack(tokens, 8, 16, 24), images)
    # Token 1 is the patch one step to the right of token 0 (row-major order).
    assert torch.equal(tokens[0, 1].reshape(3, 8, 8), images[0, :, :8, 8:16])
    positions = grid_positions(2, 3)
    assert positions[4].tolist() == [0.0, 1.0, 1.0]


def test_untrained_model_is_exact_identity_editor():
    backbone = EmbeddedBackbone.from_config("tiny")
    source = torch.rand(2, 3, 32, 40) * 2 - 1
    noise = torch.randn_like(source)
    t = torch.tensor([0.3, 0.9])
    noisy = (1 - t.view(-1, 1, 1, 1)) * source + t.view(-1, 1, 1, 1) * noise
    velocity = backbone.predict_velocity(noisy, t, source, backbone.encode_prompt(["", ""]))
    torch.testing.assert_close(velocity, noise - source, atol=1e-5, rtol=1e-5)


def test_velocity_depends_on_source_instruction_and_mode():
    backbone = randomised(EmbeddedBackbone.from_config("tiny"))
    noisy = torch.randn(1, 3, 32, 32)
    source = torch.rand(1, 3, 32, 32) * 2 - 1
    t = torch.tensor([0.5])
    edit = backbone.predict_velocity(noisy, t, source, backbone.encode_prompt([""]))
    blur = backbone.predict_velocity(noisy, t, source, backbone.encode_prompt(["blur"]))
    generate = backbone.predict_velocity(noisy, t, None, backbone.encode_prompt([""]))
    assert edit.shape == blur.shape == generate.shape == noisy.shape
    assert not torch.allclose(edit, blur)
    assert not torch.allclose(edit, generate)


def test_unknown_instruction_is_refused():
    backbone = EmbeddedBackbone.from_config("tiny")
    with pytest.raises(InputError, match="knows the instructions"):
        backbone.encode_prompt(["make it a watercolour"])


def test_adapter_targets_are_block_linears_with_flux_names():
    backbone = EmbeddedBackbone.from_config("tiny")
    targets = backbone.adapter_targets()
    modules = dict(backbone.transformer.named_modules())
    assert "transformer_blocks.0.attn.to_q" in targets
    assert "single_transformer_blocks.0.proj_mlp" in targets
    assert all(isinstance(modules[name], nn.Linear) for name in targets)
    assert "proj_out" not in targets  # the model's own output layer is not a block layer


def test_save_and_load_round_trip(tmp_path):
    backbone = randomised(EmbeddedBackbone.from_config("tiny"))
    backbone.save_pretrained(tmp_path / "model", extra={"note": "test"})
    loaded = load_backbone(str(tmp_path / "model"))
    noisy, t = torch.randn(1, 3, 32, 32), torch.tensor([0.4])
    condition = backbone.encode_prompt(["grey"])
    torch.testing.assert_close(
        loaded.predict_velocity(noisy, t, noisy, condition), backbone.predict_velocity(noisy, t, noisy, condition)
    )
    assert not list((tmp_path / "model").glob("*.tmp"))


def test_missing_model_folder_says_what_to_do(tmp_path):
    with pytest.raises(InputError, match="pretraining"):
        EmbeddedBackbone.from_pretrained(tmp_path)


def test_config_validation():
    with pytest.raises(ConfigError, match="multiple of patch_size"):
        EmbeddedConfig(native_resolution=30, patch_size=8)
    with pytest.raises(ConfigError, match="generation_shift"):
        EmbeddedConfig(generation_shift=0.0)


def test_generation_schedule_is_saved_with_the_model_and_defaults_to_the_edit_schedule(tmp_path):
    from dataclasses import replace

    from engine.models.backbones.embedded.model import EmbeddedEditor

    plain = EmbeddedBackbone.from_config("tiny")
    assert plain.steps_for(edit=False) == plain.default_steps
    assert plain.make_scheduler(edit=False).config.shift == plain.make_scheduler().config.shift == 1.0
    config = replace(plain.config, generation_steps=12, generation_shift=3.0)
    EmbeddedBackbone(EmbeddedEditor(config)).save_pretrained(tmp_path / "model")
    loaded = load_backbone(str(tmp_path / "model"))
    assert (loaded.steps_for(edit=False), loaded.steps_for(edit=True)) == (12, config.default_steps)
    assert (loaded.make_scheduler(edit=False).config.shift, loaded.make_scheduler().config.shift) == (3.0, 1.0)


def test_fit_size_keeps_aspect_ratio_at_native_area():
    backbone = EmbeddedBackbone.from_config("small")
    width, height = backbone.fit_size(1600, 900)
    assert width % 8 == 0 and height % 8 == 0
    assert abs(width / height - 16 / 9) < 0.1
    assert abs(width * height - 128 * 128) / (128 * 128) < 0.1


def test_bf16_matches_fp32_closely():
    fp32 = randomised(EmbeddedBackbone.from_config("tiny"))
    bf16 = randomised(EmbeddedBackbone.from_config("tiny"), seed=1)
    bf16.transformer.to(torch.bfloat16)
    noisy, t = torch.randn(1, 3, 32, 32), torch.tensor([0.5])
    condition = fp32.encode_prompt([""])
    reference = fp32.predict_velocity(noisy, t, noisy, condition)
    reduced = bf16.predict_velocity(noisy, t, noisy, condition)
    assert reduced.dtype == torch.float32
    assert (reduced - reference).abs().mean() < 0.02 * reference.abs().mean() + 1e-3
