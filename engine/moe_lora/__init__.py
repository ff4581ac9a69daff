"""Few-shot multi-style MoE LoRA: style-specific experts, shared experts and a router per layer."""

from engine.moe_lora.adapter import MoELoraAdapter
from engine.moe_lora.config import MoELoraConfig

__all__ = ["MoELoraAdapter", "MoELoraConfig"]
