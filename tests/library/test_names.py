"""Style name rules, name comparison, slugs, and where the library folder is."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.core.errors import InputError
from engine.library import DEFAULT_LIBRARY, resolve_library
from engine.library.names import name_key, slug, validate_style_name

VALID = ["ink", "Ink Wash 2", "a", "x" * 64, "soft-focus_v2", "Été", "水墨", "9 lives"]

INVALID = [
    ("a/b", "style name 'a/b' contains '/'; use letters, digits, spaces, - or _"),
    ("a\\b", "contains '\\\\'"),
    ("", "style name is empty"),
    ("x" * 65, "is 65 characters; names may have at most 64, so shorten it"),
    (".hidden", "starts with '.'"),
    (" lead", "starts with a space"),
    ("trail ", "ends with a space"),
    ("a.b", "contains '.'"),
    ("tab\there", "contains '\\t'"),
    ("new\nline", "contains '\\n'"),
    ("50%", "contains '%'"),
    ("emoji 🎨", "contains '🎨'"),
    ("ab:c", "contains ':'"),
    (42, "is not text"),
]


@pytest.mark.parametrize("name", VALID)
def test_valid_names_are_returned_unchanged(name: str) -> None:
    assert validate_style_name(name) == name


@pytest.mark.parametrize(("name", "message"), INVALID, ids=[repr(case[0])[:20] for case in INVALID])
def test_invalid_names_give_one_line_that_says_what_to_do(name: object, message: str) -> None:
    with pytest.raises(InputError) as caught:
        validate_style_name(name)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_names_compare_without_case_and_composition() -> None:
    assert name_key("Ink Wash") == name_key("ink wash") == name_key("INK WASH")
    composed, decomposed = "\u00e9t\u00e9", "e\u0301te\u0301"
    assert composed != decomposed
    validate_style_name(decomposed)  # an accent typed as a combining mark is still a letter
    assert name_key(composed) == name_key(decomposed.upper())


@pytest.mark.parametrize(("name", "expected"), [
    ("Ink Wash 2", "ink-wash-2"), ("Été  doux", "ete-doux"), ("水墨", "style"), ("--a__b--", "a-b"), ("x" * 64, "x" * 40),
])
def test_slug_is_ascii_and_folder_safe(name: str, expected: str) -> None:
    assert slug(name) == expected


def test_library_folder_is_the_argument_then_the_environment_then_styles(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("ATELIER_LIBRARY", raising=False)
    assert resolve_library(None) == DEFAULT_LIBRARY == Path(__file__).resolve().parents[2] / "styles"
    monkeypatch.setenv("ATELIER_LIBRARY", str(tmp_path / "from-env"))
    assert resolve_library(None) == tmp_path / "from-env"
    assert resolve_library(tmp_path / "given") == tmp_path / "given"
    monkeypatch.setenv("ATELIER_LIBRARY", "")
    assert resolve_library(None) == DEFAULT_LIBRARY
