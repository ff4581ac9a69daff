"""One style of a multi-style MoE LoRA, written as a standard LoRA file that diffusers and peft load.

For a style-level router, style ``s``'s update of a wrapped layer is static::

    dW = (alpha / r) * ( B_s diag(m_s) A_s + sum_k g_{s,k} B_k diag(m_k) A_k )      (out, in)

which is exactly a LoRA ``dW = B' A'`` whose rank is the number of live components: the rows of
``A'`` ``(R, in)`` are the live rows of ``A_s`` and the shared ``A_k``, the columns of ``B'``
``(out, R)`` the matching columns of ``B_s, B_k`` times their coefficient (scale, gate and 0/1 mask).
Components with a zero coefficient (pruned by a mask, or dropped by a top-k gate) contribute
nothing and are left out, so ranks may differ from layer to layer.

A token router's gates depend on each token, so no LoRA reproduces it exactly. The export then
uses the style's router bias alone as a static gate (the gate a token whose router logits are
zero gets, ``g_s = gate(bias_s)``) and reports how far that static update is from the token-routed
one on standard-normal probe inputs.

When a layer's rank exceeds ``max_rank`` the update is truncated to its best rank-``max_rank``
approximation in Frobenius norm (Eckart and Young 1936), computed from the factors (a QR of each
factor, then an SVD of an ``R x R`` matrix), never from the full ``out x in`` matrix.

The file is written by :func:`engine.adapters.lora.writing.write_lora_file`: diffusers' and peft's
keys, the LoRA scale folded into ``lora_B`` and ``lora_alpha == r`` for every module, so any
loader's ``alpha / r`` is exactly 1.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

import torch

from engine.adapters.lora.writing import check_lora_path, model_spec_entries, settings_entry, write_lora_file
from engine.adapters.moe.adapter import MoELoraAdapter
from engine.adapters.moe.layer import MoELoraLinear
from engine.core.errors import InputError

# Probe inputs per layer for a token router's routing error; the estimate's relative standard
# error is about 1 / sqrt(2 * PROBES).
PROBES = 256
PROBE_SEED = 0


@dataclass
class ExportReport:
    """What :func:`export_style_lora` wrote and how exact it is.

    ``error`` bounds the relative error of the written LoRA against the adapter's update for the
    style: ``(routing + truncation) / reference`` over all layers together (Minkowski's inequality
    makes it an upper bound on the relative error of the sum). ``truncation_error`` is the relative
    Frobenius error of the rank truncation alone; ``routing_error`` (token router only) the
    relative error of the static gate against token routing, on probe inputs. Both are 0.0 for a
    style router exported at full rank.
    """

    path: Path
    style_key: str
    ranks: dict[str, int]
    exact: bool
    error: float
    truncation_error: float
    routing_error: float
    layer_errors: dict[str, float] = field(default_factory=dict)


@dataclass
class _LayerExport:
    down: torch.Tensor  # (R', in), float32
    up: torch.Tensor  # (out, R'), float32, the coefficients folded in
    reference_sq: float  # squared norm of the adapter's update (Frobenius, or mean over probes)
    routing_sq: float  # squared norm of static minus token-routed update (probe mean)
    truncation_sq: float  # squared Frobenius norm of the discarded singular values


def export_style_lora(
    adapter: MoELoraAdapter,
    style_key: str,
    path: str | Path,
    *,
    title: str,
    trigger: str,
    architecture: str,
    description: str = "",
    training_settings: Mapping[str, Any] | None = None,
    max_rank: int | None = None,
    dtype: torch.dtype = torch.float32,
) -> ExportReport:
    """Write style ``style_key`` of ``adapter`` as one diffusers/peft LoRA safetensors file.

    Args:
        adapter: the multi-style adapter (its routing is restored afterwards).
        style_key: the style's expert key.
        path: the ``.safetensors`` file to write (atomically).
        title, trigger, description: the ``modelspec.*`` header entries (SAI model spec).
        architecture: ``modelspec.architecture``, e.g. ``"flux-1-dev"`` for FLUX.1 Kontext,
            ``"atelier-embedded"`` for the embedded model; written as given.
        training_settings: JSON-serialisable facts stored as ``atelier.training_settings``.
        max_rank: truncate any layer of higher rank to this rank by SVD (None: exact ranks).
        dtype: dtype of the written weights (the computation runs in float32/float64).

    Returns:
        An :class:`ExportReport` with the per-layer ranks and the error bound.
    """
    adapter.check_keys([style_key])
    path = check_lora_path(path)
    if max_rank is not None and (not isinstance(max_rank, int) or max_rank < 1):
        raise InputError(f"max_rank must be a positive whole number or None, not {max_rank!r}")
    model_spec = model_spec_entries(title=title, trigger=trigger, architecture=architecture, description=description)
    settings_json = settings_entry(training_settings)

    exports: dict[str, _LayerExport] = {}
    with torch.no_grad(), _routed_to(adapter, style_key):
        for name, layer in adapter.layers.items():
            exported = _export_layer(layer, max_rank)
            if exported is not None:
                exports[name] = exported
    if not exports:
        raise InputError(f"style {style_key} has no live LoRA component in any layer (all pruned); nothing to export")

    reference = math.sqrt(sum(item.reference_sq for item in exports.values()))
    routing = math.sqrt(sum(item.routing_sq for item in exports.values()))
    truncation = math.sqrt(sum(item.truncation_sq for item in exports.values()))
    error = _relative(routing + truncation, reference)
    ranks = {name: item.down.shape[0] for name, item in exports.items()}
    report = ExportReport(
        path=path, style_key=style_key, ranks=ranks,
        exact=adapter.config.router == "style" and truncation == 0.0,
        error=error, truncation_error=_relative(truncation, reference), routing_error=_relative(routing, reference),
        layer_errors={name: _relative(math.sqrt(item.routing_sq) + math.sqrt(item.truncation_sq), math.sqrt(item.reference_sq))
                      for name, item in exports.items()},
    )

    write_lora_file(path, {name: (item.down, item.up) for name, item in exports.items()}, model_spec, {
        "atelier.backbone": adapter.backbone_name,
        "atelier.style_key": style_key,
        "atelier.router": adapter.config.router,
        "atelier.training_settings": settings_json,
        "atelier.export_error": repr(error),
    }, dtype)
    return report


def _export_layer(layer: MoELoraLinear, max_rank: int | None) -> _LayerExport | None:
    """One layer's exported factors under the routing set by :func:`_routed_to`."""
    token_routed = layer.token_router is not None
    # A zero input gives zero token-router logits (the router has no bias), so the gates are
    # those of the style's router bias alone: the static gate documented above.
    static_input = torch.zeros(1, layer.in_features, device=layer.shared_mask.device) if token_routed else None
    down, up, coefficients = layer.components(static_input)  # (R, in), (out, R), (1, R)
    live = coefficients[0] != 0
    if not bool(live.any()):
        return None
    down = down[live].float()
    up = (up[:, live] * coefficients[0, live]).float()
    if token_routed:
        reference_sq, routing_sq = _token_routing_error(layer, down, up)
    else:
        reference_sq, routing_sq = _frobenius_sq(down, up), 0.0
    truncation_sq = 0.0
    if max_rank is not None and down.shape[0] > max_rank:
        down, up, truncation_sq = _truncate(down, up, max_rank)
    return _LayerExport(down, up, reference_sq, routing_sq, truncation_sq)


def _token_routing_error(layer: MoELoraLinear, static_down: torch.Tensor, static_up: torch.Tensor) -> tuple[float, float]:
    """Mean squared norm of the token-routed update and of its difference from the static one, over
    standard-normal probes ``x`` ``(PROBES, in)``. For a static update ``M``, ``E||M x||^2 = ||M||_F^2``,
    so these are on the same scale as the Frobenius norms used for truncation."""
    generator = torch.Generator().manual_seed(PROBE_SEED)
    probes = torch.randn(1, PROBES, layer.in_features, generator=generator).to(layer.shared_mask.device)
    down, up, coefficients = layer.components(probes)  # coefficients (1, PROBES, R)
    routed = ((probes @ down.float().T) * coefficients.float()) @ up.float().T  # (1, PROBES, out)
    static = (probes @ static_down.T) @ static_up.T
    return float(routed.double().square().sum(-1).mean()), float((routed - static).double().square().sum(-1).mean())


def _frobenius_sq(down: torch.Tensor, up: torch.Tensor) -> float:
    """``||up @ down||_F^2`` as ``sum((up^T up) * (down down^T))``: two ``R x R`` Gram matrices
    instead of the ``out x in`` product (``trace(X Y) = sum(X * Y^T)``, both Gram matrices symmetric)."""
    up, down = up.double(), down.double()
    return float(((up.T @ up) * (down @ down.T)).sum())


def _truncate(down: torch.Tensor, up: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor, float]:
    """The best rank-``rank`` factors of ``up @ down`` and the squared Frobenius error.

    With ``up = Q_u R_u`` and ``down^T = Q_d R_d``, ``up @ down = Q_u (R_u R_d^T) Q_d^T``; the SVD of
    the small ``R_u R_d^T = U S V^T`` gives the singular vectors ``Q_u U`` and ``Q_d V``. The kept
    singular values are split as ``sqrt(S)`` on both factors so neither dominates in low precision.
    """
    q_up, r_up = torch.linalg.qr(up.double())
    q_down, r_down = torch.linalg.qr(down.double().T)
    u, s, vh = torch.linalg.svd(r_up @ r_down.T)
    root = s[:rank].sqrt()
    new_up = (q_up @ u[:, :rank]) * root  # (out, rank)
    new_down = root[:, None] * (q_down @ vh[:rank].T).T  # (rank, in)
    return new_down.float(), new_up.float(), float(s[rank:].square().sum())


@contextlib.contextmanager
def _routed_to(adapter: MoELoraAdapter, style_key: str) -> Iterator[None]:
    """Route ``adapter`` to one style for the block, then restore the routing (and the gates the
    balance loss reads) it had, so exporting in the middle of training changes nothing."""
    saved_keys, saved_weights = list(adapter.routing.keys), adapter.routing.weights
    saved_gates = {name: layer.last_gates for name, layer in adapter.layers.items()}
    adapter.route({style_key: 1.0})
    try:
        yield
    finally:
        adapter.routing.keys, adapter.routing.weights = saved_keys, saved_weights
        for name, layer in adapter.layers.items():
            layer.last_gates = saved_gates[name]


def _relative(numerator: float, denominator: float) -> float:
    if numerator == 0.0:
        return 0.0
    return numerator / denominator if denominator > 0 else math.inf
