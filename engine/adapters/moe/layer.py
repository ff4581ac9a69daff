"""One linear layer wrapped by the multi-style MoE LoRA.

For an input ``x`` and style weights ``w`` (one-hot for a single style, any mix otherwise)::

    y = W0 x + (alpha / r) * sum_s w_s [ B_s diag(m_s) A_s x + sum_k g_{s,k} B_k diag(m_k) A_k x ]

``A_s, B_s`` is style ``s``'s own expert (style-specific routing), ``A_k, B_k`` the shared experts
and ``g_{s,k}`` the router's gate (style-shared routing; with a token router ``g`` also depends on
``x``). ``m`` are the 0/1 masks of the rank-1 components ``b_i a_i^T`` that rank pruning switches
off. B starts at zero (as LoRA, Hu et al. 2021), so an untrained adapter changes nothing.

All active components are concatenated so the update costs two matrix products whatever the
number of styles: ``hidden = x A_cat^T`` ``(..., R)``, scaled per component, then ``hidden B_cat^T``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from engine.adapters.lora.folding import restore_weight, summed_weight, write_weight
from engine.adapters.moe.config import MoELoraConfig


@dataclass
class Routing:
    """The style routing every wrapped layer of one adapter reads at its forward pass.

    ``weights``: ``(B, S)`` (or ``(1, S)``, broadcast over the batch) over ``keys``, the style
    experts' keys in order.
    """

    keys: list[str] = field(default_factory=list)
    weights: torch.Tensor | None = None


def add_low_rank_update(result: torch.Tensor, projected: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """``result + projected @ up^T`` for ``result (..., out)``, ``projected (..., R)``, ``up (out, R)``.

    Without autograd the update is accumulated in place into ``result`` (a layer's fresh output):
    a new ``(..., out)`` tensor for ``result + update`` is a large allocation at every call, which
    on this CPU cost more than the update itself (BENCHMARKS.md, styles' cost at edit time).
    """
    if not torch.is_grad_enabled() and result.is_contiguous():
        result.view(-1, result.shape[-1]).addmm_(projected.reshape(-1, projected.shape[-1]), up.t())
        return result
    return result + F.linear(projected, up)


class MoELoraLinear(nn.Module):
    """A frozen ``nn.Linear`` plus style experts, shared experts and a router."""

    def __init__(self, base_layer: nn.Linear, config: MoELoraConfig, routing: Routing) -> None:
        super().__init__()
        self.base_layer = base_layer
        self.config = config
        self.routing = routing
        self.in_features, self.out_features = base_layer.in_features, base_layer.out_features
        self.style_down = nn.ParameterDict()
        self.style_up = nn.ParameterDict()
        self.style_mask = nn.ParameterDict()
        self.style_router = nn.ParameterDict()
        experts, rank = config.num_shared_experts, config.rank
        self.shared_down = nn.Parameter(self._init_down(experts * rank).view(experts, rank, self.in_features))
        self.shared_up = nn.Parameter(torch.zeros(experts, self.out_features, rank))
        self.shared_mask = nn.Parameter(torch.ones(experts, rank), requires_grad=False)
        self.token_router = nn.Linear(self.in_features, experts, bias=False) if config.router == "token" and experts else None
        if self.token_router is not None:
            nn.init.zeros_(self.token_router.weight)
        self.folded_weight: torch.Tensor | None = None
        self.last_gates: torch.Tensor | None = None
        self._cache: tuple[torch.Tensor, torch.Tensor, torch.Tensor | None] | None = None
        self._cache_weights: torch.Tensor | None = None
        self._cache_routing: tuple | None = None
        self._cache_versions: list[tuple[torch.Tensor, int]] = []
        self._styles_changed = 0  # bumped by add_style / remove_style, which replace tensors

    def _init_down(self, rows: int) -> torch.Tensor:
        # Kaiming-uniform rows as peft initialises lora_A; B = 0 keeps the start an identity.
        weight = torch.empty(rows, self.in_features)
        if rows:
            nn.init.kaiming_uniform_(weight, a=math.sqrt(5))
        return weight

    def add_style(self, key: str) -> None:
        """A new style expert (zero update) and a router entry (uniform over shared experts)."""
        rank = self.config.rank
        device = self.shared_mask.device
        self.style_down[key] = nn.Parameter(self._init_down(rank).to(device))
        self.style_up[key] = nn.Parameter(torch.zeros(self.out_features, rank, device=device))
        self.style_mask[key] = nn.Parameter(torch.ones(rank, device=device), requires_grad=False)
        self.style_router[key] = nn.Parameter(torch.zeros(self.config.num_shared_experts, device=device))
        self._styles_changed += 1

    def remove_style(self, key: str) -> None:
        for table in (self.style_down, self.style_up, self.style_mask, self.style_router):
            del table[key]
        self._styles_changed += 1

    def gates(self, hidden: torch.Tensor | None = None) -> torch.Tensor:
        """Shared-expert gates: ``(B, K)`` for the style router, ``(B, ..., K)`` for the token
        router (``hidden``: the layer input ``(B, ..., in)``)."""
        weights = self.routing.weights
        logits = torch.stack([self.style_router[key] for key in self.routing.keys])  # (S, K)
        if self.token_router is None:
            return weights.to(logits.dtype) @ self._gate(logits)  # (B, K): the style mix of per-style gates
        style_bias = weights.to(logits.dtype) @ logits  # (B, K)
        token_logits = self.token_router(hidden.to(self.token_router.weight.dtype))
        bias = style_bias.view(style_bias.shape[0], *([1] * (token_logits.dim() - 2)), -1)
        return self._gate(token_logits + bias)

    def _gate(self, logits: torch.Tensor) -> torch.Tensor:
        if self.config.gate == "softmax":
            return torch.softmax(logits, dim=-1)
        top = torch.topk(logits, self.config.top_k, dim=-1)
        return torch.zeros_like(logits).scatter(-1, top.indices, torch.softmax(top.values, dim=-1))

    def components(self, hidden: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """All rank-1 components and their coefficients under the current routing.

        Returns ``down (R, in)``, ``up (out, R)`` and ``coefficients`` of shape ``(B, R)``
        (``(B, ..., R)`` for the token router), the scale ``alpha / r`` included.
        """
        weights = self.routing.weights
        rank, experts = self.config.rank, self.config.num_shared_experts
        downs = [self.style_down[key] for key in self.routing.keys]
        ups = [self.style_up[key] for key in self.routing.keys]
        masks = torch.stack([self.style_mask[key] for key in self.routing.keys])  # (S, r)
        style_coefficients = (weights.unsqueeze(-1).to(masks.dtype) * masks).flatten(1)  # (B, S*r)
        if experts == 0:
            return torch.cat(downs), torch.cat(ups, dim=1), style_coefficients * self.config.scale
        gates = self.gates(hidden)  # (B, K) or (B, ..., K)
        self.last_gates = gates  # read by balance_loss after the forward pass
        shared_coefficients = (gates.unsqueeze(-1) * self.shared_mask).flatten(-2)  # (B, [...,] K*r)
        if shared_coefficients.dim() > 2:
            style_coefficients = style_coefficients.view(
                style_coefficients.shape[0], *([1] * (shared_coefficients.dim() - 2)), -1
            ).expand(*shared_coefficients.shape[:-1], -1)
        down = torch.cat([*downs, self.shared_down.reshape(experts * rank, self.in_features)])
        up = torch.cat([*ups, self.shared_up.permute(1, 0, 2).reshape(self.out_features, experts * rank)], dim=1)
        coefficients = torch.cat([style_coefficients, shared_coefficients], dim=-1)
        return down, up, coefficients * self.config.scale

    def delta_weight(self) -> torch.Tensor:
        """The static update ``(out, in)`` for the current routing (style router, one mix only)."""
        if self.token_router is not None:
            raise ValueError("a token router's update depends on the input and cannot be folded")
        if self.routing.weights.shape[0] != 1:
            raise ValueError("folding needs one style mix, not a batch of them")
        down, up, coefficients = self.components()
        return (up * coefficients[0]) @ down

    def fold(self) -> None:
        """Add the current update into the base weight, so a forward costs what the base costs."""
        if self.folded_weight is not None:
            self.unfold()
        delta = self.delta_weight().detach()
        self.folded_weight = write_weight(self.base_layer, summed_weight(self.base_layer.weight.data, delta))

    def unfold(self) -> None:
        """Restore the base weight saved by :meth:`fold`."""
        if self.folded_weight is not None:
            restore_weight(self.base_layer, self.folded_weight)
            self.folded_weight = None

    def _static_factors(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """The update's factors for a style router at inference: ``down_t (in, R)``,
        ``up_t (R, out)`` (both contiguous, in the base weight's dtype) and the coefficients
        ``(B, R)``, or ``None`` when one mix serves the whole batch and they are folded into
        ``up_t``.

        Cached until the routing or any expert tensor changes (tensor version counters move on
        every in-place write, and adding or removing a style replaces tensors), so an unfolded
        mix does not rebuild its concatenated experts at every step. Stored transposed so the
        forward pass calls the two matrix products directly: at edit time the per-call
        dispatch, not only the arithmetic, is what an unfolded mix costs over a base edit.
        """
        weights = self.routing.weights
        if weights.is_inference():
            return self._build_static_factors()
        # The weights tensor itself is kept (not its id, which a new tensor may reuse once the
        # old one is freed). Checked at every forward pass, so only version counters are read
        # here; the expert tensors are gathered again only when the cache is rebuilt.
        routing = (weights._version, tuple(self.routing.keys), self._styles_changed)
        if (self._cache_weights is weights and self._cache_routing == routing
                and all(tensor._version == version for tensor, version in self._cache_versions)):
            return self._cache
        tensors = [self.shared_down, self.shared_up, self.shared_mask]
        for key in self.routing.keys:
            tensors += [self.style_down[key], self.style_up[key], self.style_mask[key], self.style_router[key]]
        if any(tensor.is_inference() for tensor in tensors):
            self._cache_weights = None
            return self._build_static_factors()
        self._cache = self._build_static_factors()
        self._cache_weights, self._cache_routing = weights, routing
        self._cache_versions = [(tensor, tensor._version) for tensor in tensors]
        return self._cache

    def _build_static_factors(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """What :meth:`_static_factors` returns, built afresh. Used directly when routing or
        experts were made under ``torch.inference_mode``: inference tensors keep no version
        counter, so a cache of them could not see a change."""
        down, up, coefficients = self.components()
        if coefficients.shape[0] == 1:
            # Components a mix switches off (pruned, an unmixed style, a top-k gate's losers)
            # are dropped rather than multiplied by zero at every call.
            scale, kept = coefficients[0], coefficients[0] != 0
            if not bool(kept.all()):  # boolean indexing is costly next to the rest of a rebuild
                down, up, scale = down[kept], up[:, kept], scale[kept]
            up, coefficients = up * scale, None
        dtype = self.base_layer.weight.dtype
        return down.t().contiguous().to(dtype), up.t().contiguous().to(dtype), coefficients

    def _add_static_update(self, hidden: torch.Tensor, result: torch.Tensor) -> torch.Tensor:
        """``result + update(hidden)`` without autograd for a style router; ``hidden (B, ..., in)``."""
        down_t, up_t, coefficients = self._static_factors()
        if down_t.shape[1] == 0:
            return result
        if down_t.dtype != hidden.dtype:
            down_t, up_t = down_t.to(hidden.dtype), up_t.to(hidden.dtype)
        projected = hidden.reshape(-1, self.in_features).mm(down_t)  # (N, R)
        if coefficients is not None:
            rank = coefficients.shape[1]  # (B, R) against the rows of B samples: broadcasting checks B
            projected = projected.view(hidden.shape[0], -1, rank) * coefficients.to(hidden.dtype).unsqueeze(1)
        return add_low_rank_update(result, projected.view(*hidden.shape[:-1], -1), up_t.t())

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """``hidden``: ``(B, ..., in)``; returns ``(B, ..., out)``."""
        result = self.base_layer(hidden)
        if self.folded_weight is not None or self.routing.weights is None or not self.routing.keys:
            return result
        if self.token_router is None and not torch.is_grad_enabled():
            return self._add_static_update(hidden, result)
        down, up, coefficients = self.components(hidden)
        projected = F.linear(hidden, down.to(hidden.dtype))  # (B, ..., R)
        if coefficients.dim() == 2:
            coefficients = coefficients.view(coefficients.shape[0], *([1] * (projected.dim() - 2)), -1)
        return add_low_rank_update(result, projected * coefficients.to(hidden.dtype), up.to(hidden.dtype))

    def balance_loss(self) -> torch.Tensor:
        """Switch-Transformer load balancing over the gates of the last forward pass,
        ``K * sum_k P_k^2`` with ``P`` the mean gate (Fedus et al. 2022, soft usage standing in
        for hard counts); 1 when usage is uniform, K when one expert takes everything."""
        experts = self.config.num_shared_experts
        if experts == 0 or self.last_gates is None:
            return torch.zeros(())
        usage = self.last_gates.reshape(-1, experts).mean(dim=0)
        return experts * (usage**2).sum()
