"""Security defaults of the served studio: this machine only, no share link, an upload size
limit, and files served only from what the page was given (no path traversal to the library or
the system)."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest

import app
from studio.app import build_studio, launch_studio
from tests.studio.studio_fixtures import styled_context


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    folder = tmp_path_factory.mktemp("security")
    with styled_context(folder, ["sepia"]) as context:
        studio = build_studio(context)
        port = free_port()
        launch_studio(studio, port=port, max_file_size="1kb", prevent_thread_lock=True, quiet=True)
        try:
            yield studio, f"http://127.0.0.1:{port}", folder
        finally:
            studio.close()


def test_the_defaults_serve_this_machine_only_without_a_share_link(served) -> None:
    studio, url, _ = served
    assert app.parse_args([]).host == "127.0.0.1"
    assert studio.server_name == "127.0.0.1" and studio.share is False and studio.share_url is None
    assert httpx.get(url, timeout=10).status_code == 200


def test_an_upload_over_the_limit_is_refused(served) -> None:
    _, url, _ = served
    small = httpx.post(f"{url}/gradio_api/upload", files={"files": ("small.txt", b"x" * 100)}, timeout=10)
    large = httpx.post(f"{url}/gradio_api/upload", files={"files": ("large.txt", b"x" * 5000)}, timeout=10)
    assert small.status_code == 200
    assert large.status_code == 413


@pytest.mark.parametrize("target", ["/etc/passwd", "../../../../etc/passwd", "%2e%2e/%2e%2e/%2e%2e/etc/passwd", "LIBRARY_DB"])
def test_files_outside_what_the_page_was_given_are_not_served(served, target: str) -> None:
    _, url, folder = served
    library_db = folder / "library" / "library.db"
    assert library_db.is_file()
    path = str(library_db) if target == "LIBRARY_DB" else target
    response = httpx.get(f"{url}/gradio_api/file={path}", timeout=10)
    assert response.status_code in (403, 404), (target, response.status_code)
    assert b"root:" not in response.content and b"SQLite format" not in response.content
