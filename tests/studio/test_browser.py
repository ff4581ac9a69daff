"""The studio as a person uses it: the real ``app.py`` in a subprocess, driven by Chromium.

Starts ``app.py --model <tiny random model>`` on a free port, uploads a photo made here, presses
Edit, waits for the before/after comparison, downloads the result and saves screenshots to
``$ATELIER_ARTEFACTS`` (default ``test-artifacts/`` at the repo top, which git ignores).

Uses Debian's Chromium (``apt-get install chromium``): Playwright's own browser download cannot
work on these machines. Without it the test is skipped, except under CI (``CI=true``), where a
missing browser is a failure.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest
from PIL import Image, ImageDraw
from safetensors import safe_open

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WIDTH, HEIGHT = 1400, 1000
STARTUP_SECONDS = 180
EDIT_TIMEOUT_MS = 90_000


def artefacts_folder() -> Path:
    folder = Path(os.environ.get("ATELIER_ARTEFACTS") or REPO / "test-artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def require_chromium() -> None:
    if CHROMIUM.exists():
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{CHROMIUM} is missing on CI: `make test` installs it with apt-get install chromium")
    pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium (`make test` does so as root) to run the browser test")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def make_photo(path: Path, size: tuple[int, int] = (480, 320)) -> Path:
    """A small landscape: a sky gradient, a sun and two hills."""
    width, height = size
    photo = Image.new("RGB", size)
    draw = ImageDraw.Draw(photo)
    for row in range(height):
        mix = row / height
        draw.line([(0, row), (width, row)], fill=(int(90 + 120 * mix), int(150 + 70 * mix), int(230 - 40 * mix)))
    draw.ellipse([width * 0.68, height * 0.12, width * 0.82, height * 0.33], fill=(255, 214, 90))
    draw.polygon([(0, height), (0, height * 0.62), (width * 0.35, height * 0.48), (width * 0.75, height * 0.7), (width, height * 0.6), (width, height)], fill=(70, 130, 60))
    draw.polygon([(0, height), (width * 0.2, height * 0.8), (width * 0.6, height * 0.86), (width, height * 0.78), (width, height)], fill=(40, 95, 45))
    photo.save(path)
    return path


def log_tail(log: Path, lines: int = 40) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else "(no log)"


@pytest.fixture
def studio_url(tiny_model_folder: Path, tmp_path: Path) -> Iterator[str]:
    """Serve the real app.py with the tiny model and a library holding one style ('sepia');
    yield its URL; stop it afterwards."""
    from engine.library import StyleLibrary
    from engine.models.backbones.registry import load_backbone
    from tests.studio.studio_fixtures import add_random_styles

    require_chromium()
    with StyleLibrary.open(tmp_path / "library") as library:
        add_random_styles(library, load_backbone(str(tiny_model_folder)), ["sepia"], tmp_path / "seed-pairs")
    yield from serve(tiny_model_folder, tmp_path)


@pytest.fixture
def fuse_studio_url(tiny_model_folder: Path, tmp_path: Path) -> Iterator[str]:
    """As ``studio_url``, with a second style exported and imported back as the LoRA 'Cat', the
    subject side of a fusion."""
    from engine.library import StyleLibrary
    from engine.models.backbones.registry import load_backbone
    from engine.services import style_ops
    from tests.studio.studio_fixtures import add_random_styles

    require_chromium()
    backbone = load_backbone(str(tiny_model_folder))
    with StyleLibrary.open(tmp_path / "library") as library:
        add_random_styles(library, backbone, ["sepia", "cat look"], tmp_path / "seed-pairs")
        style_ops.export_lora(library, "cat look", backbone, tmp_path / "cat.safetensors")
        style_ops.import_lora(library, tmp_path / "cat.safetensors", "Cat", backbone)
    yield from serve(tiny_model_folder, tmp_path)


def serve(tiny_model_folder: Path, tmp_path: Path) -> Iterator[str]:
    """Run app.py on the tiny model over ``tmp_path/library``; yield its URL; stop it afterwards."""
    port = free_port()
    log = tmp_path / "studio.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1"}
    with log.open("w") as output:
        server = subprocess.Popen(
            [sys.executable, "app.py", "--model", str(tiny_model_folder), "--port", str(port), "--library", str(tmp_path / "library")],
            cwd=REPO,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}/"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            if server.poll() is not None:
                pytest.fail(f"app.py exited with {server.returncode} before serving:\n{log_tail(log)}")
            try:
                with opener.open(url, timeout=5) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"app.py did not serve {url} within {STARTUP_SECONDS} s:\n{log_tail(log)}")
            time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=15)


def test_edit_a_photo_in_the_browser(studio_url: str, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    from engine.models.backbones.embedded.backbone import EmbeddedBackbone

    photo = make_photo(tmp_path / "hills.png", size=(1800, 1200))
    photo_size = list(Image.open(photo).size)
    # The model edits at its working size; what the page shows and downloads has the photo's.
    assert EmbeddedBackbone.from_config("tiny").fit_size(*photo_size) != tuple(photo_size)
    artefacts = artefacts_folder()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": WIDTH, "height": HEIGHT}, accept_downloads=True)
            page = context.new_page()
            page.goto(studio_url)
            edit = page.get_by_role("button", name="Edit", exact=True)
            expect(edit).to_be_visible(timeout=30_000)
            expect(page.get_by_role("heading", name="Atelier")).to_be_visible()

            # Without a photo the page says what to do, and keeps serving.
            edit.click()
            expect(page.locator("#edit-message")).to_contain_text("Upload a photo first.", timeout=10_000)
            page.reload()
            expect(edit).to_be_visible(timeout=30_000)

            page.locator("#edit-photo input[type=file]").set_input_files(str(photo))
            expect(page.locator("#edit-photo img").first).to_be_visible(timeout=30_000)
            edit.click()

            download_button = page.locator("#edit-download")
            expect(download_button).to_be_visible(timeout=EDIT_TIMEOUT_MS)
            expect(page.locator("#edit-status")).to_contain_text("Done", timeout=10_000)
            slider_images = page.locator("#edit-comparison img")
            expect(slider_images).to_have_count(2, timeout=10_000)
            page.wait_for_function(
                "() => [...document.querySelectorAll('#edit-comparison img')].every(img => img.complete && img.naturalWidth > 0)",
                timeout=10_000,
            )
            sizes = slider_images.evaluate_all("images => images.map(img => [img.naturalWidth, img.naturalHeight])")
            assert sizes == [photo_size] * 2, f"before/after sizes {sizes}, expected the photo's {photo_size}"
            expect(page.locator("#edit-status")).to_contain_text(f"{photo_size[0]}×{photo_size[1]} px")

            with page.expect_download(timeout=30_000) as download_info:
                download_button.click()
            assert download_info.value.suggested_filename == "hills-atelier.png"  # edits start from zero noise: no seed
            saved = tmp_path / download_info.value.suggested_filename
            download_info.value.save_as(saved)
            with Image.open(saved) as result:
                assert result.format == "PNG"
                assert result.size == tuple(photo_size)
                assert result.convert("RGB").getextrema() != ((0, 0), (0, 0), (0, 0)), "the result is blank"

            page.mouse.move(0, 0)
            page.screenshot(path=str(artefacts / "studio-edit-1400x1000.png"))
            page.set_viewport_size({"width": 1280, "height": 720})
            page.screenshot(path=str(artefacts / "studio-edit-1280x720.png"))
        finally:
            browser.close()


def write_pairs_folder(folder: Path, names: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """Before photos and their posterised greyscale after-images, with matching names."""
    from PIL import ImageOps

    (folder / "before").mkdir(parents=True)
    (folder / "after").mkdir(parents=True)
    befores, afters = [], []
    for index, name in enumerate(names):
        before = make_photo(folder / "before" / f"{name}.png", size=(320 + 8 * index, 240 + 6 * index))
        after = folder / "after" / f"{name}.png"
        ImageOps.posterize(ImageOps.grayscale(Image.open(before)).convert("RGB"), 2).save(after)
        befores.append(str(before))
        afters.append(str(after))
    return befores, afters


def pick(page, elem_id: str, option: str) -> None:
    """Choose ``option`` in a Gradio dropdown."""
    page.locator(f"#{elem_id} input").click()
    page.get_by_role("option", name=option, exact=True).click()


def close_messages(page) -> None:
    """Close the error messages already read, so they do not cover later screenshots."""
    for button in page.locator(".toast-close").all():
        button.click()


def test_train_edit_mix_and_manage_styles_in_the_browser(studio_url: str, tmp_path: Path) -> None:
    """The three flows end to end: train a style from uploaded pairs, edit with it and with a
    mix, then find, rename, export and delete it in the Library; with misuse along the way."""
    from playwright.sync_api import expect, sync_playwright

    befores, afters = write_pairs_folder(tmp_path / "pairs", ("harbour", "meadow", "orchard"))
    photo = make_photo(tmp_path / "hills.png")
    artefacts = artefacts_folder()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(viewport={"width": WIDTH, "height": HEIGHT}, accept_downloads=True).new_page()
            page.goto(studio_url)
            expect(page.get_by_role("button", name="Edit", exact=True)).to_be_visible(timeout=30_000)

            # Train: one pair only is refused with a message; then three pairs train.
            page.get_by_role("tab", name="Train").click()
            page.locator("#train-before input[type=file]").set_input_files(befores[:1])
            page.locator("#train-after input[type=file]").set_input_files(afters[:1])
            expect(page.locator("#train-pairs-status")).to_contain_text("1 pair ready", timeout=30_000)
            page.locator("#train-name textarea, #train-name input").first.fill("Poster")
            page.locator("#train-run").click()
            expect(page.get_by_text("at least 2 before/after pairs").first).to_be_visible(timeout=10_000)
            page.locator("#train-before input[type=file]").set_input_files(befores[1:])  # uploads add up
            page.locator("#train-after input[type=file]").set_input_files(afters[1:])
            expect(page.locator("#train-pairs-status")).to_contain_text("3 pairs ready", timeout=30_000)
            # A name already in the library is refused before anything trains.
            page.locator("#train-name textarea, #train-name input").first.fill("sepia")
            page.locator("#train-run").click()
            expect(page.get_by_text("already in the library").first).to_be_visible(timeout=10_000)
            close_messages(page)
            page.locator("#train-name textarea, #train-name input").first.fill("Poster")
            page.locator("#train-steps input[type=number]").fill("6")
            page.locator("#train-steps input[type=number]").press("Tab")
            page.locator("#train-run").click()
            expect(page.locator("#train-status")).to_contain_text("in your library", timeout=EDIT_TIMEOUT_MS)
            page.mouse.move(0, 0)
            page.screenshot(path=str(artefacts / "studio-train-1400x1000.png"))

            # Edit: the new style is listed without a reload; edit with it, then with a mix.
            page.get_by_role("tab", name="Edit").click()
            pick(page, "edit-style-1", "Poster")
            page.locator("#edit-photo input[type=file]").set_input_files(str(photo))
            expect(page.locator("#edit-photo img").first).to_be_visible(timeout=30_000)
            page.get_by_role("button", name="Edit", exact=True).click()
            expect(page.locator("#edit-status")).to_contain_text("Done", timeout=EDIT_TIMEOUT_MS)
            expect(page.locator("#edit-status")).to_contain_text("with Poster")
            page.locator("#edit-add-style").click()
            pick(page, "edit-style-2", "sepia")
            page.get_by_role("button", name="Edit", exact=True).click()
            expect(page.locator("#edit-status")).to_contain_text("Poster ×1 + sepia ×1", timeout=EDIT_TIMEOUT_MS)
            expect(page.locator("#edit-recent img")).to_have_count(2, timeout=10_000)
            page.mouse.move(0, 0)
            page.screenshot(path=str(artefacts / "studio-edit-mix-1400x1000.png"))

            # Library: search, details, rename, export, delete after confirming.
            page.get_by_role("tab", name="Library").click()
            page.locator("#library-search input, #library-search textarea").first.fill("post")
            expect(page.locator("#library-gallery .thumbnail-item")).to_have_count(1, timeout=10_000)
            page.locator("#library-gallery .thumbnail-item").first.click()
            expect(page.locator("#library-details")).to_contain_text("Poster", timeout=10_000)
            page.locator("#library-rename-name input, #library-rename-name textarea").first.fill("Poster two")
            page.locator("#library-rename").click()
            expect(page.locator("#library-status")).to_contain_text("Renamed", timeout=10_000)
            page.locator("#library-export-lora").click()
            link = page.locator("#library-download a")
            expect(link).to_have_attribute("href", re.compile(r"Poster-two\.safetensors$"), timeout=30_000)
            with page.expect_download(timeout=30_000) as download_info:
                link.click()
            exported = tmp_path / "Poster-two.safetensors"
            download_info.value.save_as(exported)
            with safe_open(exported, framework="pt") as handle:
                keys = list(handle.keys())
                assert handle.metadata()["modelspec.title"] == "Poster two"
            assert keys and all(key.startswith("transformer.") and ".lora_" in key for key in keys)
            page.mouse.move(0, 0)
            page.screenshot(path=str(artefacts / "studio-library-1400x1000.png"))
            page.locator("#library-delete").click()
            page.locator("#library-delete-confirm").click()
            expect(page.locator("#library-status")).to_contain_text("Deleted", timeout=30_000)
            page.locator("#library-search input, #library-search textarea").first.fill("")
            expect(page.locator("#library-gallery .thumbnail-item")).to_have_count(1, timeout=10_000)

            # The Edit tab follows: the deleted style is gone from its list.
            page.get_by_role("tab", name="Edit").click()
            page.locator("#edit-style-1 input").click()
            options = page.get_by_role("option").all_inner_texts()
            assert "sepia" in options and "Poster two" not in options and "Poster" not in options, options
            page.keyboard.press("Escape")
            page.set_viewport_size({"width": 1280, "height": 720})
            for tab in ("Edit", "Train", "Library"):
                page.get_by_role("tab", name=tab).click()
                page.mouse.move(0, 0)
                page.screenshot(path=str(artefacts / f"studio-{tab.lower()}-1280x720.png"))
        finally:
            browser.close()


def test_fuse_a_subject_with_a_style_and_compare_methods_in_the_browser(fuse_studio_url: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    artefacts = artefacts_folder()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(viewport={"width": WIDTH, "height": HEIGHT}).new_page()
            page.goto(fuse_studio_url)
            page.get_by_role("tab", name="Fuse").click()
            pick(page, "fuse-subject", "Cat")
            pick(page, "fuse-style", "sepia")
            page.locator("#fuse-run").click()
            expect(page.locator("#fuse-status")).to_contain_text("EST-LoRA", timeout=EDIT_TIMEOUT_MS)
            expect(page.locator("#fuse-result img")).to_be_visible(timeout=10_000)
            expect(page.locator("#fuse-status")).to_contain_text("layers on the subject")
            page.locator("#fuse-compare").click()
            expect(page.locator("#fuse-status")).to_contain_text("Same seed", timeout=EDIT_TIMEOUT_MS)
            expect(page.locator("#fuse-compare-gallery .thumbnail-item")).to_have_count(3)
            page.evaluate("window.scrollTo(0, 0)")
            page.mouse.move(0, 0)
            page.screenshot(path=str(artefacts / "studio-fuse-1400x1000.png"))
            # A favourite setting is kept in the library.
            page.locator("#fuse-presets").get_by_text("Presets").click()
            page.locator("#fuse-preset-name input, #fuse-preset-name textarea").first.fill("cat in sepia")
            page.locator("#fuse-preset-save").click()
            expect(page.locator("#fuse-status")).to_contain_text("Saved preset", timeout=10_000)
            # The same LoRA on both sides is refused with a message.
            pick(page, "fuse-style", "cat look")
            page.locator("#fuse-run").click()
            expect(page.get_by_text("the same LoRA").first).to_be_visible(timeout=EDIT_TIMEOUT_MS)
            close_messages(page)
            pick(page, "fuse-style", "sepia")
            expect(page.locator("#fuse-style input")).to_have_value("sepia")
        finally:
            browser.close()
