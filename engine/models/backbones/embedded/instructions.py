"""The embedded model's instruction vocabulary.

The embedded model has no text encoder: a prompt is one of a few instructions, each a learned
token sequence. ``""`` means the default for the mode: ``identity`` when there is a source image,
``generate`` when there is none. The generic photo edits match
:mod:`engine.training.generic_edits`; none of them is a benchmark style. Models with
``restoration_edits`` (version 3) also know :data:`RESTORATION_EDITS`, whose source is a degraded
photo and whose result the clean one: the vocabulary is :func:`vocabulary`.
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
RESTORATION_EDITS = ("denoise",)
INSTRUCTIONS = (IDENTITY, GENERATE, *GENERIC_EDITS)
DEFAULT_ID = -1


def vocabulary(restoration_edits: bool = False) -> tuple[str, ...]:
    """The instructions of a model, in embedding order; restoration edits come last, so a model
    grown into one with them keeps its instruction embeddings."""
    return (*INSTRUCTIONS, *RESTORATION_EDITS) if restoration_edits else INSTRUCTIONS


def instruction_id(prompt: str, known: tuple[str, ...] = INSTRUCTIONS) -> int:
    """The index of ``prompt`` (case and surrounding spaces ignored) in the vocabulary ``known``, or
    :data:`DEFAULT_ID` for an empty prompt."""
    text = prompt.strip().lower()
    if text == DEFAULT:
        return DEFAULT_ID
    if text not in known:
        raise InputError(f"the embedded model knows the instructions {', '.join(known)}; got {prompt!r}")
    return known.index(text)
