"""Training a new style into the library's shared MoE LoRA: the call behind ``python -m engine
train`` and the studio's Train button.

* The first style on a backbone creates the shared adapter and trains its shared experts too.
* A later style gets its own expert and router entry, trained with everything else frozen, so
  the styles already there edit exactly as before (their held-out PSNR moves by 0 dB).
* With four or more pairs the last one is held out for previews and metrics.
* The style's full-size render settings are chosen on its pairs at their own resolution
  (:func:`engine.rendering.render_choice.choose_render`, held-out pairs when there are any; none
  when every pair is at the working size),
  reusing the edits the metrics make, and stored with the style.
* Checkpoints go to ``<library>/checkpoints/<slug>``; running again with the same name and
  ``resume=True`` continues an interrupted run. A cancelled or failed run leaves the library as
  it was (nothing is published until the end).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import torch
from PIL import Image

from engine.adapters.moe.adapter import MoELoraAdapter, new_expert_key
from engine.adapters.moe.config import MoELoraConfig
from engine.core.configuration import to_dict
from engine.core.errors import InputError
from engine.core.files import write_text_atomic
from engine.library import AdapterSource, NewStyle, StyleLibrary, StyleRecord, slug
from engine.metrics.image_quality import psnr
from engine.models.backbones.base import Backbone
from engine.models.editing import edit_photo
from engine.models.sampling.sampler import SamplerSettings
from engine.rendering.render_choice import STEP_CANDIDATES, RenderChoice, choose_render
from engine.training.loop import ProgressCallback
from engine.training.pairs import Pair, read_pairs
from engine.training.style_data import prepare_style
from engine.training.style_evaluation import evaluate_on_pairs
from engine.training.style_trainer import StyleTrainer, StyleTrainingConfig

HOLDOUT_FROM = 4


@dataclass
class StyleRequest:
    """What the user gives for a new style."""

    name: str
    pairs: str | Path | list[Pair]
    description: str = ""
    trigger: str = ""


def shared_moe_style(library: StyleLibrary, backbone: Backbone) -> StyleRecord | None:
    """A style that sits on the library's shared MoE adapter for ``backbone``, if any."""
    for record in library.list_styles():
        if record.adapter.kind == "moe" and record.backbone == backbone.name:
            return record
    return None


def _triptych(before: Image.Image, middle: Image.Image, after: Image.Image) -> Image.Image:
    size = middle.size
    sheet = Image.new("RGB", (3 * size[0], size[1]), "white")
    for index, image in enumerate((before, middle, after)):
        sheet.paste(image.convert("RGB").resize(size), (index * size[0], 0))
    return sheet


def train_style(library: StyleLibrary, backbone: Backbone, request: StyleRequest, config: StyleTrainingConfig | None = None,
                moe: MoELoraConfig | None = None, callback: ProgressCallback | None = None,
                should_stop: Callable[[], bool] | None = None, resume: bool = True) -> StyleRecord | None:
    """Train ``request`` into ``library``; returns its record, or ``None`` when cancelled."""
    config = config or StyleTrainingConfig()
    run_folder = library.root / "checkpoints" / slug(request.name)
    resume_file = run_folder / "resume.json"
    published = _published_by(library, request.name, resume_file) if resume else None
    if published is not None:
        # A run killed after its publish committed but before it removed its folder: it is done.
        shutil.rmtree(run_folder, ignore_errors=True)
        return published
    library.check_name_free(request.name, "a style named {name!r} already exists; pick another name or delete it first")
    pairs = request.pairs if isinstance(request.pairs, list) else read_pairs(request.pairs)
    training_pairs, holdout = (pairs[:-1], pairs[-1:]) if len(pairs) >= HOLDOUT_FROM else (pairs, [])
    if not resume and run_folder.exists():
        shutil.rmtree(run_folder)
    key = json.loads(resume_file.read_text())["expert_key"] if resume_file.is_file() else new_expert_key()

    existing = shared_moe_style(library, backbone)
    with _seeded(config.seed):  # a new adapter's random start, so a run restarted before its first checkpoint repeats it
        adapter = MoELoraAdapter.load(library.adapter_path(existing), backbone) if existing else MoELoraAdapter(backbone, moe or MoELoraConfig())
    settings = {"training": to_dict(config), "moe": to_dict(adapter.config), "pairs": len(pairs), "holdout": len(holdout),
                "backbone": backbone.name, "joined_existing_adapter": existing is not None}
    run_folder.mkdir(parents=True, exist_ok=True)
    write_text_atomic(resume_file, json.dumps({"expert_key": key, "settings": settings}))
    run_id = library.begin_run("train", [request.name], settings)
    try:
        with _seeded(config.seed + 1):
            adapter.add_style(key)
        style = prepare_style(backbone, key, request.name, training_pairs, config.crop_margin, config.training_scale)
        trainer = StyleTrainer(backbone, adapter, [style], config, train_shared=existing is None)
        preview_pair = (holdout or training_pairs)[0]

        def preview() -> Image.Image:
            adapter.route({key: 1.0})
            edited = edit_photo(backbone, preview_pair.before, SamplerSettings())
            return _triptych(preview_pair.before, edited, preview_pair.after)

        def report(progress):
            if progress.step % 25 == 0 or progress.step == progress.total:
                library.append_log(run_id, f"step {progress.step}/{progress.total} loss {progress.loss:.4f}\n")
            if callback is not None:
                callback(progress)

        history = trainer.train(run_folder, report, preview, should_stop)
        if history["stopped_at"] is not None:
            library.finish_run(run_id, "cancelled", {"stopped_at": history["stopped_at"]})
            return None
        metrics, render = _measure(backbone, adapter, key, training_pairs, holdout)
        metrics["final_loss"] = round(sum(history["losses"][-10:]) / max(1, len(history["losses"][-10:])), 5)
        adapter.route({key: 1.0})
        thumbnail = edit_photo(backbone, preview_pair.before, SamplerSettings())
        new_style = NewStyle(request.name, request.description, request.trigger,
                             [(pair.before_path, pair.after_path, "train") for pair in training_pairs]
                             + [(pair.before_path, pair.after_path, "holdout") for pair in holdout],
                             expert_key=key, metrics=metrics, thumbnail=thumbnail, render=render)
        with tempfile.TemporaryDirectory(prefix="atelier-adapter-") as folder:
            path = Path(folder) / "adapter.safetensors"
            adapter.clear_routing()
            adapter.save(path)
            source = AdapterSource(path, "moe", backbone.name, {"styles": len(adapter.style_keys)})
            if existing is None:
                record = library.publish_styles([new_style], source, run_id)[0]
            else:
                records = library.replace_adapter(existing.adapter.id, source, [new_style], run_id=run_id)
                record = next(item for item in records if item.name == request.name)
        library.finish_run(run_id, "finished", metrics)
        shutil.rmtree(run_folder, ignore_errors=True)
        return record
    except BaseException:
        library.finish_run(run_id, "failed", None)
        raise
    finally:
        adapter.remove()


def _published_by(library: StyleLibrary, name: str, resume_file: Path) -> StyleRecord | None:
    """The style ``name`` when the run whose ``resume.json`` this is published it (same expert key)."""
    if not resume_file.is_file():
        return None
    try:
        key = json.loads(resume_file.read_text())["expert_key"]
        record = library.get_style(name)
    except (InputError, OSError, ValueError, KeyError, TypeError):
        return None
    return record if record.expert_key == key else None


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Torch's global random numbers seeded with ``seed`` inside, restored after."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def _measure(backbone: Backbone, adapter: MoELoraAdapter, key: str, training_pairs: list[Pair],
             holdout: list[Pair]) -> tuple[dict, RenderChoice]:
    """PSNR/SSIM with the style, and of the unadapted base, on training and held-out pairs; and
    the render choice, made from the same styled edits (each pair is edited once per step count the
    choice compares, :data:`~engine.rendering.render_choice.STEP_CANDIDATES`; the metrics use the
    model's default steps)."""
    metrics = {}
    edits: dict[tuple[int, int], Image.Image] = {}  # (id(before), steps) -> the styled working-size edit
    chosen_on = "holdout" if holdout else "train"  # the split choose_render measures on

    def styled_edit(photo: Image.Image, for_choice: bool) -> Image.Image:
        edits[id(photo), 0] = result = edit_photo(backbone, photo, SamplerSettings())
        if for_choice and result.size != photo.size:  # the choice leaves working-size pairs out
            for steps in STEP_CANDIDATES[1:]:  # made here, while the style is folded in
                edits[id(photo), steps] = edit_photo(backbone, photo, SamplerSettings(steps=steps))
        return result

    for label, pairs in (("train", training_pairs), ("holdout", holdout)):
        if not pairs:
            continue
        images = [(pair.before, pair.after) for pair in pairs]
        adapter.route({key: 1.0})
        with adapter.folded({key: 1.0}):
            styled = evaluate_on_pairs(backbone, images, edit=lambda photo: styled_edit(photo, label == chosen_on))
        adapter.clear_routing()
        base = evaluate_on_pairs(backbone, images)
        metrics[label] = {"psnr": styled["psnr"], "ssim": styled["ssim"], "base_psnr": base["psnr"],
                          "identity_psnr": styled["identity_psnr"], "identity_ssim": styled["identity_ssim"]}
    render = choose_render(lambda photo, steps: edits[id(photo), steps], [(pair.before, pair.after) for pair in training_pairs],
                           [(pair.before, pair.after) for pair in holdout], score=psnr)
    return metrics, render
