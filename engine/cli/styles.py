"""``python -m engine styles list|show|set-render|choose-render|export|import|delete``: browse and manage the style library."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, fields, replace
from pathlib import Path

from engine.cli.arguments import add_config_arguments, given_config_values
from engine.cli.train import add_library_argument
from engine.core.errors import InputError
from engine.library import StyleLibrary, StyleRecord
from engine.models.backbones.registry import EMBEDDED, load_backbone
from engine.rendering.full_resolution import RenderSettings
from engine.rendering.render_choice import describe_settings
from engine.services import style_ops
from engine.training.pairs import read_pairs

NAME = "styles"
SUMMARY = "List, show, set or choose the full-size render of, export, import or delete styles in the library."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="List styles, optionally filtered by a search text.")
    listing.add_argument("search", nargs="?", default="", help="Case-insensitive text to look for in names, descriptions and triggers.")
    show = actions.add_parser("show", help="Show one style: description, trigger, pairs, settings and metrics.")
    show.add_argument("name")
    set_render = actions.add_parser("set-render", help="Set how a style's edits reach the photo's size (overrides the choice "
                                                       "made at training); options not given keep their current value.")
    set_render.add_argument("name")
    add_config_arguments(set_render, RenderSettings, default_help="unchanged")
    measure = actions.add_parser("choose-render", help="Choose a style's full-size render settings again from its stored "
                                 "pairs, as training does (replaces a choice set by hand).")
    measure.add_argument("name", help="The style's name.")
    measure.add_argument("--model", default=EMBEDDED, metavar="SPEC", help="The backbone the style was trained on.")
    measure.add_argument("--pairs", type=Path, default=None, metavar="DIR",
                         help="Measure on these before/after pairs (a folder or zip, as 'train' reads) instead of the "
                              "style's stored ones, e.g. larger copies of them.")
    export = actions.add_parser("export", help="Export a style as a zip (pairs, weights, metadata), or as a standard LoRA file.")
    export.add_argument("name")
    export.add_argument("--out", required=True, type=Path,
                        help="The file to write: a .zip for the whole style, a .safetensors for a diffusers/peft LoRA of its weights.")
    export.add_argument("--model", default=EMBEDDED, metavar="SPEC", help="The backbone the style was trained on.")
    imported = actions.add_parser("import", help="Import a style zip made by 'styles export', or an external LoRA .safetensors file "
                                                 "(diffusers/peft or kohya keys).")
    imported.add_argument("file", type=Path, help="A .zip style or a .safetensors LoRA.")
    imported.add_argument("--name", default=None, help="The style's name (required for a LoRA file; a zip keeps its own unless given).")
    imported.add_argument("--description", default="", help="For a LoRA file: what it does.")
    imported.add_argument("--trigger", default="", help="For a LoRA file: its trigger phrase.")
    imported.add_argument("--model", default=EMBEDDED, metavar="SPEC", help="For a LoRA file: the backbone it was made for.")
    imported.add_argument("--no-thumbnail", action="store_true",
                          help="For a LoRA file: skip the thumbnail (a sample photo edited with the LoRA, one edit's time).")
    delete = actions.add_parser("delete", help="Delete a style: its expert, pairs and files; other styles are untouched.")
    delete.add_argument("name")
    delete.add_argument("--model", default=EMBEDDED, metavar="SPEC", help="The backbone the style was trained on.")
    for action in (listing, show, set_render, measure, export, imported, delete):
        add_library_argument(action)


def run(args: argparse.Namespace) -> int:
    with StyleLibrary.open(args.library) as library:
        if args.action == "list":
            records = library.list_styles(args.search)
            for record in records:
                holdout = record.metrics.get("holdout") or record.metrics.get("train") or {}
                score = f"{holdout['psnr']:.2f} dB" if "psnr" in holdout else "-"
                print(f"{record.name:<24} {score:>10}  {record.description[:60]}")
            print(f"{len(records)} style(s) in {library.root}")
        elif args.action == "show":
            record = library.get_style(args.name)
            print(json.dumps({"name": record.name, "description": record.description, "trigger": record.trigger,
                              "created": record.created, "backbone": record.backbone, "pairs": len(record.pairs),
                              "metrics": record.metrics, "settings": record.settings,
                              "render": render_summary(record)}, indent=2))
        elif args.action == "set-render":
            given = given_config_values(RenderSettings, args)
            if not given:
                flags = ", ".join("--" + field.name.replace("_", "-") for field in fields(RenderSettings))
                raise InputError(f"give at least one of {flags}")
            record = library.set_render(args.name, replace(library.get_style(args.name).render_settings, **given))
            print(f"{record.name}: full-size render {record.render.describe()}")
        elif args.action == "choose-render":
            pairs = None if args.pairs is None else [(pair.before, pair.after) for pair in read_pairs(args.pairs)]
            record = style_ops.measure_render_choice(library, load_backbone(args.model), args.name, pairs)
            print(f"{record.name}: full-size render {record.render.describe()}")
            for candidate, score in record.render.scores:
                print(f"  {describe_settings(candidate):<40} {score:.2f} dB")
        elif args.action == "export" and args.out.suffix.lower() == ".safetensors":
            report = style_ops.export_lora(library, args.name, load_backbone(args.model), args.out)
            exactness = "copied as imported" if report is None else "exact" if report.exact else f"relative error {report.error:.4f}"
            print(f"wrote {args.out} (a diffusers/peft LoRA, {exactness})")
        elif args.action == "export":
            if args.out.suffix.lower() != ".zip":
                raise InputError(f"{args.out}: export writes a .zip (the whole style) or a .safetensors (a LoRA); pick one of those")
            style_ops.export_zip(library, args.name, load_backbone(args.model), args.out)
            print(f"wrote {args.out}")
        elif args.action == "import" and args.file.suffix.lower() == ".safetensors":
            if not args.name:
                raise InputError("importing a LoRA file needs --name NAME for the new style")
            sample = None if args.no_thumbnail else style_ops.sample_photo()
            record = style_ops.import_lora(library, args.file, args.name, load_backbone(args.model), args.description,
                                           args.trigger, sample=sample)
            print(f"imported {record.name} (a LoRA of {record.metrics['layers']} layers)")
        elif args.action == "import":
            if args.file.suffix.lower() != ".zip":
                raise InputError(f"{args.file.name}: import reads a style .zip or a LoRA .safetensors file")
            record = style_ops.import_zip(library, args.file, args.name)
            print(f"imported {record.name}")
        elif args.action == "delete":
            style_ops.delete_style(library, args.name, load_backbone(args.model))
            print(f"deleted {args.name}")
    return 0


def render_summary(record: StyleRecord) -> dict:
    """The style's render settings for ``styles show``: the fields, where they came from, and the
    mean PSNR (dB) of each candidate measured, keyed like ``guided r2 eps0.001 detail1``."""
    settings = record.render_settings
    summary = {**asdict(settings), "origin": "defaults (no choice stored)" if record.render is None else record.render.origin()}
    if record.render is not None and record.render.scores:
        summary["psnr_by_candidate"] = {f"{item.render} r{item.guided_radius} eps{item.guided_epsilon:g} detail{item.guided_detail:g}"
                                        f" {item.guided_prior} steps{item.edit_steps}": score for item, score in record.render.scores}
    return summary

