"""Command-line options built from config dataclasses."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import pytest

from engine.cli.arguments import add_config_arguments, config_from_args
from engine.core.configuration import option, require
from engine.core.errors import ConfigError


@dataclass
class Example:
    """A config with one field of each supported kind."""

    rank: int = option(4, "Rank of the adapter.")
    rate: float = option(0.5, "Share of 100% to keep.")
    name: str = option("plain", "A name.")
    fast: bool = option(False, "Skip the slow part.")
    shape: tuple = option((1, 2), "Not a scalar.")

    def __post_init__(self) -> None:
        require(self.rank >= 1, "rank must be at least 1")


def parser_for(names: tuple[str, ...]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="example")
    add_config_arguments(parser, Example, names)
    return parser


NAMES = ("rank", "rate", "name", "fast")


def test_options_carry_type_default_and_help() -> None:
    parser = parser_for(NAMES)
    defaults = config_from_args(Example, parser.parse_args([]), NAMES)
    assert (defaults.rank, defaults.rate, defaults.name, defaults.fast) == (4, 0.5, "plain", False)
    given = config_from_args(Example, parser.parse_args(["--rank", "8", "--rate", "0.25", "--name", "x", "--fast"]), NAMES)
    assert (given.rank, given.rate, given.name, given.fast) == (8, 0.25, "x", True)
    text = " ".join(parser.format_help().split())
    assert "Rank of the adapter. (default: 4)" in text
    assert "Share of 100% to keep. (default: 0.5)" in text  # a literal % survives argparse
    assert "--no-fast" in text


def test_validation_of_the_dataclass_still_runs() -> None:
    with pytest.raises(ConfigError, match="rank must be at least 1"):
        config_from_args(Example, parser_for(NAMES).parse_args(["--rank", "0"]), NAMES)


def test_non_scalar_or_unknown_fields_are_programming_errors() -> None:
    with pytest.raises(TypeError, match="shape"):
        parser_for(("shape",))
    with pytest.raises(KeyError, match="colour"):
        parser_for(("colour",))
