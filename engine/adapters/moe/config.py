"""Configuration of the multi-style MoE LoRA and the module-name presets of where it goes."""

from __future__ import annotations

from dataclasses import dataclass

from engine.core.configuration import option, require

# Module-name fragments per target preset. Names are those of diffusers' FluxTransformer2DModel,
# so a preset means the same layers on the embedded model and on FLUX.1 Kontext.
ATTENTION = ("attn.to_q", "attn.to_k", "attn.to_v", "attn.to_out.0", "attn.add_q_proj", "attn.add_k_proj",
             "attn.add_v_proj", "attn.to_add_out")
FEED_FORWARD = ("ff.net", "ff_context.net", "proj_mlp", "proj_out")
# The model's own input and output layers, outside the blocks: the patch embedding (x_embedder,
# packed patch -> hidden) and the output projection (proj_out, hidden -> packed patch). On the
# embedded pixel-space model they are the only layers that see a patch's pixels.
INPUT_OUTPUT = ("x_embedder", "proj_out")
BLOCKS = ("transformer_blocks", "single_transformer_blocks")
TARGET_PRESETS: dict[str, dict] = {
    "attention": {"fragments": ATTENTION, "blocks": BLOCKS, "input_output": False},
    "feed_forward": {"fragments": FEED_FORWARD, "blocks": BLOCKS, "input_output": False},
    "double": {"fragments": ATTENTION + FEED_FORWARD, "blocks": ("transformer_blocks",), "input_output": False},
    "single": {"fragments": ATTENTION + FEED_FORWARD, "blocks": ("single_transformer_blocks",), "input_output": False},
    "all": {"fragments": ATTENTION + FEED_FORWARD, "blocks": BLOCKS, "input_output": False},
    "all+io": {"fragments": ATTENTION + FEED_FORWARD, "blocks": BLOCKS, "input_output": True},
}
ROUTERS = ("style", "token")
GATES = ("softmax", "top_k")


@dataclass
class MoELoraConfig:
    """Shape and routing of a multi-style MoE LoRA.

    Each wrapped linear layer gets one expert per style (style-specific routing: a style's id
    picks it) and ``num_shared_experts`` shared experts mixed by a router (style-shared
    routing). Every expert is a sum of ``rank`` rank-1 components, each with a 0/1 mask.
    """

    targets: str = option("all+io", f"Where LoRA goes, by module name: one of {', '.join(TARGET_PRESETS)}; 'all' is "
                                    "every block layer, 'all+io' adds the patch embedding and output projection "
                                    "(the default, chosen by measurement: BENCHMARKS.md).")
    rank: int = option(8, "Rank-1 components per expert before pruning.")
    alpha: float = option(8.0, "LoRA scale numerator: the update is multiplied by alpha / rank.")
    num_shared_experts: int = option(2, "Experts shared by all styles, mixed by the router (0: style experts only).")
    router: str = option("style", "Router input: 'style' (a learned gate per style, foldable into the weights) or 'token' (the hidden state plus a per-style bias).")
    gate: str = option("softmax", "Router gate over shared experts: 'softmax' or 'top_k'.")
    top_k: int = option(1, "Shared experts kept per style or token when gate is 'top_k'.")
    balance_weight: float = option(0.0, "Weight of the load-balancing loss on the shared experts' usage (Switch Transformer).")

    def __post_init__(self) -> None:
        require(self.targets in TARGET_PRESETS, f"targets must be one of {', '.join(TARGET_PRESETS)}")
        require(1 <= self.rank <= 256, "rank must lie between 1 and 256")
        require(self.alpha > 0, "alpha must be positive")
        require(0 <= self.num_shared_experts <= 16, "num_shared_experts must lie between 0 and 16")
        require(self.router in ROUTERS, f"router must be one of {', '.join(ROUTERS)}")
        require(self.gate in GATES, f"gate must be one of {', '.join(GATES)}")
        require(1 <= self.top_k <= max(1, self.num_shared_experts), "top_k must lie between 1 and num_shared_experts")
        require(self.balance_weight >= 0, "balance_weight must be non-negative")

    @property
    def scale(self) -> float:
        return self.alpha / self.rank

    @property
    def foldable(self) -> bool:
        """A style-level router makes every layer's update static for a fixed style mix."""
        return self.router == "style"


PRESETS: dict[str, MoELoraConfig] = {
    "tiny": MoELoraConfig(rank=2, alpha=2.0, num_shared_experts=2),
    "default": MoELoraConfig(),
}
