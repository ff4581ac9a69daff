"""The example subject shipped in ``styles/``: 'Chelsea', trained from five crops and flips of
scikit-image's photo of Chelsea the cat (``python -m benchmarks.example_subject``).

One command rebuilds it, so it can be retrained whenever the shipped base model changes (a
subject records its backbone's name, and a subject of another model version is refused by name):

    nice -n 15 .venv/bin/python -m benchmarks.example_subject            # into styles/, on the shipped model

The photos are made here, deterministically, from ``skimage.data.chelsea()`` (a 451x300 photo
that scikit-image ships inside its package; "No copyright restrictions. CC0 by the photographer
(Stefan van der Walt)", scikit-image itself is BSD-3-Clause): the whole photo, its mirror image,
and three square crops (left, right mirrored, and a closer one of the middle). They are five views
of *one* photo, not five photos of the cat, so the subject learns that photo's colours and
textures; on the embedded model a subject only moves its samples' colours and textures towards
the photos anyway (docs/decisions/2026-11-24-subject-training-defaults.md).

Training goes through the CLI (``python -m engine subjects train``) in a child process, as a user
would run it; a subject of the same name already in the library is deleted first
(``python -m engine styles delete``), and nothing else in the library is touched. Attribution and
licence: ``styles/SUBJECTS.md``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageOps

NAME = "Chelsea"
DESCRIPTION = "Chelsea the cat: five crops and flips of scikit-image's CC0 sample photo (see styles/SUBJECTS.md)"
TRIGGER = "chelsea cat"
# Half the CLI's 200 steps of 4 crops: about 1.5 minutes on two idle cores (0.8 s a step). Beside a
# pretraining at a higher priority a step took 30 s and more under nice; --steps/--batch-size shorten it.
DEFAULT_STEPS = 100
DEFAULT_BATCH = 4


def example_photos() -> list[tuple[str, Image.Image]]:
    """The five training photos, by file name: crops and flips of ``skimage.data.chelsea()``."""
    from skimage import data

    photo = Image.fromarray(data.chelsea()).convert("RGB")  # 451 x 300
    width, height = photo.size
    side = height
    left = photo.crop((0, 0, side, side))
    right = photo.crop((width - side, 0, width, side))
    middle = photo.crop(((width - 220) // 2, 20, (width - 220) // 2 + 220, 240))
    return [("chelsea-whole.jpg", photo), ("chelsea-whole-mirrored.jpg", ImageOps.mirror(photo)),
            ("chelsea-left.jpg", left), ("chelsea-right-mirrored.jpg", ImageOps.mirror(right)),
            ("chelsea-middle.jpg", middle)]


def write_photos(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, image in example_photos():
        image.save(folder / name, quality=90)  # JPEG, as the benchmark photos: the library keeps two copies of each
    return folder


def has_subject(library_root: Path) -> bool:
    """Whether the library already holds a record named :data:`NAME`."""
    from engine.library import StyleLibrary

    if not (library_root / "library.db").exists():
        return False
    with StyleLibrary.open(library_root) as library:
        return any(record.name == NAME for record in library.list_styles())


def engine(*arguments: str, check: bool = True) -> subprocess.CompletedProcess:
    print("+ python -m engine " + " ".join(arguments), flush=True)
    return subprocess.run([sys.executable, "-m", "engine", *arguments], check=check)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.example_subject", description=__doc__.split("\n\n")[0])
    parser.add_argument("--library", default="styles", help="The library to train it into (default: the shipped styles/).")
    parser.add_argument("--model", default="embedded", help="The backbone (default: the shipped embedded model).")
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS, help=f"Training steps (default {DEFAULT_STEPS}).")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH, help=f"Crops per step (default {DEFAULT_BATCH}).")
    parser.add_argument("--photos-only", type=Path, metavar="DIR", help="Only write the five photos to DIR, then stop.")
    args = parser.parse_args(argv)
    if args.photos_only:
        write_photos(args.photos_only)
        print(f"wrote {len(example_photos())} photos to {args.photos_only}")
        return 0
    if has_subject(Path(args.library)):
        engine("styles", "delete", NAME, "--library", args.library, "--model", args.model)
    with tempfile.TemporaryDirectory(prefix="atelier-example-subject-") as temporary:
        folder = write_photos(Path(temporary) / "chelsea")
        began = time.perf_counter()
        engine("subjects", "train", "--images", str(folder), "--name", NAME, "--description", DESCRIPTION, "--trigger", TRIGGER,
               "--model", args.model, "--steps", str(args.steps), "--batch-size", str(args.batch_size), "--no-resume", "--library", args.library)
    print(f"trained the example subject {NAME!r} into {args.library} in {time.perf_counter() - began:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
