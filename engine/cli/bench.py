"""``python -m engine bench``: the five-style benchmark (``--fast`` for a smoke run)."""

from __future__ import annotations

import argparse
from pathlib import Path

from engine.backbones.registry import EMBEDDED, load_backbone
from engine.bench.style_benchmark import FAST, BenchmarkConfig, dumps, markdown_table, run_benchmark
from engine.cli.arguments import add_config_arguments, config_from_args
from engine.files import write_text_atomic

NAME = "bench"
SUMMARY = "Run the five-style benchmark: one MoE LoRA against per-style LoRAs, the base model and the identity."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--fast", action="store_true", help="A smoke run: two styles, a few steps, two test pairs (for tests).")
    parser.add_argument("--model", default=EMBEDDED, metavar="SPEC", help="The backbone (default: the embedded model).")
    parser.add_argument("--out", type=Path, default=None, help="Also write the JSON report here.")
    add_config_arguments(parser, BenchmarkConfig)


def run(args: argparse.Namespace) -> int:
    config = FAST if args.fast else config_from_args(BenchmarkConfig, args)
    backbone = load_backbone(args.model)
    report = run_benchmark(backbone, config)
    if args.out is not None:
        write_text_atomic(args.out, dumps(report))
    print(markdown_table(report))
    return 0
