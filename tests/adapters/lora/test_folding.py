"""Folding an update into a linear layer's weight and restoring it (engine.adapters.lora.folding)."""

from __future__ import annotations

import torch
from torch import nn

from engine.adapters.lora.folding import restore_weight, summed_low_rank, summed_weight, write_weight


def test_a_bfloat16_sum_is_formed_in_float32_and_rounded_once() -> None:
    weight = torch.full((1, 3), 1.0, dtype=torch.bfloat16)
    delta = torch.full((1, 3), 2.0 ** -9, dtype=torch.bfloat16)  # below half of bfloat16's step at 1 (2^-7): each rounded sum stays 1
    stepwise = weight + delta + delta + delta
    once = summed_weight(weight, delta * 3)
    assert stepwise.tolist() == weight.tolist()
    assert once.dtype == torch.bfloat16 and once.tolist() == [[1.0 + 2.0 ** -7] * 3]  # 1 + 3 * 2^-9 rounds up to 1 + 2^-7


def test_the_low_rank_sum_equals_the_dense_sum() -> None:
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(6, 5, generator=generator)
    up, down = torch.randn(6, 2, generator=generator), torch.randn(2, 5, generator=generator)
    torch.testing.assert_close(summed_low_rank(weight, up, down), summed_weight(weight, up @ down), atol=1e-6, rtol=0)


def test_restoring_puts_back_the_very_tensor_and_the_layer_computes_as_before() -> None:
    linear = nn.Linear(5, 4)
    inputs = torch.randn(3, 5)
    before = linear(inputs).detach()
    original = write_weight(linear, summed_weight(linear.weight.data, torch.ones(4, 5)))
    folded = linear(inputs).detach()
    assert not torch.equal(folded, before)
    torch.testing.assert_close(folded, before + inputs.sum(dim=1, keepdim=True))  # W + 1 adds the sum of the input
    restore_weight(linear, original)
    assert linear.weight.data_ptr() == original.data_ptr()  # the same storage, not a copy
    assert torch.equal(linear(inputs), before)
