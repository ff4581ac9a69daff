"""The command line: ``python -m engine COMMAND ...``, a second face on the calls the studio makes.

Each command is one module in this package with:

* ``NAME`` and ``SUMMARY``: the subcommand and its one-line description;
* ``add_arguments(parser)``: adds the command's options to its ``argparse`` parser;
* ``run(args) -> int``: does the work and returns the exit code.

Adding a command is writing such a module and listing it in :data:`COMMANDS`. Errors the user can
act on (:class:`~engine.errors.AtelierError`) become one ``error: ...`` line on stderr and exit
code 2; usage errors keep argparse's own message and exit code (also 2).
"""

from __future__ import annotations

import argparse
import sys
from types import ModuleType

from engine.cli import bench, edit, fuse, styles, subjects, train
from engine.errors import AtelierError

COMMANDS: tuple[ModuleType, ...] = (edit, fuse, train, styles, subjects, bench)
EXIT_ERROR = 2


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one subparser per module in :data:`COMMANDS`."""
    parser = argparse.ArgumentParser(
        prog="python -m engine",
        description="Atelier's engine from the command line: few-shot multi-style photo editing.",
    )
    subparsers = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        subparser = subparsers.add_parser(
            command.NAME,
            help=command.SUMMARY,
            description=command.SUMMARY,
        )
        command.add_arguments(subparser)
        subparser.set_defaults(run=command.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default: ``sys.argv[1:]``), run the command and return its exit code."""
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except AtelierError as error:
        message = " ".join(str(error).split())
        print(f"error: {message}", file=sys.stderr)
        return EXIT_ERROR
