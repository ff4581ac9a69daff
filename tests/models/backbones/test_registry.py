"""Choosing a backbone and its precision from what the user names."""

import json

import pytest
import torch

from engine.core.errors import InputError
from engine.models.backbones.registry import compute_dtype, load_backbone


def test_auto_precision_is_float32_with_styles_and_bfloat16_for_plain_edits_where_measured_faster(tmp_path):
    assert compute_dtype("auto", styled=False) == torch.bfloat16  # the shipped model's card: bf16 faster
    assert compute_dtype("auto", styled=True) == torch.float32
    assert compute_dtype("float32", styled=False) == torch.float32
    assert compute_dtype("bfloat16", styled=True) == torch.bfloat16
    with pytest.raises(InputError, match="dtype must be one of"):
        compute_dtype("float16", styled=False)
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"backbone": "atelier-embedded"}))
    assert compute_dtype("auto", styled=False, spec=str(model)) == torch.float32  # nothing measured
    for bf16, fp32, expected in ((3.67, 1.00, torch.float32), (0.18, 0.26, torch.bfloat16)):
        timed = {"identity_psnr_fp32": {"seconds_per_edit": fp32}, "identity_psnr_bf16": {"seconds_per_edit": bf16}}
        (model / "metrics.json").write_text(json.dumps(timed))
        assert compute_dtype("auto", styled=False, spec=str(model)) == expected
    assert compute_dtype("auto", styled=False, spec="black-forest-labs/FLUX.1-Kontext-dev") == torch.bfloat16


@pytest.mark.parametrize("spec, message", [("no/such/place", "no model at"), ("./missing", "no model at")])
def test_unknown_models_say_what_to_give(spec, message):
    with pytest.raises(InputError, match=message):
        load_backbone(spec)


def test_a_file_is_not_a_model(tmp_path):
    path = tmp_path / "weights.bin"
    path.write_bytes(b"x")
    with pytest.raises(InputError, match="is a file"):
        load_backbone(str(path))


def test_the_shipped_model_loads_in_both_precisions():
    assert load_backbone("embedded").dtype == torch.float32
    assert load_backbone("embedded", dtype=torch.bfloat16).dtype == torch.bfloat16
