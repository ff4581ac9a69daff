"""Publishing styles and reading them back: records, checksums, names, search, edits."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from library_fixtures import BACKBONE, adapter_source, files_on_disk, new_style, referenced_files, write_adapter
from PIL import Image

from engine.core.errors import InputError
from engine.library import AdapterSource, NewStyle, StyleLibrary


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def publish_two(library: StyleLibrary, pairs: list, tmp_path: Path) -> list:
    adapter = write_adapter(tmp_path / "trainer" / "moe.safetensors", ["ink", "neon"])
    return library.publish_styles([new_style("Ink Wash", pairs, "ink"), new_style("Neon", pairs, "neon", thumbnail=False)],
                                  adapter_source(adapter), run_id=library.begin_run("train", ["Ink Wash", "Neon"], {"steps": 40}))


def test_publish_then_get_returns_everything_with_matching_checksums(library: StyleLibrary, pairs: list, tmp_path: Path) -> None:
    published = publish_two(library, pairs, tmp_path)
    record = library.get_style("ink wash")
    assert record == published[0]
    assert (record.name, record.description, record.trigger, record.expert_key) == ("Ink Wash", "Ink Wash look", "in Ink Wash style", "ink")
    assert record.metrics == {"psnr": 21.5} and record.backbone == BACKBONE and record.settings == {"steps": 40}
    assert record.adapter.kind == "moe" and record.adapter.metadata == {"experts": 2}
    assert record.adapter.sha256 == sha256(tmp_path / "trainer" / "moe.safetensors") == sha256(library.adapter_path(record))
    assert record.adapter.size_bytes == library.adapter_path(record).stat().st_size
    assert library.adapter_path(record).is_relative_to(library.root / "files" / "adapters")
    assert [(pair.position, pair.split) for pair in record.pairs] == [(0, "train"), (1, "holdout")]
    for pair, (before, after, _) in zip(record.pairs, pairs):
        # Copied byte for byte, extension kept.
        assert pair.before.read_bytes() == before.read_bytes() and pair.before_sha256 == sha256(before)
        assert pair.after.read_bytes() == after.read_bytes() and pair.after_sha256 == sha256(after)
        assert pair.after.suffix == after.suffix and pair.before.is_relative_to(record.folder)
    with Image.open(record.thumbnail) as thumbnail:
        assert (thumbnail.format, thumbnail.size) == ("PNG", (8, 8))
    neon = library.get_style("NEON")
    assert neon.thumbnail is None and neon.adapter == record.adapter and neon.folder != record.folder
    library.verify(record)
    assert library.check(deep=True) == []
    assert files_on_disk(library.root) == referenced_files(library)
    assert not any((library.root / ".staging").iterdir())


def test_a_taken_name_in_any_case_is_refused_before_any_file_is_written(library: StyleLibrary, pairs: list, tmp_path: Path) -> None:
    publish_two(library, pairs, tmp_path)
    before = files_on_disk(library.root)
    adapter = write_adapter(tmp_path / "other.safetensors", ["x"])
    with pytest.raises(InputError, match="already has a style named 'Ink Wash'; choose another name or delete that style"):
        library.publish_styles([new_style("fresh", pairs), new_style("INK WASH", pairs)], adapter_source(adapter))
    assert files_on_disk(library.root) == before
    assert [style.name for style in library.list_styles()] == ["Ink Wash", "Neon"]
    with pytest.raises(InputError, match="'twin' and 'Twin' are the same name"):
        library.publish_styles([new_style("twin", pairs), new_style("Twin", pairs)], adapter_source(adapter))
    assert files_on_disk(library.root) == before


COMPOSED, DECOMPOSED = "\u00c9t\u00e9", "E\u0301te\u0301"  # "Été" with precomposed accents, and typed as combining marks


def test_check_name_free_is_the_one_taken_name_rule_and_agrees_with_publishing(library: StyleLibrary, pairs: list,
                                                                               tmp_path: Path) -> None:
    adapter = write_adapter(tmp_path / "trainer" / "moe.safetensors", ["ete", "neon"])
    library.publish_styles([new_style(COMPOSED, pairs, "ete"), new_style("Neon", pairs, "neon")], adapter_source(adapter))
    assert COMPOSED != DECOMPOSED
    # Equal after the library's NFC normalisation and case folding: taken, named as stored.
    for same, stored in [(COMPOSED, COMPOSED), (DECOMPOSED, COMPOSED), (DECOMPOSED.lower(), COMPOSED), (DECOMPOSED.upper(), COMPOSED),
                         ("\u00c9T\u00c9", COMPOSED), ("neon", "Neon"), ("NEON", "Neon")]:
        with pytest.raises(InputError, match=f"already has a style named '{stored}'; choose another name or delete that style"):
            library.check_name_free(same)
    # Different names (an accent dropped, a word added, a prefix) are free.
    for other in ("Ete", "\u00c9t\u00e9 2", "E\u0301t", "Neo", "Neon Ink"):
        assert library.check_name_free(other) is None
    # A caller may word the refusal: {name} is the name asked for, {taken} the stored one.
    with pytest.raises(InputError) as caught:
        library.check_name_free(DECOMPOSED.lower(), "{name!r} is {taken!r} in {library}")
    assert str(caught.value) == f"{DECOMPOSED.lower()!r} is {COMPOSED!r} in {library.root}"
    with pytest.raises(InputError, match="contains '/'"):
        library.check_name_free("a/b")
    # Publishing applies the same rule: what check_name_free refuses is refused there too, before any file is written.
    before = files_on_disk(library.root)
    with pytest.raises(InputError, match=f"already has a style named '{COMPOSED}'"):
        library.publish_styles([new_style(DECOMPOSED.lower(), pairs)], adapter_source(write_adapter(tmp_path / "other.safetensors", ["x"])))
    assert files_on_disk(library.root) == before
    library.publish_styles([new_style("Ete", pairs)], adapter_source(write_adapter(tmp_path / "third.safetensors", ["y"])))
    assert sorted(style.name for style in library.list_styles()) == sorted(["Ete", COMPOSED, "Neon"])


@pytest.mark.parametrize(("change", "message"), [
    (lambda style, adapter: ([NewStyle("a/b")], adapter), "contains '/'"),
    (lambda style, adapter: ([NewStyle("x", pairs=[("missing.png", "missing.png", "train")])], adapter), "no photo at missing.png"),
    (lambda style, adapter: ([NewStyle("x", pairs=[(style.pairs[0][0], style.pairs[0][1], "test")])], adapter), "split 'test'"),
    (lambda style, adapter: ([NewStyle("x", trigger="two\nlines")], adapter), "spans several lines"),
    (lambda style, adapter: ([NewStyle("x", metrics={"f": object()})], adapter), "cannot be stored as JSON"),
    (lambda style, adapter: ([style], AdapterSource(adapter.path, "gan", "b")), "adapter kind 'gan' is unknown"),
    (lambda style, adapter: ([style], AdapterSource(Path("w.bin"), "lora", "b")), "is not a .safetensors file"),
    (lambda style, adapter: ([], adapter), "no styles to publish"),
])
def test_bad_inputs_are_refused_with_nothing_written(library: StyleLibrary, pairs: list, tmp_path: Path, change, message: str) -> None:
    adapter = adapter_source(write_adapter(tmp_path / "a.safetensors", ["x"]))
    styles, source = change(new_style("ok", pairs), adapter)
    with pytest.raises(InputError, match=message):
        library.publish_styles(styles, source)
    assert files_on_disk(library.root) == set() and library.list_styles() == []


def test_a_damaged_adapter_file_is_refused(library: StyleLibrary, pairs: list, tmp_path: Path) -> None:
    (tmp_path / "bad.safetensors").write_bytes(b"not a safetensors file at all")
    with pytest.raises(InputError, match="is not a readable safetensors file"):
        library.publish_styles([new_style("x", pairs)], adapter_source(tmp_path / "bad.safetensors"))


def test_unknown_names_suggest_close_matches(library: StyleLibrary, pairs: list, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="is empty; train or import a style first"):
        library.get_style("ink")
    publish_two(library, pairs, tmp_path)
    with pytest.raises(InputError, match=r"there is no style 'Ink Wsh' in the style library .*; did you mean 'Ink Wash'\?"):
        library.get_style("Ink Wsh")
    with pytest.raises(InputError, match="list the styles to see their names"):
        library.get_style("zzzzzz")


def test_search_matches_name_description_and_trigger_ignoring_case(library: StyleLibrary, pairs: list, tmp_path: Path) -> None:
    adapter = write_adapter(tmp_path / "a.safetensors", ["a", "b", "c"])
    library.publish_styles([
        new_style("Charcoal", pairs, description="smudged GREY sketch", trigger="charcoal drawing"),
        new_style("Été", pairs, description="warm light", trigger="summer"),
        new_style("Blueprint", pairs, description="white lines", trigger="as a Blueprint, 100%"),
    ], adapter_source(adapter))
    names = lambda search: [style.name for style in library.list_styles(search)]  # noqa: E731
    assert names("") == ["Blueprint", "Charcoal", "Été"]
    assert names("grey") == ["Charcoal"]
    assert names("ÉTÉ") == ["Été"]
    assert names("WARM") == ["Été"]
    assert names("lin") == ["Blueprint"]  # "lines"
    assert names("100%") == ["Blueprint"] and names("%") == ["Blueprint"]  # no LIKE wildcards
    assert names("_") == [] and names("nothing") == []


def test_rename_and_update(library: StyleLibrary, pairs: list, tmp_path: Path) -> None:
    publish_two(library, pairs, tmp_path)
    folder = library.get_style("Neon").folder
    renamed = library.rename_style("neon", "Neon Glow")
    assert renamed.name == "Neon Glow" and renamed.folder == folder
    assert library.rename_style("neon glow", "NEON GLOW").name == "NEON GLOW"  # a change of case
    with pytest.raises(InputError, match="already has a style named 'Ink Wash'"):
        library.rename_style("NEON GLOW", "ink wash")
    with pytest.raises(InputError, match="contains '/'"):
        library.rename_style("NEON GLOW", "a/b")
    with pytest.raises(InputError, match="there is no style 'Neon'"):
        library.get_style("Neon")
    updated = library.update_style("ink wash", description="new words")
    assert (updated.description, updated.trigger) == ("new words", "in Ink Wash style")
    assert library.update_style("Ink Wash", trigger="ink").trigger == "ink"
    with pytest.raises(InputError, match="spans several lines"):
        library.update_style("Ink Wash", trigger="a\nb")
    assert library.check() == []


def test_a_taken_name_is_refused_naming_both_the_name_asked_for_and_the_stored_one(library: StyleLibrary, pairs: list,
                                                                                    tmp_path: Path) -> None:
    publish_two(library, pairs, tmp_path)
    with pytest.raises(InputError) as caught:
        library.check_name_free("INK WASH")
    assert str(caught.value) == (f"the name 'INK WASH' (compared without case, after Unicode NFC) is taken: the style library "
                                 f"{library.root} already has a style named 'Ink Wash'; choose another name or delete that style")


def test_a_damaged_database_file_is_refused_naming_it(tmp_path: Path) -> None:
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "library.db").write_bytes(b"not sqlite at all " * 300)
    with pytest.raises(InputError) as caught:
        StyleLibrary.open(folder)
    assert str(caught.value) == (f"{folder.absolute() / 'library.db'} is not a readable style library database (file is not a "
                                 "database); the file is damaged: restore it from a backup, or use another library folder to "
                                 "start a new one")
    assert (folder / "library.db").read_bytes() == b"not sqlite at all " * 300  # left as it was, for recovery
