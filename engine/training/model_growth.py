"""Starting a larger embedded model from a trained smaller one (function-preserving growth).

Version 2 of the embedded model adds single-stream blocks and a convolutional pixel head to
version 1. Rather than train the shared part again from random weights, pretraining can start
from version 1's weights: every tensor whose name and shape match is copied; the transformer's
``proj_out`` rows for the first three pixel channels are version 1's (the pixel head passes those
channels through, see :mod:`engine.models.backbones.embedded.pixel_head`); each added block has
its adaLN modulation zeroed, so its gate is 0 and the block is an identity (DiT's adaLN-zero,
the growth operators of Net2Net, Chen et al. 2016); added instructions (version 3's restoration
edits) get new embedding rows after the known ones. The grown model's output for the known
instructions equals the smaller model's exactly, and training continues from there.
"""

from __future__ import annotations

import torch

from engine.core.errors import InputError
from engine.models.backbones.embedded.backbone import EmbeddedBackbone

PROJ_OUT = "transformer.proj_out"
INSTRUCTION_EMBEDDINGS = ("instruction_tokens.", "instruction_pooled.")


def grow_into(small: EmbeddedBackbone, large: EmbeddedBackbone) -> list[str]:
    """Copy ``small``'s weights into ``large`` in place so both compute the same function; returns
    the names of ``large``'s tensors that did not come from ``small`` (new blocks, the head)."""
    small_state, large_state = small.model.state_dict(), large.model.state_dict()
    check_growable(small, large)
    new = []
    with torch.no_grad():
        for name, value in large_state.items():
            if name in small_state and small_state[name].shape == value.shape:
                value.copy_(small_state[name])
            elif name.startswith(PROJ_OUT):
                rows = small_state[name].shape[0]
                value.zero_()
                value[:rows].copy_(small_state[name])
            elif name.startswith(INSTRUCTION_EMBEDDINGS):
                # Added instructions (restoration edits) come last; the known ones keep their rows.
                value[: small_state[name].shape[0]].copy_(small_state[name])
                new.append(name)
            else:
                new.append(name)
        for name in new:
            if is_added_block_modulation(name):
                large_state[name].zero_()
    return new


def is_added_block_modulation(name: str) -> bool:
    """The adaLN linear of a transformer block (``...blocks.N.norm.linear`` / ``norm1.linear``)."""
    return "blocks." in name and (".norm.linear." in name or ".norm1.linear." in name or ".norm1_context.linear." in name)


def check_growable(small: EmbeddedBackbone, large: EmbeddedBackbone) -> None:
    """Growth adds blocks and the head only: width, patches and instructions must match."""
    fixed = ("native_resolution", "patch_size", "num_heads", "head_dim", "instruction_tokens", "instruction_dim")
    differing = [name for name in fixed if getattr(small.config, name) != getattr(large.config, name)]
    if differing:
        raise InputError(f"cannot grow the model: {', '.join(differing)} differ; growth adds blocks and the pixel head only")
    if small.config.restoration_edits and not large.config.restoration_edits:
        raise InputError("cannot grow the model into one that does not know the restoration instructions")
    if large.config.detail_bands < small.config.detail_bands or (small.config.detail_guides and not large.config.detail_guides):
        raise InputError("cannot grow the model into one with fewer detail bands or without its band guides")
    if large.config.num_double_blocks < small.config.num_double_blocks or large.config.num_single_blocks < small.config.num_single_blocks:
        raise InputError("cannot grow the model into one with fewer blocks")
