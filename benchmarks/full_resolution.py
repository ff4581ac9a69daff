"""The five-style benchmark at the photo's own resolution: which render carries a working-size
edit best to full size (``python -m benchmarks.full_resolution``).

Photos: the test split's full-size originals (:mod:`benchmarks.originals`, from their Debian
packages), thumbnailed to ``--long-side`` px (1024 by default). Targets: each benchmark style
applied at that size (the styles scale their spatial parameters with the image,
:mod:`benchmarks.styles`), cached as PNG because cartoon and oil paint take a minute each.
Edits: each shipped style of the library (``styles/``) on the embedded model, at the model's
working size, then carried to full size by every ``--renders`` variant
(:func:`engine.rendering.full_resolution.carry_to_full_resolution`); ``stored`` is each style's
own render choice (:mod:`engine.rendering.render_choice`), what the user gets. ``resize`` is the path
before full-resolution rendering (the thumbnail upscaled), ``unedited`` the photo itself.
``tiled[:SIZE[:OVERLAP]]`` edits again, in tiles (:mod:`engine.rendering.tiling`), and carries the
tiled blend with the style's stored guided settings, so it differs from ``stored`` by the tiling only;
its time per photo includes that edit, as does a render whose ``edit_steps`` (a style's chosen
sampling steps) differ from the model's default.

``--identity`` also scores the model's plain edit (no style, the ``identity`` default) carried by the
default guided render against the photo itself: how much of the photo the whole path keeps.

Scores, at full resolution against the target: PSNR, SSIM, style distance
(:mod:`engine.metrics.perceptual`) and blockiness for the working size's 8 px patch grid scaled
to full size (:mod:`engine.metrics.blockiness`), beside the target's own blockiness.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import torch
from PIL import Image

from benchmarks.dataset import TEST_PHOTOS
from benchmarks.originals import DEFAULT_CACHE, fetch, originals
from benchmarks.report import add_out_argument, publish
from benchmarks.held_back import HELD_BACK_STYLES
from benchmarks.styles import STYLES, StyleSpec
from engine.core.assets import REPOSITORY
from engine.core.errors import InputError
from engine.core.imaging import load_photo
from engine.library import StyleLibrary
from engine.metrics.blockiness import blockiness
from engine.metrics.image_quality import psnr
from engine.metrics.image_scores import ssim, to_unit_tensor
from engine.metrics.perceptual import default_features, style_distance
from engine.models.backbones.registry import load_backbone
from engine.models.editing import edit_photo
from engine.rendering.full_resolution import RenderSettings, carry_to_full_resolution
from engine.services.style_edit import StyleEditor

DEFAULT_RENDERS = "resize,guided,stored"
PATCH = 8  # the embedded model's patch side at working size
STORED = "stored"  # each style's own render choice, as the CLI and the studio use it


def parse_render(text: str) -> RenderSettings:
    """``resize``, ``guided[:RADIUS:EPSILON[:DETAIL[:PRIOR]]]`` (``guided`` alone for the defaults) or
    ``tiled[:SIZE[:OVERLAP]]`` (0 or nothing for the default size)."""
    method, *parameters = text.split(":")
    if method == "tiled":
        values = [int(value) for value in parameters]
        return RenderSettings(render="tiled", tiled_size=values[0] if values else 0,
                              tile_overlap=values[1] if len(values) > 1 else RenderSettings().tile_overlap)
    if method == "guided" and parameters:
        detail = float(parameters[2]) if len(parameters) > 2 else 1.0
        prior = parameters[3] if len(parameters) > 3 else RenderSettings().guided_prior
        return RenderSettings(render="guided", guided_radius=int(parameters[0]), guided_epsilon=float(parameters[1]),
                              guided_detail=detail, guided_prior=prior)
    return RenderSettings(render=method)


def full_size_photos(long_side: int, cache: Path) -> dict[str, Image.Image]:
    """The test photos that have originals of at least ``long_side`` px, thumbnailed to it."""
    rows = [row for row in originals("test") if row.name in TEST_PHOTOS]
    photos = {}
    for name, path in fetch(rows, cache).items():
        photo = load_photo(path)
        if max(photo.size) >= long_side:
            photo.thumbnail((long_side, long_side), Image.Resampling.LANCZOS)
            photos[name] = photo
    return photos


def target_style(style: str) -> StyleSpec:
    """A benchmark style (:mod:`benchmarks.styles`) or a held-back one made by OpenCV
    (:mod:`benchmarks.held_back`, which needs OpenCV installed), by name."""
    specs = {**STYLES, **HELD_BACK_STYLES}
    if style not in specs:
        raise InputError(f"unknown style {style!r}; known: {', '.join(specs)}")
    return specs[style]


def cached_target(style: str, name: str, photo: Image.Image, folder: Path) -> Image.Image:
    path = folder / f"{style.replace(' ', '-')}-{name}-{photo.width}x{photo.height}.png"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial.png")
        target_style(style)(photo).save(partial)
        partial.rename(path)
    return Image.open(path).convert("RGB")


def scores(result: Image.Image, target: torch.Tensor, period: float, features) -> dict[str, float]:
    prediction = to_unit_tensor(result)
    return {"psnr": float(psnr(prediction, target)[0]), "ssim": float(ssim(prediction, target)[0]),
            "style": float(style_distance(prediction, target, features)[0]),
            "blockiness": float(blockiness(prediction, period)[0])}


def run(styles: list[str], renders: list[str], long_side: int, library_folder: Path, cache: Path, limit: int = 0) -> dict:
    torch.manual_seed(0)
    backbone = load_backbone()
    features = default_features()
    photos = full_size_photos(long_side, cache)
    if limit:
        photos = dict(list(photos.items())[:limit])
    rows: dict[str, dict[str, list[dict[str, float]]]] = {}
    seconds: dict[str, float] = {}
    with StyleLibrary.open(library_folder) as library:
        editor = StyleEditor(backbone, library)
        for style in styles:
            per_method = rows.setdefault(style, {})
            for name, photo in photos.items():
                target_image = cached_target(style, name, photo, cache / "targets")
                target = to_unit_tensor(target_image)
                working = editor.edit(photo, {style: 1.0})
                period = PATCH * photo.width / working.width
                per_method.setdefault("target", []).append({"blockiness": float(blockiness(target, period)[0])})
                per_method.setdefault("unedited", []).append(scores(photo, target, period, features))
                for render in renders:
                    stored = library.get_style(style).render_settings
                    settings = stored if render == STORED else parse_render(render)
                    started = time.perf_counter()
                    edited = working
                    if settings.render == "tiled":
                        settings = dataclasses.replace(stored, render="tiled", tiled_size=settings.tiled_size,
                                                       tile_overlap=settings.tile_overlap)
                    if settings.render == "tiled" or settings.edit_steps:
                        # Edited again as the CLI and the studio edit with these settings: tiled, or
                        # with the style's chosen sampling steps.
                        edited = editor.edit(photo, {style: 1.0}, render=settings)
                    result = carry_to_full_resolution(photo, edited, settings)
                    seconds[render] = seconds.get(render, 0.0) + time.perf_counter() - started
                    per_method.setdefault(render, []).append(scores(result, target, period, features))
                print(f"{style} / {name} {photo.size} done", flush=True)
    means = {style: {method: {key: round(sum(row[key] for row in values) / len(values), 4) for key in values[0]}
                     for method, values in methods.items()} for style, methods in rows.items()}
    return {"long_side": long_side, "photos": {name: list(photo.size) for name, photo in photos.items()},
            "renders": renders, "render_seconds_per_photo": {k: round(v / (len(photos) * len(styles)), 4) for k, v in seconds.items()},
            "styles": means}


def identity_scores(photos: dict[str, Image.Image]) -> dict[str, float]:
    """Mean PSNR and SSIM of the plain edit, carried to full size by the default render, against each photo."""
    backbone = load_backbone()
    values = []
    for photo in photos.values():
        result = to_unit_tensor(carry_to_full_resolution(photo, edit_photo(backbone, photo), RenderSettings()))
        truth = to_unit_tensor(photo)
        values.append((float(psnr(result, truth)[0]), float(ssim(result, truth)[0])))
    return {"psnr": round(sum(v[0] for v in values) / len(values), 2), "worst_psnr": round(min(v[0] for v in values), 2),
            "ssim": round(sum(v[1] for v in values) / len(values), 4)}


def markdown(report: dict) -> str:
    lines = ["| style | method | PSNR (dB) | SSIM | style distance | blockiness (target's) |", "|---|---|---|---|---|---|"]
    for style, methods in report.get("styles", {}).items():
        target = methods["target"]["blockiness"]
        for method, values in methods.items():
            if method != "target":
                lines.append(f"| {style} | {method} | {values['psnr']:.2f} | {values['ssim']:.3f} | {values['style']:.4f} | "
                             f"{values['blockiness']:.3f} ({target:.3f}) |")
    if "identity" in report:
        lines.append(f"\nidentity edit at full size: {report['identity']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.full_resolution", description=__doc__.splitlines()[0])
    parser.add_argument("--styles", default=",".join(STYLES), help="Comma-separated benchmark styles (or held-back ones, e.g. 'opencv stylization').")
    parser.add_argument("--renders", default=DEFAULT_RENDERS, help="Comma-separated: resize, guided, guided:RADIUS:EPSILON[:DETAIL], stored (each style's own choice), "
                             "or tiled[:SIZE[:OVERLAP]] (a tiled edit carried with the style's stored choice; slower: it edits again).")
    parser.add_argument("--long-side", type=int, default=1024, help="The photos' long side in pixels.")
    parser.add_argument("--library", type=Path, default=REPOSITORY / "styles", help="The style library to edit with.")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="Where originals and targets are kept.")
    parser.add_argument("--limit", type=int, default=0, help="Only the first N photos (0: all), for a quick look.")
    parser.add_argument("--identity", action="store_true", help="Also score the plain (identity) edit at full size against the photo.")
    add_out_argument(parser)
    arguments = parser.parse_args(argv)
    renders = [text for text in arguments.renders.split(",") if text]
    for text in renders:
        if text != STORED:
            parse_render(text)  # refuse a bad variant before the long run
    styles = [s for s in arguments.styles.split(",") if s]
    report = run(styles, renders, arguments.long_side, arguments.library, arguments.cache, arguments.limit) if styles else {}
    if arguments.identity:
        photos = full_size_photos(arguments.long_side, arguments.cache)
        report["identity"] = identity_scores(dict(list(photos.items())[: arguments.limit or None]))
    publish(report, arguments.out)
    print(markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
