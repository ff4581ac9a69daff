"""``python -m engine edit``: edit one photo, as the studio's Edit tab does."""

from __future__ import annotations

import argparse
from pathlib import Path

from engine.cli.arguments import add_config_arguments, config_from_args, given_config_values
from engine.cli.progress import ProgressBar
from engine.core.errors import InputError
from engine.core.imaging import SAVE_FORMATS, load_photo, output_format, save_image
from engine.library import StyleLibrary
from engine.models.backbones.embedded.instructions import GENERATE, INSTRUCTIONS
from engine.models.backbones.registry import DTYPE_CHOICES, EMBEDDED, compute_dtype, load_backbone
from engine.models.sampling.sampler import SamplerSettings
from engine.rendering.full_resolution import RenderSettings, carry_to_full_resolution, check_render_size
from engine.rendering.tiling import edit_for_render
from engine.services.mix_render import render_for_mix
from engine.services.style_edit import MAX_MIX, StyleEditor

NAME = "edit"
SUMMARY = ("Edit one photo with a model; the model works at its working size and the result is carried to the photo's "
           "own size (--render).")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", required=True, type=Path, metavar="PHOTO",
                        help="The photo to edit: PNG, JPEG, WebP, TIFF or any other format Pillow reads.")
    parser.add_argument("--out", required=True, type=Path, metavar="OUT",
                        help=f"Where to write the result; the extension ({', '.join(SAVE_FORMATS)}) picks the format.")
    add_config_arguments(parser, SamplerSettings)
    # Unset render options take the (leading) style's stored choice; given ones win.
    add_config_arguments(parser, RenderSettings, default_help="the style's stored choice, else {default}")
    edits = ", ".join(instruction for instruction in INSTRUCTIONS if instruction != GENERATE)
    parser.add_argument("--prompt", default="",
                        help=f"The edit to make; empty uses the model's default. The embedded model knows: {edits}.")
    parser.add_argument("--model", default=EMBEDDED, metavar="SPEC",
                        help="'embedded' (the shipped model, the default), a model folder, or a FLUX.1 Kontext folder or hub id.")
    parser.add_argument("--dtype", choices=DTYPE_CHOICES, default="auto",
                        help="Compute precision: 'auto' is float32 with styles, and for plain edits bfloat16 where the model's evaluation timed it faster.")
    parser.add_argument("--style", action="append", default=[], metavar="NAME",
                        help=f"A library style to edit in; repeat (up to {MAX_MIX}) to mix styles.")
    parser.add_argument("--weight", action="append", type=float, default=[], metavar="W",
                        help="The weight of each --style, in order (default: equal weights summing to 1).")
    parser.add_argument("--library", type=Path, default=None, metavar="DIR",
                        help="The style library folder (default: $ATELIER_LIBRARY, else the repository's styles/).")


def style_mix(styles: list[str], weights: list[float]) -> dict[str, float]:
    """Pair ``--style`` names with ``--weight`` values; equal weights summing to 1 when none are given."""
    if weights and len(weights) != len(styles):
        raise InputError(f"got {len(styles)} --style and {len(weights)} --weight; give one weight per style or none")
    if len(set(name.casefold() for name in styles)) != len(styles):
        raise InputError("a style is named twice; give each style once")
    return dict(zip(styles, weights or [1.0 / max(1, len(styles))] * len(styles)))


def run(args: argparse.Namespace) -> int:
    # Everything the user typed is checked before the model loads, which takes the longest.
    output_format(args.out)
    if args.out.is_dir():
        raise InputError(f"{args.out} is a folder; give a file name such as {args.out / 'edited.png'}")
    settings = config_from_args(SamplerSettings, args)
    given = given_config_values(RenderSettings, args)
    render = RenderSettings(**given)  # checks the values now; the style's choice fills the rest below
    mix = style_mix(args.style, args.weight)
    photo = load_photo(args.input)
    check_render_size(photo.size, str(args.input))
    backbone = load_backbone(args.model, dtype=compute_dtype(args.dtype, styled=bool(mix), spec=args.model))
    if mix:
        with StyleLibrary.open(args.library) as library:
            render = render_for_mix(library, mix, given)
            editor = StyleEditor(backbone, library)
            with ProgressBar("editing") as progress:
                result = editor.edit(photo, mix, settings, callback=progress, render=render)
    else:
        with ProgressBar("editing") as progress:
            result = edit_for_render(backbone, photo, settings, prompt=args.prompt, callback=progress, render=render)
    result = carry_to_full_resolution(photo, result, render)
    try:
        save_image(result, args.out)
    except OSError as error:
        raise InputError(f"cannot write {args.out}: {error.strerror or error}; check the folder exists and is writable") from error
    print(f"wrote {args.out} ({result.width}x{result.height})")
    return 0
