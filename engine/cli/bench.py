"""``python -m engine bench [styles|fusion]``: the five-style benchmark (``--fast`` for a smoke run),
or the subject/style fusion benchmark."""

from __future__ import annotations

import argparse
from pathlib import Path

from engine.backbones.registry import EMBEDDED, load_backbone
from engine.bench import fusion_bench
from engine.bench.style_benchmark import FAST, BenchmarkConfig, dumps, markdown_table, run_benchmark
from engine.cli.arguments import add_config_arguments, config_from_args
from engine.files import write_text_atomic

NAME = "bench"
SUMMARY = ("Run the five-style benchmark (one MoE LoRA against per-style LoRAs, the base model and the identity), "
           "or with 'fusion' the subject/style fusion benchmark.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("suite", nargs="?", choices=("styles", "fusion"), default="styles",
                        help="Which benchmark: 'styles' (default) or 'fusion' (EST-LoRA against K-LoRA and merge).")
    fusion = parser.add_argument_group("fusion benchmark")
    fusion_bench.add_arguments(fusion)
    parser.add_argument("--fast", action="store_true", help="A smoke run: two styles, a few steps, two test pairs (for tests).")
    parser.add_argument("--model", default=EMBEDDED, metavar="SPEC", help="The backbone (default: the embedded model).")
    parser.add_argument("--out", type=Path, default=None, help="Also write the JSON report here.")
    add_config_arguments(parser, BenchmarkConfig)


def run(args: argparse.Namespace) -> int:
    if args.suite == "fusion":
        return fusion_bench.run_command(args)
    config = FAST if args.fast else config_from_args(BenchmarkConfig, args)
    backbone = load_backbone(args.model)
    report = run_benchmark(backbone, config)
    if args.out is not None:
        write_text_atomic(args.out, dumps(report))
    print(markdown_table(report))
    return 0
