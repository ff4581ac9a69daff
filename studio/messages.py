"""How the studio reports a refusal or a failure: in the page, next to the control that caused it,
until the next action; the pop-up Gradio shows for a raised :class:`gradio.Error` comes on top.

* :func:`page_error` turns an :class:`AtelierError` into the :class:`gradio.Error` a handler raises
  (its text shown as text, not HTML); every tab's handlers use this one.
* :func:`error_markdown` is the same message as Markdown for a status or message box.
* :func:`keeps_errors` wraps a handler at wiring time: when it raises (a :class:`gradio.Error`,
  or an :class:`AtelierError` not yet turned into one), the wrapper first writes the message to
  one of the event's outputs (the others are left as they are), then raises again, so the pop-up
  still appears and a ``.success()`` step after it still does not run. The handlers themselves
  stay plain functions that raise, so their tests call them directly.
"""

from __future__ import annotations

import functools
import html
import inspect
from typing import Any, Callable, Iterator

import gradio as gr

from engine.core.errors import AtelierError

MARK = "⚠"


def page_error(error: Exception, title: str) -> gr.Error:
    """A message in the page for an :class:`AtelierError` (its text is shown as text, not HTML)."""
    return gr.Error(html.escape(str(error)), title=title)


def error_markdown(error: gr.Error | AtelierError, title: str | None = None) -> str:
    """``error`` as Markdown for a status box: ``⚠ **title:** message``."""
    if isinstance(error, gr.Error):
        message, title = str(error.message), title or error.title
    else:
        message = html.escape(str(error))
    title = title or "Cannot do that"
    return f"{MARK} **{html.escape(title)}:** {message}"


def keeps_errors(handler: Callable[..., Any], outputs: int, at: int, title: str = "Cannot do that") -> Callable[..., Iterator[Any]]:
    """``handler`` as a generator whose refusals also stay in the page: on an error it yields the
    message into output ``at`` of its ``outputs`` (the rest skipped), then raises it again.

    A generator handler streams as before; a plain one's return value is yielded once. The
    signature is ``handler``'s (``functools.wraps``), so Gradio still passes event data to it.
    """

    def shown(error: gr.Error | AtelierError) -> Any:
        text = error_markdown(error, None if isinstance(error, gr.Error) else title)
        return text if outputs == 1 else tuple(text if index == at else gr.skip() for index in range(outputs))

    @functools.wraps(handler)
    def wrapped(*args: Any, **kwargs: Any) -> Iterator[Any]:
        try:
            result = handler(*args, **kwargs)
            if inspect.isgenerator(result):
                yield from result
            else:
                yield result
        except gr.Error as error:
            yield shown(error)
            raise
        except AtelierError as error:
            yield shown(error)
            raise page_error(error, title) from error

    return wrapped
