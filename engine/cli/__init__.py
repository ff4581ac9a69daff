"""The command line: ``python -m engine COMMAND ...``, a second face on the calls the studio makes.

Each command is one module in this package with:

* ``NAME`` and ``SUMMARY``: the subcommand and its one-line description;
* ``add_arguments(parser)``: adds the command's options to its ``argparse`` parser;
* ``run(args) -> int``: does the work and returns the exit code;
* optionally ``FORWARDS_ARGUMENTS = True``: the command takes the rest of the line unparsed, in
  ``args.arguments`` (``bench``, which starts another program).

Adding a command is writing such a module and listing it in :data:`COMMANDS`. Errors the user can
act on (:class:`~engine.core.errors.AtelierError`) become one ``error: ...`` line on stderr and exit
code 2; usage errors keep argparse's own message and exit code (also 2).
"""

from __future__ import annotations

import argparse
import sys
from types import ModuleType

from engine.cli import bench, edit, fuse, styles, subjects, train
from engine.core.errors import AtelierError

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
        forwards = getattr(command, "FORWARDS_ARGUMENTS", False)
        subparser = subparsers.add_parser(
            command.NAME,
            help=command.SUMMARY,
            description=command.SUMMARY,
            add_help=not forwards,
        )
        command.add_arguments(subparser)
        subparser.set_defaults(run=command.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default: ``sys.argv[1:]``), run the command and return its exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    forwarding = {command.NAME: command for command in COMMANDS if getattr(command, "FORWARDS_ARGUMENTS", False)}
    if argv and argv[0] in forwarding:
        # argparse's REMAINDER does not take a leading option ("bench --fast"), so such a
        # command gets the rest of the line as it is.
        args = argparse.Namespace(arguments=argv[1:], run=forwarding[argv[0]].run)
    else:
        args = parser.parse_args(argv)
    try:
        return args.run(args)
    except AtelierError as error:
        message = " ".join(str(error).split())
        print(f"error: {message}", file=sys.stderr)
        return EXIT_ERROR
