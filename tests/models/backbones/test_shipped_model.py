"""The shipped embedded model (assets/base) meets its floors on a photo it never saw."""

import json

import torch

from benchmarks.dataset import BENCHMARK_PHOTOS
from engine.core.imaging import load_photo, resize_to, to_tensor
from engine.metrics.image_quality import psnr
from engine.models.backbones.embedded.backbone import ASSETS
from engine.models.backbones.registry import load_backbone
from engine.models.editing import edit_photo
from engine.training.generic_edits import GENERIC_EDIT_FUNCTIONS

HELD_OUT_PHOTO = BENCHMARK_PHOTOS / "TwoWings.jpg"  # held out of pretraining (engine.training.photo_pool.split)


def unit(image):
    return (to_tensor(image) + 1) / 2


def test_model_card_and_metrics_come_with_the_weights():
    config = json.loads((ASSETS / "config.json").read_text())
    assert config["backbone"] == "atelier-embedded" and config["parameters"] > 1_000_000
    metrics = json.loads((ASSETS / "metrics.json").read_text())
    assert metrics["identity_psnr_fp32"]["mean"] >= 28.0
    assert "TwoWings" in metrics["held_out_photos"]
    assert (ASSETS / "MODEL_CARD.md").read_text().count(str(metrics["identity_psnr_fp32"]["mean"])) >= 1


def test_identity_edit_of_a_held_out_photo_is_above_28_db():
    backbone = load_backbone("embedded")
    photo = load_photo(HELD_OUT_PHOTO)
    result = edit_photo(backbone, photo)
    assert result.size == backbone.fit_size(*photo.size)
    assert psnr(unit(result), unit(resize_to(photo, result.size))).item() >= 28.0


def test_an_instruction_edit_moves_toward_its_target():
    backbone = load_backbone("embedded")
    photo = load_photo(HELD_OUT_PHOTO)
    result = edit_photo(backbone, photo, prompt="less contrast")
    source = unit(resize_to(photo, result.size))
    target = GENERIC_EDIT_FUNCTIONS["less contrast"](source)
    assert psnr(unit(result), target).item() > psnr(source, target).item() + 3.0
    assert torch.isfinite(unit(result)).all()
