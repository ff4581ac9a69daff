"""The benchmark photos' originals (benchmarks/originals.py): the attribution table and extraction
from a package, on a small package built here."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from benchmarks.dataset import TEST_PHOTOS, TRAIN_PHOTOS
from benchmarks.full_resolution import parse_render
from benchmarks.originals import extract_members, originals
from engine.core.errors import ConfigError, InputError


def test_every_shipped_photo_has_an_original_in_a_package():
    rows = originals()
    shipped = {name for name in TRAIN_PHOTOS + TEST_PHOTOS if not name.startswith("skimage-")}
    assert {row.name for row in rows} == shipped
    assert {row.name for row in originals("test")} == {name for name in TEST_PHOTOS if not name.startswith("skimage-")}
    assert all(row.package and row.member for row in rows)


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs Debian's dpkg-deb")
def test_members_are_extracted_from_a_package(tmp_path):
    root = tmp_path / "package"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text("Package: atelier-test\nVersion: 1\nArchitecture: all\n"
                                             "Maintainer: tests <t@example.org>\nDescription: test\n")
    (root / "usr" / "share" / "backgrounds").mkdir(parents=True)
    (root / "usr" / "share" / "backgrounds" / "photo.png").write_bytes(b"pixels")
    deb = tmp_path / "test.deb"
    subprocess.run(["dpkg-deb", "--build", str(root), str(deb)], check=True, capture_output=True)
    extract_members(deb, ["backgrounds/photo.png"], tmp_path / "cache")
    assert (tmp_path / "cache" / "backgrounds" / "photo.png").read_bytes() == b"pixels"
    assert not list((tmp_path / "cache").rglob("*.partial"))
    with pytest.raises(InputError, match="has no usr/share/backgrounds/missing.png"):
        extract_members(deb, ["backgrounds/missing.png"], tmp_path / "cache")


def test_render_variants_parse_or_are_refused():
    assert parse_render("guided:4:0.001").guided_radius == 4
    assert parse_render("guided:2:0.001:0.5").guided_detail == 0.5 and parse_render("guided").guided_detail == 1.0
    assert parse_render("resize").render == "resize"
    with pytest.raises(ConfigError, match="render must be one of"):
        parse_render("tiles")


def test_the_identity_score_keeps_a_smooth_photo_nearly_whole():
    from PIL import Image

    from benchmarks.full_resolution import identity_scores

    ramp = Image.linear_gradient("L").resize((300, 200)).convert("RGB")
    scores = identity_scores({"ramp": ramp})
    assert set(scores) == {"psnr", "worst_psnr", "ssim"}
    assert scores["psnr"] == scores["worst_psnr"] > 30 and scores["ssim"] > 0.9
