"""A tqdm progress bar on stderr fed by the engine's ``(step, total, preview)`` callback."""

from __future__ import annotations

import sys
from typing import TextIO

from PIL import Image
from tqdm import tqdm


class ProgressBar:
    """Pass an instance as the ``callback`` of :func:`engine.models.editing.edit_photo` (or
    :func:`~engine.models.editing.generate_image`) and use it as a context manager so the bar is closed.

    The bar is created at the first step, because only then is the step count known: a
    ``strength`` below 1 runs fewer steps than asked for.
    """

    def __init__(self, description: str, stream: TextIO | None = None) -> None:
        self.description = description
        # Looked up at the first step, not at import, so a redirected sys.stderr is honoured.
        self.stream = stream
        self._bar: tqdm | None = None

    @property
    def steps_done(self) -> int:
        return 0 if self._bar is None else self._bar.n

    def __call__(self, step: int, total: int, preview: Image.Image | None = None) -> None:
        if self._bar is None:
            self._bar = tqdm(total=total, desc=self.description, unit="step", file=self.stream or sys.stderr, dynamic_ncols=True)
        self._bar.update(step - self._bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def __enter__(self) -> "ProgressBar":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
