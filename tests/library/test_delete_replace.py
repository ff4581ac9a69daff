"""Deleting styles and swapping shared adapters: exactly the right rows and files go."""

from __future__ import annotations

from pathlib import Path

import pytest
from library_fixtures import adapter_source, files_on_disk, new_style, referenced_files, write_adapter, write_pairs

from engine.core.errors import InputError
from engine.library import AdapterSource, StyleLibrary


def rows(library: StyleLibrary, table: str) -> int:
    return library._database.connection().execute(f"SELECT count(*) FROM {table}").fetchone()[0]


@pytest.fixture
def shared(library: StyleLibrary, pairs: list, tmp_path: Path) -> list:
    """'Ink' and 'Neon' on one MoE adapter, 'Solo' on its own LoRA."""
    moe = write_adapter(tmp_path / "moe.safetensors", ["ink", "neon"])
    published = library.publish_styles([new_style("Ink", pairs, "ink"), new_style("Neon", pairs, "neon")], adapter_source(moe))
    solo = write_adapter(tmp_path / "solo.safetensors", ["solo"])
    published += library.publish_styles([new_style("Solo", write_pairs(tmp_path / "solo-photos", 3))], adapter_source(solo, kind="lora"))
    return published


def test_deleting_a_style_alone_on_its_adapter_removes_its_rows_and_files_only(library: StyleLibrary, shared: list) -> None:
    ink, neon, solo = shared
    others_files = files_on_disk(library.root) - {path.relative_to(library.root).as_posix() for path in solo.folder.rglob("*")} - {
        solo.adapter.relative_path}
    library.delete_style("solo")
    assert [style.name for style in library.list_styles()] == ["Ink", "Neon"]
    assert files_on_disk(library.root) == others_files == referenced_files(library)
    assert not solo.folder.exists() and not solo.adapter.path.parent.exists()
    assert (rows(library, "styles"), rows(library, "pairs"), rows(library, "adapters")) == (2, 4, 1)
    assert library.get_style("Ink") == ink and library.get_style("Neon") == neon
    assert library.check(deep=True) == []


def test_deleting_a_style_that_shares_its_adapter_needs_the_rewritten_adapter(library: StyleLibrary, shared: list, tmp_path: Path) -> None:
    ink, neon, _ = shared
    with pytest.raises(InputError, match="shares its adapter with 'Neon'; pass that adapter rewritten without its expert"):
        library.delete_style("Ink")
    with pytest.raises(InputError, match="no other style uses the adapter of style 'Solo'"):
        library.delete_style("Solo", adapter_source(write_adapter(tmp_path / "x.safetensors", ["x"])))
    rewritten = write_adapter(tmp_path / "neon-only.safetensors", ["neon"], seed=5)
    library.delete_style("ink", adapter_source(rewritten, metadata={"experts": 1}), updated_expert_keys={"Neon": "expert-0"})
    after = library.get_style("Neon")
    assert after.adapter.id != ink.adapter.id and after.adapter.path.read_bytes() == rewritten.read_bytes()
    assert after.adapter.metadata == {"experts": 1} and after.expert_key == "expert-0" and after.pairs == neon.pairs
    assert not ink.adapter.path.exists() and not ink.folder.exists()
    assert files_on_disk(library.root) == referenced_files(library)
    assert library.check(deep=True) == []


def test_replace_adapter_repoints_every_style_adds_new_ones_and_removes_the_old_file(library: StyleLibrary, shared: list,
                                                                                       tmp_path: Path) -> None:
    ink, neon, solo = shared
    grown = write_adapter(tmp_path / "grown.safetensors", ["ink", "neon", "pencil"], seed=9)
    on_new = library.replace_adapter(ink.adapter.id, adapter_source(grown, metadata={"experts": 3}),
                                     new_styles=[new_style("Pencil", write_pairs(tmp_path / "pencil", 1), "pencil")],
                                     updated_expert_keys={"ink": "ink-v2"})
    assert [style.name for style in on_new] == ["Ink", "Neon", "Pencil"]
    assert len({style.adapter.id for style in on_new}) == 1 and on_new[0].adapter.id != ink.adapter.id
    assert [style.expert_key for style in on_new] == ["ink-v2", "neon", "pencil"]
    assert library.adapter_path(on_new[0]).read_bytes() == grown.read_bytes()
    assert not ink.adapter.path.exists() and ink.folder.exists() and neon.folder.exists()
    assert library.get_style("Solo") == solo
    assert rows(library, "adapters") == 2
    assert files_on_disk(library.root) == referenced_files(library)
    assert library.check(deep=True) == []


@pytest.mark.parametrize(("arguments", "message"), [
    ({"old_adapter_id": 999}, "there is no adapter 999"),
    ({"updated_expert_keys": {"Solo": "k"}}, "style 'Solo' does not use adapter"),
    ({"backbone": "flux-kontext"}, "is for backbone 'flux-kontext' but adapter .* is for 'embedded-tiny'"),
    ({"new_name": "neon"}, "already has a style named 'Neon'"),
])
def test_replace_adapter_refuses_bad_requests_and_changes_nothing(library: StyleLibrary, shared: list, tmp_path: Path, arguments: dict,
                                                                  message: str) -> None:
    ink = shared[0]
    before = (files_on_disk(library.root), library.list_styles())
    source = adapter_source(write_adapter(tmp_path / "new.safetensors", ["a"]))
    if "backbone" in arguments:
        source = AdapterSource(source.path, "moe", arguments["backbone"])
    with pytest.raises(InputError, match=message):
        library.replace_adapter(arguments.get("old_adapter_id", ink.adapter.id), source,
                                new_styles=[new_style(arguments["new_name"], [])] if "new_name" in arguments else (),
                                updated_expert_keys=arguments.get("updated_expert_keys"))
    assert (files_on_disk(library.root), library.list_styles()) == before


def test_a_failed_write_is_undone_at_once(library: StyleLibrary, shared: list, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = (files_on_disk(library.root), library.list_styles())

    def fail(*arguments: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("engine.library.store.insert_style", fail)
    with pytest.raises(OSError, match="disk full"):
        library.publish_styles([new_style("New", [])], adapter_source(write_adapter(tmp_path / "n.safetensors", ["n"])))
    assert (files_on_disk(library.root), library.list_styles()) == before
    assert rows(library, "pending_files") == 0 and not any((library.root / ".staging").iterdir())
