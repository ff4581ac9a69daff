"""Reading Qt resource bundles (engine/training/qt_resources.py) against bundles written here."""

from __future__ import annotations

import pytest

from engine.training.qt_resources import ResourceBundleError, read_qt_resources
from tests.training.resource_bundles import write_bundle


@pytest.mark.parametrize("version", [1, 2, 3])
def test_every_file_comes_back_by_its_path_raw_or_compressed(tmp_path, version):
    files = {"gcompris": {"src": {"a.webp": b"\x00raw bytes", "b.txt": b"text " * 50}, "top.png": b"png"}}
    write_bundle(tmp_path / "x.rcc", files, version=version, compress=("b.txt",))
    assert read_qt_resources(tmp_path / "x.rcc") == {
        "gcompris/src/a.webp": b"\x00raw bytes", "gcompris/src/b.txt": b"text " * 50, "gcompris/top.png": b"png"}


def test_a_file_that_is_not_a_bundle_is_refused_by_name(tmp_path):
    (tmp_path / "x.rcc").write_bytes(b"not a bundle at all, long enough")
    with pytest.raises(ResourceBundleError, match="x.rcc is not a Qt resource bundle"):
        read_qt_resources(tmp_path / "x.rcc")
