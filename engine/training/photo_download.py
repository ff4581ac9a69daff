"""Grow the pretraining photo pool from Debian packages that any machine can install by name.

Each package in ``PHOTO_PACKAGES`` is fetched with ``apt-get download``, unpacked with
``dpkg-deb -x`` into a temporary folder, and its images (at least 256 px on the short side) are
written resized to at most 768 px on the long side (Lanczos, RGB, JPEG quality 95) as
``<package>-<stem>.jpg``. Plasma-style wallpapers (``<Name>/contents/images/<size>.jpg``) keep
only their largest size and are named by their folder. An image is skipped when its stem, folder
or package-prefixed name is in ``../shared/holdout.txt`` (evaluation photos) or names one of
``../shared/photos`` (the existing pool), when its 16x16 grey thumbnail nearly equals one of
those photos, or one already taken. ``manifest.csv`` records the package, version, original
path, original size, licence (from the package's DEP-5 copyright file) and kind of every image.
Each finished package leaves ``.packages/<package>.csv``, so a rerun skips it. A package that keeps
its images in Qt resource bundles (GCompris) has them unpacked first, each bundle's files under a
folder named like it (:mod:`engine.training.qt_resources`).
"""

from __future__ import annotations

import argparse
import csv
import fnmatch
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from engine.core.files import write_text_atomic
from engine.training.photo_pool_summary import pool_summary
from engine.training.qt_resources import read_qt_resources

SHARED = Path(__file__).resolve().parents[3] / "shared"
DEFAULT_DESTINATION = Path(__file__).resolve().parents[2] / "data" / "pretrain-photos"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".tga")
MINIMUM_SHORT_SIDE = 256
LONG_SIDE = 768
JPEG_QUALITY = 95
THUMBNAIL_SIDE = 16
DUPLICATE_DISTANCE = 0.25  # mean absolute difference of z-scored 16x16 grey thumbnails, and
DUPLICATE_GREY_DISTANCE = 8.0  # of the raw ones (0-255), so flat or dark images of other content differ
MANIFEST_FIELDS = ("file", "package", "package_version", "original_path", "width", "height", "licence", "kind")
PLASMA_STYLE = re.compile(r"(?:^|/)([^/]+)/contents/images(?:_dark)?/[^/]+$")


@dataclass(frozen=True)
class PhotoPackage:
    """A Debian package, the images of it to take (path globs) and their kind (first match wins)."""

    name: str
    kind: str
    include: tuple[str, ...] = ("*",)
    exclude: tuple[str, ...] = ()
    kinds: tuple[tuple[str, str], ...] = ()
    resource_bundles: tuple[str, ...] = ()  # globs of Qt .rcc files to unpack before choosing images


GCOMPRIS_PHOTO_ACTIVITIES = ("explore_monuments", "erase", "explore_world_animals", "explore_farm_animals",
                             "explore_world_music", "details")
GCOMPRIS_PAINTINGS = ("Gogh", "PereTanguy", "Auvers")  # the "details" activity mixes paintings with its photos
STELLARIUM_PHOTO_LANDSCAPES = tuple(f"*/landscapes/{name}/*" for name in
                                    ("garching", "geneva", "grossmugl", "guereins", "hurricane", "ocean", "trees", "moon"))
PHOTO_PACKAGES: tuple[PhotoPackage, ...] = (
    PhotoPackage("lomiri-wallpapers", "photo", ("usr/share/backgrounds/*",)),
    PhotoPackage("lomiri-wallpapers-16.04", "photo", ("usr/share/backgrounds/*",)),
    PhotoPackage("lomiri-wallpapers-20.04", "photo", ("usr/share/backgrounds/*",)),
    PhotoPackage("mate-backgrounds", "artwork", ("usr/share/backgrounds/*",), kinds=(("*/nature/*", "photo"),)),
    PhotoPackage("plasma-workspace-wallpapers", "photo", ("usr/share/wallpapers/*",)),
    PhotoPackage("gnome-backgrounds", "artwork", ("usr/share/backgrounds/*",)),
    PhotoPackage("ukui-wallpapers", "photo", ("usr/share/backgrounds/*",)),
    PhotoPackage("sway-backgrounds", "artwork", ("usr/share/backgrounds/*",)),
    PhotoPackage("desktop-base", "artwork", ("*/wallpaper*/contents/images/*",)),
    PhotoPackage("palapeli-data", "photo", ("usr/share/palapeli/*",)),
    PhotoPackage("stellarium-data", "texture", ("*/stellarium/nebulae/*", "*/stellarium/landscapes/*", "*/stellarium/textures/*"),
                 kinds=(("*/nebulae/*", "photo"),) + tuple((glob, "photo") for glob in STELLARIUM_PHOTO_LANDSCAPES)),
    PhotoPackage("tuxpaint-stamps-default", "photo", ("usr/share/tuxpaint/stamps/*",)),
    PhotoPackage("tuxpaint-data", "photo", ("usr/share/tuxpaint/templates/*",)),
    PhotoPackage("gcompris-qt-data", "artwork", ("usr/share/gcompris-qt/rcc/*",),
                 kinds=(*((f"*/details/*{painter}*", "artwork") for painter in GCOMPRIS_PAINTINGS),
                        *((f"*/activities/{name}/*", "photo") for name in GCOMPRIS_PHOTO_ACTIVITIES)),
                 resource_bundles=("usr/share/gcompris-qt/rcc/*.rcc",)),
    PhotoPackage("mypaint-data-extras", "texture", ("usr/share/mypaint/backgrounds/*",)),
    PhotoPackage("torcs-data", "texture", ("usr/share/games/torcs/*",)),
    PhotoPackage("extremetuxracer-data", "texture", ("usr/share/games/etr/*",)),
    PhotoPackage("neverball-data", "texture", ("usr/share/games/neverball/*",)),
    PhotoPackage("colobot-common-textures", "texture", ("usr/share/games/colobot/*",)),
)


def read_name_list(path: Path) -> set[str]:
    """The lower-cased names of a list file (one a line, ``#`` comments)."""
    if not path.exists():
        return set()
    lines = (line.strip() for line in path.read_text().splitlines())
    return {line.lower() for line in lines if line and not line.startswith("#")}


def candidate_names(package: str, stem: str) -> set[str]:
    """The names an image may be listed under: its stem, and it prefixed with the package name
    or its first word (``plasma-Kite`` for plasma-workspace-wallpapers' Kite)."""
    stem = stem.lower()
    return {stem, f"{package}-{stem}", f"{package.split('-')[0]}-{stem}"}


def is_listed(package: str, stem: str, names: set[str]) -> bool:
    return bool(candidate_names(package, stem) & names)


def image_stem(relative_path: str) -> str:
    """A plasma-style wallpaper's folder name, otherwise the file stem."""
    match = PLASMA_STYLE.search(relative_path)
    return match.group(1) if match else Path(relative_path).stem


def size_from_name(path: str) -> int:
    match = re.search(r"(\d+)x(\d+)", Path(path).stem)
    return int(match.group(1)) * int(match.group(2)) if match else 0


def largest_of_each_wallpaper(paths: list[str]) -> list[str]:
    """Keep every ordinary image, and only the largest size (by ``WxH`` name, then file name) of
    each plasma-style wallpaper folder."""
    chosen: dict[str, str] = {}
    for path in sorted(paths):
        match = PLASMA_STYLE.search(path)
        key = path[:match.start(1)] + match.group(1) if match else path
        if key not in chosen or size_from_name(path) > size_from_name(chosen[key]):
            chosen[key] = path
    return sorted(chosen.values())


def matches_any(path: str, globs: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatch(path, glob) for glob in globs)


def image_kind(package: PhotoPackage, relative_path: str) -> str:
    return next((kind for glob, kind in package.kinds if fnmatch.fnmatch(relative_path, glob)), package.kind)


def unpack_resource_bundles(root: Path, package: PhotoPackage) -> None:
    """Write the files of every Qt resource bundle the package's globs name next to it, under a
    folder named like the bundle (``x.rcc`` -> ``x/<path inside the bundle>``)."""
    bundles = [path for path in sorted(root.rglob("*.rcc")) if matches_any(path.relative_to(root).as_posix(), package.resource_bundles)]
    for bundle in bundles:
        for inner_path, content in read_qt_resources(bundle).items():
            target = bundle.with_suffix("") / inner_path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)


def list_images(root: Path, package: PhotoPackage) -> list[str]:
    """The image paths (relative to the unpacked package) the package's globs select."""
    paths = [path.relative_to(root).as_posix() for path in root.rglob("*")
             if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES]
    return [path for path in paths if matches_any(path, package.include) and not matches_any(path, package.exclude)]


def parse_licences(copyright_text: str) -> list[tuple[list[str], str]]:
    """The (file globs, licence) paragraphs of a DEP-5 copyright file, in order."""
    paragraphs = []
    for block in re.split(r"\n\s*\n", copyright_text):
        files = re.search(r"^Files:\s*(.+(?:\n\s+.+)*)", block, re.MULTILINE)
        licence = re.search(r"^License:\s*(.+)$", block, re.MULTILINE)
        if files and licence:
            paragraphs.append((files.group(1).split(), licence.group(1).strip()))
    return paragraphs


def licence_for(relative_path: str, copyright_text: str) -> str:
    """The licence of the last DEP-5 paragraph whose glob matches a tail of the path, else the
    ``Files: *`` one, else the first licence the file names."""
    paragraphs = parse_licences(copyright_text)
    tails = ["/".join(relative_path.split("/")[index:]) for index in range(relative_path.count("/") + 1)]
    found = ""
    for globs, licence in paragraphs:
        if any(glob != "*" and (fnmatch.fnmatch(tail, glob) or glob.rsplit("/", 1)[-1] == tails[-1])
               for glob in globs for tail in tails):
            found = licence
    if found:
        return found
    general = [licence for globs, licence in paragraphs if "*" in globs]
    if general:
        return general[-1]
    named = re.search(r"\b(L?GPL[- ]?v?\d(?:\.\d)?\+?|CC[- ]BY[-A-Z0-9. ]*|public domain|BSD|MIT|Expat)", copyright_text, re.I)
    return named.group(1).strip() if named else "see copyright file"


def open_rgb(path: Path) -> Image.Image:
    """The image in RGB, transparent parts on white."""
    with Image.open(path) as image:
        image.load()
        if image.mode in ("RGBA", "LA", "P", "PA"):
            rgba = image.convert("RGBA")
            background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            return Image.alpha_composite(background, rgba).convert("RGB")
        return image.convert("RGB")


def thumbnail(image: Image.Image) -> np.ndarray:
    """A 16x16 grey thumbnail, raw then z-scored (flat images keep their mean-free values)."""
    grey = np.asarray(image.convert("L").resize((THUMBNAIL_SIDE, THUMBNAIL_SIDE), Image.Resampling.BOX), dtype=np.float32)
    centred = grey.ravel() - grey.mean()
    return np.concatenate([grey.ravel(), centred / max(float(centred.std()), 4.0)])


def is_near_duplicate(candidate: np.ndarray, thumbnails: list[np.ndarray]) -> bool:
    if not thumbnails:
        return False
    differences = np.abs(np.stack(thumbnails) - candidate)
    pixels = THUMBNAIL_SIDE * THUMBNAIL_SIDE
    grey_distance, structure_distance = differences[:, :pixels].mean(axis=1), differences[:, pixels:].mean(axis=1)
    return bool(((grey_distance < DUPLICATE_GREY_DISTANCE) & (structure_distance < DUPLICATE_DISTANCE)).any())


def resized(image: Image.Image) -> Image.Image:
    scale = LONG_SIDE / max(image.size)
    if scale >= 1:
        return image
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS)


def save_atomically(image: Image.Image, path: Path) -> None:
    temporary = path.with_name(f".{path.name}.part")
    image.save(temporary, format="JPEG", quality=JPEG_QUALITY)
    os.replace(temporary, path)


def write_csv_atomically(rows: list[dict], path: Path) -> None:
    temporary = path.with_name(f".{path.name}.part")
    with temporary.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=MANIFEST_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(temporary, path)


def unique_name(package: str, relative_path: str, stem: str, taken: set[str]) -> str:
    """``<package>-<stem>.jpg``, prefixed with parent folder names until no other image has it."""
    parents = [part for part in Path(relative_path).parent.parts[::-1] if part not in ("contents", "images")]
    name, index = f"{package}-{stem}", 0
    while name.lower() in taken:
        name = f"{package}-{'-'.join(parents[:index + 1][::-1])}-{stem}" if index < len(parents) else f"{name}-{index}"
        index += 1
    return name


def take_images(root: Path, package: PhotoPackage, version: str, destination: Path,
                excluded_names: set[str], thumbnails: list[np.ndarray], taken: set[str]) -> list[dict]:
    """Write the package's new images (unpacked at ``root``) and return their manifest rows;
    ``thumbnails`` and ``taken`` grow with every image written."""
    copyright_file = root / "usr" / "share" / "doc" / package.name / "copyright"
    copyright_text = copyright_file.read_text(errors="replace") if copyright_file.exists() else ""
    rows = []
    for relative_path in largest_of_each_wallpaper(list_images(root, package)):
        stem = image_stem(relative_path)
        if is_listed(package.name, stem, excluded_names):
            continue
        try:
            image = open_rgb(root / relative_path)
        except (OSError, ValueError):
            continue
        small = thumbnail(image)
        if min(image.size) < MINIMUM_SHORT_SIDE or is_near_duplicate(small, thumbnails):
            continue
        name = unique_name(package.name, relative_path, stem, taken)
        save_atomically(resized(image), destination / f"{name}.jpg")
        thumbnails.append(small)
        taken.add(name.lower())
        rows.append({"file": f"{name}.jpg", "package": package.name, "package_version": version,
                     "original_path": "/" + relative_path, "width": image.width, "height": image.height,
                     "licence": licence_for(relative_path, copyright_text), "kind": image_kind(package, relative_path)})
    return rows


def fetch_package(name: str, folder: Path, cache: Path | None) -> tuple[Path, str]:
    """Download (or find in ``cache``) the package's .deb, unpack it into ``folder``/root and
    return the root and the package version."""
    download_folder = cache or folder
    download_folder.mkdir(parents=True, exist_ok=True)
    debs = sorted(download_folder.glob(f"{name}_*.deb"))
    if not debs:
        subprocess.run(["apt-get", "download", name], cwd=download_folder, check=True, capture_output=True)
        debs = sorted(download_folder.glob(f"{name}_*.deb"))
    root = folder / "root"
    subprocess.run(["dpkg-deb", "-x", str(debs[-1]), str(root)], check=True)
    version = subprocess.run(["dpkg-deb", "-f", str(debs[-1]), "Version"], check=True, capture_output=True, text=True)
    return root, version.stdout.strip()


def known_thumbnails(folders: list[Path]) -> list[np.ndarray]:
    return [thumbnail(open_rgb(path)) for folder in folders if folder.exists()
            for path in sorted(folder.iterdir()) if path.suffix.lower() in IMAGE_SUFFIXES]


def download_pool(destination: Path, packages: tuple[PhotoPackage, ...], shared: Path = SHARED,
                  cache: Path | None = None) -> list[dict]:
    """Fill ``destination`` from every package not done yet and write ``manifest.csv``."""
    done_folder = destination / ".packages"
    done_folder.mkdir(parents=True, exist_ok=True)
    shared_photos = shared / "photos"
    excluded_names = read_name_list(shared / "holdout.txt")
    excluded_names |= {path.stem.lower() for path in shared_photos.glob("*")} if shared_photos.exists() else set()
    thumbnails = known_thumbnails([shared_photos, destination])
    taken = {path.stem.lower() for path in destination.glob("*.jpg")}
    for package in packages:
        done = done_folder / f"{package.name}.csv"
        if done.exists():
            continue
        with tempfile.TemporaryDirectory(prefix=f"photos-{package.name}-") as folder:
            root, version = fetch_package(package.name, Path(folder), cache)
            unpack_resource_bundles(root, package)
            rows = take_images(root, package, version, destination, excluded_names, thumbnails, taken)
        write_csv_atomically(rows, done)
        print(f"{package.name} {version}: {len(rows)} images", flush=True)
    return write_manifest(destination, packages)


def write_manifest(destination: Path, packages: tuple[PhotoPackage, ...]) -> list[dict]:
    rows = []
    for package in packages:
        done = destination / ".packages" / f"{package.name}.csv"
        if done.exists():
            with done.open(newline="") as file:
                rows.extend(csv.DictReader(file))
    write_csv_atomically(rows, destination / "manifest.csv")
    write_text_atomic(destination / "PRETRAIN_PHOTOS.md", pool_summary(rows))
    return rows


def main(arguments: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog="Needs apt-get and dpkg-deb (Debian or Ubuntu); no installation happens.")
    parser.add_argument("--dest", type=Path, default=DEFAULT_DESTINATION, help="destination folder (default: data/pretrain-photos)")
    parser.add_argument("--packages", nargs="+", metavar="PACKAGE", help="only these of the known packages (default: all)")
    parser.add_argument("--deb-cache", type=Path, help="keep downloaded .deb files here and reuse them")
    options = parser.parse_args(arguments)
    known = {package.name: package for package in PHOTO_PACKAGES}
    unknown = sorted(set(options.packages or ()) - set(known))
    if unknown:
        parser.error(f"unknown packages: {', '.join(unknown)}; known: {', '.join(known)}")
    packages = tuple(known[name] for name in options.packages) if options.packages else PHOTO_PACKAGES
    rows = download_pool(options.dest, packages, cache=options.deb_cache)
    print(f"{len(rows)} images in {options.dest / 'manifest.csv'}")


if __name__ == "__main__":
    main()
