"""How an edit's quality depends on the scale of its starting noise
(``python -m benchmarks.noise_scale``).

Flow samplers start from standard normal noise; scaling it down is the reduced-temperature
sampling of Glow (Kingma & Dhariwal 2018, section 5); at 0 the Euler walk starts from the noise's
mean and is deterministic. For an edit whose target is a deterministic function of the
photo, as every style in a user's pairs is, the noise carries nothing the result needs. This
command measures, at each of ``--scales`` (``SamplerSettings.noise_scale``):

* the styles of a library (default: the shipped ``styles/``), each folded alone as the studio and
  ``python -m engine edit`` edit, on its benchmark style's held-out test pairs
  (:mod:`benchmarks.dataset`): PSNR, SSIM and style distance against the after-images, beside
  the unedited photo;
* the embedded base model's own edits on its held-out photos (:mod:`engine.training.base_eval`):
  identity PSNR and the PSNR of each pretrained instruction against its exact edit.

The result chooses the embedded model's ``edit_noise_scale``, the default of every edit.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from benchmarks.dataset import benchmark_pairs
from benchmarks.report import add_out_argument, publish
from benchmarks.styles import STYLES
from engine.library import StyleLibrary
from engine.metrics.image_quality import psnr
from engine.models.backbones.registry import load_backbone
from engine.models.sampling.sampler import SamplerSettings
from engine.services.style_edit import StyleEditor
from engine.training.base_eval import run_edit
from engine.training.generic_edits import GENERIC_EDIT_FUNCTIONS
from engine.training.photo_pool import SHARED_PHOTOS, fit_photo, load_photos, split
from engine.training.style_evaluation import evaluate_on_pairs


def score_styles(editor: StyleEditor, styles: list[str], scales: list[float], test_pairs: int) -> dict:
    """``{style: {"identity": scores, "<scale>": scores}}`` over each style's first ``test_pairs``
    held-out pairs, plus ``"mean"`` over the styles."""
    report: dict[str, dict] = {}
    for style in styles:
        pairs = [(pair.before, pair.after) for pair in benchmark_pairs(style, "test", editor.backbone.fit_size)[:test_pairs]]
        rows = {}
        for scale in scales:
            settings = SamplerSettings(noise_scale=scale)
            scores = evaluate_on_pairs(editor.backbone, pairs, edit=lambda photo: editor.edit(photo, {style: 1.0}, settings))
            rows.setdefault("identity", {name[len("identity_"):]: value for name, value in scores.items() if name.startswith("identity_")})
            rows[f"{scale:g}"] = {name: value for name, value in scores.items() if not name.startswith("identity_")}
        report[style] = rows
        print(style, json.dumps(rows), flush=True)
    report["mean"] = {row: {metric: round(sum(report[style][row][metric] for style in styles) / len(styles), 4)
                            for metric in report[styles[0]][row]} for row in report[styles[0]]}
    return report


def score_base(backbone, scales: list[float]) -> dict:
    """``{"<scale>": {"identity": psnr, instruction: psnr, ...}}`` of the base model's own edits
    on its held-out photos (the measurements of ``assets/base/metrics.json``)."""
    photos = load_photos(SHARED_PHOTOS)
    _, held_out = split(list(photos))
    held = [fit_photo(photos[name], backbone.fit_size(photos[name].shape[1], photos[name].shape[0])) for name in held_out]

    def mean_psnr(prompt: str, truth, scale: float) -> float:
        total = sum(psnr(run_edit(backbone, photo, prompt, noise_scale=scale), truth(photo)).item() for photo in held)
        return round(total / len(held), 2)

    report = {}
    for scale in scales:
        row = {"identity": mean_psnr("", lambda photo: photo, scale)}
        for instruction, function in GENERIC_EDIT_FUNCTIONS.items():
            row[instruction] = mean_psnr(instruction, function, scale)
        row["mean of instructions"] = round(sum(row[name] for name in GENERIC_EDIT_FUNCTIONS) / len(GENERIC_EDIT_FUNCTIONS), 2)
        report[f"{scale:g}"] = row
        print("base", f"{scale:g}", json.dumps(row), flush=True)
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.noise_scale", description=__doc__.splitlines()[0])
    parser.add_argument("--library", default="styles", help="Style library whose styles to score (named as benchmark styles).")
    parser.add_argument("--styles", default=",".join(STYLES), help="Comma-separated benchmark styles present in the library.")
    parser.add_argument("--scales", default="1,0.5,0", help="Comma-separated noise scales in [0, 1].")
    parser.add_argument("--test-pairs", type=int, default=20, help="Held-out pairs per style (1 to 20).")
    add_out_argument(parser)
    arguments = parser.parse_args(argv)
    try:
        scales = [float(value) for value in arguments.scales.split(",")]
    except ValueError:
        parser.error(f"--scales must be numbers separated by commas, not {arguments.scales!r}")
    if not all(0 <= scale <= 1 for scale in scales):
        parser.error("every scale must lie in [0, 1]")
    if not 1 <= arguments.test_pairs <= 20:
        parser.error("--test-pairs must lie between 1 and 20")
    styles = [name.strip() for name in arguments.styles.split(",") if name.strip()]
    unknown = [name for name in styles if name not in STYLES]
    if unknown:
        parser.error(f"unknown benchmark style(s) {', '.join(unknown)}; known: {', '.join(STYLES)}")

    backbone = load_backbone()
    began = time.perf_counter()
    with torch.inference_mode(), StyleLibrary.open(arguments.library) as library:
        editor = StyleEditor(backbone, library)
        report = {"scales": scales, "styles": score_styles(editor, styles, scales, arguments.test_pairs)}
        editor.release()
        report["base"] = score_base(backbone, scales)
    report["seconds"] = round(time.perf_counter() - began, 1)
    publish(report, arguments.out)


if __name__ == "__main__":
    main()
