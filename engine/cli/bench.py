"""``python -m engine bench [styles|fusion] ...``: starts the benchmarks (``python -m benchmarks``).

The benchmarks are a separate package beside the product, which depends on the engine and not the
other way round (docs/architecture.md). So this verb imports nothing of them: it runs
``python -m benchmarks`` with the same arguments as a child process and returns its exit code.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

from engine.core.assets import REPOSITORY
from engine.core.errors import InputError

NAME = "bench"
SUMMARY = ("Run the five-style benchmark (one MoE LoRA against per-style LoRAs, the base model and the identity), "
           "or with 'fusion' the subject/style fusion benchmark. 'python -m engine bench --help' lists their options.")
BENCHMARKS = REPOSITORY / "benchmarks"
FORWARDS_ARGUMENTS = True  # engine.cli passes everything after 'bench' on unparsed


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("arguments", nargs=argparse.REMAINDER, help="The benchmark's own arguments.")


def run(args: argparse.Namespace) -> int:
    if not (BENCHMARKS / "__main__.py").is_file():
        raise InputError(f"the benchmarks are not in this checkout ({BENCHMARKS}); run them from a full clone of the repository")
    environment = dict(os.environ)
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPOSITORY), environment.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-m", "benchmarks", *args.arguments], env=environment).returncode
