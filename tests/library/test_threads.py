"""Reading the library from two threads while others publish (the studio reads while training
publishes in the background)."""

from __future__ import annotations

import threading
from pathlib import Path

from library_fixtures import adapter_source, files_on_disk, new_style, referenced_files, write_adapter

from engine.library import StyleLibrary

PUBLISHES = 6


def test_two_readers_see_only_complete_styles_while_two_writers_publish(library: StyleLibrary, pairs: list, tmp_path: Path) -> None:
    # The second writer goes through its own StyleLibrary, as a second process would.
    second = StyleLibrary.open(library.root)
    adapters = [write_adapter(tmp_path / f"adapter-{index}.safetensors", ["a", "b"], seed=index) for index in range(2 * PUBLISHES)]
    errors: list[BaseException] = []
    seen: list[int] = []
    done = threading.Event()

    def guarded(work):
        def run() -> None:
            try:
                work()
            except Exception as error:  # handed to the test thread, which fails with it
                errors.append(error)
        return run

    def write(writer: StyleLibrary, offset: int) -> None:
        for index in range(offset, 2 * PUBLISHES, 2):
            writer.publish_styles([new_style(f"Style {index} a", pairs, "a"), new_style(f"Style {index} b", pairs, "b")],
                                  adapter_source(adapters[index]))

    def read() -> None:
        while not done.is_set():
            styles = library.list_styles()
            # Both styles of a publish appear together, each complete.
            assert len(styles) % 2 == 0
            for style in styles:
                assert len(style.pairs) == 2 and library.adapter_path(style).is_file() and style.thumbnail.is_file()
            if styles:
                assert library.get_style(styles[-1].name) == styles[-1]
            seen.append(len(styles))

    writers = [threading.Thread(target=guarded(lambda: write(library, 0))), threading.Thread(target=guarded(lambda: write(second, 1)))]
    readers = [threading.Thread(target=guarded(read)) for _ in range(2)]
    for thread in readers + writers:
        thread.start()
    for thread in writers:
        thread.join(timeout=120)
    done.set()
    for thread in readers:
        thread.join(timeout=60)
    second.close()
    assert errors == []
    assert len(library.list_styles()) == 4 * PUBLISHES
    assert len(set(seen)) > 2  # the readers really read while the writers wrote
    assert library.check(deep=True) == [] and files_on_disk(library.root) == referenced_files(library)
