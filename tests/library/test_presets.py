"""Named presets (the presets table): save, read, list, replace, delete, and refusals."""

from __future__ import annotations

import pytest

from engine.core.errors import InputError
from engine.library import StyleLibrary


def test_presets_round_trip_and_names_are_unique_per_kind(tmp_path) -> None:
    with StyleLibrary.open(tmp_path / "library") as library:
        saved = library.save_preset("fusion", "Cat in ink", {"method": "est", "alpha": 1.5, "subject": "cat"})
        assert saved.settings == {"method": "est", "alpha": 1.5, "subject": "cat"}
        library.save_preset("fusion", "Another", {"method": "merge"})
        assert [preset.name for preset in library.list_presets("fusion")] == ["Another", "Cat in ink"]
        with pytest.raises(InputError, match="exists"):
            library.save_preset("fusion", "cat in INK", {"method": "klora"})
        library.save_preset("fusion", "Cat in ink", {"method": "klora"}, replace=True)
        assert library.get_preset("fusion", "cat in ink").settings == {"method": "klora"}
        library.delete_preset("fusion", "Another")
        assert [preset.name for preset in library.list_presets("fusion")] == ["Cat in ink"]
    with StyleLibrary.open(tmp_path / "library") as reopened:
        assert reopened.get_preset("fusion", "Cat in ink").settings == {"method": "klora"}


@pytest.mark.parametrize("kind, name, settings, message", [
    ("colour", "x", {}, "unknown"),
    ("fusion", "../up", {}, "name"),
    ("fusion", "odd", {"value": object()}, "JSON"),
])
def test_bad_presets_are_refused(tmp_path, kind, name, settings, message) -> None:
    with StyleLibrary.open(tmp_path / "library") as library:
        with pytest.raises(InputError, match=message):
            library.save_preset(kind, name, settings)
        assert library.list_presets("fusion") == []
