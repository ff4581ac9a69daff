"""Per-layer scores the fusion switch compares, computed once per LoRA pair, and the balance gamma.

For a layer's update ``dW = scale * B A`` (``B = up (out, r)``, ``A = down (r, in)``):

* Energy (EST-LoRA, arXiv 2508.02165): ``E = ||dW||_F^2``, the sum of squared singular values.
  From the factors, ``E = scale^2 * trace((B^T B)(A A^T)) = scale^2 * sum((B^T B) * (A A^T))`` (both
  Gram matrices are symmetric), ``r^2 (out + in)`` multiply-adds instead of ``r * out * in`` for
  ``B @ A``; the product is formed only when that is cheaper (a rank near the layer's size).
* Top-K sum (K-LoRA, CVPR 2025): the sum of the ``K = r_c * r_s`` largest ``|dW|`` entries. There is
  no closed form; ``dW`` is formed. (When ``K`` exceeds the layer's entries, all of them are summed.)
* L1 sum: ``sum |dW|``, for K-LoRA's gamma.

None of these depends on the step, so unlike the public EST-LoRA and K-LoRA code (which rebuild
``B @ A`` and its norm or top-K at every layer call) they are computed once here.

Gamma balances the two LoRAs' overall strength: the mean over layers of the per-layer ratio
``subject score / style score``, recomputed without the ratios at or above ``OUTLIER_FACTOR``
times that mean (EST-LoRA's rule; K-LoRA's code takes the plain mean). Layers where either
score is 0 (a layer only one LoRA changes: a ratio of 0 or infinity) are left out of the mean. The public code takes gamma as an L1
ratio for both methods, which for EST-LoRA mixes an L1 ratio with squared-L2 energies. Here each
method's gamma is the ratio of the very score its rule compares: energies for EST (so the
balanced ratio ``(E_c / gamma) / E_s`` averages 1 over the layers whatever the LoRAs' scales, and
``S`` is a threshold on that dimensionless ratio) and, as K-LoRA's code does, L1 sums for K-LoRA,
whose top-K sums are L1 quantities too.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import torch

from engine.adapters.lora.files import LoraLayer
from engine.core.errors import InputError

OUTLIER_FACTOR = 3.0


def layer_energy(layer: LoraLayer) -> float:
    """``||scale * up @ down||_F^2`` in float64, from the ``r x r`` Gram matrices when that is cheaper."""
    up, down = layer.up.double(), layer.down.double()
    rank = down.shape[0]
    out_features, in_features = up.shape[0], down.shape[1]
    if rank * (out_features + in_features) < out_features * in_features:
        return float(layer.scale**2 * ((up.T @ up) * (down @ down.T)).sum())
    return float((layer.scale * (up @ down)).square().sum())


def energies(layers: Mapping[str, LoraLayer], names: Sequence[str]) -> torch.Tensor:
    """Energies ``(L,)`` float64 of ``layers`` in the order of ``names``."""
    return torch.tensor([layer_energy(layers[name]) for name in names], dtype=torch.float64)


def top_k_sum(layer: LoraLayer, k: int) -> float:
    """The sum of the ``k`` largest entries of ``|dW|`` (float32, as K-LoRA computes it)."""
    magnitudes = layer.delta().abs().flatten()
    return float(torch.topk(magnitudes, min(k, magnitudes.numel())).values.sum())


def top_k_sums(subject: Mapping[str, LoraLayer], style: Mapping[str, LoraLayer],
               names: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """K-LoRA's per-layer scores ``(L,)`` float64 for each side, ``K = rank_c * rank_s`` per layer."""
    subject_sums, style_sums = [], []
    for name in names:
        k = subject[name].down.shape[0] * style[name].down.shape[0]
        subject_sums.append(top_k_sum(subject[name], k))
        style_sums.append(top_k_sum(style[name], k))
    return torch.tensor(subject_sums, dtype=torch.float64), torch.tensor(style_sums, dtype=torch.float64)


def l1_sums(layers: Mapping[str, LoraLayer], names: Sequence[str]) -> torch.Tensor:
    """``sum |dW|`` per layer ``(L,)`` float64."""
    return torch.tensor([float(layers[name].delta().abs().sum()) for name in names], dtype=torch.float64)


def balance_gamma(subject_scores: torch.Tensor, style_scores: torch.Tensor) -> float:
    """Gamma: the outlier-robust mean of ``subject_scores / style_scores`` over layers ``(L,)``."""
    ratios = [c / s for c, s in zip(subject_scores.tolist(), style_scores.tolist()) if c > 0.0 and s > 0.0]
    if not ratios:
        raise InputError("the subject and the style LoRA never change the same layer, so there is nothing to switch "
                         "between; use the merge method")
    mean = math.fsum(ratios) / len(ratios)
    kept = [ratio for ratio in ratios if ratio < OUTLIER_FACTOR * mean]
    return math.fsum(kept) / len(kept)
