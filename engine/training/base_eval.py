"""Measuring the embedded base model for its model card.

* Identity fidelity: held-out photos, each resized to the model's working size for its aspect
  ratio, edited with the empty (identity) instruction at the default steps; PSNR against the
  resized photo, in fp32 and bf16.
* Generic edits: PSNR of each instruction's result against the exact edit, on held-out photos;
  restoration edits (version 3): PSNR of the restored photo against the clean one.
* Generation: colour statistics of generated images against held-out photos, as a Fréchet
  distance (:func:`engine.metrics.image_quality.frechet_distance`), beside two references: training
  photos (what a perfect generator scores) and flat mid-grey-noise images (a failing one).
* Blockiness (:func:`engine.metrics.blockiness.blockiness`, the patch grid's visibility) of the
  identity edits, the generic edits and the generated samples, beside the photos' own.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from engine.metrics.blockiness import blockiness
from engine.metrics.image_quality import colour_features, frechet_distance, psnr
from engine.models.backbones.embedded.backbone import EmbeddedBackbone
from engine.models.backbones.embedded.instructions import GENERIC_EDITS, RESTORATION_EDITS
from engine.models.sampling.sampler import SamplerSettings, sample
from engine.training.generic_edits import GENERIC_EDIT_FUNCTIONS
from engine.training.photo_pool import CropSampler, buckets, fit_photo, load_photos, split
from engine.training.restoration_edits import EVALUATION_SIGMA, RESTORATION_DEGRADATIONS

GENERATION_SEEDS = 24


def run_edit(backbone: EmbeddedBackbone, photo: torch.Tensor, prompt: str, seed: int = 0,
             noise_scale: float = 1.0) -> torch.Tensor:
    """Edit ``(1, 3, H, W)`` in ``[0, 1]``; returns the same shape in ``[0, 1]``.

    Standard noise by default, as the model was trained: the card reports the model itself; the
    default edit (zero noise) is measured beside it by :mod:`benchmarks.noise_scale`."""
    source = backbone.encode(photo * 2 - 1)
    settings = SamplerSettings(seed=seed, noise_scale=noise_scale)
    latents = sample(backbone, backbone.encode_prompt([prompt]), source.shape, settings, source=source)
    return ((backbone.decode(latents) + 1) / 2).clamp(0, 1)


def evaluate_base(backbone: EmbeddedBackbone, photo_folder: Path) -> dict:
    """All model-card measurements, as a JSON-ready dict."""
    photos = load_photos(photo_folder)
    train_names, held_out = split(list(photos))
    held = {}
    for name in held_out:
        height, width = photos[name].shape[:2]
        held[name] = fit_photo(photos[name], backbone.fit_size(width, height))
    metrics: dict = {"held_out_photos": held_out, "default_steps": backbone.default_steps}

    for label, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        backbone.transformer.to(dtype)
        began = time.perf_counter()
        results = [run_edit(backbone, photo, "") for photo in held.values()]
        seconds = (time.perf_counter() - began) / len(results)
        scores = [psnr(result, photo).item() for result, photo in zip(results, held.values())]
        metrics[f"identity_psnr_{label}"] = {"mean": round(sum(scores) / len(scores), 2), "min": round(min(scores), 2),
                                            "seconds_per_edit": round(seconds, 3)}
        if label == "fp32":
            metrics["blockiness"] = {"photos": mean_blockiness(list(held.values()), backbone),
                                     "identity_edits": mean_blockiness(results, backbone)}
    backbone.transformer.to(torch.float32)

    edits, edited = {}, []
    for instruction in GENERIC_EDITS:
        model_scores, unedited_scores = [], []
        for photo in held.values():
            truth = GENERIC_EDIT_FUNCTIONS[instruction](photo)
            edited.append(run_edit(backbone, photo, instruction))
            model_scores.append(psnr(edited[-1], truth).item())
            unedited_scores.append(psnr(photo, truth).item())
        edits[instruction] = edit_scores(model_scores, unedited_scores)
    if backbone.config.restoration_edits:
        for instruction in RESTORATION_EDITS:
            model_scores, unedited_scores = [], []
            for index, photo in enumerate(held.values()):
                degraded = RESTORATION_DEGRADATIONS[instruction](photo, torch.Generator().manual_seed(index), EVALUATION_SIGMA)
                model_scores.append(psnr(run_edit(backbone, degraded, instruction), photo).item())
                unedited_scores.append(psnr(degraded, photo).item())
            edits[instruction] = edit_scores(model_scores, unedited_scores)
    metrics["generic_edits"] = edits
    metrics["blockiness"]["generic_edits"] = mean_blockiness(edited, backbone)

    generation, generated, held_crops = score_generation(backbone, photos, train_names, held_out, GENERATION_SEEDS)
    metrics["generation_colour_frechet"] = generation
    metrics["blockiness"]["generated"] = mean_blockiness(generated, backbone)
    metrics["blockiness"]["held_out_crops"] = mean_blockiness(list(held_crops[:, None]), backbone)
    metrics["buckets"] = buckets(backbone.native_resolution, backbone.resolution_multiple)
    return metrics


def edit_scores(model_scores: list[float], unedited_scores: list[float]) -> dict:
    """The card's row of an edit: mean PSNR of the model's results and of the unedited photos."""
    return {"model_psnr": round(sum(model_scores) / len(model_scores), 2),
            "unedited_psnr": round(sum(unedited_scores) / len(unedited_scores), 2)}


def generate_samples(backbone: EmbeddedBackbone, seeds: int, steps: int = 0) -> list[torch.Tensor]:
    """``seeds`` generations (no source) at the native resolution, seeds ``0..seeds-1``, each
    ``(1, 3, N, N)`` in ``[0, 1]``, with the backbone's generation schedule (``steps`` 0: its default)."""
    size = backbone.native_resolution
    samples = []
    for seed in range(seeds):
        latents = sample(backbone, backbone.encode_prompt([""]), torch.Size((1, 3, size, size)), SamplerSettings(seed=seed, steps=steps))
        samples.append(((backbone.decode(latents) + 1) / 2).clamp(0, 1))
    return samples


def score_generation(backbone: EmbeddedBackbone, photos: dict, train_names: list[str], held_out: list[str], seeds: int,
                     steps: int = 0) -> tuple[dict, list[torch.Tensor], torch.Tensor]:
    """The colour Fréchet distance of ``seeds`` generated samples to as many held-out photo crops,
    beside training-photo crops (a perfect generator) and grey noise (a failing one); returns the
    scores, the samples ``[(1, 3, N, N)]`` and the held-out crops ``(seeds, 3, N, N)``. The
    schedule used is part of the scores."""
    generated = generate_samples(backbone, seeds, steps)
    size = (backbone.native_resolution, backbone.native_resolution)
    generator = torch.Generator().manual_seed(0)
    held_crops = CropSampler.from_arrays([photos[n] for n in held_out]).batch(size, seeds, generator)
    train_crops = CropSampler.from_arrays([photos[n] for n in train_names]).batch(size, seeds, generator)
    noise = (0.5 + 0.1 * torch.randn(seeds, 3, size[1], size[0], generator=generator)).clamp(0, 1)
    held_features = colour_features(held_crops)
    scores = {
        "generated_vs_held_out": round(frechet_distance(colour_features(torch.cat(generated)), held_features), 4),
        "training_photos_vs_held_out": round(frechet_distance(colour_features(train_crops), held_features), 4),
        "grey_noise_vs_held_out": round(frechet_distance(colour_features(noise), held_features), 4),
        "samples": seeds,
        "steps": steps or backbone.steps_for(edit=False),
        "shift": backbone.make_scheduler(edit=False).config.shift,
    }
    return scores, generated, held_crops


def mean_blockiness(images: list[torch.Tensor], backbone: EmbeddedBackbone) -> float:
    """Mean blockiness of ``(1, 3, H, W)`` images at the model's patch period."""
    values = [blockiness(image, period=backbone.resolution_multiple).item() for image in images]
    return round(sum(values) / len(values), 4)
