"""Writing ``assets/base/MODEL_CARD.md`` from a pretraining run's facts and measurements.

Every number in the card comes from ``facts`` (the run) or ``metrics``
(:func:`engine.training.base_eval.evaluate_base`); the prose around them is fixed here.
"""

from __future__ import annotations

from pathlib import Path

from engine.core.files import write_text_atomic
from engine.training.schedules import steps_run

HISTORY_FILE = "history.json"

DESIGN = """\
## Design, and why

Chosen by measurement on the 2-core CPU these machines have (figures: `BENCHMARKS.md`,
`python -m benchmarks.backbone_choices`).

- **Architecture.** diffusers' `FluxTransformer2DModel`, so module names are FLUX.1 Kontext's
  (`transformer_blocks.N.attn.to_q`, `single_transformer_blocks.N.proj_mlp`, ...) and adapters,
  fusion and LoRA export are the same code for both backbones.
- **Representation: pixel space, 8x8 packed patches.** No VAE to train or run; a patch is one
  token, so a 128x128 image is 256 tokens of 192 values. A latent space would need an
  autoencoder whose own reconstruction error bounds every edit; at this size pixels are cheaper
  and exact.
- **Conditioning: source in channels.** The noisy patch and the source patch are concatenated
  per token (384 inputs). Kontext puts source tokens in the sequence instead; that doubles the
  tokens, and measured here costs about twice the time per forward pass for the same width.
- **Residual x-prediction.** The transformer predicts the clean image as a residual over the
  source, `x0 = source + f(...)`, with `proj_out` zero-initialised; the sampler still receives a
  velocity `v = (x_t - x0) / t` (the backbone contract). An untrained model is an exact identity
  editor, and fidelity to the source, which bounds every style trained on top, is high.
- **Instructions, not text.** Learned token sequences stand where FLUX takes T5 tokens (and a
  pooled vector where it takes CLIP's): `identity`, `generate` and ten generic edits.
- **Modes.** Edit (a source photo) and generation (no source: zero source channels and the
  `generate` instruction); subject LoRAs use generation.
- **Resolution.** 128x128 pixels of area; any aspect ratio whose sides are multiples of 8
  (RoPE positions make any grid valid), trained on five aspect-ratio buckets.
"""

VERSION_DESIGN = {
    "pixel_head_channels": """\
- **Version 2: no fixed patch grid.** A token that maps linearly to its own 8x8 block cannot mix
  pixels across block borders, so version 1's errors stepped at every border. Version 2
  unpatchifies 8 channels per pixel into a convolutional pixel head (two 3x3 convolutions over
  them, the noisy image and the source) and trains with the patch grid moved by a random 0-7 px
  per step. What each change bought: `python -m benchmarks.base_v2_ablation`,
  `docs/decisions/2026-12-04-embedded-v2.md`.
""",
    "detail_bands": """\
- **Version 3: detail bands.** Besides its colour residual the transformer sets a gain per pixel on
  three difference-of-Gaussians bands of the source (sigma 1, 2, 4; times `detail_gain_scale`), so
  blur, sharpen and smoothing need not pass the source's fine detail through the tokens
  (`engine/models/backbones/embedded/detail_bands.py`, `docs/decisions/2026-12-07-detail-band-head.md`).
""",
    "detail_guides": """\
- **Version 4: guided band gains.** Each band's gains are split into a whole-band and a dark-side
  gain, each with a part that grows with the band's local energy, a guide computed per pixel from
  the source, so a gain can differ between a patch's flat and edge pixels; a style then needs a few
  numbers that are the same everywhere (`docs/decisions/2026-12-07-guided-detail-gains.md`).
""",
    "generation_grid_shift": """\
- **A moving grid in generation.** With no photo to anchor it, a patch grid that stays in place
  draws a mosaic of squares; a generation moves it by a different 0-7 px offset at every step
  (edits keep it still, so an identity edit stays exact). Version 4 ships with it switched on and
  no training for it; version 5 was trained with the grid moved by a random offset per step, on
  the Debian photo pool besides the shared photos (`docs/decisions/2026-12-07-version-5.md`).
""",
}
GROWTH = """\
- **Growth.** Each version starts from the one before, grown so that it computes exactly what that
  model did (new blocks' gates and new output rows at zero; `engine/training/model_growth.py`), and
  is trained on from there; the history table below gives each run.
"""


def design(model: dict) -> str:
    """The design section: the common choices, then those of the model's version features."""
    extra = "".join(text for key, text in VERSION_DESIGN.items() if model.get(key))
    return DESIGN + extra + (GROWTH if extra else "")


def steps_taken(config: dict) -> str:
    """The run's steps, and the schedule's length when the run stopped early (``stop_at``)."""
    if config.get("stop_at"):
        return f"{steps_run(config['steps'], config['stop_at'])} of a {config['steps']}-step schedule (stopped early)"
    return str(config["steps"])


def _training(config: dict) -> str:
    if config["steps"] == 0:
        return (f"Not trained further: `{config['init_from']}` grown into this version, so its new outputs start at zero "
                "and every measurement below is that model's; a style trained on top is what moves them.")
    return (f"Loss: rectified-flow matching on the velocity, logit-normal timesteps; AdamW at\n{config['learning_rate']} "
            f"with {config['warmup_steps']} warm-up steps and cosine decay. Shipped\nweights: {config.get('shipped_weights', 'ema')} "
            f"(an EMA of decay {config['ema_decay']} is tracked too; over a run this short\nit lags behind the optimizer's weights).")


def _restoration(model: dict) -> str:
    if not model.get("restoration_edits"):
        return ""
    return (" Version 3 adds `denoise`, a restoration: the source is the photo with Gaussian noise\n"
            "(sigma 0.02-0.10), the target the photo (`engine/training/restoration_edits.py`).")


SUMMARY_KEYS = ("version", "parameters", "steps", "wall_min", "photos", "identity_db", "generic_above_unedited",
                "generation_frechet", "generation_schedule", "generation_blockiness", "generic_blockiness")


def summary_row(facts: dict, metrics: dict) -> dict:
    """One history row of a model: its run and its headline measurements."""
    config = facts["pretrain"]
    edits = metrics["generic_edits"].values()
    blocks = metrics.get("blockiness", {})
    return {"version": facts.get("model", {}).get("version", 1), "parameters": facts["parameters"], "steps": steps_run(config["steps"], config.get("stop_at", 0)),
            "wall_min": round(facts["pretrain_wall_time_s"] / 60, 1), "photos": facts.get("training_photos", 72),
            "identity_db": metrics["identity_psnr_fp32"]["mean"],
            "generic_above_unedited": f"{sum(e['model_psnr'] > e['unedited_psnr'] for e in edits)} of {len(edits)}",
            "generation_frechet": metrics["generation_colour_frechet"]["generated_vs_held_out"],
            "generation_schedule": generation_schedule(metrics),
            "generation_blockiness": blocks.get("generated", "-"), "generic_blockiness": blocks.get("generic_edits", "-")}


def generation_schedule(metrics: dict) -> str:
    """The schedule a model's generations were measured with, in words ("8 steps, shift 1");
    models measured before the schedule was recorded used their edit steps, unshifted."""
    generation = metrics["generation_colour_frechet"]
    return f"{generation.get('steps', metrics['default_steps'])} steps, shift {generation.get('shift', 1.0):g}"


def history_table(rows: list[dict]) -> str:
    header = "| " + " | ".join(SUMMARY_KEYS) + " |\n|" + "---|" * len(SUMMARY_KEYS)
    return header + "\n" + "\n".join("| " + " | ".join(str(row.get(key, "-")) for key in SUMMARY_KEYS) + " |" for row in rows)


def _table(rows: list[tuple[str, str]]) -> str:
    return "| | |\n|---|---|\n" + "\n".join(f"| {key} | {value} |" for key, value in rows)


def _extra_photos(config: dict, facts: dict) -> str:
    if not config.get("extra_photos"):
        return ""
    return (", plus the photos of Debian packages that `python -m engine.training.photo_download` fetches "
            "(each image's package and licence: `pretrain-photos.csv`, counts: `PRETRAIN_PHOTOS.md`)")


def _generation_limit(generation: dict) -> str:
    """What the generation row says in words: where the samples' colour distance lies between a
    perfect generator's (training crops) and a failing one's (grey noise)."""
    perfect, failing = generation["training_photos_vs_held_out"], generation["grey_noise_vs_held_out"]
    share = (generation["generated_vs_held_out"] - perfect) / max(failing - perfect, 1e-9)
    if share > 0.5:
        return (f"Generation does not draw pictures yet: its samples' colour distance is {share:.0%} of the way "
                "from photo crops' to grey noise's (table above).")
    return (f"Generation does not draw pictures yet: its samples' colours are {share:.0%} of the way from photo crops' "
            "to grey noise's (table above), but they are textured colour fields, not objects or scenes.")


def write_model_card(folder: Path, facts: dict, metrics: dict, history: list[dict] | None = None) -> None:
    """Render the card; ``history`` holds earlier models' :func:`summary_row` rows, oldest first."""
    config = facts["pretrain"]
    rows = [*(history or []), summary_row(facts, metrics)]
    identity32, identity16 = metrics["identity_psnr_fp32"], metrics["identity_psnr_bf16"]
    generation = metrics["generation_colour_frechet"]
    edit_rows = "\n".join(
        f"| {name} | {values['model_psnr']} | {values['unedited_psnr']} |" for name, values in metrics["generic_edits"].items()
    )
    text = f"""# Atelier embedded base model

A small image-editing diffusion transformer that Atelier trains itself and ships, so the studio
works out of the box on a CPU with no download. Files: `model.safetensors` (weights),
`config.json` (architecture and training settings), `metrics.json` (the numbers below).

{_table([
    ("Architecture", "FLUX DiT (diffusers FluxTransformer2DModel), pixel space, 8x8 patches, source in channels"),
    ("Parameters", f"{facts['parameters']:,}"),
    ("Preset", config["preset"]),
    ("Training steps", f"{steps_taken(config)} at batch {config['batch_size']}"
                       + (f", continuing `{config['init_from']}`" if config.get("init_from") else "")),
    ("Training wall time", f"{facts['pretrain_wall_time_s'] / 60:.1f} min on a 2-core CPU machine, shared with other work"),
    ("Seed", str(config["seed"])),
])}

{design(facts.get("model", {}))}
## Data

The 73 images of `../shared/photos` (wallpapers and photos from six Debian packages; authors and
licences in `../shared/photos/licenses`) and nine scikit-image photos{_extra_photos(config, facts)}. Every
eighth photo of the first two sets by sorted name is held out, and no image named in
`../shared/holdout.txt` is ever loaded: {", ".join(metrics["held_out_photos"])}. Crops take a random 35-100 % scale, position and
horizontal flip, resized with antialiasing to an aspect-ratio bucket of about 128x128 pixels.

Tasks: identity edits ({config['identity_fraction']:.0%}), generation with no source
({config['generate_fraction']:.0%}), and ten generic edits selected by instruction (the rest):
brighter, darker, more/less contrast, warmer, cooler, more saturated, grey, blur, sharpen. No
line, cartoon, posterise, sepia, paint, pixel-art, halftone or emboss effect is used, so the
benchmark styles are new to the model.{_restoration(facts.get("model", {}))}

{_training(config)}

## Measured quality (held-out photos, native resolution, {metrics['default_steps']} Euler steps, standard starting noise)

Identity edits, PSNR against the photo:

| precision | mean PSNR (dB) | worst photo (dB) | seconds per edit (during the run) |
|---|---|---|---|
| fp32 | {identity32['mean']} | {identity32['min']} | {identity32['seconds_per_edit']} |
| bf16 | {identity16['mean']} | {identity16['min']} | {identity16['seconds_per_edit']} |

Generic edits, mean PSNR against the exact edit (and of the unedited photo, for scale):

| instruction | model (dB) | unedited photo (dB) |
|---|---|---|
{edit_rows}

Generation with no source: a Fréchet distance between Gaussian fits of nine colour statistics
(RGB means and deviations, saturation, luma percentiles) of {generation['samples']} generated
images ({generation_schedule(metrics)}: the model's generation schedule, `generation_steps` and
`generation_shift` in `config.json`, chosen by `python -m benchmarks.generation_schedule`) and of
held-out photo crops. Lower is closer to photos.

| set compared with held-out photos | colour Fréchet distance |
|---|---|
| generated images | {generation['generated_vs_held_out']} |
| training-photo crops (a perfect generator) | {generation['training_photos_vs_held_out']} |
| grey noise (a failing generator) | {generation['grey_noise_vs_held_out']} |

Reproduce: `python -m engine.training.pretrain` with the settings in `config.json`.

## History

Each shipped model's run and headline numbers, measured alike (the last row is this model;
`generic_above_unedited` counts instructions whose PSNR beats the unedited photo):

{history_table(rows)}

## Limits

128 px is small: use it for looks and colour, not detail. {_generation_limit(generation)}
Generation exists for subject LoRAs. Trained on
{facts.get('training_photos', 72)} images. An instruction whose row above shows no gain over the
unedited photo is not learned at this training length. Identity fidelity, which bounds every
style trained on top, is what the recipe optimises first.

Edits start from zero noise by default (`edit_noise_scale` 0 in `config.json`;
`SamplerSettings.noise_scale` overrides it): the Euler walk then starts from the noise's mean,
every edit is the same for every seed, and the identity and instruction edits above
score higher than with standard noise (`python -m benchmarks.noise_scale`, BENCHMARKS.md).
Generation always draws standard noise.
"""
    write_text_atomic(folder / "MODEL_CARD.md", text)


def main() -> None:
    """Re-render the card from a model folder's ``config.json`` and ``metrics.json`` (no retraining)."""
    import argparse
    import json

    from engine.models.backbones.embedded.backbone import ASSETS

    parser = argparse.ArgumentParser(prog="python -m engine.training.model_card", description=main.__doc__)
    parser.add_argument("folder", nargs="?", default=str(ASSETS))
    folder = Path(parser.parse_args().folder)
    config = json.loads((folder / "config.json").read_text())
    history = json.loads((folder / HISTORY_FILE).read_text()) if (folder / HISTORY_FILE).is_file() else []
    write_model_card(folder, config, json.loads((folder / "metrics.json").read_text()), history)


if __name__ == "__main__":
    main()
