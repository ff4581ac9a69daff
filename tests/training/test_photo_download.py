"""The pure logic of the photo download (no network): holdout and shared-pool skipping,
near-duplicate detection, largest-size selection, licences and the manifest."""

from __future__ import annotations

import csv
import io

import numpy as np
from PIL import Image

from engine.training import photo_download as download
from tests.training.resource_bundles import write_bundle

COPYRIGHT = """Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/

Files: *
Copyright: someone
License: GPL-2+

Files: nature/*.jpg
Copyright: a photographer
License: CC-BY-SA-4.0
"""


def noise_image(seed: int, size=(400, 300)) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1] // 20, size[0] // 20, 3), dtype=np.uint8)
    return Image.fromarray(pixels).resize(size, Image.Resampling.NEAREST)


def fake_package(root, images: dict[str, Image.Image]):
    for relative_path, image in images.items():
        (root / relative_path).parent.mkdir(parents=True, exist_ok=True)
        image.save(root / relative_path)
    doc = root / "usr/share/doc/fake-wallpapers"
    doc.mkdir(parents=True)
    (doc / "copyright").write_text(COPYRIGHT)


def run_take(tmp_path, images, excluded=frozenset(), thumbnails=None):
    root, destination = tmp_path / "root", tmp_path / "dest"
    destination.mkdir()
    fake_package(root, images)
    package = download.PhotoPackage("fake-wallpapers", "artwork", ("usr/share/*",), kinds=(("*/nature/*", "photo"),))
    rows = download.take_images(root, package, "1.0-1", destination, set(excluded), thumbnails or [], set())
    return rows, destination


def test_holdout_names_match_by_stem_and_by_prefixed_name_case_insensitively():
    names = {"kite", "plasma-volna", "storm"}
    assert download.is_listed("plasma-workspace-wallpapers", "Kite", names)
    assert download.is_listed("plasma-workspace-wallpapers", "Volna", names)
    assert download.is_listed("mate-backgrounds", "STORM", names)
    assert not download.is_listed("mate-backgrounds", "Garden", names)


def test_read_name_list_skips_comments(tmp_path):
    path = tmp_path / "holdout.txt"
    path.write_text("# held out\nLadyBird\n\nplasma-Kite\n")
    assert download.read_name_list(path) == {"ladybird", "plasma-kite"}


def test_plasma_wallpapers_are_named_by_folder_and_keep_the_largest_size():
    paths = ["usr/share/wallpapers/Kite/contents/images/1920x1080.jpg",
             "usr/share/wallpapers/Kite/contents/images/3840x2160.jpg",
             "usr/share/wallpapers/Kite/contents/images/1280x1024.jpg",
             "usr/share/wallpapers/Opal/contents/images/800x600.png",
             "usr/share/backgrounds/tree.jpg"]
    chosen = download.largest_of_each_wallpaper(paths)
    assert chosen == ["usr/share/backgrounds/tree.jpg", "usr/share/wallpapers/Kite/contents/images/3840x2160.jpg",
                      "usr/share/wallpapers/Opal/contents/images/800x600.png"]
    assert download.image_stem(chosen[1]) == "Kite"
    assert download.image_stem(chosen[0]) == "tree"


def test_holdout_plasma_folder_and_shared_names_are_skipped(tmp_path):
    images = {"usr/share/wallpapers/Kite/contents/images/1920x1080.jpg": noise_image(1),
              "usr/share/backgrounds/nature/ladybird.jpg": noise_image(2),
              "usr/share/backgrounds/nature/meadow.jpg": noise_image(3)}
    rows, destination = run_take(tmp_path, images, excluded={"kite", "ladybird"})
    assert [row["file"] for row in rows] == ["fake-wallpapers-meadow.jpg"]
    assert sorted(path.name for path in destination.iterdir()) == ["fake-wallpapers-meadow.jpg"]


def test_near_duplicates_are_found_at_another_size_but_different_images_are_not():
    original = noise_image(4, (1600, 1200))
    smaller = original.resize((512, 384), Image.Resampling.LANCZOS)
    known = [download.thumbnail(smaller)]
    assert download.is_near_duplicate(download.thumbnail(original), known)
    assert not download.is_near_duplicate(download.thumbnail(noise_image(5, (1600, 1200))), known)
    assert not download.is_near_duplicate(download.thumbnail(original), [])


def test_duplicates_of_the_shared_pool_and_within_the_package_are_skipped(tmp_path):
    shared = noise_image(6, (800, 600))
    images = {"usr/share/backgrounds/nature/copy-of-shared.jpg": shared,
              "usr/share/backgrounds/abstract/first.png": noise_image(7),
              "usr/share/backgrounds/abstract/first-again.png": noise_image(7),
              "usr/share/backgrounds/abstract/tiny.png": noise_image(8, (200, 150))}
    known = [download.thumbnail(shared.resize((512, 384)))]
    rows, _ = run_take(tmp_path, images, thumbnails=known)
    assert [row["file"] for row in rows] == ["fake-wallpapers-first-again.jpg"]


def test_images_are_resized_rgb_jpegs_with_manifest_rows(tmp_path):
    transparent = Image.new("RGBA", (1536, 1024), (255, 0, 0, 0))
    images = {"usr/share/backgrounds/nature/meadow.jpg": noise_image(9, (2000, 1000)),
              "usr/share/backgrounds/stamp.png": transparent}
    rows, destination = run_take(tmp_path, images)
    by_file = {row["file"]: row for row in rows}
    meadow = by_file["fake-wallpapers-meadow.jpg"]
    assert meadow == {"file": "fake-wallpapers-meadow.jpg", "package": "fake-wallpapers", "package_version": "1.0-1",
                      "original_path": "/usr/share/backgrounds/nature/meadow.jpg", "width": 2000, "height": 1000,
                      "licence": "CC-BY-SA-4.0", "kind": "photo"}
    assert by_file["fake-wallpapers-stamp.jpg"]["licence"] == "GPL-2+"
    assert by_file["fake-wallpapers-stamp.jpg"]["kind"] == "artwork"
    with Image.open(destination / "fake-wallpapers-meadow.jpg") as image:
        assert (image.format, image.mode, image.size) == ("JPEG", "RGB", (768, 384))
    with Image.open(destination / "fake-wallpapers-stamp.jpg") as image:
        assert image.getpixel((10, 10)) == (255, 255, 255)
    assert not list(destination.glob(".*"))


def test_the_manifest_joins_finished_packages_in_order(tmp_path):
    done = tmp_path / ".packages"
    done.mkdir()
    row = {field: "x" for field in download.MANIFEST_FIELDS}
    download.write_csv_atomically([{**row, "file": "b.jpg"}], done / "second.csv")
    download.write_csv_atomically([{**row, "file": "a.jpg"}], done / "first.csv")
    packages = (download.PhotoPackage("first", "photo"), download.PhotoPackage("second", "photo"),
                download.PhotoPackage("missing", "photo"))
    download.write_manifest(tmp_path, packages)
    with (tmp_path / "manifest.csv").open(newline="") as file:
        assert [line["file"] for line in csv.DictReader(file)] == ["a.jpg", "b.jpg"]


def test_same_stems_get_their_parent_folder_in_the_name():
    taken = {"pkg-tree"}
    assert download.unique_name("pkg", "usr/share/stamps/plants/tree.png", "tree", taken) == "pkg-plants-tree"


def test_licences_fall_back_to_the_main_one():
    assert download.licence_for("usr/share/backgrounds/nature/a.jpg", COPYRIGHT) == "CC-BY-SA-4.0"
    assert download.licence_for("usr/share/backgrounds/other/a.jpg", COPYRIGHT) == "GPL-2+"
    assert download.licence_for("a.jpg", "This is licensed under the GPL-2 or later.") == "GPL-2"


def test_flat_images_of_different_colours_are_not_duplicates():
    red, blue = Image.new("RGB", (300, 300), (200, 30, 30)), Image.new("RGB", (300, 300), (20, 20, 90))
    assert not download.is_near_duplicate(download.thumbnail(red), [download.thumbnail(blue)])
    assert download.is_near_duplicate(download.thumbnail(red), [download.thumbnail(red.resize((256, 256)))])


def test_a_file_named_in_another_source_folder_gets_its_own_licence():
    text = COPYRIGHT + "\nFiles: 16.04/Bridge.jpg\nCopyright: x\nLicense: CC-BY-4.0\n"
    assert download.licence_for("usr/share/backgrounds/Bridge.jpg", text) == "CC-BY-4.0"


def test_images_inside_resource_bundles_are_taken_with_the_licence_of_their_source_path(tmp_path):
    def encoded(image: Image.Image) -> bytes:
        buffer = io.BytesIO()
        image.save(buffer, format="WEBP", lossless=True)
        return buffer.getvalue()

    root, destination = tmp_path / "root", tmp_path / "dest"
    destination.mkdir()
    bundles = root / "usr/share/game/rcc"
    bundles.mkdir(parents=True)
    resources = {"game": {"src": {"activities": {"monuments": {"resource": {"tower.webp": encoded(noise_image(11))}},
                                                 "words": {"resource": {"pig.webp": encoded(noise_image(12))}}}}}}
    write_bundle(bundles / "activities.rcc", resources)
    (root / "usr/share/doc/game-data").mkdir(parents=True)
    (root / "usr/share/doc/game-data/copyright").write_text(
        COPYRIGHT + "\nFiles: src/activities/monuments/resource/*\nCopyright: x\nLicense: CC-BY-SA-3.0\n")
    package = download.PhotoPackage("game-data", "artwork", ("usr/share/game/rcc/*",), kinds=(("*/monuments/*", "photo"),),
                                    resource_bundles=("usr/share/game/rcc/*.rcc",))
    download.unpack_resource_bundles(root, package)
    rows = download.take_images(root, package, "1.0-1", destination, set(), [], set())
    by_file = {row["file"]: row for row in rows}
    assert set(by_file) == {"game-data-tower.jpg", "game-data-pig.jpg"}
    assert by_file["game-data-tower.jpg"]["original_path"] == "/usr/share/game/rcc/activities/game/src/activities/monuments/resource/tower.webp"
    assert (by_file["game-data-tower.jpg"]["licence"], by_file["game-data-tower.jpg"]["kind"]) == ("CC-BY-SA-3.0", "photo")
    assert (by_file["game-data-pig.jpg"]["licence"], by_file["game-data-pig.jpg"]["kind"]) == ("GPL-2+", "artwork")


def test_the_pool_summary_counts_images_per_package_kind_and_licence(tmp_path):
    done = tmp_path / ".packages"
    done.mkdir()
    row = {field: "x" for field in download.MANIFEST_FIELDS}
    download.write_csv_atomically([{**row, "file": "a.jpg", "package": "pkg", "package_version": "1", "kind": "photo", "licence": "GPL-2"},
                                   {**row, "file": "b.jpg", "package": "pkg", "package_version": "1", "kind": "photo", "licence": "CC0-1.0"},
                                   {**row, "file": "c.jpg", "package": "pkg", "package_version": "1", "kind": "texture", "licence": "GPL-2"}],
                                  done / "pkg.csv")
    download.write_manifest(tmp_path, (download.PhotoPackage("pkg", "photo"),))
    summary = (tmp_path / "PRETRAIN_PHOTOS.md").read_text()
    assert "| pkg | 1 | photo | 2 | CC0-1.0, GPL-2 |" in summary
    assert "| pkg | 1 | texture | 1 | GPL-2 |" in summary
    assert "| photo | 2 |" in summary and "| **total** | **3** |" in summary
