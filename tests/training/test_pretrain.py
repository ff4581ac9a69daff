"""Pretraining the embedded model: the data recipe, generic edits, and exact resume."""

import json

import pytest
import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file

import engine.training.pretrain as pretrain_module
from engine.models.backbones.embedded.instructions import GENERIC_EDITS, INSTRUCTIONS
from engine.training.generic_edits import GENERIC_EDIT_FUNCTIONS, gaussian_blur
from engine.training.photo_pool import HOLD_OUT_EVERY, split
from engine.core.errors import ConfigError
from engine.training.pretrain import PretrainConfig, main


def test_every_instruction_has_its_edit_and_edits_are_deterministic():
    assert set(GENERIC_EDIT_FUNCTIONS) == set(GENERIC_EDITS) <= set(INSTRUCTIONS)
    images = torch.rand(2, 3, 16, 20, generator=torch.Generator().manual_seed(0))
    for name, function in GENERIC_EDIT_FUNCTIONS.items():
        result = function(images)
        assert result.shape == images.shape and torch.equal(result, function(images)), name
        assert 0 <= result.min() and result.max() <= 1, name


def test_gaussian_blur_keeps_a_constant_image_and_its_mean():
    flat = torch.full((1, 3, 12, 12), 0.3)
    torch.testing.assert_close(gaussian_blur(flat, 1.2), flat)
    noisy = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    assert abs(gaussian_blur(noisy, 1.0).mean() - noisy.mean()) < 0.01
    assert gaussian_blur(noisy, 1.0).std() < noisy.std()


def test_split_holds_out_every_eighth_name_and_nothing_else():
    names = [f"photo{index:02d}" for index in range(40)]
    train, held = split(names)
    assert len(held) == 40 // HOLD_OUT_EVERY and not set(train) & set(held) and set(train) | set(held) == set(names)


def random_photos(photos):
    """Photos of the test's own, so it does not depend on where the checkout sits beside
    ../shared/photos; with scikit-image's 9, past the pool's minimum of 16."""
    photos.mkdir()
    for index in range(8):
        array = np.random.default_rng(index).integers(0, 256, (96, 128, 3), dtype=np.uint8)
        Image.fromarray(array, mode="RGB").save(photos / f"photo{index}.png")
    return photos


def test_resumed_pretraining_equals_a_straight_run(tmp_path, monkeypatch):
    photos = random_photos(tmp_path / "photos")
    common = ["--preset", "tiny", "--batch-size", "2", "--warmup-steps", "2", "--skip-eval", "--checkpoint-every", "3", "--steps", "6",
              "--photos", str(photos)]
    main([*common, "--run-folder", str(tmp_path / "straight"), "--output", str(tmp_path / "straight-model")])

    real_save = pretrain_module.save_checkpoint

    def save_then_die(folder, step, *args, **kwargs):
        real_save(folder, step, *args, **kwargs)
        if step == 3:
            raise KeyboardInterrupt("killed after the step-3 checkpoint")

    monkeypatch.setattr(pretrain_module, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        main([*common, "--run-folder", str(tmp_path / "resumed"), "--output", str(tmp_path / "resumed-model")])
    assert not (tmp_path / "resumed-model").exists()
    monkeypatch.setattr(pretrain_module, "save_checkpoint", real_save)
    main([*common, "--run-folder", str(tmp_path / "resumed"), "--output", str(tmp_path / "resumed-model")])

    straight = load_file(tmp_path / "straight-model" / "model.safetensors")
    resumed = load_file(tmp_path / "resumed-model" / "model.safetensors")
    for name, tensor in straight.items():
        torch.testing.assert_close(resumed[name], tensor, atol=1e-6, rtol=1e-5)


def test_a_run_stopped_early_writes_its_model_and_then_goes_on_exactly(tmp_path):
    photos = random_photos(tmp_path / "photos")
    common = ["--preset", "tiny", "--batch-size", "2", "--warmup-steps", "2", "--skip-eval", "--checkpoint-every", "3", "--steps", "6",
              "--photos", str(photos)]
    main([*common, "--run-folder", str(tmp_path / "straight"), "--output", str(tmp_path / "straight-model")])
    main([*common, "--stop-at", "3", "--run-folder", str(tmp_path / "cut"), "--output", str(tmp_path / "cut-model")])
    config = json.loads((tmp_path / "cut-model" / "config.json").read_text())["pretrain"]
    assert (config["steps"], config["stop_at"]) == (6, 3)
    with pytest.raises(ConfigError, match="checkpoint of step 3, past the 2 steps"):
        main([*common, "--stop-at", "2", "--run-folder", str(tmp_path / "cut"), "--output", str(tmp_path / "cut-model")])
    main([*common, "--run-folder", str(tmp_path / "cut"), "--output", str(tmp_path / "cut-model")])

    straight = load_file(tmp_path / "straight-model" / "model.safetensors")
    finished = load_file(tmp_path / "cut-model" / "model.safetensors")
    for name, tensor in straight.items():
        torch.testing.assert_close(finished[name], tensor, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("preset, new_tensor", [("tiny-v2", "pixel_head.out.weight"), ("tiny-v3", "instruction_tokens.weight")])
def test_grown_recipes_resume_exactly(tmp_path, monkeypatch, preset, new_tensor):
    photos = random_photos(tmp_path / "photos")
    small = ["--preset", "tiny", "--batch-size", "2", "--warmup-steps", "1", "--skip-eval", "--steps", "2", "--photos", str(photos)]
    main([*small, "--run-folder", str(tmp_path / "small-run"), "--output", str(tmp_path / "small")])
    common = ["--preset", preset, "--batch-size", "4", "--warmup-steps", "2", "--skip-eval", "--checkpoint-every", "2",
              "--steps", "4", "--photos", str(photos), "--init-from", str(tmp_path / "small"), "--grid-shift", str(preset == "tiny-v2").lower()]
    main([*common, "--run-folder", str(tmp_path / "straight"), "--output", str(tmp_path / "straight-model")])

    real_save = pretrain_module.save_checkpoint

    def save_then_die(folder, step, *args, **kwargs):
        real_save(folder, step, *args, **kwargs)
        if step == 2:
            raise KeyboardInterrupt("killed after the step-2 checkpoint")

    monkeypatch.setattr(pretrain_module, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        main([*common, "--run-folder", str(tmp_path / "resumed"), "--output", str(tmp_path / "resumed-model")])
    monkeypatch.setattr(pretrain_module, "save_checkpoint", real_save)
    main([*common, "--run-folder", str(tmp_path / "resumed"), "--output", str(tmp_path / "resumed-model")])

    straight = load_file(tmp_path / "straight-model" / "model.safetensors")
    resumed = load_file(tmp_path / "resumed-model" / "model.safetensors")
    start = load_file(tmp_path / "small" / "model.safetensors")
    assert new_tensor in straight and straight[new_tensor].abs().sum() > 0
    if preset == "tiny-v3":  # the denoise instruction got its own embedding row
        assert straight[new_tensor].shape[0] == start[new_tensor].shape[0] + 1
    assert not torch.equal(straight["transformer.x_embedder.weight"], start["transformer.x_embedder.weight"])
    for name, tensor in straight.items():
        torch.testing.assert_close(resumed[name], tensor, atol=1e-6, rtol=1e-5)


def test_holdout_list_keeps_its_photos_out_of_the_pool(tmp_path, monkeypatch):
    import engine.training.photo_pool as photo_pool

    listing = tmp_path / "holdout.txt"
    listing.write_text("# held out\nKite\n")
    for index, name in enumerate(["kite", "other", *[f"p{i}" for i in range(16)]]):
        Image.fromarray(np.full((16, 16, 3), index, dtype=np.uint8)).save(tmp_path / f"{name}.png")
    monkeypatch.setattr(photo_pool, "HOLDOUT_LIST", listing)
    monkeypatch.setattr(photo_pool.held_out_stems, "__defaults__", (listing,))
    photos = photo_pool.load_photos(tmp_path, include_skimage=False)
    assert "kite" not in photos and "other" in photos


def test_version_three_card_reports_denoise(tmp_path):
    photos = random_photos(tmp_path / "photos")
    output = tmp_path / "model"
    main(["--preset", "tiny-v3", "--batch-size", "2", "--warmup-steps", "1", "--steps", "2", "--photos", str(photos),
          "--run-folder", str(tmp_path / "run"), "--output", str(output)])
    denoise = json.loads((output / "metrics.json").read_text())["generic_edits"]["denoise"]
    assert denoise["unedited_psnr"] < 30 and denoise["model_psnr"] > 0
    assert "denoise" in (output / "MODEL_CARD.md").read_text()


def test_evaluate_only_measures_the_saved_model_again_without_training_it(tmp_path):
    photos = random_photos(tmp_path / "photos")
    output = tmp_path / "model"
    main(["--preset", "tiny", "--batch-size", "2", "--warmup-steps", "1", "--skip-eval", "--steps", "2", "--photos", str(photos),
          "--run-folder", str(tmp_path / "run"), "--output", str(output)])
    weights, log = (output / "model.safetensors").read_bytes(), (tmp_path / "run" / "log.jsonl").read_text()
    config = json.loads((output / "config.json").read_text())
    config["model"]["generation_steps"], config["model"]["generation_shift"] = 6, 3.0
    (output / "config.json").write_text(json.dumps(config))

    main(["--evaluate-only", "--photos", str(photos), "--output", str(output)])
    metrics = json.loads((output / "metrics.json").read_text())
    assert (metrics["generation_colour_frechet"]["steps"], metrics["generation_colour_frechet"]["shift"]) == (6, 3.0)
    assert "6 steps, shift 3" in (output / "MODEL_CARD.md").read_text()
    assert (output / "model.safetensors").read_bytes() == weights
    assert (tmp_path / "run" / "log.jsonl").read_text() == log


def test_denoise_pairs_a_noisy_source_with_the_clean_photo():
    from engine.training.restoration_edits import add_noise

    photos = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    noisy = add_noise(photos, torch.Generator().manual_seed(0))
    assert torch.equal(noisy, add_noise(photos, torch.Generator().manual_seed(0)))
    assert 0 <= noisy.min() and noisy.max() <= 1
    error = (noisy - photos).std(dim=(1, 2, 3))
    assert (0.01 < error).all() and (error < 0.11).all() and len(set(error.tolist())) == 3  # a level per photo
    fixed = add_noise(photos, torch.Generator().manual_seed(0), sigma=0.05)
    assert abs(float((fixed - photos).std()) - 0.05) < 0.01


def test_zero_steps_from_a_trained_model_writes_the_grown_model_unchanged(tmp_path):
    photos = random_photos(tmp_path / "photos")
    common = ["--batch-size", "2", "--warmup-steps", "1", "--skip-eval", "--photos", str(photos)]
    main(["--preset", "tiny-v3", *common, "--steps", "2", "--run-folder", str(tmp_path / "v3-run"), "--output", str(tmp_path / "v3")])
    main(["--preset", "tiny-v4", *common, "--steps", "0", "--init-from", str(tmp_path / "v3"),
          "--run-folder", str(tmp_path / "v4-run"), "--output", str(tmp_path / "v4")])
    v3, v4 = load_file(tmp_path / "v3" / "model.safetensors"), load_file(tmp_path / "v4" / "model.safetensors")
    for name, tensor in v3.items():
        grown = v4[name][: tensor.shape[0]] if name.startswith("transformer.proj_out") else v4[name]
        torch.testing.assert_close(grown, tensor)
    assert v4["transformer.proj_out.weight"][v3["transformer.proj_out.weight"].shape[0]:].abs().sum() == 0
    with pytest.raises(ConfigError, match="init_from"):
        PretrainConfig(steps=0)
