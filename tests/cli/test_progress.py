"""The tqdm progress bar behind the CLI's step callback."""

from __future__ import annotations

import io

from PIL import Image

from engine.cli.progress import ProgressBar


def test_progress_bar_follows_the_callback_and_closes() -> None:
    stream = io.StringIO()
    with ProgressBar("editing", stream=stream) as progress:
        assert progress.steps_done == 0
        for step in range(1, 6):
            progress(step, 5, Image.new("RGB", (2, 2)))
        assert progress.steps_done == 5
    text = stream.getvalue()
    assert "editing" in text and "5/5" in text


def test_progress_bar_never_started_writes_nothing() -> None:
    stream = io.StringIO()
    with ProgressBar("editing", stream=stream):
        pass
    assert stream.getvalue() == ""
