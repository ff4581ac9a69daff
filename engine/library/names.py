"""Style names: what a user may call a style, how two names are compared, and the folder-safe
slug a name turns into.

A name is shown in the studio, typed on the command line and used in folder names, so it is kept
to letters (any script), digits, spaces, ``-`` and ``_``. Names are compared without case
(``Ink`` and ``ink`` are the same style) after Unicode NFC normalisation, so the same word typed
on two keyboards that compose accents differently is also the same style.
"""

from __future__ import annotations

import re
import unicodedata

from engine.core.errors import InputError

MAX_NAME_LENGTH = 64
# Longest slug used in a folder name; the folder also gets a short unique suffix.
MAX_SLUG_LENGTH = 40
ALLOWED = "use letters, digits, spaces, - or _"


def validate_style_name(name: object) -> str:
    """Return ``name`` unchanged when it is a valid style name.

    Raises:
        InputError: saying which rule the name breaks and what is allowed.
    """
    if not isinstance(name, str):
        raise InputError(f"style name {name!r} is not text; give a name such as 'ink wash'")
    if not name:
        raise InputError(f"style name is empty; give a name of 1 to {MAX_NAME_LENGTH} characters ({ALLOWED})")
    if len(name) > MAX_NAME_LENGTH:
        raise InputError(f"style name {name[:20]!r}... is {len(name)} characters; names may have at most {MAX_NAME_LENGTH}, "
                         "so shorten it")
    if name.startswith("."):
        raise InputError(f"style name {name!r} starts with '.'; start it with a letter or digit")
    if name[0].isspace():
        raise InputError(f"style name {name!r} starts with a space; remove the leading space")
    if name[-1].isspace():
        raise InputError(f"style name {name!r} ends with a space; remove the trailing space")
    for position, character in enumerate(name):
        if not _allowed(character, first=position == 0):
            raise InputError(f"style name {name!r} contains {character!r}; {ALLOWED}")
    return name


def name_key(name: str) -> str:
    """The form two names are compared in: NFC-normalised and case-folded."""
    return unicodedata.normalize("NFC", name).casefold()


def slug(name: str) -> str:
    """An ASCII, lower-case, hyphenated form of ``name`` for folder names (``"Ink Wash 2"`` ->
    ``"ink-wash-2"``). Accents are dropped; a name with no ASCII letters or digits gives
    ``"style"``. Slugs need not be unique: folders add a unique suffix."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii").lower()
    hyphenated = re.sub(r"[^a-z0-9]+", "-", ascii_name).strip("-")
    return hyphenated[:MAX_SLUG_LENGTH].rstrip("-") or "style"


def _allowed(character: str, first: bool) -> bool:
    category = unicodedata.category(character)
    if category.startswith("L") or category == "Nd" or character in "-_":
        return True
    if character == " ":
        return True
    # Combining marks (an accent typed as a separate code point) belong to the letter before them.
    return category.startswith("M") and not first
