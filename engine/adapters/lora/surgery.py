"""Replacing a submodule by its dotted name: how every adapter installs its layers and puts the
originals back (torch's ``Module.get_submodule`` / ``set_submodule``, with a check that the
name is there)."""

from __future__ import annotations

from torch import nn

from engine.core.errors import InputError


def replace_module(root: nn.Module, name: str, module: nn.Module) -> nn.Module:
    """Put ``module`` at the dotted path ``name`` under ``root`` and return the module it replaces."""
    try:
        previous = root.get_submodule(name)
    except AttributeError as error:
        raise InputError(f"this model has no layer {name!r}; check the layer names against the model") from error
    root.set_submodule(name, module)
    return previous
