"""Adding styles one by one to the shared MoE LoRA, and what that does to the styles already
there (``python -m benchmarks.library_growth``).

The benchmark styles are trained into a style library one after another through
:func:`engine.training.add_style.train_style`, the call behind ``python -m engine train``, with its
default settings, each from its 8 training pairs written as a ``before/``/``after/`` folder. After
each addition every style trained so far is scored on its held-out test pairs (folded into the
weights, as the CLI and studio edit). The report gives each style's held-out PSNR after every
addition, so the change of an existing style when another is added (the goal: 0.1 dB at most) is
read off directly; at the end one style is deleted and the others are scored again (the goal:
no change at all).

The library it leaves behind, without the deletion, is the one shipped in ``styles/``
(``--library styles``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from benchmarks.dataset import benchmark_pairs, style_slug, write_pairs
from benchmarks.report import add_out_argument, publish
from benchmarks.styles import STYLES
from engine.library import StyleLibrary
from engine.models.backbones.registry import load_backbone
from engine.services.style_edit import StyleEditor
from engine.training.add_style import StyleRequest, train_style
from engine.training.pairs import read_pairs
from engine.training.style_evaluation import evaluate_on_pairs
from engine.training.style_trainer import StyleTrainingConfig


def score_library(backbone, library: StyleLibrary, names: list[str], test_pairs: int) -> dict[str, dict[str, float]]:
    """Held-out PSNR/SSIM/style distance of each named style, edited as the studio edits."""
    editor = StyleEditor(backbone, library)
    scores = {}
    try:
        for name in names:
            pairs = [(pair.before, pair.after) for pair in benchmark_pairs(name, "test", backbone.fit_size)[:test_pairs]]
            scores[name] = evaluate_on_pairs(backbone, pairs, edit=lambda photo, name=name: editor.edit(photo, {name: 1.0}))
    finally:
        editor.release()
    return scores


def grow(library_folder: Path, styles: list[str], steps: int | None, test_pairs: int, work: Path, model: str = "embedded") -> dict:
    backbone = load_backbone(model)
    config = StyleTrainingConfig() if steps is None else StyleTrainingConfig(steps=steps)
    history, seconds = [], {}
    with StyleLibrary.open(library_folder) as library:
        for index, name in enumerate(styles):
            spec = STYLES[name]
            pairs_folder = write_pairs(spec, "train", work / style_slug(name))
            began = time.perf_counter()
            train_style(library, backbone, StyleRequest(name, read_pairs(pairs_folder), spec.description,
                                                        trigger=f"in {name} style"), config)
            seconds[name] = round(time.perf_counter() - began, 1)
            scores = score_library(backbone, library, styles[: index + 1], test_pairs)
            history.append({"added": name, "scores": scores})
            print(json.dumps({"added": name, "train_seconds": seconds[name],
                              "psnr": {key: value["psnr"] for key, value in scores.items()}}), flush=True)
    report = {"styles": styles, "steps": config.steps, "test_pairs": test_pairs, "train_seconds": seconds, "history": history}
    report["largest_change_db"] = largest_change(history)
    return report


def largest_change(history: list[dict]) -> float:
    """The largest |PSNR change| of any style between consecutive additions."""
    change = 0.0
    for before, after in zip(history, history[1:]):
        for name, scores in before["scores"].items():
            change = max(change, abs(after["scores"][name]["psnr"] - scores["psnr"]))
    return round(change, 4)


def delete_one(library_folder: Path, victim: str, test_pairs: int, work: Path, before: dict, model: str = "embedded") -> dict:
    """Delete ``victim`` from a copy of the library and rescore the others."""
    from engine.services.style_ops import delete_style

    copy = work / "after-delete"
    shutil.copytree(library_folder, copy)
    with StyleLibrary.open(copy) as library:
        backbone = load_backbone(model)
        delete_style(library, victim, backbone)
        remaining = [record.name for record in library.list_styles()]
        scores = score_library(backbone, library, remaining, test_pairs)
    changes = {name: round(scores[name]["psnr"] - before[name]["psnr"], 4) for name in remaining}
    return {"deleted": victim, "psnr_change_db": changes}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.library_growth", description=__doc__.splitlines()[0])
    parser.add_argument("--library", type=Path, required=True, help="Library folder to create (must not exist yet).")
    parser.add_argument("--styles", default=",".join(STYLES), help="Comma-separated benchmark styles, in the order added.")
    parser.add_argument("--steps", type=int, default=None, help="Training steps per style (default: train's default).")
    parser.add_argument("--test-pairs", type=int, default=20, help="Held-out pairs scored per style.")
    parser.add_argument("--model", default="embedded", help="The backbone (default: the shipped embedded model).")
    add_out_argument(parser)
    arguments = parser.parse_args(argv)
    if arguments.library.exists() and any(arguments.library.iterdir()):
        parser.error(f"{arguments.library} is not empty; give a new folder")
    styles = [name.strip() for name in arguments.styles.split(",") if name.strip()]
    with tempfile.TemporaryDirectory(prefix="atelier-growth-") as folder:
        work = Path(folder)
        report = grow(arguments.library, styles, arguments.steps, arguments.test_pairs, work, arguments.model)
        if len(styles) >= 2:
            report["after_delete"] = delete_one(arguments.library, styles[1], arguments.test_pairs, work,
                                                report["history"][-1]["scores"], arguments.model)
    publish(report, arguments.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
