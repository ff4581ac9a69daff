"""Few-shot multi-style MoE LoRA: style-specific experts, shared experts and a router per layer."""

from engine.adapters.moe.adapter import MoELoraAdapter
from engine.adapters.moe.config import MoELoraConfig

__all__ = ["MoELoraAdapter", "MoELoraConfig"]
