"""Style zips: export and import round trip, and every kind of bad zip refused in one line."""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import warnings
import zipfile
from pathlib import Path

import pytest
from library_fixtures import adapter_source, new_style, write_adapter, write_pairs

from engine.core.errors import InputError
from engine.library import StyleLibrary, archive, export_style_zip, import_style_zip, read_style_zip


@pytest.fixture
def exported(library: StyleLibrary, pairs: list, tmp_path: Path) -> Path:
    """'Ink' (sharing a MoE adapter with 'Neon') exported with its expert alone."""
    moe = write_adapter(tmp_path / "moe.safetensors", ["ink", "neon"])
    library.publish_styles([new_style("Ink", pairs, "ink", metrics={"psnr": 22.0}), new_style("Neon", pairs, "neon")], adapter_source(moe),
                           run_id=library.begin_run("train", ["Ink", "Neon"], {"steps": 50}))
    single = write_adapter(tmp_path / "ink-only.safetensors", ["ink"], seed=3)
    return export_style_zip(library, "ink", tmp_path / "out" / "Ink.zip", single, expert_key="expert-0", adapter_metadata={"experts": 1})


@pytest.fixture(autouse=True)
def private_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Extraction folders go here, so the tests can see none is left behind."""
    folder = tmp_path / "temp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def test_export_then_import_round_trip(library: StyleLibrary, exported: Path, tmp_path: Path) -> None:
    assert sorted(path.name for path in exported.parent.iterdir()) == ["Ink.zip"]  # written atomically, nothing else
    manifest, folder = read_style_zip(exported)
    try:
        ink = library.get_style("Ink")
        assert (manifest["format"], manifest["format_version"]) == ("atelier-style", 1)
        assert (manifest["name"], manifest["trigger"], manifest["metrics"], manifest["backbone"], manifest["settings"]) == (
            "Ink", ink.trigger, {"psnr": 22.0}, ink.backbone, {"steps": 50})
        assert manifest["adapter"] | {"sha256": None} == {"kind": "moe", "file": "weights.safetensors", "sha256": None,
                                                         "expert_key": "expert-0", "metadata": {"experts": 1}}
        assert (folder / "weights.safetensors").read_bytes() == (tmp_path / "ink-only.safetensors").read_bytes()
        assert [(folder / pair["after"]).read_bytes() for pair in manifest["pairs"]] == [pair.after.read_bytes() for pair in ink.pairs]
    finally:
        shutil.rmtree(folder)

    with StyleLibrary.open(tmp_path / "elsewhere") as other:
        imported = import_style_zip(other, exported)
        assert (imported.name, imported.description, imported.trigger, imported.metrics, imported.expert_key) == (
            "Ink", ink.description, ink.trigger, ink.metrics, "expert-0")
        assert [(pair.split, pair.before_sha256, pair.after_sha256) for pair in imported.pairs] == [
            (pair.split, pair.before_sha256, pair.after_sha256) for pair in ink.pairs]
        assert imported.adapter.sha256 == hashlib.sha256((tmp_path / "ink-only.safetensors").read_bytes()).hexdigest()
        assert imported.thumbnail is not None and imported.thumbnail.read_bytes() == ink.thumbnail.read_bytes()
        with pytest.raises(InputError, match="already has a style named 'Ink'"):
            import_style_zip(other, exported)
        assert import_style_zip(other, exported, name="Ink 2").name == "Ink 2"
        assert other.check(deep=True) == []
    assert list((tmp_path / "temp").iterdir()) == []


def test_export_refuses_a_bad_destination_or_weights_file(library: StyleLibrary, exported: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="must end in .zip"):
        export_style_zip(library, "Ink", tmp_path / "x.tar", tmp_path / "ink-only.safetensors")
    with pytest.raises(InputError, match="no adapter file at"):
        export_style_zip(library, "Ink", tmp_path / "x.zip", tmp_path / "missing.safetensors")
    with pytest.raises(InputError, match="there is no style 'Inq'"):
        export_style_zip(library, "Inq", tmp_path / "x.zip", tmp_path / "ink-only.safetensors")
    assert not (tmp_path / "x.zip").exists()


def rewritten(source: Path, target: Path, replace: dict[str, bytes | None] | None = None, add: dict[str, bytes] | None = None) -> Path:
    """A copy of the zip ``source`` with members replaced (None: removed) or added."""
    replace, add = replace or {}, add or {}
    with zipfile.ZipFile(source) as reading, zipfile.ZipFile(target, "w") as writing, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zipfile warns about the duplicate-name case
        for info in reading.infolist():
            if info.filename in replace:
                if replace[info.filename] is not None:
                    writing.writestr(info.filename, replace[info.filename])
            else:
                writing.writestr(info, reading.read(info))
        for name, data in add.items():
            writing.writestr(name, data)
    return target


def written(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def edited_manifest(source: Path, **changes: object) -> bytes:
    with zipfile.ZipFile(source) as reading:
        manifest = json.loads(reading.read("style.json"))
    manifest.update(changes)
    return json.dumps(manifest).encode()


def symlink_member(source: Path, target: Path) -> Path:
    shutil.copy(source, target)
    with zipfile.ZipFile(target, "a") as writing:
        link = zipfile.ZipInfo("pairs/link")
        link.external_attr = 0o120777 << 16
        writing.writestr(link, "/etc/passwd")
    return target


BAD_ZIPS = {
    "missing": (lambda good, bad: bad, "no style zip at"),
    "not a zip": (lambda good, bad: written(bad, b"PK but not really"), "is not a zip file"),
    "zip slip": (lambda good, bad: rewritten(good, bad, add={"../../evil.txt": b"x"}), "contains the unsafe path '../../evil.txt'"),
    "absolute": (lambda good, bad: rewritten(good, bad, add={"/etc/evil": b"x"}), "contains the unsafe path '/etc/evil'"),
    "backslash": (lambda good, bad: rewritten(good, bad, add={"..\\evil": b"x"}), "contains the unsafe path"),
    "symlink": (symlink_member, "contains the symbolic link 'pairs/link'"),
    "duplicate": (lambda good, bad: rewritten(good, bad, add={"style.json": b"{}"}), "contains 'style.json' twice"),
    "no manifest": (lambda good, bad: rewritten(good, bad, replace={"style.json": None}), "has no style.json, so it is not an Atelier style zip"),
    "bad json": (lambda good, bad: rewritten(good, bad, replace={"style.json": b"{not json"}), "style.json is not valid JSON"),
    "not utf-8": (lambda good, bad: rewritten(good, bad, replace={"style.json": b"\xff\xfe"}), "style.json is not valid JSON"),
    "other format": (lambda good, bad: rewritten(good, bad, replace={"style.json": b"[1, 2]"}), "does not describe an Atelier style"),
    "newer version": (lambda good, bad: rewritten(good, bad, replace={"style.json": edited_manifest(good, format_version=2)}),
                      "uses style format version 2; this Atelier reads version 1, update Atelier"),
    "odd version": (lambda good, bad: rewritten(good, bad, replace={"style.json": edited_manifest(good, format_version="one")}),
                    "uses style format version 'one'"),
    "bad name": (lambda good, bad: rewritten(good, bad, replace={"style.json": edited_manifest(good, name="../x")}), "style name '../x' starts with '.'"),
    "bad pairs": (lambda good, bad: rewritten(good, bad, replace={"style.json": edited_manifest(good, pairs={"a": 1})}), "has no 'pairs' list"),
    "missing member": (lambda good, bad: rewritten(good, bad, replace={"pairs/0000-before.png": None}),
                       "style.json lists 'pairs/0000-before.png' but the zip does not contain it"),
    "damaged member": (lambda good, bad: rewritten(good, bad, replace={"pairs/0000-after.png": b"other bytes"}),
                       "'pairs/0000-after.png' does not match its sha256 in style.json; the zip is damaged"),
    "bad weights": (lambda good, bad: rewritten(good, bad, replace={
        "weights.safetensors": b"junk", "style.json": edited_manifest(good, adapter={
            "kind": "moe", "file": "weights.safetensors", "sha256": hashlib.sha256(b"junk").hexdigest(), "expert_key": None, "metadata": {}})}),
        "weights.safetensors is not a readable safetensors file"),
}


@pytest.fixture(scope="module")
def good_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One exported zip for every bad-zip case to start from (publishing takes a moment)."""
    folder = tmp_path_factory.mktemp("good-zip")
    with StyleLibrary.open(folder / "styles") as library:
        library.publish_styles([new_style("Ink", write_pairs(folder / "photos"))], adapter_source(write_adapter(folder / "a.safetensors", ["a"])))
        return export_style_zip(library, "Ink", folder / "Ink.zip", folder / "a.safetensors")


@pytest.mark.parametrize("case", BAD_ZIPS, ids=list(BAD_ZIPS))
def test_bad_zips_are_refused_in_one_line_naming_the_zip(good_zip: Path, tmp_path: Path, case: str) -> None:
    make, message = BAD_ZIPS[case]
    bad = make(good_zip, tmp_path / "bad.zip")
    with pytest.raises(InputError) as caught:
        read_style_zip(bad)
    text = str(caught.value)
    assert message in text and str(bad) in text and "\n" not in text
    assert list((tmp_path / "temp").iterdir()) == []  # no extraction folder left behind


def test_a_zip_is_named_as_the_caller_shows_it_and_a_non_zip_gets_advice_that_fits(tmp_path: Path) -> None:
    (tmp_path / "upload-copy").mkdir()
    bad = written(tmp_path / "upload-copy" / "fake.zip", b"plain text")
    with pytest.raises(InputError) as caught:
        read_style_zip(bad)  # the CLI: the path the user typed
    assert str(caught.value) == f"{bad} is not a zip file; choose a style .zip exported from Atelier"
    with pytest.raises(InputError) as caught:
        read_style_zip(bad, shown_as="fake.zip")  # the studio: the name the user chose
    assert str(caught.value) == "fake.zip is not a zip file; choose a style .zip exported from Atelier"
    other = tmp_path / "other.zip"
    with zipfile.ZipFile(other, "w") as handle:
        handle.writestr("readme.txt", "hi")
    with pytest.raises(InputError, match="^mine.zip has no style.json, so it is not an Atelier style zip; choose a style .zip"):
        read_style_zip(other, shown_as="mine.zip")


def test_too_large_members_are_refused_before_extraction(good_zip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bomb = rewritten(good_zip, tmp_path / "bomb.zip", add={"padding.bin": b"\0" * 5000})
    monkeypatch.setattr(archive, "MAX_MEMBER_BYTES", 4096)
    with pytest.raises(InputError, match=r"'padding.bin' unpacks to 5,000 bytes, above the 4,096-byte limit"):
        read_style_zip(bomb)
    monkeypatch.setattr(archive, "MAX_MEMBER_BYTES", 1 << 20)
    monkeypatch.setattr(archive, "MAX_TOTAL_BYTES", 4000)
    with pytest.raises(InputError, match="unpacks to more than 4,000 bytes"):
        read_style_zip(bomb)
    monkeypatch.setattr(archive, "MAX_MEMBERS", 3)
    with pytest.raises(InputError, match="more than the 3 a style zip may"):
        read_style_zip(bomb)
