"""Before/after training pairs: reading a pairs folder or zip and checking it.

Layout (the convention ai-toolkit and SimpleTuner use for control/target pairs)::

    DIR/before/NAME.ext   the photo as it was
    DIR/after/NAME.ext    the same photo in the style

Files pair up by name without extension. A zip with the same layout (optionally inside one top
folder) works too.
"""

from __future__ import annotations

import stat
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from engine.core.errors import InputError
from engine.core.imaging import load_photo

MIN_PAIRS = 2
ASPECT_TOLERANCE = 0.02
MAX_ZIP_BYTES = 512 * 1024 * 1024
# Entries a pairs zip may hold: 1,000 pairs, far more than a style needs.
MAX_ZIP_MEMBERS = 2_000


@dataclass
class Pair:
    """One before/after pair, loaded as RGB images of the same aspect ratio."""

    name: str
    before: Image.Image
    after: Image.Image
    before_path: Path
    after_path: Path


def _images_by_stem(folder: Path) -> dict[str, Path]:
    files = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and not path.name.startswith("."):
            if path.stem in files:
                raise InputError(f"{folder} has two files named {path.stem!r} ({files[path.stem].name}, {path.name}); keep one")
            files[path.stem] = path
    return files


def extract_zip(archive: Path, into: Path) -> Path:
    """Extract a pairs zip safely (no absolute or parent paths, no symbolic links, bounded size
    and number of files); returns the folder holding ``before/`` and ``after/``."""
    choose = "zip a folder holding before/ and after/ and give that"
    try:
        with zipfile.ZipFile(archive) as handle:
            members = handle.infolist()
            if len(members) > MAX_ZIP_MEMBERS:
                raise InputError(f"{archive} holds {len(members):,} entries, more than the {MAX_ZIP_MEMBERS:,} a pairs zip may; "
                                 "give fewer pairs")
            if sum(member.file_size for member in members) > MAX_ZIP_BYTES:
                raise InputError(f"{archive} unpacks to more than {MAX_ZIP_BYTES // 2**20} MB; give fewer or smaller photos")
            for member in members:
                target = (into / member.filename).resolve()
                if not target.is_relative_to(into.resolve()):
                    raise InputError(f"{archive} holds an unsafe path {member.filename!r} (outside the extraction folder); {choose}")
                if stat.S_ISLNK(member.external_attr >> 16):
                    raise InputError(f"{archive} holds the symbolic link {member.filename!r}; {choose}, without links")
            handle.extractall(into)
    except zipfile.BadZipFile as error:
        raise InputError(f"{archive} is not a readable zip file ({error}); {choose}") from error
    candidates = [into] + [path for path in into.iterdir() if path.is_dir()]
    for candidate in candidates:
        if (candidate / "before").is_dir() and (candidate / "after").is_dir():
            return candidate
    raise InputError(f"{archive} has no before/ and after/ folders; {choose}")


def read_pairs(location: str | Path) -> list[Pair]:
    """Load and check the pairs in a folder or zip (see the module docstring).

    Raises :class:`InputError` naming the file for: a missing location or folder, unmatched
    names, an unreadable image, fewer than :data:`MIN_PAIRS` pairs, or a pair whose two images
    have different aspect ratios.
    """
    location = Path(location).expanduser()
    if not location.exists():
        raise InputError(f"{location} not found; give a folder with before/ and after/ or a zip of one")
    if location.is_file():
        if location.suffix.lower() != ".zip":
            raise InputError(f"{location} is a file but not a .zip; give a folder with before/ and after/ or a zip of one")
        # The images are read fully into memory, so the extracted copy can go straight away.
        with tempfile.TemporaryDirectory(prefix="atelier-pairs-") as temporary:
            try:
                return read_pairs(extract_zip(location, Path(temporary)))
            except InputError as error:
                # Name the zip, not the temporary folder it was unpacked to.
                raise InputError(str(error).replace(temporary, str(location))) from error
    before_folder, after_folder = location / "before", location / "after"
    for folder in (before_folder, after_folder):
        if not folder.is_dir():
            raise InputError(f"{folder} not found; a pairs folder holds before/ and after/ with matching file names")
    befores, afters = _images_by_stem(before_folder), _images_by_stem(after_folder)
    only_before, only_after = sorted(set(befores) - set(afters)), sorted(set(afters) - set(befores))
    if only_before or only_after:
        missing = [f"{befores[name].name} has no after/ match" for name in only_before]
        missing += [f"{afters[name].name} has no before/ match" for name in only_after]
        raise InputError(f"unmatched pairs in {location}: {'; '.join(missing[:4])}; give each before/ photo an after/ photo "
                         "of the same name")
    if len(befores) < MIN_PAIRS:
        raise InputError(f"{location} holds {len(befores)} pair(s); a style needs at least {MIN_PAIRS} (about 8 is best)")
    pairs = []
    for name in sorted(befores):
        before, after = load_photo(befores[name]), load_photo(afters[name])
        before_aspect, after_aspect = before.width / before.height, after.width / after.height
        if abs(before_aspect / after_aspect - 1) > ASPECT_TOLERANCE:
            raise InputError(
                f"{befores[name].name} ({before.width}x{before.height}) and {afters[name].name} "
                f"({after.width}x{after.height}) have different aspect ratios; crop them alike"
            )
        pairs.append(Pair(name, before, after, befores[name], afters[name]))
    return pairs
