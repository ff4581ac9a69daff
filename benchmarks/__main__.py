"""``python -m benchmarks [styles|fusion|reliability]`` (also reached as ``python -m engine bench``):
the five-style benchmark (``--fast`` for a smoke run), the subject/style fusion benchmark, or the
reliability suite (:mod:`benchmarks.reliability`: bad inputs, kills of training, load on the studio)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmarks import fusion_bench
from benchmarks.style_benchmark import FAST, BenchmarkConfig, dumps, markdown_table, run_benchmark
from engine.cli.arguments import add_config_arguments, config_from_args
from engine.core.errors import AtelierError
from engine.core.files import write_text_atomic
from engine.models.backbones.registry import EMBEDDED, load_backbone

PROG = "python -m engine bench"
SUMMARY = ("Run the five-style benchmark (one MoE LoRA against per-style LoRAs, the base model and the identity), "
           "with 'fusion' the subject/style fusion benchmark, or with 'reliability' the bad-input suite.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("suite", nargs="?", choices=("styles", "fusion", "reliability"), default="styles",
                        help="Which benchmark: 'styles' (default), 'fusion' (EST-LoRA against K-LoRA and merge) or "
                             "'reliability' (bad inputs through the CLI, the library and the studio's handlers).")
    parser.add_argument("--part", choices=("inputs", "kills", "load", "all"), default="inputs",
                        help="With 'reliability': 'inputs' (bad inputs, default), 'kills' (kill -9 of a training run at 12 "
                             "points, then resume), 'load' (20 concurrent edits through the studio's API while a style trains) or 'all'.")
    fusion = parser.add_argument_group("fusion benchmark")
    fusion_bench.add_arguments(fusion)
    parser.add_argument("--fast", action="store_true", help="A smoke run: two styles, a few steps, two test pairs (for tests).")
    parser.add_argument("--model", default=EMBEDDED, metavar="SPEC", help="The backbone (default: the embedded model).")
    parser.add_argument("--out", type=Path, default=None, help="Also write the JSON report here.")
    add_config_arguments(parser, BenchmarkConfig)


def run(args: argparse.Namespace) -> int:
    if args.suite == "fusion":
        return fusion_bench.run_command(args)
    if args.suite == "reliability":
        from benchmarks import reliability  # imports the studio (gradio) only when asked for

        return reliability.main(["--part", args.part, *(["--out", str(args.out)] if args.out is not None else [])])
    config = FAST if args.fast else config_from_args(BenchmarkConfig, args)
    backbone = load_backbone(args.model)
    report = run_benchmark(backbone, config)
    if args.out is not None:
        write_text_atomic(args.out, dumps(report))
    print(markdown_table(report))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default: ``sys.argv[1:]``), run the benchmark and return its exit code;
    errors the user can act on become one ``error: ...`` line on stderr and exit code 2, as in
    the engine's CLI."""
    parser = argparse.ArgumentParser(prog=PROG, description=SUMMARY)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except AtelierError as error:
        print(f"error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
