"""FLUX.1 Kontext backbone on a tiny random pipeline saved to disk and loaded like a user's model."""

from __future__ import annotations

import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from diffusers import FlowMatchEulerDiscreteScheduler, FluxKontextPipeline  # noqa: E402
from diffusers.pipelines.flux.pipeline_flux_kontext import calculate_shift  # noqa: E402
from kontext_fixtures import TINY_RESOLUTION, TINY_SEQUENCE_LENGTH, tiny_kontext_folder  # noqa: E402, F401 - fixture
from peft import LoraConfig, inject_adapter_in_model  # noqa: E402
from PIL import Image  # noqa: E402
from torch import nn  # noqa: E402

from engine.core.errors import ConfigError, InputError  # noqa: E402
from engine.core.imaging import to_tensor  # noqa: E402
from engine.models.backbones.kontext import SETTINGS_FILE, KontextBackbone  # noqa: E402
from engine.models.backbones.patches import grid_positions, pack, unpack  # noqa: E402
from engine.models.backbones.registry import load_backbone  # noqa: E402
from engine.models.editing import edit_photo, generate_image  # noqa: E402
from engine.models.sampling.sampler import SamplerSettings, sample, sigmas_for  # noqa: E402

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def backbone(tiny_kontext_folder) -> KontextBackbone:  # noqa: F811 - the imported fixture
    """The tiny model loaded through the registry, as a user's model folder is."""
    return load_backbone(str(tiny_kontext_folder))


def random_images(batch: int, height: int, width: int, seed: int) -> torch.Tensor:
    """Smooth random images ``(B, 3, H, W)`` in ``[-1, 1]``."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(batch, 3, height // 4, width // 4, generator=generator) * 2 - 1
    return nn.functional.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False)


def photo(width: int, height: int, seed: int = 0) -> Image.Image:
    array = np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    return Image.fromarray(array, mode="RGB")


def test_registry_loads_the_folder_with_its_settings(backbone):
    assert isinstance(backbone, KontextBackbone)
    assert backbone.native_resolution == TINY_RESOLUTION
    assert backbone.settings.max_sequence_length == TINY_SEQUENCE_LENGTH
    assert backbone.resolution_multiple == 4  # VAE factor 2 times the 2x2 packing
    assert backbone.default_steps == 3
    assert backbone.guidance == 2.5
    assert not any(parameter.requires_grad for parameter in backbone.transformer.parameters())


def test_packing_and_position_ids_match_the_pipeline():
    latents = torch.randn(2, 4, 6, 8)
    packed = FluxKontextPipeline._pack_latents(latents, 2, 4, 6, 8)
    assert torch.equal(pack(latents, 2), packed)
    assert torch.equal(unpack(packed, 2, 6, 8), FluxKontextPipeline._unpack_latents(packed, 12, 16, 2))
    expected_ids = FluxKontextPipeline._prepare_latent_image_ids(2, 3, 4, "cpu", torch.float32)
    assert torch.equal(grid_positions(3, 4, 0.0), expected_ids)


def test_encode_decode_shapes_and_deterministic_encoding(backbone):
    images = random_images(2, 32, 24, seed=1)
    with torch.inference_mode():
        latents = backbone.encode(images)
        again = backbone.encode(images)
        decoded = backbone.decode(latents)
    assert latents.shape == (2, 4, 16, 12) and latents.dtype == torch.float32
    assert torch.equal(latents, again)  # the posterior mean, not a sample
    assert decoded.shape == images.shape and torch.isfinite(decoded).all()
    with pytest.raises(InputError, match="multiples of 4"):
        backbone.encode(random_images(1, 32, 24, seed=1)[:, :, :30])


def test_encode_prompt_gives_pooled_and_sequence_embeddings(backbone):
    condition = backbone.encode_prompt(["make it a watercolour", ""])
    sequence, pooled = condition.tensors["prompt_embeds"], condition.tensors["pooled_prompt_embeds"]
    assert sequence.shape == (2, TINY_SEQUENCE_LENGTH, 32) and pooled.shape == (2, 32)
    assert not torch.allclose(sequence[0], sequence[1]) and not torch.allclose(pooled[0], pooled[1])
    assert condition.prompts == ["make it a watercolour", ""]


def test_predict_velocity_shapes_for_edit_and_generation(backbone):
    source = backbone.encode(random_images(2, 32, 24, seed=2))
    other_source = backbone.encode(random_images(2, 32, 24, seed=3))
    noisy = torch.randn(2, 4, 16, 12, generator=torch.Generator().manual_seed(0))
    timestep = torch.tensor([0.9, 0.4])
    condition = backbone.encode_prompt(["sepia", "sepia"])
    with torch.inference_mode():
        edit = backbone.predict_velocity(noisy, timestep, source, condition)
        edit_other = backbone.predict_velocity(noisy, timestep, other_source, condition)
        generation = backbone.predict_velocity(noisy, timestep, None, condition)
    assert edit.shape == generation.shape == noisy.shape
    assert torch.isfinite(edit).all() and torch.isfinite(generation).all()
    assert not torch.allclose(edit, edit_other)  # the source tokens are attended to
    assert not torch.allclose(edit, generation)
    with pytest.raises(ValueError, match="even h and w"):
        backbone.predict_velocity(noisy[..., :11], timestep, None, condition)


def test_predict_velocity_equals_the_pipeline_transformer_call(backbone):
    """Same tokens, ids, guidance and timestep as FluxKontextPipeline.__call__ builds them."""
    pipeline = backbone.pipeline
    source = backbone.encode(random_images(1, 32, 16, seed=4))
    noisy = torch.randn(1, 4, 16, 8, generator=torch.Generator().manual_seed(5))
    sigma = torch.tensor([0.7])
    condition = backbone.encode_prompt(["a red door"])
    with torch.inference_mode():
        prompt_embeds, pooled, text_ids = pipeline.encode_prompt(
            ["a red door"], max_sequence_length=TINY_SEQUENCE_LENGTH
        )
        packed_noisy = FluxKontextPipeline._pack_latents(noisy, 1, 4, 16, 8)
        _, image_latents, latent_ids, image_ids = pipeline.prepare_latents(
            source, 1, 4, 32, 16, torch.float32, "cpu", latents=packed_noisy
        )
        output = pipeline.transformer(
            hidden_states=torch.cat([packed_noisy, image_latents], dim=1),
            timestep=(sigma * 1000) / 1000,
            guidance=torch.full((1,), 2.5),
            pooled_projections=pooled,
            encoder_hidden_states=prompt_embeds,
            txt_ids=text_ids,
            img_ids=torch.cat([latent_ids, image_ids], dim=0),
            return_dict=False,
        )[0][:, : packed_noisy.shape[1]]
        expected = FluxKontextPipeline._unpack_latents(output, 32, 16, pipeline.vae_scale_factor)
        velocity = backbone.predict_velocity(noisy, sigma, source, condition)
    torch.testing.assert_close(velocity, expected, rtol=1e-5, atol=1e-5)


def test_sampling_reproduces_the_pipeline(backbone):
    """The shared Euler sampler on this backbone gives FluxKontextPipeline's own edit."""
    picture = photo(24, 32, seed=6)
    settings = SamplerSettings(steps=3, seed=11)
    with torch.inference_mode():
        source = backbone.encode(to_tensor(picture))
        latents = sample(backbone, backbone.encode_prompt(["pop art"]), source.shape, settings, source=source)
        ours = backbone.decode(latents).clamp(-1, 1)
    expected = backbone.pipeline(
        image=picture, prompt="pop art", height=32, width=24, max_area=32 * 24, num_inference_steps=3,
        guidance_scale=2.5, generator=torch.Generator().manual_seed(11), max_sequence_length=TINY_SEQUENCE_LENGTH,
        output_type="pt", _auto_resize=False,
    ).images
    assert torch.isfinite(latents).all()
    torch.testing.assert_close(ours, expected * 2 - 1, rtol=0, atol=2e-4)


def test_scheduler_uses_the_pipeline_config_and_resolution_shift(backbone):
    scheduler = backbone.make_scheduler()
    assert isinstance(scheduler, FlowMatchEulerDiscreteScheduler) and scheduler.config.use_dynamic_shifting
    assert scheduler is not backbone.pipeline.scheduler
    shape = torch.Size((1, 4, 16, 16))
    assert backbone.schedule_kwargs(shape) == {"mu": pytest.approx(calculate_shift(64, 256, 4096, 0.5, 1.15))}
    _, sigmas = sigmas_for(backbone, 4, shape)
    assert sigmas[0] == pytest.approx(1.0) and sigmas[-1] == 0 and bool((sigmas[:-1] > sigmas[1:]).all())


def test_adapter_targets_are_the_block_linears(backbone):
    targets = backbone.adapter_targets()
    modules = dict(backbone.transformer.named_modules())
    assert all(isinstance(modules[name], nn.Linear) for name in targets)
    assert {"transformer_blocks.0.attn.to_q", "transformer_blocks.0.attn.add_v_proj", "transformer_blocks.0.ff.net.2",
            "transformer_blocks.0.ff_context.net.0.proj", "single_transformer_blocks.0.attn.to_k",
            "single_transformer_blocks.0.proj_mlp", "single_transformer_blocks.0.proj_out"} <= set(targets)
    # Modulation and the model's input/output projections stay frozen.
    assert not any(name.endswith("norm1.linear") or name.endswith("norm.linear") for name in targets)
    assert "proj_out" not in targets and "x_embedder" not in targets


def test_edit_photo_end_to_end_with_previews(backbone):
    previews = []
    result = edit_photo(backbone, photo(48, 36, seed=7), SamplerSettings(steps=2, seed=3), prompt="charcoal sketch",
                        callback=lambda step, total, preview: previews.append((step, total, preview)))
    assert result.mode == "RGB" and result.size == backbone.fit_size(48, 36) == (36, 28)
    assert result.size[0] / result.size[1] == pytest.approx(48 / 36, rel=0.1)
    assert np.asarray(result).std() > 0  # not a blank frame
    assert [(step, total) for step, total, _ in previews] == [(1, 2), (2, 2)]
    assert all(preview.size == result.size for _, _, preview in previews)


def test_generate_image_without_a_source(backbone):
    result = generate_image(backbone, (24, 16), SamplerSettings(steps=2, seed=1), prompt="a lighthouse")
    assert result.size == (24, 16) and np.asarray(result).std() > 0


def test_one_lora_training_step_changes_only_the_lora(tiny_kontext_folder):  # noqa: F811 - the imported fixture
    backbone = load_backbone(str(tiny_kontext_folder))  # a private copy: LoRA layers are injected in place
    source = backbone.encode(random_images(2, 16, 16, seed=8))
    target = backbone.encode(random_images(2, 16, 16, seed=9))
    generator = torch.Generator().manual_seed(10)
    noise = torch.randn(target.shape, generator=generator)
    timestep = torch.rand(2, generator=generator)
    noisy = (1 - timestep.view(-1, 1, 1, 1)) * target + timestep.view(-1, 1, 1, 1) * noise
    condition = backbone.encode_prompt(["ink wash", "ink wash"])
    with torch.no_grad():
        base = backbone.predict_velocity(noisy, timestep, source, condition)
    frozen = {name: parameter.clone() for name, parameter in backbone.transformer.named_parameters()}

    targets = backbone.adapter_targets()  # before wrapping: afterwards peft's inner layers are linears too
    torch.manual_seed(0)
    # init_lora_weights=False draws B at random too, so the adapter starts away from identity.
    config = LoraConfig(r=4, lora_alpha=4, target_modules=targets, init_lora_weights=False)
    inject_adapter_in_model(config, backbone.transformer)
    lora = {name: parameter for name, parameter in backbone.transformer.named_parameters() if "lora_" in name}
    assert len(lora) == 2 * len(targets)
    assert all(parameter.requires_grad for parameter in lora.values())

    prediction = backbone.predict_velocity(noisy, timestep, source, condition)
    assert not torch.allclose(prediction.detach(), base)
    loss = nn.functional.mse_loss(prediction.float(), noise - target)
    loss.backward()
    assert torch.isfinite(loss)
    pipeline = backbone.pipeline
    for component in (pipeline.transformer, pipeline.vae, pipeline.text_encoder, pipeline.text_encoder_2):
        for name, parameter in component.named_parameters():
            if "lora_" in name:
                gradient = parameter.grad
                assert gradient is not None and torch.isfinite(gradient).all() and gradient.abs().sum() > 0, name
            else:
                assert parameter.grad is None, name

    optimizer = torch.optim.AdamW(lora.values(), lr=1e-2)
    optimizer.step()
    with torch.no_grad():
        after = backbone.predict_velocity(noisy, timestep, source, condition)
    assert not torch.allclose(after, prediction.detach())
    for name, parameter in backbone.transformer.named_parameters():
        if "lora_" not in name:
            base_name = name.replace(".base_layer", "")
            assert torch.equal(parameter, frozen[base_name]), name


def test_a_hub_id_missing_from_the_cache_is_an_input_error():
    with pytest.raises(InputError, match="not in the local Hugging Face cache"):
        load_backbone("atelier-tests/no-such-kontext-model")


def test_a_folder_that_is_not_a_pipeline_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="model_index.json"):
        load_backbone(str(tmp_path))
    with pytest.raises(InputError, match="no model_index.json"):
        KontextBackbone.from_pretrained(str(tmp_path))
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model_index.json").write_text(json.dumps(
        {"_class_name": "FluxKontextPipeline", "_diffusers_version": "0.42.1", "vae": ["diffusers", "AutoencoderKL"]}
    ))
    with pytest.raises(InputError, match="cannot load the Kontext pipeline"):
        load_backbone(str(broken))


def test_unknown_settings_are_refused(tmp_path):
    (tmp_path / "model_index.json").write_text("{}")
    (tmp_path / SETTINGS_FILE).write_text(json.dumps({"native_resolution": 512, "guidance_scale": 3.0}))
    with pytest.raises(ConfigError, match="guidance_scale"):
        load_backbone(str(tmp_path))
