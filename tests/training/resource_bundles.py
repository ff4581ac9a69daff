"""Writing Qt resource bundles for tests, laid out as Qt's rcc does."""

from __future__ import annotations

import struct
import zlib

from engine.training.qt_resources import COMPRESSED, DIRECTORY


def write_bundle(path, tree: dict, version: int = 2, compress: tuple[str, ...] = ()) -> None:
    """A bundle of ``tree`` (nested dicts of name -> bytes), laid out as Qt's rcc does: nodes in
    breadth-first order, each directory's children contiguous; ``compress`` names zlib files."""
    names, data = bytearray(), bytearray()
    nodes: list[bytes] = []
    node_size = 14 if version == 1 else 22

    def name_offset(name: str) -> int:
        offset = len(names)
        names.extend(struct.pack(">HI", len(name), 0) + name.encode("utf-16-be"))
        return offset

    queue = [("", tree)]
    next_index = 1
    while queue:
        name, content = queue.pop(0)
        offset = name_offset(name) if name else 0
        if isinstance(content, dict):
            children = sorted(content.items())
            nodes.append(struct.pack(">IHII", offset, DIRECTORY, len(children), next_index))
            next_index += len(children)
            queue.extend(children)
        else:
            flags, payload = 0, content
            if name in compress:
                flags, payload = COMPRESSED, struct.pack(">I", len(content)) + zlib.compress(content)
            nodes.append(struct.pack(">IHHHI", offset, flags, 0, 0, len(data)))
            data.extend(struct.pack(">I", len(payload)) + payload)
        if version > 1:
            nodes[-1] += bytes(8)
    header_size = 20 if version < 3 else 24
    tree_offset = header_size
    data_offset = tree_offset + len(nodes) * node_size
    names_offset = data_offset + len(data)
    header = b"qres" + struct.pack(">4I", version, tree_offset, data_offset, names_offset) + (bytes(4) if version == 3 else b"")
    path.write_bytes(header + b"".join(nodes) + bytes(data) + bytes(names))
