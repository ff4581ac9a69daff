"""Held-back styles made by another tool: do the default training settings give a real gain on
styles nobody tuned them for? ``python -m benchmarks.held_back --out runs/held-back.json``

The five benchmark styles (:mod:`benchmarks.styles`) were written beside the trainer, so its
defaults may fit them without anyone meaning to. These three styles come from OpenCV's
non-photorealistic filters instead, at OpenCV's own default parameters (spatial sigma given at a
``REFERENCE_SIDE`` px image and scaled with its size, as the benchmark styles are):

* ``opencv stylization``: ``cv2.stylization``, flat watercolour-like regions with dark edges;
* ``opencv pencil colour``: the colour output of ``cv2.pencilSketch``, pencil strokes over colour;
* ``opencv detail enhance``: ``cv2.detailEnhance``, boosted local detail and contrast.

For each style, on the benchmark's photos and splits (:mod:`benchmarks.dataset`) at the
working size ``area_fit(--resolution)``:

1. the 8 training pairs and the held-out test pairs are written as ``before/`` and ``after/``
   folders (:func:`benchmarks.dataset.write_pairs`);
2. the style is trained exactly as a user would, in a subprocess, with default settings unless
   ``--steps`` is given: ``python -m engine train --pairs DIR --style NAME --library LIB``;
3. each test photo is edited exactly as a user would, one subprocess per photo (the edit command
   takes one ``--input``): ``python -m engine edit --input PHOTO --out OUT --style NAME --library LIB``;
4. each edit is scored against the OpenCV after-image with
   :func:`engine.metrics.image_scores.score_images` (PSNR, SSIM, style distance), beside the unedited
   photo (identity) and the plain base model's edit (``python -m engine edit --input PHOTO --out
   OUT --dtype float32``: float32, the precision :mod:`engine.training.style_evaluation` scores at), as
   :mod:`engine.training.style_evaluation` does.

Training seconds are the wall time of the whole train command (model load and its own held-out
scoring included). OpenCV is not an Atelier dependency; install it for this check with
``.venv/bin/pip install opencv-python-headless==4.14.0.94``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from benchmarks.dataset import DEFAULT_RESOLUTION, SizeFunction, area_fit, style_slug, write_pairs
from benchmarks.report import add_out_argument, publish
from benchmarks.styles import StyleSpec, size_scale
from engine.core.errors import AtelierError, InputError
from engine.core.imaging import load_photo, resize_to
from engine.metrics.image_scores import score_images
from engine.models.backbones.registry import EMBEDDED
from engine.training.style_trainer import StyleTrainingConfig

REPOSITORY = Path(__file__).resolve().parents[1]
INSTALL_COMMAND = ".venv/bin/pip install opencv-python-headless==4.14.0.94"
MAX_TEST_PAIRS = 20
SCORES = ("psnr", "ssim", "style")
METHODS = ("identity", "base", "styled")

STYLIZATION = "opencv stylization"
PENCIL_COLOUR = "opencv pencil colour"
DETAIL_ENHANCE = "opencv detail enhance"
# OpenCV's documented defaults; sigma_s (pixels) applies at a REFERENCE_SIDE-square image.
PARAMETERS: dict[str, dict[str, float]] = {
    STYLIZATION: {"sigma_s": 60.0, "sigma_r": 0.45},
    PENCIL_COLOUR: {"sigma_s": 60.0, "sigma_r": 0.07, "shade_factor": 0.02},
    DETAIL_ENHANCE: {"sigma_s": 10.0, "sigma_r": 0.15},
}
SIGMA_S_RANGE = (1.0, 200.0)  # OpenCV refuses sigma_s outside (0, 200]


class OpenCVMissing(AtelierError):
    """OpenCV, which makes the held-back styles, is not installed."""


class CommandFailed(AtelierError):
    """A ``python -m engine`` subprocess exited with an error."""


def import_opencv():
    """The ``cv2`` module, imported only when a held-back style is made, since it is optional."""
    try:
        import cv2
    except ImportError as error:
        raise OpenCVMissing(f"OpenCV is not installed (the held-back styles need it, Atelier does not); "
                            f"install it with: {INSTALL_COMMAND}") from error
    return cv2


def _opencv_filter(image: Image.Image, apply: Callable[[object, np.ndarray, float], np.ndarray]) -> Image.Image:
    """Run ``apply(cv2, bgr, sigma_s_scale)`` on an RGB image; OpenCV works in BGR order."""
    cv2 = import_opencv()
    rgb = np.asarray(image.convert("RGB"))
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    result = apply(cv2, bgr, size_scale(*rgb.shape[:2]))
    return Image.fromarray(np.ascontiguousarray(result[:, :, ::-1]), mode="RGB")


def _sigma_s(style: str, scale: float) -> float:
    return float(min(SIGMA_S_RANGE[1], max(SIGMA_S_RANGE[0], PARAMETERS[style]["sigma_s"] * scale)))


def stylization(image: Image.Image) -> Image.Image:
    return _opencv_filter(image, lambda cv2, bgr, scale: cv2.stylization(
        bgr, sigma_s=_sigma_s(STYLIZATION, scale), sigma_r=PARAMETERS[STYLIZATION]["sigma_r"]))


def pencil_colour(image: Image.Image) -> Image.Image:
    # pencilSketch returns (grey sketch, colour sketch); the colour one keeps the photo's hues.
    return _opencv_filter(image, lambda cv2, bgr, scale: cv2.pencilSketch(
        bgr, sigma_s=_sigma_s(PENCIL_COLOUR, scale), sigma_r=PARAMETERS[PENCIL_COLOUR]["sigma_r"],
        shade_factor=PARAMETERS[PENCIL_COLOUR]["shade_factor"])[1])


def detail_enhance(image: Image.Image) -> Image.Image:
    return _opencv_filter(image, lambda cv2, bgr, scale: cv2.detailEnhance(
        bgr, sigma_s=_sigma_s(DETAIL_ENHANCE, scale), sigma_r=PARAMETERS[DETAIL_ENHANCE]["sigma_r"]))


HELD_BACK_STYLES: dict[str, StyleSpec] = {
    STYLIZATION: StyleSpec(STYLIZATION, "OpenCV stylization: flat watercolour-like regions with dark edges", stylization, "local"),
    PENCIL_COLOUR: StyleSpec(PENCIL_COLOUR, "OpenCV pencilSketch, colour output: pencil strokes over the photo's colours",
                             pencil_colour, "local"),
    DETAIL_ENHANCE: StyleSpec(DETAIL_ENHANCE, "OpenCV detailEnhance: boosted local detail and contrast", detail_enhance, "local"),
}


# -- the user's commands ----------------------------------------------------------------------

def _model_arguments(model: str) -> list[str]:
    # The user's commands leave --model out for the shipped model; so do these.
    return [] if model == EMBEDDED else ["--model", model]


def train_command(pairs: Path, style: str, library: Path, model: str = EMBEDDED, steps: int | None = None) -> list[str]:
    """``python -m engine train --pairs DIR --style NAME --library LIB`` (``--steps`` only if given)."""
    command = [sys.executable, "-m", "engine", "train", "--pairs", str(pairs), "--style", style, "--library", str(library)]
    return command + _model_arguments(model) + (["--steps", str(steps)] if steps is not None else [])


def edit_command(photo: Path, out: Path, model: str = EMBEDDED, style: str | None = None, library: Path | None = None) -> list[str]:
    """``python -m engine edit --input PHOTO --out OUT`` with ``--style NAME --library LIB``, or
    for the plain base model ``--dtype float32`` (``auto`` would pick bfloat16 for a plain edit)."""
    command = [sys.executable, "-m", "engine", "edit", "--input", str(photo), "--out", str(out)]
    styling = ["--style", style, "--library", str(library)] if style is not None else ["--dtype", "float32"]
    return command + styling + _model_arguments(model)


def shown(command: list[str]) -> str:
    """A command as the user types it: ``python -m engine ...``."""
    return "python " + shlex.join(command[1:])


def run_command(command: list[str]) -> tuple[float, str]:
    """Run a ``python -m engine`` command from the repository; its seconds and last stdout line."""
    began = time.perf_counter()
    # The repository as working folder puts ``engine`` on the path as it is for the user.
    finished = subprocess.run(command, cwd=REPOSITORY, capture_output=True, text=True, env=os.environ.copy())
    seconds = time.perf_counter() - began
    if finished.returncode != 0:
        lines = [line for line in finished.stderr.splitlines() if line.strip()]
        raise CommandFailed(f"`{shown(command)}` failed with exit code {finished.returncode}: "
                            f"{lines[-1] if lines else 'no error output'}; run it by hand to see why")
    lines = [line for line in finished.stdout.splitlines() if line.strip()]
    return seconds, lines[-1] if lines else ""


# -- folders, edits and scores ----------------------------------------------------------------

def write_style_folders(spec: StyleSpec, work: Path, size_fn: SizeFunction) -> tuple[Path, Path]:
    """``work/<slug>/train`` and ``work/<slug>/test``, each with before/ and after/ at the working size."""
    folder = work / style_slug(spec.name)
    return write_pairs(spec, "train", folder / "train", size_fn), write_pairs(spec, "test", folder / "test", size_fn)


def held_out_ids(test_folder: Path, count: int) -> list[str]:
    """The first ``count`` test pair ids in the benchmark's order (from ``benchmark.json``)."""
    manifest = json.loads((test_folder / "benchmark.json").read_text())
    return [pair["id"] for pair in manifest["pairs"]][:count]


def edit_photos(test_folder: Path, ids: list[str], out_folder: Path, model: str, style: str | None = None,
                library: Path | None = None, log: Callable[[str], None] = lambda message: None) -> float:
    """Edit each ``test_folder/before/<id>.png`` into ``out_folder/<id>.png`` with one CLI call
    each; edits already there are kept (the base model's edits serve every style). Returns seconds."""
    out_folder.mkdir(parents=True, exist_ok=True)
    seconds = 0.0
    for number, photo_id in enumerate(ids, 1):
        out = out_folder / f"{photo_id}.png"
        if out.is_file():
            continue
        taken, _ = run_command(edit_command(test_folder / "before" / f"{photo_id}.png", out, model, style, library))
        seconds += taken
        log(f"  edited {number}/{len(ids)} with {style or 'the base model'} ({taken:.1f} s)")
    return seconds


def score_edits(test_folder: Path, ids: list[str], styled_folder: Path, base_folder: Path) -> dict:
    """Mean and per-pair ``psnr``, ``ssim`` and ``style`` of the identity, base and styled edits
    against the after-images, each resized to the styled edit's size as style_metrics does."""
    per_pair = []
    for photo_id in ids:
        styled = load_photo(styled_folder / f"{photo_id}.png")
        target = resize_to(load_photo(test_folder / "after" / f"{photo_id}.png"), styled.size)
        images = {"identity": resize_to(load_photo(test_folder / "before" / f"{photo_id}.png"), styled.size),
                  "base": resize_to(load_photo(base_folder / f"{photo_id}.png"), styled.size), "styled": styled}
        scores = {method: score_images(image, target) for method, image in images.items()}
        per_pair.append({"id": photo_id, **{method: {name: round(float(scores[method][name][0]), 4) for name in SCORES}
                                             for method in METHODS}})
    means = {method: {name: round(sum(pair[method][name] for pair in per_pair) / len(per_pair), 4) for name in SCORES}
             for method in METHODS}
    return {**means, "gain_over_base_db": round(means["styled"]["psnr"] - means["base"]["psnr"], 3),
            "gain_over_identity_db": round(means["styled"]["psnr"] - means["identity"]["psnr"], 3), "pairs": per_pair}


def run_style(spec: StyleSpec, work: Path, library: Path, model: str = EMBEDDED, steps: int | None = None,
              test_pairs: int = MAX_TEST_PAIRS, size_fn: SizeFunction | None = None,
              log: Callable[[str], None] = lambda message: None) -> dict:
    """Write one style's pairs, train it with the CLI, edit the test photos with the CLI and score."""
    train_folder, test_folder = write_style_folders(spec, work, size_fn or area_fit())
    ids = held_out_ids(test_folder, test_pairs)
    command = train_command(train_folder, spec.name, library, model, steps)
    log(f"training {spec.name}: {shown(command)}")
    training_seconds, training_output = run_command(command)
    log(f"  {training_output} ({training_seconds:.0f} s)")
    # The test photos are the same for every style, so one set of base edits serves them all.
    base_seconds = edit_photos(test_folder, ids, work / "base-edits", model, log=log)
    styled_folder = work / style_slug(spec.name) / "edits"
    edit_seconds = edit_photos(test_folder, ids, styled_folder, model, spec.name, library, log)
    return {"description": spec.description, **score_edits(test_folder, ids, styled_folder, work / "base-edits"),
            "training_seconds": round(training_seconds, 1), "training_output": training_output,
            "styled_edit_seconds": round(edit_seconds, 1), "base_edit_seconds": round(base_seconds, 1),
            "train_command": shown(command)}


def markdown_table(styles: dict[str, dict]) -> str:
    """Per style: identity / base / styled PSNR, SSIM and style distance, gain and training seconds."""
    header = ("| style | PSNR identity / base / styled (dB) | gain over base (dB) | SSIM identity / base / styled "
              "| style distance identity / base / styled | training s |")
    lines = [header, "|" + "---|" * header.count(" | ") + "---|"]
    for name, result in styles.items():
        psnr, ssim, style = (" / ".join(f"{result[method][score]:{form}}" for method in METHODS)
                             for score, form in (("psnr", ".2f"), ("ssim", ".3f"), ("style", ".4f")))
        lines.append(f"| {name} | {psnr} | {result['gain_over_base_db']:+.2f} | {ssim} | {style} | {result['training_seconds']:.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.held_back", description=__doc__.splitlines()[0])
    parser.add_argument("--styles", default=",".join(HELD_BACK_STYLES),
                        help=f"Comma-separated held-back styles (default: all of {', '.join(HELD_BACK_STYLES)}).")
    parser.add_argument("--test-pairs", type=int, default=MAX_TEST_PAIRS, help="Held-out test pairs per style (1 to 20).")
    parser.add_argument("--steps", type=int, default=None, help="Training steps; default: not passed, so train's own default.")
    parser.add_argument("--model", default=EMBEDDED, help="The backbone: 'embedded' (default) or a model folder.")
    parser.add_argument("--library", type=Path, default=None, help="Style library to train into (default: a temporary one).")
    parser.add_argument("--work", type=Path, default=None, help="Keep the pairs and edits in this new folder (default: temporary).")
    parser.add_argument("--resolution", type=int, default=DEFAULT_RESOLUTION, help="Side of the square working area in pixels.")
    add_out_argument(parser)
    arguments = parser.parse_args(argv)
    began = time.perf_counter()
    temporary = None
    try:
        cv2 = import_opencv()  # before any work, so a missing OpenCV costs nothing
        names = [name.strip() for name in arguments.styles.split(",") if name.strip()]
        unknown = [name for name in names if name not in HELD_BACK_STYLES]
        if unknown or not names:
            raise InputError(f"unknown held-back style(s) {', '.join(unknown) or '(none given)'}; known: {', '.join(HELD_BACK_STYLES)}")
        if not 1 <= arguments.test_pairs <= MAX_TEST_PAIRS:
            raise InputError(f"--test-pairs must lie between 1 and {MAX_TEST_PAIRS}; got {arguments.test_pairs}")
        if arguments.work is not None and arguments.work.exists():
            raise InputError(f"{arguments.work} already exists; remove it or choose another --work folder")
        size_fn = area_fit(arguments.resolution)
        if arguments.work is None:
            temporary = Path(tempfile.mkdtemp(prefix="atelier-held-back-"))
        work = arguments.work or temporary
        library = arguments.library or work / "library"
        styles = {}
        for name in names:
            styles[name] = run_style(HELD_BACK_STYLES[name], work, library, arguments.model, arguments.steps,
                                     arguments.test_pairs, size_fn, log=lambda message: print(message, file=sys.stderr, flush=True))
    except AtelierError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        if temporary is not None:
            shutil.rmtree(temporary, ignore_errors=True)
    default_steps = StyleTrainingConfig().steps
    report = {"model": arguments.model, "steps": arguments.steps if arguments.steps is not None else f"train's default ({default_steps})",
              "test_pairs": arguments.test_pairs, "resolution": arguments.resolution, "opencv": cv2.__version__,
              "parameters": {name: PARAMETERS[name] for name in names}, "styles": styles,
              "total_seconds": round(time.perf_counter() - began, 1)}
    print(markdown_table(styles))
    print(f"\ntotal {report['total_seconds'] / 60:.1f} min")
    publish(report, arguments.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
