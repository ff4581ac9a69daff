"""The Train page's uploads: photos for each side or one zip, shown as pairs the user can drop.

The handlers map the upload widgets' values to :class:`PairUploads` (kept in a ``gr.State``) and
to the pairs gallery; the checks themselves are :mod:`engine.training.pair_uploads`. A pair with a
problem stays in the gallery, marked, so the user sees it and can remove it; training is refused
until no marked pair is left.
"""

from __future__ import annotations

import html
import shutil
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import gradio as gr
from PIL import Image, ImageDraw, ImageFont

from engine.core.errors import InputError
from engine.training.add_style import HOLDOUT_FROM
from engine.training.pair_uploads import THUMBNAIL_SIDE, UploadedImage, UploadedPair, inspect_image, pixel_limit, sort_pairs
from engine.training.pairs import MIN_PAIRS, extract_zip

MARK = "⚠"  # how the gallery marks a pair that cannot be used
TILE_GAP = 6
EMPTY_TILE = (226, 228, 232)
EMPTY_TEXT = (90, 96, 110)
NO_SELECTION = "Click a pair in the gallery first, then press Remove pair."


@dataclass(frozen=True)
class PairUploads:
    """What the page has uploaded: every pair by name, the names removed, and the unpacked zip.

    Removing hides a pair until the uploads change: the files are still in the upload widgets,
    and re-pairing them shows everything uploaded again.
    """

    pairs: tuple[UploadedPair, ...] = ()
    removed: frozenset[str] = field(default_factory=frozenset)
    zip_source: str | None = None  # the uploaded zip, unpacked into zip_root
    zip_root: str | None = None
    zip_folder: str | None = None  # the folder in zip_root holding before/ and after/
    zip_problem: str = ""

    def shown(self) -> list[UploadedPair]:
        """The pairs in the gallery, in its order."""
        return [pair for pair in self.pairs if pair.name not in self.removed]


def file_paths(value: Any) -> list[Path]:
    """Paths from a ``gr.File`` value (one path, a list of them, or nothing)."""
    if not value:
        return []
    values = value if isinstance(value, (list, tuple)) else [value]
    return [Path(getattr(item, "name", item)) for item in values]


def unpack_zip(uploads: PairUploads, zip_file: Any, work_folder: Path) -> PairUploads:
    """Unpack a newly uploaded zip into ``work_folder`` (once per upload); a bad zip becomes ``zip_problem``."""
    paths = file_paths(zip_file)
    source = str(paths[0]) if paths else None
    if source == uploads.zip_source:
        return uploads
    if uploads.zip_root:
        shutil.rmtree(uploads.zip_root, ignore_errors=True)
    if source is None:
        return replace(uploads, zip_source=None, zip_root=None, zip_folder=None, zip_problem="")
    folder = work_folder / "train-zips" / uuid.uuid4().hex
    folder.mkdir(parents=True)
    name = Path(source).name
    if Path(source).suffix.lower() != ".zip":
        return replace(uploads, zip_source=source, zip_root=str(folder), zip_folder=None,
                       zip_problem=f"{name} is not a .zip; zip a folder holding before/ and after/ and upload that")
    try:
        pairs_folder = extract_zip(Path(source), folder)
    except InputError as error:
        # The engine names the zip by its full temporary path; the page names it as uploaded.
        return replace(uploads, zip_source=source, zip_root=str(folder), zip_folder=None,
                       zip_problem=str(error).replace(source, name))
    return replace(uploads, zip_source=source, zip_root=str(folder), zip_folder=str(pairs_folder), zip_problem="")


def _zip_side(uploads: PairUploads, side: str) -> list[Path]:
    if not uploads.zip_folder or uploads.zip_problem:
        return []
    folder = Path(uploads.zip_folder) / side
    return [path for path in sorted(folder.iterdir()) if path.is_file() and not path.name.startswith(".")]


def update_uploads(uploads: PairUploads | None, before_files: Any, after_files: Any, zip_file: Any,
                   work_folder: Path) -> tuple[PairUploads, Any, str, None]:
    """Re-pair everything uploaded; returns ``(uploads, gallery, summary, selection)``.

    Files that cannot be used are also reported in a toast the first time they appear.
    """
    previous = uploads or PairUploads()
    uploads = unpack_zip(previous, zip_file, work_folder)
    befores = [inspect_image(path) for path in file_paths(before_files) + _zip_side(uploads, "before")]
    afters = [inspect_image(path) for path in file_paths(after_files) + _zip_side(uploads, "after")]
    pairs = tuple(sort_pairs(befores, afters))
    known = {str(path) for pair in previous.pairs for path in (pair.before, pair.after) if path}
    new_problems = [image.problem for image in befores + afters if image.problem and str(image.path) not in known]
    if uploads.zip_problem and uploads.zip_problem != previous.zip_problem:
        new_problems.insert(0, uploads.zip_problem)
    if new_problems:
        more = f" (and {len(new_problems) - 1} more problem(s), listed under the pairs)" if len(new_problems) > 1 else ""
        gr.Warning(html.escape(new_problems[0] + more), title="Some uploads cannot be used")
    uploads = replace(uploads, pairs=pairs, removed=frozenset())
    thumbnails = {image.path: image for image in befores + afters}
    gallery = [(pair_thumbnail(thumbnails.get(pair.before), thumbnails.get(pair.after)), caption(pair)) for pair in uploads.shown()]
    return uploads, gallery_update(gallery), summary(uploads), None


def gallery_update(items: list) -> gr.Gallery:
    """The pairs gallery showing ``items`` as thumbnails, with nothing selected.

    A whole component rather than ``gr.update``: only that closes an open preview, which would
    otherwise show another pair than the one the page's selection (now none) refers to.
    """
    return gr.Gallery(value=items, selected_index=None, preview=False)


def remove_pair(uploads: PairUploads | None, selected: int | None, gallery: Sequence[Any] | None) -> tuple[PairUploads, Any, str, None]:
    """Drop the selected pair from the uploads and the gallery; returns ``(uploads, gallery, summary, selection)``."""
    uploads = uploads or PairUploads()
    shown = uploads.shown()
    if selected is None or not 0 <= selected < len(shown):
        raise gr.Error(NO_SELECTION, title="No pair selected")
    pair = shown[selected]
    uploads = replace(uploads, removed=uploads.removed | {pair.name})
    items = list(gallery or [])
    del items[selected]
    gr.Info(f"Removed the pair {html.escape(pair.name)}.")
    return uploads, gallery_update(items), summary(uploads), None


def caption(pair: UploadedPair) -> str:
    return pair.name if pair.usable else f"{MARK} {pair.name}"


def summary(uploads: PairUploads) -> str:
    """The markdown under the gallery: how many pairs are ready, and what is wrong with the rest."""
    shown = uploads.shown()
    ready = [pair for pair in shown if pair.usable]
    broken = [pair for pair in shown if not pair.usable]
    lines = []
    if not shown and not uploads.zip_problem:
        lines.append(f"Upload at least {MIN_PAIRS} before/after pairs (about 8 is best). A before photo and its after photo "
                     f"share a file name (before `cat.jpg`, after `cat.png`). Photos up to {pixel_limit()}.")
    elif shown:
        text = f"**{len(ready)} pair{'s' if len(ready) != 1 else ''} ready**"
        if broken:
            text += f" · {len(broken)} marked {MARK} cannot be used: fix the upload, or select the pair and press **Remove pair**"
        elif len(ready) < MIN_PAIRS:
            text += f" · a style needs at least {MIN_PAIRS}"
        elif len(ready) >= HOLDOUT_FROM:
            text += f" · `{html.escape(ready[-1].name)}` is held out to preview and measure the style"
        else:
            text += f" · with {HOLDOUT_FROM} or more, one is held out to measure the style"
        lines.append(text)
    if uploads.zip_problem:
        lines.append(f"- {MARK} {html.escape(uploads.zip_problem)}")
    lines += [f"- {MARK} **{html.escape(pair.name)}**: {html.escape(pair.problem)}" for pair in broken]
    removed = len(uploads.pairs) - len(shown)
    if removed:
        lines.append(f"{removed} pair(s) removed; changing the uploads brings {'it' if removed == 1 else 'them'} back.")
    return "\n\n".join(lines)


def pair_thumbnail(before: UploadedImage | None, after: UploadedImage | None, side: int = THUMBNAIL_SIDE) -> Image.Image:
    """Before and after side by side at one height; a missing or unreadable photo is a grey tile saying so."""
    tiles = []
    for image, missing in ((before, "no before photo"), (after, "no after photo")):
        if image is not None and image.thumbnail is not None:
            thumbnail = image.thumbnail
            width = max(1, round(thumbnail.width * side / thumbnail.height))
            tiles.append(thumbnail.resize((min(width, 2 * side), side), Image.Resampling.BICUBIC))
        else:
            tiles.append(_empty_tile(side, missing if image is None else "cannot be used"))
    sheet = Image.new("RGB", (tiles[0].width + TILE_GAP + tiles[1].width, side), "white")
    sheet.paste(tiles[0], (0, 0))
    sheet.paste(tiles[1], (tiles[0].width + TILE_GAP, 0))
    return sheet


def _empty_tile(side: int, text: str) -> Image.Image:
    tile = Image.new("RGB", (side, side), EMPTY_TILE)
    draw = ImageDraw.Draw(tile)
    font = ImageFont.load_default(size=max(10, side // 12))
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    draw.text(((side - (right - left)) / 2, (side - (bottom - top)) / 2), text, fill=EMPTY_TEXT, font=font)
    return tile
