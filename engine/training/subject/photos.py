"""The photos of a subject: reading a folder, a zip or a list of files, and checking them.

Layout: a folder holding 3 to 10 photos of one subject (``DIR/NAME.ext``), or a zip of such a
folder (the photos at its top level or inside one top folder). Hidden files and macOS's
``__MACOSX`` folder are skipped; anything else that is not a photo is refused by name, so a
stray file is never trained on or silently left out.
"""

from __future__ import annotations

import contextlib
import hashlib
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

from PIL import Image

from engine.core.errors import InputError
from engine.core.imaging import load_photo
from engine.training.pair_uploads import IMAGE_SUFFIXES
from engine.training.subject.config import MAX_PHOTOS, MIN_PHOTOS

MAX_ZIP_BYTES = 512 * 1024 * 1024
SKIPPED_FOLDERS = ("__MACOSX",)


@dataclass(frozen=True)
class SubjectPhoto:
    """One photo of the subject, decoded as an upright RGB image, with its file and digest."""

    path: Path
    image: Image.Image
    sha256: str


def read_photo_files(paths: Sequence[str | Path], origin: str | Path = "the list of photos") -> list[SubjectPhoto]:
    """Decode and check photo files given one by one (the studio's uploads); ``origin`` names
    where they came from in messages.

    Raises:
        InputError: naming the file, for a wrong file type, an unreadable or damaged image, two
            files with the same content, or fewer than :data:`MIN_PHOTOS` or more than
            :data:`MAX_PHOTOS` photos.
    """
    paths = [Path(path).expanduser() for path in paths]
    for path in paths:
        check_suffix(path)
    check_count(len(paths), origin)
    photos, seen = [], {}
    for path in paths:
        image = load_photo(path)  # InputError naming the file when it cannot be decoded
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest in seen:
            raise InputError(f"{path.name} is the same file as {seen[digest].name}; give each photo once")
        seen[digest] = path
        photos.append(SubjectPhoto(path, image, digest))
    return photos


@contextlib.contextmanager
def open_subject_photos(location: str | Path | Sequence[str | Path]) -> Iterator[list[SubjectPhoto]]:
    """The photos of a folder, a zip, or a list of files, checked (see :func:`read_photo_files`).

    A zip is extracted to a temporary folder that lives until the ``with`` block ends, so the
    photos' paths stay valid while the library copies them.
    """
    if not isinstance(location, (str, Path)):
        yield read_photo_files(location)
        return
    location = Path(location).expanduser()
    if not location.exists():
        raise InputError(f"{location} not found; give a folder of {MIN_PHOTOS} to {MAX_PHOTOS} photos of the subject, or a zip of one")
    if location.is_dir():
        yield read_photo_files(photo_files(location), location)
        return
    if location.suffix.lower() != ".zip":
        raise InputError(f"{location} is a file but not a .zip; give a folder of {MIN_PHOTOS} to {MAX_PHOTOS} photos, or a zip of one")
    with tempfile.TemporaryDirectory(prefix="atelier-subject-") as temporary:
        folder = extract_photos_zip(location, Path(temporary))
        yield read_photo_files(photo_files(folder, shown_as=location), location)


def photo_files(folder: Path, shown_as: Path | None = None) -> list[Path]:
    """The photo files directly in ``folder``, by name; InputError for any other file or folder.

    ``shown_as`` names the zip the folder came from in messages.
    """
    origin = shown_as or folder
    files = []
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.name in SKIPPED_FOLDERS:
            continue
        if path.is_dir():
            raise InputError(f"{origin} holds a folder {path.name!r}; put the photos of the subject directly in one folder")
        check_suffix(path)
        files.append(path)
    if not files:
        raise InputError(f"{origin} holds no photos; give {MIN_PHOTOS} to {MAX_PHOTOS} photos of the subject")
    return files


def extract_photos_zip(archive: Path, into: Path) -> Path:
    """Extract a photos zip safely (no absolute or parent paths, bounded size); returns the folder
    holding the photos: the zip's top level, or its one top folder."""
    try:
        with zipfile.ZipFile(archive) as handle:
            members = handle.infolist()
            if sum(member.file_size for member in members) > MAX_ZIP_BYTES:
                raise InputError(f"{archive} unpacks to more than {MAX_ZIP_BYTES // 2**20} MB; give at most {MAX_PHOTOS} photos")
            for member in members:
                if not (into / member.filename).resolve().is_relative_to(into.resolve()):
                    raise InputError(f"{archive} holds an unsafe path {member.filename!r}; zip the photos' folder again")
            handle.extractall(into)
    except zipfile.BadZipFile as error:
        raise InputError(f"{archive} is not a readable zip file ({error}); zip the photos' folder again") from error
    entries = [entry for entry in into.iterdir() if not entry.name.startswith(".") and entry.name not in SKIPPED_FOLDERS]
    if len(entries) == 1 and entries[0].is_dir():
        return entries[0]
    return into


def check_suffix(path: Path) -> None:
    """InputError unless ``path``'s extension is that of a photo format."""
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        kind = f"a {path.suffix.lower()} file" if path.suffix else "a file without an extension"
        raise InputError(f"{path.name} is {kind}, not a photo; give only {', '.join(IMAGE_SUFFIXES)} photos of the subject")


def check_count(count: int, origin: str | Path) -> None:
    """InputError unless there are :data:`MIN_PHOTOS` to :data:`MAX_PHOTOS` photos."""
    if count < MIN_PHOTOS:
        raise InputError(f"{origin} has {count} photo(s); a subject needs at least {MIN_PHOTOS}: add views of it "
                         "from other angles or places")
    if count > MAX_PHOTOS:
        raise InputError(f"{origin} has {count} photos; a subject takes at most {MAX_PHOTOS}: keep the best {MAX_PHOTOS}")
