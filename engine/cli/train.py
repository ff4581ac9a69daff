"""``python -m engine train``: train a style from before/after pairs into the library."""

from __future__ import annotations

import argparse
from pathlib import Path

from engine.cli.arguments import add_config_arguments, config_from_args
from engine.cli.progress import ProgressBar
from engine.library import StyleLibrary, validate_style_name
from engine.models.backbones.registry import EMBEDDED, load_backbone
from engine.training.add_style import StyleRequest, train_style
from engine.training.pairs import read_pairs
from engine.training.style_trainer import StyleTrainingConfig

NAME = "train"
SUMMARY = "Train a style from before/after pairs (a folder with before/ and after/, or a zip) into the style library."
# The training settings offered here, as the studio's Train page offers them.
TRAINING_OPTIONS = ("steps", "batch_size", "learning_rate", "adversarial_weight", "training_scale", "seed")


def add_library_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--library", type=Path, default=None, metavar="DIR",
                        help="The style library folder (default: $ATELIER_LIBRARY, else the repository's styles/).")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pairs", required=True, type=Path, metavar="DIR",
                        help="A folder holding before/ and after/ with matching file names, or a zip of one.")
    parser.add_argument("--style", required=True, metavar="NAME", help="The new style's name: letters, digits, spaces, - or _.")
    parser.add_argument("--description", default="", help="What the style does, for the library.")
    parser.add_argument("--trigger", default="", help="A trigger phrase stored with the style and its exported LoRA.")
    parser.add_argument("--model", default=EMBEDDED, metavar="SPEC", help="The backbone to train on (default: the embedded model).")
    parser.add_argument("--no-resume", dest="resume", action="store_false", help="Start over even if an interrupted run of this name exists.")
    add_library_argument(parser)
    add_config_arguments(parser, StyleTrainingConfig, TRAINING_OPTIONS)


def run(args: argparse.Namespace) -> int:
    validate_style_name(args.style)
    config = config_from_args(StyleTrainingConfig, args, TRAINING_OPTIONS)
    pairs = read_pairs(args.pairs)  # checked before the model loads
    backbone = load_backbone(args.model)
    with StyleLibrary.open(args.library) as library:
        with ProgressBar(f"training {args.style}") as progress:
            record = train_style(library, backbone, StyleRequest(args.style, pairs, args.description, args.trigger), config,
                                 callback=lambda update: progress(update.step, update.total), resume=args.resume)
    holdout = record.metrics.get("holdout") or record.metrics.get("train")
    print(f"trained {record.name}: PSNR {holdout['psnr']:.2f} dB with the style, {holdout['base_psnr']:.2f} dB without "
          f"({'held-out' if 'holdout' in record.metrics else 'training'} pairs)")
    return 0
