"""Running a long engine call in a worker thread while a Gradio generator streams its progress.

Engine calls report progress through a plain callback (``callback(step, total, preview)``) and
return when they are done. A Gradio handler that wants to show live previews must instead be a
generator that *yields*. :func:`stream_call` joins the two: it runs the call in a worker thread,
forwards every callback through a :class:`queue.Queue`, and yields :class:`Progress` items
followed by one :class:`Finished` item with the call's return value. An exception raised by the
call is re-raised in the generator, so the handler can turn it into a message in the page.

When the consumer stops early (the page was closed, the event was cancelled), the generator's
``finally`` tells the worker, whose next callback raises :class:`Cancelled` to end the call.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from typing import Callable, Generic, Iterator, TypeVar

from PIL import Image

Result = TypeVar("Result")
ProgressCallback = Callable[[int, int, Image.Image], None]


class Cancelled(Exception):
    """Raised inside the worker when nobody is listening to its progress any more."""


@dataclass
class Progress:
    """One step done: ``step`` of ``total``, with the current estimate of the result."""

    step: int
    total: int
    preview: Image.Image


@dataclass
class Finished(Generic[Result]):
    """The call returned ``value``."""

    value: Result


@dataclass
class _Failed:
    error: BaseException


def stream_call(work: Callable[[ProgressCallback], Result], name: str = "atelier-worker") -> Iterator[Progress | Finished[Result]]:
    """Run ``work(callback)`` in a thread and yield its progress, then its result.

    Previews that arrive faster than the consumer takes them are skipped: each yielded
    :class:`Progress` is the newest one reported, so a slow page never falls behind the model.
    """
    events: queue.Queue[Progress | Finished[Result] | _Failed] = queue.Queue()
    stop = threading.Event()

    def report(step: int, total: int, preview: Image.Image) -> None:
        if stop.is_set():
            raise Cancelled("the page stopped listening")
        events.put(Progress(step, total, preview))

    def run() -> None:
        try:
            events.put(Finished(work(report)))
        except BaseException as error:  # handed to the consumer, which re-raises it
            events.put(_Failed(error))

    worker = threading.Thread(target=run, name=name, daemon=True)
    worker.start()
    try:
        while True:
            item = _newest(events)
            if isinstance(item, _Failed):
                raise item.error
            yield item
            if isinstance(item, Finished):
                return
    finally:
        stop.set()


def _newest(events: queue.Queue) -> Progress | Finished | _Failed:
    """Block for the next item, then skip to the newest one queued; a final item is never skipped."""
    item = events.get()
    while isinstance(item, Progress):
        try:
            item = events.get_nowait()
        except queue.Empty:
            break
    return item
