"""Subject/style fusion measured against each other (``python -m engine bench fusion``).

The grid: subjects x styles x seeds, each fused with every method (EST-LoRA, K-LoRA, merge, subject
only, style only) in generation mode on the shipped model.

* Subjects: subject LoRAs trained here (:func:`engine.training.subject.train_subject`, default
  settings) from 5 photos of one subject each: crops of one benchmark photo at different places
  and zooms (these photo sets hold one photo per subject).
* Styles: the shipped library's styles (``styles/``), each taken out of the shared MoE LoRA as a
  plain LoRA (:mod:`engine.fusion.sources`).
* Subject similarity: the cosine of :func:`content_embedding` (a normalised 16x16 luminance
  thumbnail, i.e. normalised cross-correlation of the layout) between the image and the subject's
  photos, best match over the photos. Style similarity: the cosine of the offline style
  embedding (:class:`engine.fusion.OfflineStyleEmbedding`) between the image and the mean over
  the style's after-images. :func:`validate_embeddings` checks both rank same-subject and
  same-style pairs above different ones on this data, and the report includes the check.
* Time: seconds per generated image for each method, interleaved in one run, with the ratio to a
  single-LoRA generation (subject only).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from benchmarks.dataset import load_benchmark_photo
from benchmarks.fusion_baselines import Baseline
from benchmarks.report import add_out_argument, publish
from engine.fusion import FusionConfig, OfflineStyleEmbedding, plan_fusion, render_fusion
from engine.fusion.config import METHODS
from engine.fusion.sources import record_layers
from engine.library import StyleLibrary
from engine.models.backbones.registry import load_backbone
from engine.models.sampling.sampler import SamplerSettings
from engine.training.subject import SubjectRequest, SubjectTrainingConfig, train_subject

REPO = Path(__file__).resolve().parents[1]
SUBJECT_PHOTOS = ("skimage-chelsea", "skimage-astronaut", "skimage-coffee", "skimage-motorcycle_left")
STYLES = ("ink sketch", "vintage", "teal-orange grade", "oil paint")
CROPS = ((0.0, 0.0, 1.0), (0.1, 0.05, 0.85), (0.0, 0.15, 0.8), (0.15, 0.0, 0.8), (0.05, 0.1, 0.9))  # left, top, size


def subject_photos(photo_id: str, folder: Path) -> list[Path]:
    """Five crops of one photo (a square of ``size`` times its short side at ``left``/``top``)."""
    photo = load_benchmark_photo(photo_id).convert("RGB")
    side = min(photo.size)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, (left, top, size) in enumerate(CROPS):
        box_side = int(side * size)
        x, y = int(left * (photo.width - box_side)), int(top * (photo.height - box_side))
        crop = photo.crop((x, y, x + box_side, y + box_side)).resize((256, 256), Image.Resampling.LANCZOS)
        paths.append(folder / f"{photo_id}-{index}.png")
        crop.save(paths[-1])
    return paths


def content_embedding(image: Image.Image) -> np.ndarray:
    """A normalised 16x16 luminance thumbnail: its cosine is the layout's cross-correlation."""
    thumbnail = np.asarray(image.convert("L").resize((16, 16), Image.Resampling.BOX), dtype=np.float64).ravel()
    thumbnail -= thumbnail.mean()
    return thumbnail / max(np.linalg.norm(thumbnail), 1e-8)


def style_embedding(embedder: OfflineStyleEmbedding, image: Image.Image) -> np.ndarray:
    vector = embedder.embed(image).double().numpy()
    return vector / max(np.linalg.norm(vector), 1e-8)


def validate_embeddings(subjects: dict[str, list[Image.Image]], styles: dict[str, list[Image.Image]],
                        embedder: OfflineStyleEmbedding) -> dict:
    """Fraction of (same, different) pairs ranked right: a same-subject (same-style) pair must be
    more similar than a pair of different subjects (styles) sharing its first image."""
    def ranked(groups: dict[str, list[Image.Image]], embed) -> float:
        vectors = {name: [embed(image) for image in images] for name, images in groups.items()}
        right = total = 0
        for name, own in vectors.items():
            for index, anchor in enumerate(own):
                same = [float(anchor @ other) for position, other in enumerate(own) if position != index]
                different = [float(anchor @ other) for other_name, others in vectors.items() if other_name != name for other in others]
                for value in same:
                    right += sum(value > other for other in different)
                    total += len(different)
        return round(right / max(total, 1), 4)

    return {"subject_pairs_ranked_right": ranked(subjects, content_embedding),
            "style_pairs_ranked_right": ranked(styles, lambda image: style_embedding(embedder, image))}


def train_subjects(library: StyleLibrary, backbone, work: Path, steps: int | None) -> dict[str, list[Image.Image]]:
    photos = {}
    config = SubjectTrainingConfig() if steps is None else SubjectTrainingConfig(steps=steps, warmup_steps=min(steps, SubjectTrainingConfig().warmup_steps))
    for photo_id in SUBJECT_PHOTOS:
        name = photo_id.removeprefix("skimage-").replace("_", " ")
        paths = subject_photos(photo_id, work / photo_id)
        if not any(record.name == name for record in library.list_styles()):
            began = time.perf_counter()
            train_subject(library, backbone, SubjectRequest(name, paths, f"photos of the {name}"), config)
            print(f"trained subject {name} in {time.perf_counter() - began:.0f} s", flush=True)
        photos[name] = [Image.open(path).convert("RGB") for path in paths]
    return photos


def run(library_folder: Path, seeds: int, steps: int | None, timing_repeats: int) -> dict:
    backbone = load_backbone("embedded")
    embedder = OfflineStyleEmbedding()
    settings_of = lambda seed: SamplerSettings(seed=seed)  # noqa: E731
    with tempfile.TemporaryDirectory(prefix="atelier-fusion-bench-") as folder, StyleLibrary.open(library_folder) as library:
        subjects = train_subjects(library, backbone, Path(folder), steps)
        style_records = {name: library.get_style(name) for name in STYLES}
        style_references = {name: [Image.open(pair.after).convert("RGB") for pair in record.pairs] for name, record in style_records.items()}
        validation = validate_embeddings(subjects, style_references, embedder)
        style_targets = {name: np.mean([style_embedding(embedder, image) for image in images], axis=0)
                         for name, images in style_references.items()}
        subject_layers = {name: record_layers(library, library.get_style(name), backbone).layers for name in subjects}
        style_layers = {name: record_layers(library, record, backbone).layers for name, record in style_records.items()}
    scores: dict[str, dict[str, list[float]]] = {method: {"subject": [], "style": []} for method in METHODS}
    for subject_name, photos in subjects.items():
        photo_vectors = [content_embedding(photo) for photo in photos]
        for style_name in STYLES:
            for method in METHODS:
                plan = plan_fusion(backbone, subject_layers[subject_name], style_layers[style_name], FusionConfig(method=method))
                for seed in range(seeds):
                    image = render_fusion(backbone, plan, settings_of(seed)).image
                    target = style_targets[style_name]
                    scores[method]["subject"].append(max(float(content_embedding(image) @ vector) for vector in photo_vectors))
                    scores[method]["style"].append(float(style_embedding(embedder, image) @ target / max(np.linalg.norm(target), 1e-8)))
            print(f"scored {subject_name} x {style_name}", flush=True)
    table = {method: {"subject_similarity": round(statistics.mean(values["subject"]), 4),
                      "style_similarity": round(statistics.mean(values["style"]), 4),
                      "mean_of_both": round((statistics.mean(values["subject"]) + statistics.mean(values["style"])) / 2, 4)}
             for method, values in scores.items()}
    print(markdown({"methods": table}), flush=True)  # the scores are kept even if timing fails
    timing = time_methods(backbone, subject_layers, style_layers, timing_repeats)
    for method, seconds in timing.items():
        # Timing-only rows (K-LoRA recomputed per call as its code does) have no scores.
        row = table.setdefault(method, {})
        row["seconds_per_image"] = seconds
        row["ratio_to_single_lora"] = round(seconds / timing["subject"], 3)
    return {"subjects": list(subjects), "styles": list(STYLES), "seeds": seeds, "images_per_method": len(scores["est"]["style"]),
            "embedding_check": validation, "methods": table}


def time_methods(backbone, subject_layers: dict, style_layers: dict, repeats: int) -> dict[str, float]:
    """Median seconds per generated image per method (beta measured once per plan beforehand, as
    a page or a batch reuses it), the methods interleaved; also K-LoRA as its public code does
    (:mod:`benchmarks.fusion_baselines`)."""
    subject, style = subject_layers[next(iter(subject_layers))], style_layers[STYLES[0]]
    renders = {}
    for method in METHODS:
        plan = plan_fusion(backbone, subject, style, FusionConfig(method=method, beta=0.5 if method in ("est", "klora") else None))
        renders[method] = lambda settings, plan=plan: render_fusion(backbone, plan, settings)
    per_call = Baseline(FusionConfig(method="klora", beta=0.5), "per_call")
    per_call_plan = per_call.plan(backbone, subject, style)
    renders["klora per call (its code)"] = lambda settings: per_call.render(backbone, per_call_plan, settings)
    samples: dict[str, list[float]] = {name: [] for name in renders}
    for repeat in range(repeats + 1):
        for name, render_one in renders.items():
            began = time.perf_counter()
            with torch.inference_mode():
                render_one(SamplerSettings(seed=repeat))
            if repeat:  # the first round warms up
                samples[name].append(time.perf_counter() - began)
    return {name: round(statistics.median(values), 4) for name, values in samples.items()}


def markdown(report: dict) -> str:
    lines = ["| method | subject similarity | style similarity | mean of both | s per image | ratio to one LoRA |", "|---|---|---|---|---|---|"]

    def cell(row: dict, key: str, digits: int) -> str:
        return f"{row[key]:.{digits}f}" if key in row else "-"

    for method, row in report["methods"].items():
        lines.append(f"| {method} | {cell(row, 'subject_similarity', 4)} | {cell(row, 'style_similarity', 4)} | "
                     f"{cell(row, 'mean_of_both', 4)} | {cell(row, 'seconds_per_image', 3)} | {cell(row, 'ratio_to_single_lora', 3)} |")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--library", type=Path, default=None,
                        help="A copy of the shipped library to train the subjects into (default: a temporary copy).")
    parser.add_argument("--seeds", type=int, default=8, help="Seeds per subject and style.")
    parser.add_argument("--subject-steps", type=int, default=None, help="Subject training steps (default: the trainer's).")
    parser.add_argument("--timing-repeats", type=int, default=5, help="Interleaved timing rounds.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fusion_bench", description=__doc__.splitlines()[0])
    add_arguments(parser)
    add_out_argument(parser)
    return run_command(parser.parse_args(argv))


def run_command(arguments: argparse.Namespace) -> int:
    """Run the benchmark for parsed arguments (``python -m engine bench fusion`` calls this too)."""
    import shutil

    with tempfile.TemporaryDirectory(prefix="atelier-fusion-library-") as folder:
        library = arguments.library
        if library is None:
            library = Path(folder) / "library"
            shutil.copytree(REPO / "styles", library, ignore=shutil.ignore_patterns(".lock", "*.db-wal", "*.db-shm", "checkpoints"))
        report = run(library, arguments.seeds, arguments.subject_steps, arguments.timing_repeats)
    print(markdown(report))
    publish(report, arguments.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
