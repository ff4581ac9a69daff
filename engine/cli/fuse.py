"""``python -m engine fuse``: one image from a subject LoRA and a style LoRA, fused without training.

``--subject`` and ``--style`` each take a LoRA ``.safetensors`` file (diffusers, peft or kohya
keys) or the name of a library record: a trained style (its expert of the shared MoE adapter is
exported to a temporary LoRA file first), an imported LoRA, or a subject (read from its file).
With ``--input`` the photo is edited; without it an image is generated at the model's native size.
"""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path

from engine.cli.arguments import add_config_arguments, config_from_args, given_config_values
from engine.cli.progress import ProgressBar
from engine.core.errors import InputError
from engine.core.imaging import load_photo, output_format, save_image
from engine.fusion import FusionConfig, plan_fusion, render_fusion
from engine.fusion.config import METHODS
from engine.fusion.sources import LoraSource, file_layers, record_layers
from engine.library import StyleLibrary
from engine.models.backbones.base import Backbone
from engine.models.backbones.registry import EMBEDDED, compute_dtype, load_backbone
from engine.models.sampling.sampler import SamplerSettings
from engine.rendering.full_resolution import RenderSettings, check_render_size
from engine.services.mix_render import render_for_mix

NAME = "fuse"
SUMMARY = "Fuse a subject LoRA and a style LoRA (EST-LoRA, K-LoRA or a merge) into one generated or edited image."
# The FusionConfig fields that are plain command-line options (beta and the DINO folder have their own).
CONFIG_OPTIONS = ("alpha", "style_bias", "subject_scale", "style_scale", "layers")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--subject", required=True, metavar="NAME_OR_FILE",
                        help="The subject LoRA: a .safetensors file or the name of a library subject, style or imported LoRA.")
    parser.add_argument("--style", required=True, metavar="NAME_OR_FILE",
                        help="The style LoRA: a .safetensors file or the name of a library style or imported LoRA.")
    parser.add_argument("--out", required=True, type=Path, metavar="OUT", help="Where to write the image (.png, .jpg, .webp ...).")
    parser.add_argument("--input", type=Path, default=None, metavar="PHOTO",
                        help="A photo to edit; without it an image is generated at the model's native size.")
    parser.add_argument("--method", choices=METHODS, default="est",
                        help="est (EST-LoRA, the default), klora (K-LoRA), merge (weighted sum), subject or style alone.")
    add_config_arguments(parser, FusionConfig, CONFIG_OPTIONS)
    parser.add_argument("--beta", type=float, default=None, metavar="BETA",
                        help="The style discrepancy in [0, 2]; default: measured from a subject-only and a style-only "
                             "sample (est, two extra runs) or K-LoRA's 0.5 (klora).")
    parser.add_argument("--dino", default="", metavar="DIR",
                        help="A local folder with DINO ViT-S/16 (facebook/dino-vits16) to measure beta as the paper does; "
                             "default: the offline style embedding.")
    add_config_arguments(parser, SamplerSettings)
    # Unset render options take a library style's stored choice; given ones win.
    add_config_arguments(parser, RenderSettings, default_help="a library style's stored choice, else {default}")
    parser.add_argument("--prompt", default="", help="The prompt or edit instruction; empty uses the model's default.")
    parser.add_argument("--model", default=EMBEDDED, metavar="SPEC",
                        help="'embedded' (the shipped model, the default), a model folder, or a FLUX.1 Kontext folder or hub id.")
    parser.add_argument("--library", type=Path, default=None, metavar="DIR",
                        help="The style library folder for names (default: $ATELIER_LIBRARY, else the repository's styles/).")


def run(args: argparse.Namespace) -> int:
    # Everything the user typed is checked before the model loads, which takes the longest.
    output_format(args.out)
    if args.out.is_dir():
        raise InputError(f"{args.out} is a folder; give a file name such as {args.out / 'fused.png'}")
    config = FusionConfig(method=args.method, beta=args.beta, dino_folder=args.dino,
                          **{name: getattr(args, name) for name in CONFIG_OPTIONS})
    settings = config_from_args(SamplerSettings, args)
    given_render = given_config_values(RenderSettings, args)
    RenderSettings(**given_render)  # checks the values before the model loads
    photo = load_photo(args.input) if args.input is not None else None
    if photo is not None:
        check_render_size(photo.size, str(args.input))
    for spec in (args.subject, args.style):
        _check_file_spec(spec)
    backbone = load_backbone(args.model, dtype=compute_dtype("auto", styled=True))
    with contextlib.ExitStack() as stack:
        library = _LazyLibrary(args.library, stack)
        subject = resolve_lora(args.subject, backbone, library)
        style = resolve_lora(args.style, backbone, library)
        if subject.identity == style.identity:
            same = "same file checksum" if subject.identity[1] is None else "the same style of one adapter file"
            raise InputError(f"--subject {subject.label} and --style {style.label} are the same LoRA ({same}); "
                             "pick two different LoRAs")
        plan = plan_fusion(backbone, subject.layers, style.layers, config)
        # A library style carries its edits to full size with its stored render choice, as `edit` does.
        render = render_for_mix(None if _names_a_file(args.style) else library.open(), {args.style: 1.0}, given_render)
    with ProgressBar("fusing") as progress:
        result = render_fusion(backbone, plan, settings, args.prompt, photo, callback=progress, render_settings=render)
    try:
        save_image(result.image, args.out)
    except OSError as error:
        raise InputError(f"cannot write {args.out}: {error.strerror or error}; check the folder exists and is writable") from error
    details = f"method {config.method}"
    if result.beta is not None:
        subject_steps = ", ".join(str(step.subject_layers) for step in result.steps)
        details += (f", beta {result.beta:.3f} + style bias {config.style_bias:g}, gamma {result.gamma:.4g}, "
                    f"subject layers per step [{subject_steps}] of {len(plan.pair.names)}")
    print(f"wrote {args.out} ({result.image.width}x{result.image.height}; {details})")
    return 0


def resolve_lora(spec: str, backbone: Backbone, library: "_LazyLibrary") -> LoraSource:
    """Read ``spec``: an existing file as a LoRA file, anything else as a library record's name
    (:mod:`engine.fusion.sources`, shared with the studio)."""
    if _names_a_file(spec):
        return file_layers(spec, backbone)
    opened = library.open()
    return record_layers(opened, opened.get_style(spec), backbone)


def _names_a_file(spec: str) -> bool:
    """Whether ``spec`` is a LoRA file (else a library name)."""
    return Path(spec).expanduser().is_file()


def _check_file_spec(spec: str) -> None:
    """A spec that looks like a file path must be a readable .safetensors file (checked before
    the model loads); a plain name is looked up in the library later."""
    path = Path(spec).expanduser()
    if path.is_dir():
        raise InputError(f"{spec} is a folder; give a LoRA .safetensors file or a library name")
    if path.is_file() and path.suffix.lower() != ".safetensors":
        raise InputError(f"{path.name}: LoRAs are read from .safetensors files only; pickled .ckpt/.pt/.bin files are not read")
    if not path.exists() and path.suffix.lower() == ".safetensors":
        raise InputError(f"LoRA file {path} not found")


class _LazyLibrary:
    """The style library, opened at the first name that needs it (file-only runs never open it)."""

    def __init__(self, folder: Path | None, stack: contextlib.ExitStack) -> None:
        self.folder, self.stack, self._library = folder, stack, None

    def open(self) -> StyleLibrary:
        if self._library is None:
            self._library = self.stack.enter_context(StyleLibrary.open(self.folder))
        return self._library
