"""What a new user met in Chromium at 1280x720: the main buttons in view, refusals that stay in
the page next to what caused them, a non-image upload on the Edit tab, the delete question with its
buttons, and a page that does not scroll itself after an edit.

One app for the whole module (each start costs about 10 s), started as ``test_browser.py`` starts
it, with the styles of its Fuse test ('sepia', 'cat look' and the LoRA 'Cat').
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from tests.studio.test_browser import CHROMIUM, CHROMIUM_ARGS, EDIT_TIMEOUT_MS, make_photo, pick, require_chromium, serve

SMALL = {"width": 1280, "height": 720}
STAYS_SECONDS = 10


@pytest.fixture(scope="module")
def app(tiny_model_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """The served studio's URL and its folder (the server log is ``studio.log`` there)."""
    from engine.library import StyleLibrary
    from engine.models.backbones.registry import load_backbone
    from engine.services import style_ops
    from tests.studio.studio_fixtures import add_random_styles

    require_chromium()
    folder = tmp_path_factory.mktemp("layout-app")
    backbone = load_backbone(str(tiny_model_folder))
    with StyleLibrary.open(folder / "library") as library:
        add_random_styles(library, backbone, ["sepia", "cat look"], folder / "seed-pairs")
        style_ops.export_lora(library, "cat look", backbone, folder / "cat.safetensors")
        style_ops.import_lora(library, folder / "cat.safetensors", "Cat", backbone)
    for url in serve(tiny_model_folder, folder):
        yield url, folder


@pytest.fixture(scope="module")
def browser(app) -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(app, browser):
    """A fresh page at 1280x720 with the studio loaded."""
    from playwright.sync_api import expect

    context = browser.new_context(viewport=SMALL)
    page = context.new_page()
    page.goto(app[0])
    expect(page.get_by_role("button", name="Edit", exact=True)).to_be_visible(timeout=30_000)
    yield page
    context.close()


def in_view(page, selector: str) -> bool:
    box = page.locator(selector).first.bounding_box()
    viewport = page.viewport_size
    return (box is not None and box["width"] > 0 and box["y"] >= 0 and box["x"] >= 0
            and box["y"] + box["height"] <= viewport["height"] and box["x"] + box["width"] <= viewport["width"])


def test_train_and_cancel_are_in_view_at_1280x720_and_the_settings_are_collapsed(page) -> None:
    from playwright.sync_api import expect

    page.get_by_role("tab", name="Train").click()
    expect(page.locator("#train-run")).to_be_visible(timeout=10_000)
    assert page.evaluate("window.scrollY") == 0
    assert in_view(page, "#train-run") and in_view(page, "#train-cancel") and in_view(page, "#train-name")
    expect(page.locator("#train-timestep-shift")).to_be_hidden()  # Advanced starts collapsed
    page.locator("#train-advanced").get_by_text("Advanced settings").click()
    expect(page.get_by_text("Train more on noisy steps (timestep shift)")).to_be_visible(timeout=5_000)


def test_a_text_file_named_jpg_gets_a_message_next_to_the_photo_that_stays(page, app, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    notes = tmp_path / "notes.jpg"
    notes.write_text("shopping: milk, eggs\n")
    page.locator("#edit-photo input[type=file]").set_input_files(str(notes))
    message = page.locator("#edit-message")
    expected = "notes.jpg is not an image Atelier can read"
    expect(message).to_contain_text(expected, timeout=15_000)
    expect(message).to_contain_text("choose a PNG, JPEG or WebP photo")
    page.get_by_role("button", name="Edit", exact=True).click()
    expect(message).to_contain_text(expected, timeout=10_000)
    page.wait_for_timeout(STAYS_SECONDS * 1000)
    expect(message).to_contain_text(expected)
    assert in_view(page, "#edit-message")
    assert "ComponentProcessingError" not in (app[1] / "studio.log").read_text(errors="replace")
    # The next action clears it: a real photo.
    page.locator("#edit-photo input[type=file]").set_input_files(str(make_photo(tmp_path / "hills.png")))
    expect(message).to_have_text("", timeout=15_000)


def test_errors_stay_next_to_the_control_on_every_tab(page) -> None:
    """Edit, Train, Library and Fuse: a refusal is still in the page 10 s later (the pop-ups are gone)."""
    from playwright.sync_api import expect

    page.get_by_role("button", name="Edit", exact=True).click()
    expect(page.locator("#edit-message")).to_contain_text("Upload a photo first.", timeout=10_000)

    page.get_by_role("tab", name="Train").click()
    page.locator("#train-name textarea, #train-name input").first.fill("Poster")
    page.locator("#train-run").click()
    expect(page.locator("#train-message")).to_contain_text("at least 2 before/after pairs", timeout=10_000)
    assert in_view(page, "#train-message")

    page.get_by_role("tab", name="Library").click()
    page.locator("#library-search input, #library-search textarea").first.fill("sepia")
    expect(page.locator("#library-gallery .thumbnail-item")).to_have_count(1, timeout=10_000)
    page.locator("#library-gallery .thumbnail-item").first.click()
    expect(page.locator("#library-details")).to_contain_text("sepia", timeout=10_000)
    page.locator("#library-rename-name input, #library-rename-name textarea").first.fill("Cat")
    page.locator("#library-rename").click()
    expect(page.locator("#library-status")).to_contain_text("Cannot rename", timeout=10_000)

    page.get_by_role("tab", name="Fuse").click()
    pick(page, "fuse-subject", "Cat")
    pick(page, "fuse-style", "cat look")
    page.locator("#fuse-run").click()
    expect(page.locator("#fuse-status")).to_contain_text("the same LoRA", timeout=EDIT_TIMEOUT_MS)

    page.wait_for_timeout(STAYS_SECONDS * 1000)
    expect(page.locator("#fuse-status")).to_contain_text("the same LoRA")
    page.get_by_role("tab", name="Library").click()
    expect(page.locator("#library-status")).to_contain_text("Cannot rename")
    page.get_by_role("tab", name="Train").click()
    expect(page.locator("#train-message")).to_contain_text("at least 2 before/after pairs")
    page.get_by_role("tab", name="Edit").click()
    expect(page.locator("#edit-message")).to_contain_text("Upload a photo first.")
    assert page.locator(".toast-body").count() == 0, "the pop-ups should have gone by now"


def test_the_delete_question_and_its_buttons_appear_together_where_delete_was_clicked(page) -> None:
    from playwright.sync_api import expect

    page.get_by_role("tab", name="Library").click()
    page.locator("#library-gallery .thumbnail-item").first.click()
    expect(page.locator("#library-manage")).to_be_visible(timeout=10_000)
    page.locator("#library-delete").click()
    expect(page.locator("#library-delete-question")).to_contain_text("Delete", timeout=10_000)
    expect(page.locator("#library-delete-confirm")).to_be_visible()
    page.wait_for_timeout(300)  # the scroll into view, if one was needed
    for selector in ("#library-delete-question", "#library-delete-confirm", "#library-delete-cancel"):
        assert in_view(page, selector), selector
    page.locator("#library-delete-cancel").click()
    # Under load gradio may keep a second, hidden copy of the group for a moment; what matters is that none shows.
    expect(page.locator("#library-delete-row:visible")).to_have_count(0, timeout=10_000)


def test_the_page_does_not_scroll_itself_during_and_after_an_edit(page, tmp_path: Path) -> None:
    """Edit is in view at 1280x720: a button below the fold is scrolled to before the click (by the
    browser for a person, by Playwright here), which took the page down to its end (197 px)."""
    from playwright.sync_api import expect

    page.locator("#edit-photo input[type=file]").set_input_files(str(make_photo(tmp_path / "hills.png", size=(900, 600))))
    expect(page.locator("#edit-photo img").first).to_be_visible(timeout=30_000)
    page.evaluate("window.scrollTo(0, 0)")
    page.evaluate("window.__maxScroll = 0; window.addEventListener('scroll', () => { window.__maxScroll = Math.max(window.__maxScroll, window.scrollY); })")
    assert in_view(page, "#edit-run") and in_view(page, "#edit-status")
    page.get_by_role("button", name="Edit", exact=True).click()
    expect(page.locator("#edit-status")).to_contain_text("Done", timeout=EDIT_TIMEOUT_MS)
    expect(page.locator("#edit-comparison img")).to_have_count(2, timeout=10_000)
    page.wait_for_timeout(1000)
    assert page.evaluate("window.scrollY") == 0
    assert page.evaluate("window.__maxScroll") == 0, "the page scrolled during the edit"


def test_fuse_is_in_view_at_1280x720_and_the_subject_train_button_is_reachable(page, tmp_path: Path) -> None:
    """Fuse needs no scrolling; *Train a subject* sits below it (collapsed while the library has a
    subject), opens, and its Train button and a message naming a bad upload can be reached."""
    from playwright.sync_api import expect

    page.get_by_role("tab", name="Fuse").click()
    expect(page.locator("#fuse-run")).to_be_visible(timeout=10_000)
    assert page.evaluate("window.scrollY") == 0
    assert in_view(page, "#fuse-run") and in_view(page, "#fuse-subject")
    expect(page.locator("#subject-run")).to_be_hidden()  # collapsed: the library already has a subject ('Cat')
    page.locator("#subject-train").get_by_text("Train a subject").click()
    train = page.locator("#subject-run")
    expect(train).to_be_visible(timeout=5_000)
    train.scroll_into_view_if_needed()
    assert in_view(page, "#subject-run") and in_view(page, "#subject-cancel")
    assert train.is_enabled()
    notes = tmp_path / "notes.jpg"
    notes.write_text("shopping: milk, eggs\n")
    page.locator("#subject-photos input[type=file]").set_input_files([str(make_photo(tmp_path / "a.png")), str(notes)])
    expect(page.locator("#subject-photos-status")).to_contain_text("notes.jpg", timeout=15_000)
    page.locator("#subject-name textarea, #subject-name input").first.fill("bad/name")
    train.click()
    expect(page.locator("#subject-message")).to_contain_text("Cannot train the subject", timeout=10_000)
