"""Reading the files packed in a Qt resource bundle (``.rcc``, as ``rcc --binary`` writes it).

Some Debian packages ship their images inside such bundles (GCompris keeps one per activity), so
the photo pool (:mod:`engine.training.photo_download`) unpacks them before choosing images.

The format (Qt's ``src/corelib/io/qresource.cpp`` and ``tools/rcc/rcc.cpp``), all integers
big-endian: a header ``qres``, version, and the offsets of the tree, the data and the names (version
3 adds a flags word); a tree of nodes of 14 bytes (22 from version 2, with a modification time),
each a name offset, flags (1: zlib-compressed, 2: directory, 4: zstd-compressed) and either a child
count and first-child index or a locale and data offset; a name is a length in UTF-16 units, a
hash, then the UTF-16 text; a file's data is its length then its bytes, zlib ones led by the
uncompressed length.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

MAGIC = b"qres"
COMPRESSED, DIRECTORY, COMPRESSED_ZSTD = 1, 2, 4


class ResourceBundleError(ValueError):
    """The file is not a Qt resource bundle this reader understands."""


def read_qt_resources(path: Path) -> dict[str, bytes]:
    """Every file in the bundle at ``path``, by its path inside the bundle (no leading slash).
    Zstandard-compressed files, which would need another library, are left out."""
    data = path.read_bytes()
    if data[:4] != MAGIC or len(data) < 20:
        raise ResourceBundleError(f"{path} is not a Qt resource bundle (no 'qres' header)")
    version, tree_offset, data_offset, names_offset = struct.unpack_from(">4I", data, 4)
    if version not in (1, 2, 3):
        raise ResourceBundleError(f"{path}: Qt resource format version {version} is not supported")
    node_size = 14 if version == 1 else 22

    def name_at(offset: int) -> str:
        length = struct.unpack_from(">H", data, names_offset + offset)[0]
        start = names_offset + offset + 6  # past the length and the 4-byte hash
        return data[start:start + 2 * length].decode("utf-16-be")

    files: dict[str, bytes] = {}
    pending = [(0, "")]  # (node index, the path of its parent)
    while pending:
        index, parent = pending.pop()
        node = tree_offset + index * node_size
        name_offset, flags = struct.unpack_from(">IH", data, node)
        name = "" if index == 0 else name_at(name_offset)
        path_here = f"{parent}/{name}".strip("/")
        if flags & DIRECTORY:
            count, first = struct.unpack_from(">II", data, node + 6)
            pending.extend((first + child, path_here) for child in range(count))
            continue
        if flags & COMPRESSED_ZSTD:
            continue
        start = data_offset + struct.unpack_from(">I", data, node + 10)[0]
        size = struct.unpack_from(">I", data, start)[0]
        content = data[start + 4:start + 4 + size]
        files[path_here] = zlib.decompress(content[4:]) if flags & COMPRESSED else content
    return files
