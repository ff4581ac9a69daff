"""The process the crash-safety test kills: it publishes, grows, shrinks and deletes styles in a
loop, as fast as it can, until it is killed.

Usage: python publisher_child.py <library> <work folder> <seed>
"""

from __future__ import annotations

import sys
from pathlib import Path

from library_fixtures import adapter_source, new_style, write_adapter, write_pairs

from engine.library import StyleLibrary


def main(library_folder: Path, work: Path, seed: int) -> None:
    library = StyleLibrary.open(library_folder)
    pairs = write_pairs(work / "photos", count=2)
    print("ready", flush=True)
    for index in range(10_000):
        first, second, third = (f"s{seed} {index} {letter}" for letter in "abc")
        run_id = library.begin_run("train", [first, second], {"index": index})
        # About a megabyte, so copying it is a moment a kill can land in.
        moe = write_adapter(work / f"moe-{index}.safetensors", ["a", "b"], values=120_000, seed=index)
        published = library.publish_styles([new_style(first, pairs, "a"), new_style(second, pairs, "b")], adapter_source(moe), run_id)
        library.append_log(run_id, f"published {first}, {second}\n")
        grown = write_adapter(work / f"grown-{index}.safetensors", ["a", "b", "c"], values=120_000, seed=index + 1)
        library.replace_adapter(published[0].adapter.id, adapter_source(grown), [new_style(third, pairs, "c")], {first: "a2"})
        shrunk = write_adapter(work / f"shrunk-{index}.safetensors", ["a", "c"], values=120_000, seed=index + 2)
        library.delete_style(second, adapter_source(shrunk))
        library.rename_style(third, f"{third} renamed")
        if index % 2:
            single = write_adapter(work / f"single-{index}.safetensors", ["c"], values=1000, seed=index + 3)
            library.delete_style(first, adapter_source(single))
            library.delete_style(f"{third} renamed")
        library.finish_run(run_id, "finished", {"index": index})


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]))
