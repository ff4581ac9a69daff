"""Which folder is the style library."""

from __future__ import annotations

import os
from pathlib import Path

# The repository's styles/ folder; ATELIER_LIBRARY overrides it.
DEFAULT_LIBRARY = Path(__file__).resolve().parents[2] / "styles"
LIBRARY_VARIABLE = "ATELIER_LIBRARY"


def resolve_library(path: str | Path | None = None) -> Path:
    """The library folder: ``path`` when given, else ``$ATELIER_LIBRARY`` when set and not
    empty, else :data:`DEFAULT_LIBRARY`. ``~`` is expanded."""
    if path is not None and str(path) != "":
        return Path(path).expanduser()
    from_environment = os.environ.get(LIBRARY_VARIABLE, "")
    if from_environment:
        return Path(from_environment).expanduser()
    return DEFAULT_LIBRARY
