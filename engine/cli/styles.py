"""``python -m engine styles list|show|export|import|delete``: browse and manage the style library."""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from engine.backbones.registry import EMBEDDED, load_backbone
from engine.cli.train import add_library_argument
from engine.library import StyleLibrary, export_style_zip, import_style_zip
from engine.library.names import validate_style_name
from engine.errors import InputError
from engine.moe_lora.adapter import MoELoraAdapter
from engine.moe_lora.export import export_style_lora

NAME = "styles"
SUMMARY = "List, show, export, import or delete styles in the library."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="List styles, optionally filtered by a search text.")
    listing.add_argument("search", nargs="?", default="", help="Case-insensitive text to look for in names, descriptions and triggers.")
    show = actions.add_parser("show", help="Show one style: description, trigger, pairs, settings and metrics.")
    show.add_argument("name")
    export = actions.add_parser("export", help="Export a style as a zip (pairs, weights, metadata), or as a standard LoRA file.")
    export.add_argument("name")
    export.add_argument("--out", required=True, type=Path,
                        help="The file to write: a .zip for the whole style, a .safetensors for a diffusers/peft LoRA of its weights.")
    export.add_argument("--model", default=EMBEDDED, metavar="SPEC", help="The backbone the style was trained on.")
    imported = actions.add_parser("import", help="Import a style zip made by 'styles export'.")
    imported.add_argument("zip", type=Path)
    imported.add_argument("--name", default=None, help="Import under another name.")
    delete = actions.add_parser("delete", help="Delete a style: its expert, pairs and files; other styles are untouched.")
    delete.add_argument("name")
    delete.add_argument("--model", default=EMBEDDED, metavar="SPEC", help="The backbone the style was trained on.")
    for action in (listing, show, export, imported, delete):
        add_library_argument(action)


def single_style_adapter(library: StyleLibrary, name: str, model: str, out: Path) -> str:
    """Write an adapter file holding only ``name``'s expert (plus the shared experts); returns its key."""
    record = library.get_style(name)
    backbone = load_backbone(model)
    adapter = MoELoraAdapter.load(library.adapter_path(record), backbone)
    for key in adapter.style_keys:
        if key != record.expert_key:
            adapter.remove_style(key)
    adapter.save(out)
    return record.expert_key


def export_lora(library: StyleLibrary, name: str, model: str, out: Path):
    """Write ``name`` as a diffusers/peft LoRA file with modelspec metadata; returns the report."""
    record = library.get_style(name)
    backbone = load_backbone(model)
    adapter = MoELoraAdapter.load(library.adapter_path(record), backbone)
    architecture = "atelier-embedded" if backbone.name == "atelier-embedded" else "flux-1-dev/lora"
    return export_style_lora(adapter, record.expert_key, out, title=record.name, trigger=record.trigger,
                             architecture=architecture, description=record.description, training_settings=record.settings)


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
                              "metrics": record.metrics, "settings": record.settings}, indent=2))
        elif args.action == "export" and args.out.suffix.lower() == ".safetensors":
            report = export_lora(library, args.name, args.model, args.out)
            exactness = "exact" if report.exact else f"relative error {report.error:.4f}"
            print(f"wrote {args.out} (a diffusers/peft LoRA, {exactness})")
        elif args.action == "export":
            if args.out.suffix.lower() != ".zip":
                raise InputError(f"{args.out}: export writes a .zip (the whole style) or a .safetensors (a LoRA); pick one of those")
            with tempfile.TemporaryDirectory(prefix="atelier-export-") as folder:
                weights = Path(folder) / "style.safetensors"
                key = single_style_adapter(library, args.name, args.model, weights)
                export_style_zip(library, args.name, args.out, weights, expert_key=key)
            print(f"wrote {args.out}")
        elif args.action == "import":
            record = import_style_zip(library, args.zip, args.name)
            print(f"imported {record.name}")
        elif args.action == "delete":
            delete_style(library, args.name, args.model)
            print(f"deleted {args.name}")
    return 0


def delete_style(library: StyleLibrary, name: str, model: str) -> None:
    """Delete a style; when it shares the MoE adapter, the adapter is rewritten without its expert."""
    validate_style_name(name)
    record = library.get_style(name)
    sharing = [other for other in library.list_styles() if other.adapter.id == record.adapter.id and other.id != record.id]
    if not sharing:
        library.delete_style(name)
        return
    from engine.library import AdapterSource

    adapter = MoELoraAdapter.load(library.adapter_path(record), load_backbone(model))
    adapter.remove_style(record.expert_key)
    with tempfile.TemporaryDirectory(prefix="atelier-adapter-") as folder:
        path = Path(folder) / "adapter.safetensors"
        adapter.save(path)
        library.delete_style(name, AdapterSource(path, "moe", record.backbone, {"styles": len(adapter.style_keys)}))
