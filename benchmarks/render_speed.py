"""Time and peak memory of one styled edit at full resolution, from the photo file to the written
result (``python -m benchmarks.render_speed``).

For each size (1, 12 and 24 MP by default) a JPEG (quality 95) is made from a shipped photo's
original (:mod:`benchmarks.originals`), upscaled to that many pixels, and a fresh child process:

1. loads the embedded model and the shipped library, and edits a small photo once (warm-up);
2. records its resident memory, then ``--repeats`` times: reads the file (:func:`load_photo`),
   edits it with a shipped style at working size, carries the result to full size
   (:func:`carry_to_full_resolution`, with the style's stored render choice) and writes it as JPEG
   quality 95, or with ``--output-format png`` as the PNG the studio's download is (``--render
   tiled``: the same choice with the tiled render, :mod:`engine.rendering.tiling`, whose tiled edit
   is the "edit" part);
3. reports the median seconds of that whole path and of each part, and its peak resident memory
   (``ru_maxrss``; the model and torch are part of it, and the warm-up figure says how much).

Each size runs in its own process so one size's peak does not hide another's.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

from benchmarks.originals import ATTRIBUTION, DEFAULT_CACHE, fetch, originals
from benchmarks.report import add_out_argument, publish
from engine.core.assets import REPOSITORY

SOURCE_PHOTO = "city"  # a 3640 x 2400 original
DEFAULT_STYLE = "oil paint"  # its stored choice keeps half the detail: the render path with the extra blend


def peak_megabytes() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def child(photo_path: Path, style: str, repeats: int, tiled: bool = False, output_format: str = "jpg") -> dict:
    """Steps 1-3 of the module docstring in this process; returns the figures."""
    import torch

    from engine.core.imaging import load_photo, save_image
    from engine.library import StyleLibrary
    from engine.models.backbones.registry import load_backbone
    from engine.rendering.full_resolution import carry_to_full_resolution
    from engine.services.mix_render import render_for_mix
    from engine.services.style_edit import StyleEditor

    torch.set_num_threads(2)
    backbone = load_backbone()
    with StyleLibrary.open(REPOSITORY / "styles") as library, tempfile.TemporaryDirectory() as folder:
        editor = StyleEditor(backbone, library)
        render = render_for_mix(library, {style: 1.0}, {"render": "tiled"} if tiled else None)  # the stored choice
        editor.edit(Image.new("RGB", (320, 200), (120, 130, 140)), {style: 1.0})
        warm = peak_megabytes()
        parts: dict[str, list[float]] = {"read": [], "edit": [], "carry": [], "write": [], "total": []}
        for _ in range(repeats):
            started = time.perf_counter()
            photo = load_photo(photo_path)
            read = time.perf_counter()
            working = editor.edit(photo, {style: 1.0}, render=render)
            edited = time.perf_counter()
            result = carry_to_full_resolution(photo, working, render)
            carried = time.perf_counter()
            save_image(result, Path(folder) / f"result.{output_format}")
            written = time.perf_counter()
            for name, seconds in (("read", read - started), ("edit", edited - read), ("carry", carried - edited),
                                  ("write", written - carried), ("total", written - started)):
                parts[name].append(seconds)
            del photo, working, result
    return {"size": list(Image.open(photo_path).size), "seconds": {name: round(statistics.median(values), 3) for name, values in parts.items()},
            "warm_rss_mb": round(warm), "peak_rss_mb": round(peak_megabytes())}


def render_for_style(style: str, tiled: bool = False):
    """The shipped style's stored render settings (what the timed edits use), tiled if asked."""
    from engine.library import StyleLibrary
    from engine.services.mix_render import render_for_mix

    with StyleLibrary.open(REPOSITORY / "styles") as library:
        return render_for_mix(library, {style: 1.0}, {"render": "tiled"} if tiled else None)


def make_photo(megapixels: float, folder: Path, name: str = SOURCE_PHOTO) -> Path:
    rows = [row for row in originals() if row.name == name]
    if not rows:
        raise SystemExit(f"no original named {name!r} in {ATTRIBUTION}; pick one of its photos")
    source = fetch(rows, DEFAULT_CACHE)[name]
    image = Image.open(source).convert("RGB")
    scale = (megapixels * 1e6 / (image.width * image.height)) ** 0.5
    image = image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.BICUBIC)
    path = folder / f"photo-{megapixels:g}mp.jpg"
    image.save(path, quality=95)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.render_speed", description=__doc__.splitlines()[0])
    parser.add_argument("--megapixels", default="1,12,24", help="Comma-separated photo sizes in megapixels.")
    parser.add_argument("--style", default=DEFAULT_STYLE, help="The shipped style to edit with.")
    parser.add_argument("--repeats", type=int, default=3, help="Timed edits per size (median reported).")
    parser.add_argument("--render", choices=("stored", "tiled"), default="stored",
                        help="'stored': the style's render choice; 'tiled': the same carried from a tiled edit.")
    parser.add_argument("--photo", default=SOURCE_PHOTO,
                        help="The original the test photos are made from (a name in assets/benchmark/ATTRIBUTION.md); the default "
                             "is upscaled for 12 and 24 MP, so it is smoother than a camera's photo of that size.")
    parser.add_argument("--output-format", choices=("jpg", "png"), default="jpg",
                        help="How the result is written: 'jpg' (quality 95, the CLI's JPEG) or 'png' (lossless, the studio's download).")
    parser.add_argument("--child", type=Path, default=None, help=argparse.SUPPRESS)
    add_out_argument(parser)
    arguments = parser.parse_args(argv)
    if arguments.child is not None:
        print(json.dumps(child(arguments.child, arguments.style, arguments.repeats, arguments.render == "tiled", arguments.output_format)))
        return 0
    rows = {}
    with tempfile.TemporaryDirectory(prefix="atelier-render-speed-") as folder:
        for text in arguments.megapixels.split(","):
            photo = make_photo(float(text), Path(folder), arguments.photo)
            command = [sys.executable, "-m", "benchmarks.render_speed", "--child", str(photo), "--style", arguments.style,
                       "--repeats", str(arguments.repeats), "--render", arguments.render, "--output-format", arguments.output_format]
            output = subprocess.run(command, cwd=REPOSITORY, capture_output=True, text=True, check=True).stdout
            rows[f"{float(text):g} MP"] = json.loads(output.strip().splitlines()[-1])
            print(f"{text} MP: {rows[f'{float(text):g} MP']}", file=sys.stderr, flush=True)
    publish({"style": arguments.style, "render": vars(render_for_style(arguments.style, arguments.render == "tiled")),
             "photo": arguments.photo, "output_format": arguments.output_format, "repeats": arguments.repeats, "sizes": rows}, arguments.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
