"""Typed configuration helpers shared by every config dataclass.

Each field carries a help text in its metadata (as Hugging Face's ``HfArgumentParser`` reads
it), so the CLI can build ``--help`` from the dataclass and the docs stay next to the value.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from engine.core.errors import ConfigError


def option(default: Any, help: str, **kwargs: Any) -> Any:  # noqa: A002 - mirrors argparse
    """A dataclass field with a help text. Mutable defaults go through ``default_factory``."""
    if isinstance(default, (list, dict, set)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata={"help": help}, **kwargs)
    return dataclasses.field(default=default, metadata={"help": help}, **kwargs)


def require(condition: bool, message: str) -> None:
    """Raise a concise :class:`ConfigError` when ``condition`` is false."""
    if not condition:
        raise ConfigError(message)


def help_of(config_type: type, name: str) -> str:
    """The help text of field ``name`` of a config dataclass."""
    for field in dataclasses.fields(config_type):
        if field.name == name:
            return field.metadata.get("help", "")
    raise KeyError(name)


def to_dict(config: Any) -> dict[str, Any]:
    """A JSON-ready dict of a config dataclass (tuples become lists)."""
    return dataclasses.asdict(config)


def from_dict(config_type: type, values: dict[str, Any]) -> Any:
    """Build a config dataclass from a dict, naming any unknown key instead of ignoring it."""
    known = {field.name for field in dataclasses.fields(config_type)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"{config_type.__name__} has no setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    converted = {}
    for field in dataclasses.fields(config_type):
        if field.name in values:
            value = values[field.name]
            converted[field.name] = tuple(value) if isinstance(value, list) and "tuple" in str(field.type) else value
    return config_type(**converted)
