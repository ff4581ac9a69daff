"""Choosing a backbone and its precision from what the user names."""

import pytest
import torch

from engine.core.errors import InputError
from engine.models.backbones.registry import compute_dtype, load_backbone


def test_auto_precision_is_bfloat16_for_plain_edits_and_float32_with_styles():
    assert compute_dtype("auto", styled=False) == torch.bfloat16
    assert compute_dtype("auto", styled=True) == torch.float32
    assert compute_dtype("float32", styled=False) == torch.float32
    with pytest.raises(InputError, match="dtype must be one of"):
        compute_dtype("float16", styled=False)


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
