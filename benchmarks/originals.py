"""The benchmark photos' full-size originals, from the Debian packages that ship them.

``assets/benchmark/photos`` holds 512 px copies; ``assets/benchmark/ATTRIBUTION.md`` names, for
each, the Debian package and the file inside it (under ``/usr/share``). This fetches those
packages with ``apt-get download`` (no install, no root needed once the package lists are there;
run ``apt-get update`` first on a new machine), extracts only the named files with ``dpkg-deb``,
and keeps them in a cache folder, so a fresh machine can rebuild the full-resolution benchmark by
package name. ``python -m benchmarks.originals [--split test]`` prints where they are.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from engine.core.assets import ASSETS, REPOSITORY
from engine.core.errors import InputError

ATTRIBUTION = ASSETS / "benchmark" / "ATTRIBUTION.md"
DEFAULT_CACHE = REPOSITORY / "runs" / "originals"


@dataclass(frozen=True)
class Original:
    """One benchmark photo's source: ``name`` (the stem in ``assets/benchmark/photos``), its split,
    the Debian ``package`` and the ``member`` path inside it (under ``/usr/share``)."""

    name: str
    split: str
    package: str
    member: str


def originals(split: str | None = None) -> list[Original]:
    """The rows of ATTRIBUTION.md's table, optionally of one split."""
    rows = []
    for line in ATTRIBUTION.read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 5 or not cells[0].startswith("photos/"):
            continue
        name = Path(cells[0]).stem
        rows.append(Original(name, cells[1], cells[2], cells[3]))
    if not rows:
        raise InputError(f"{ATTRIBUTION} has no photo table; restore it from the repository")
    return [row for row in rows if split is None or row.split == split]


def fetch(rows: list[Original], cache: Path = DEFAULT_CACHE) -> dict[str, Path]:
    """``{name: path}`` of each original, downloading and extracting what the cache lacks."""
    cache.mkdir(parents=True, exist_ok=True)
    paths = {row.name: cache / row.package / row.member for row in rows}
    missing = sorted({row.package for row in rows if not paths[row.name].is_file()})
    for package in missing:
        members = [row.member for row in rows if row.package == package]
        with tempfile.TemporaryDirectory(prefix="atelier-originals-") as folder:
            download = subprocess.run(["apt-get", "download", package], cwd=folder, capture_output=True, text=True)
            debs = list(Path(folder).glob("*.deb"))
            if download.returncode != 0 or not debs:
                raise InputError(f"apt-get download {package} failed: {download.stderr.strip().splitlines()[-1:]}; "
                                 "run 'apt-get update' and try again")
            extract_members(debs[0], members, cache / package)
    return paths


def extract_members(deb: Path, members: list[str], target: Path) -> None:
    """Extract ``usr/share/<member>`` of each member from ``deb`` into ``target/<member>``; each
    file is written under a temporary name, then renamed, so the cache never holds half a photo."""
    tar = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(deb)], capture_output=True, check=True).stdout
    with tempfile.TemporaryFile() as buffer:
        buffer.write(tar)
        buffer.seek(0)
        with tarfile.open(fileobj=buffer) as archive:
            names = {name.removeprefix("./"): name for name in archive.getnames()}
            for member in members:
                stored = names.get(f"usr/share/{member}")
                if stored is None:
                    raise InputError(f"{deb.name} has no usr/share/{member}; ATTRIBUTION.md names another package version")
                destination = target / member
                destination.parent.mkdir(parents=True, exist_ok=True)
                partial = destination.with_name(destination.name + ".partial")
                partial.write_bytes(archive.extractfile(stored).read())
                partial.rename(destination)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.originals", description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=("train", "test"), default=None, help="Only this split's photos (default: all).")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="Where the originals are kept.")
    arguments = parser.parse_args(argv)
    try:
        for name, path in fetch(originals(arguments.split), arguments.cache).items():
            print(f"{name}\t{path}")
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
