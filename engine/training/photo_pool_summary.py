"""The photo pool's description: images per package and kind, with their licences, as Markdown.

Written next to the pool's ``manifest.csv`` by :mod:`engine.training.photo_download` and copied,
with the manifest, into a model folder trained on the pool (``PRETRAIN_PHOTOS.md``).
"""

from __future__ import annotations

from collections import Counter

HEADER = """# Pretraining photo pool

Made by `python -m engine.training.photo_download` (Debian bookworm packages, fetched with `apt-get download`;
images resized to at most 768 px on the long side, written to `data/pretrain-photos/`, not committed).
Every image's package, version, original path, size, licence and kind is in `pretrain-photos.csv`.
Images named in `../shared/holdout.txt` or duplicating `../shared/photos` (by name or 16x16 thumbnail) are left out.
"""
NOTES = """
Licence notes: stellarium-data's copyright file declares GPL-2+ for all files (the nebula images come from many astronomers);
gnome-backgrounds' symbolic/vnc images are not in its per-image list, so the package's GPL-2 is recorded; gcompris-qt-data's
images come from its activities' Qt resource bundles and take the licence of their source path in its copyright file.
"""


def pool_summary(rows: list[dict]) -> str:
    """Markdown for the manifest ``rows`` (dicts with package, package_version, kind, licence), in
    the order packages first appear."""
    groups: dict[tuple[str, str, str], list[str]] = {}
    for row in rows:
        groups.setdefault((row["package"], row["package_version"], row["kind"]), []).append(row["licence"])
    lines = [HEADER, "| package | version | kind | images | licences |", "|---|---|---|---:|---|"]
    lines += [f"| {package} | {version} | {kind} | {len(licences)} | {', '.join(sorted(set(licences)))} |"
              for (package, version, kind), licences in groups.items()]
    kinds = Counter(row["kind"] for row in rows)
    lines += ["", "| kind | images |", "|---|---:|"]
    lines += [f"| {kind} | {count} |" for kind, count in sorted(kinds.items())]
    lines += [f"| **total** | **{len(rows)}** |", NOTES]
    return "\n".join(lines)
