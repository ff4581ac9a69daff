"""``python -m engine subjects train|list|sample``: subject LoRAs (DreamBooth-style) in the library."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from engine.cli.arguments import add_config_arguments, config_from_args
from engine.cli.progress import ProgressBar
from engine.cli.train import add_library_argument
from engine.core.errors import InputError
from engine.core.imaging import output_format, save_image
from engine.library import StyleLibrary, validate_style_name
from engine.models.backbones.registry import EMBEDDED, load_backbone
from engine.models.sampling.sampler import SamplerSettings
from engine.training.subject import (
    MAX_PHOTOS,
    MIN_PHOTOS,
    SubjectRequest,
    SubjectTrainingConfig,
    generate_subject,
    list_subjects,
    train_subject,
)
from engine.training.subject.photos import open_subject_photos

NAME = "subjects"
SUMMARY = f"Train a subject LoRA from {MIN_PHOTOS} to {MAX_PHOTOS} photos of one subject, list subjects, or generate one."
TRAINING_OPTIONS = ("steps", "batch_size", "learning_rate", "rank", "seed")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    train = actions.add_parser("train", help="Train a subject LoRA into the library.")
    train.add_argument("--images", required=True, type=Path, metavar="DIR",
                       help=f"A folder holding {MIN_PHOTOS} to {MAX_PHOTOS} photos of the subject (PNG, JPEG, WebP, TIFF), or a zip of one.")
    train.add_argument("--name", required=True, help="The subject's name: letters, digits, spaces, - or _.")
    train.add_argument("--trigger", default="",
                       help="The phrase prompts name the subject by (e.g. 'sks dog'); on FLUX.1 Kontext the LoRA is trained "
                            "under it (default there: the name). The embedded model has no text prompts, so it only stores it.")
    train.add_argument("--description", default="", help="What the subject is, for the library.")
    train.add_argument("--model", default=EMBEDDED, metavar="SPEC", help="The backbone to train on (default: the embedded model).")
    train.add_argument("--no-resume", dest="resume", action="store_false",
                       help="Start over even if an interrupted run of this name exists.")
    add_config_arguments(train, SubjectTrainingConfig, TRAINING_OPTIONS)
    listing = actions.add_parser("list", help="List the library's subjects.")
    sample = actions.add_parser("sample", help="Generate an image of a subject.")
    sample.add_argument("name", help="The subject's name.")
    sample.add_argument("--out", required=True, type=Path, help="Where to write the image (.png, .jpg or .webp).")
    sample.add_argument("--model", default=EMBEDDED, metavar="SPEC", help="The backbone the subject was trained on.")
    sample.add_argument("--prompt", default=None,
                        help="The prompt on FLUX.1 Kontext (default: the subject's trigger); the embedded model takes none.")
    add_config_arguments(sample, SamplerSettings, ("steps", "seed"))
    for action in (train, listing, sample):
        add_library_argument(action)


def run(args: argparse.Namespace) -> int:
    if args.action == "train":
        return _train(args)
    if args.action == "sample":
        output_format(args.out)  # checked before the model loads
        backbone = load_backbone(args.model)
        with StyleLibrary.open(args.library) as library:
            with ProgressBar(f"generating {args.name}") as progress:
                image = generate_subject(backbone, library, args.name, settings=config_from_args(SamplerSettings, args, ("steps", "seed")),
                                         prompt=args.prompt, callback=progress)
        _save(image, args.out)
        print(f"wrote {args.out} ({image.width}x{image.height})")
        return 0
    with StyleLibrary.open(args.library) as library:
        records = list_subjects(library)
        for record in records:
            loss = record.metrics.get("flow_loss")
            score = f"loss {loss:.4f}" if isinstance(loss, (int, float)) else "-"
            print(f"{record.name:<24} {len(record.pairs):>2} photos  {score:>12}  {record.trigger or '-':<20} {record.description[:40]}")
        print(f"{len(records)} subject(s) in {library.root}")
    return 0


def _train(args: argparse.Namespace) -> int:
    # Everything the user typed is checked before the model loads, which takes the longest.
    validate_style_name(args.name)
    config = config_from_args(SubjectTrainingConfig, args, TRAINING_OPTIONS)
    with open_subject_photos(args.images) as photos:
        count = len(photos)
    backbone = load_backbone(args.model)
    with StyleLibrary.open(args.library) as library:
        began = time.perf_counter()
        with ProgressBar(f"training {args.name}") as progress:
            record = train_subject(library, backbone, SubjectRequest(args.name, args.images, args.description, args.trigger), config,
                                   callback=lambda update: progress(update.step, update.total), resume=args.resume)
        seconds = time.perf_counter() - began
    metrics = record.metrics
    print(f"trained subject {record.name} from {count} photos in {seconds:.0f} s: flow loss {metrics['flow_loss']:.4f} "
          f"with the LoRA, {metrics['base_flow_loss']:.4f} without")
    return 0


def _save(image, path: Path) -> None:
    try:
        save_image(image, path)
    except OSError as error:
        raise InputError(f"cannot write {path}: {error.strerror or error}; check the folder exists and is writable") from error
