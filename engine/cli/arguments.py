"""Command-line options built from typed config dataclasses, so each help text is written once:
in the field's ``metadata["help"]`` (see :func:`engine.core.configuration.option`)."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from engine.core.configuration import help_of

# Field types a single command-line value can stand for.
SCALAR_TYPES = (int, float, str)


def add_config_arguments(parser: argparse.ArgumentParser, config_type: type, names: tuple[str, ...] | None = None,
                         default_help: str | None = None) -> None:
    """Add ``--field-name`` options for the scalar fields of ``config_type`` (all, or ``names``),
    with the field's default and help text. Booleans become ``--flag/--no-flag``.

    With ``default_help`` the options default to None, so :func:`given_config_values` tells which
    the user gave, and the help says ``(default: <default_help>)``, e.g. "the style's choice"."""
    for field in _fields(config_type, names):
        flag = "--" + field.name.replace("_", "-")
        # argparse %-formats help texts, so a literal percent sign must be doubled.
        shown = "%(default)s" if default_help is None else default_help.replace("%", "%%").replace("{default}", str(field.default))
        help_text = help_of(config_type, field.name).replace("%", "%%") + f" (default: {shown})"
        default = field.default if default_help is None else None
        if isinstance(field.default, bool):
            parser.add_argument(flag, dest=field.name, action=argparse.BooleanOptionalAction, default=default, help=help_text)
        elif isinstance(field.default, SCALAR_TYPES):
            metavar = field.name.upper()
            parser.add_argument(flag, dest=field.name, type=type(field.default), default=default, metavar=metavar, help=help_text)
        else:
            # A programming error, not a user one: the command asked for a field no flag can hold.
            raise TypeError(f"{config_type.__name__}.{field.name} has no scalar default; it cannot be a command-line option")


def config_from_args(config_type: type, args: argparse.Namespace, names: tuple[str, ...] | None = None) -> Any:
    """Build ``config_type`` from the options :func:`add_config_arguments` added; its validation
    raises :class:`~engine.core.errors.ConfigError` for out-of-range values."""
    return config_type(**{field.name: getattr(args, field.name) for field in _fields(config_type, names)})


def given_config_values(config_type: type, args: argparse.Namespace, names: tuple[str, ...] | None = None) -> dict[str, Any]:
    """The fields of ``config_type`` the user gave, for options added with ``default_help``."""
    return {field.name: getattr(args, field.name) for field in _fields(config_type, names) if getattr(args, field.name) is not None}


def _fields(config_type: type, names: tuple[str, ...] | None) -> list[dataclasses.Field]:
    fields = [field for field in dataclasses.fields(config_type) if field.init]
    if names is None:
        return fields
    by_name = {field.name: field for field in fields}
    missing = [name for name in names if name not in by_name]
    if missing:
        raise KeyError(f"{config_type.__name__} has no field(s) {', '.join(missing)}")
    return [by_name[name] for name in names]
