"""The embedded model's instruction vocabulary.

The embedded model has no text encoder: a prompt is one of a few instructions, each a learned
token sequence. ``""`` means the default for the mode: ``identity`` when there is a source image,
``generate`` when there is none. The generic photo edits match
:mod:`engine.training.generic_edits`; none of them is a benchmark style.
"""

from __future__ import annotations

from engine.core.errors import InputError

DEFAULT = ""
IDENTITY = "identity"
GENERATE = "generate"
GENERIC_EDITS = (
    "brighter",
    "darker",
    "more contrast",
    "less contrast",
    "warmer",
    "cooler",
    "more saturated",
    "grey",
    "blur",
    "sharpen",
)
INSTRUCTIONS = (IDENTITY, GENERATE, *GENERIC_EDITS)
DEFAULT_ID = -1


def instruction_id(prompt: str) -> int:
    """The vocabulary index of ``prompt`` (case and surrounding spaces ignored), or
    :data:`DEFAULT_ID` for an empty prompt."""
    text = prompt.strip().lower()
    if text == DEFAULT:
        return DEFAULT_ID
    if text not in INSTRUCTIONS:
        raise InputError(f"the embedded model knows the instructions {', '.join(INSTRUCTIONS)}; got {prompt!r}")
    return INSTRUCTIONS.index(text)
