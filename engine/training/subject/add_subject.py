"""Training a subject LoRA from 3 to 10 photos into the style library: the call behind
``python -m engine subjects train``.

* The subject gets its own plain LoRA file (adapter kind ``'subject'``, which is how a subject's
  record is told from a style's), trained in generation mode (see
  :mod:`engine.training.subject.trainer`) and saved in the diffusers/peft layout, so diffusers'
  ``load_lora_weights`` and Atelier's ``read_lora_file`` both read it.
* Its photos are stored as the library stores a style's pairs, each photo as both the before and
  the after image of a ``'train'`` pair: every library invariant (checksums, zip export and
  import, recovery) then holds for subjects unchanged, at the cost of a second copy of 3 to 10
  photos.
* Checkpoints go to ``<library>/checkpoints/_subjects/<slug>``; running again with the same name
  and ``resume=True`` continues an interrupted run. (``_`` never occurs in a slug, so this folder
  cannot collide with a style's run folder, and the studio's list of interrupted style runs
  skips it.) A resumed run must use the same photos and settings, or it is refused.
* A cancelled or failed run leaves the library's styles and files as they were: nothing is
  published until the end, in one transaction.

What a default run costs and learns on the embedded model is in
docs/decisions/2026-11-24-subject-training-defaults.md. The embedded model's generation mode is
weak (its base samples are patchy textures), so a subject moves the colours and textures of its
samples towards the photos rather than drawing a recognisable subject.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from PIL import Image

from engine.core.configuration import to_dict
from engine.core.errors import InputError
from engine.core.files import write_text_atomic
from engine.library import AdapterSource, NewStyle, StyleLibrary, StyleRecord, slug, validate_style_name
from engine.library.records import MAX_DESCRIPTION_LENGTH, MAX_TRIGGER_LENGTH, check_text
from engine.models.backbones.base import Backbone
from engine.models.editing import generate_image
from engine.models.sampling.sampler import SamplerSettings
from engine.training.loop import ProgressCallback, TrainingProgress
from engine.training.subject.augment import centre_square, prepare_photos
from engine.training.subject.config import SubjectTrainingConfig
from engine.training.subject.generation import subject_prompt, takes_text
from engine.training.subject.lora import KIND, SubjectLora
from engine.training.subject.photos import SubjectPhoto, open_subject_photos
from engine.training.subject.trainer import SubjectTrainer

SUBJECT_CHECKPOINTS = Path("checkpoints") / "_subjects"
RESUME_FILE = "resume.json"
# Settings that change how often things happen, not the weights: a run may resume with others.
SCHEDULING_SETTINGS = ("checkpoint_every", "sample_every")


@dataclass
class SubjectRequest:
    """What the user gives for a new subject: ``photos`` is a folder, a zip, or photo files."""

    name: str
    photos: str | Path | Sequence[str | Path]
    description: str = ""
    trigger: str = ""


def subject_run_folder(library_root: Path, name: str) -> Path:
    """Where an unfinished run of subject ``name`` keeps its checkpoint."""
    return Path(library_root) / SUBJECT_CHECKPOINTS / slug(name)


def list_subjects(library: StyleLibrary) -> list[StyleRecord]:
    """The library's subjects (records whose adapter kind is ``'subject'``), by name."""
    return [record for record in library.list_styles() if record.adapter.kind == KIND]


def train_subject(library: StyleLibrary, backbone: Backbone, request: SubjectRequest, config: SubjectTrainingConfig | None = None,
                  callback: ProgressCallback | None = None, should_stop: Callable[[], bool] | None = None,
                  resume: bool = True) -> StyleRecord | None:
    """Train ``request`` into ``library``; returns its record, or ``None`` when cancelled.

    On a backbone with a text encoder an empty trigger means the subject's name. Everything the
    user gave is checked before training starts.
    """
    config = config or SubjectTrainingConfig()
    validate_style_name(request.name)
    check_text(request.description, "description", request.name, MAX_DESCRIPTION_LENGTH)
    trigger = check_text(request.trigger, "trigger", request.name, MAX_TRIGGER_LENGTH, one_line=True).strip()
    if not trigger and takes_text(backbone):
        trigger = request.name  # the documented default: the prompt needs some words to bind the subject to
    library.check_name_free(request.name, "the library already has a style or subject named {taken!r}; pick another name or delete it first")
    with open_subject_photos(request.photos) as photos:
        return _train(library, backbone, request, trigger, photos, config, callback, should_stop, resume)


def _train(library: StyleLibrary, backbone: Backbone, request: SubjectRequest, trigger: str, photos: list[SubjectPhoto],
           config: SubjectTrainingConfig, callback: ProgressCallback | None, should_stop: Callable[[], bool] | None,
           resume: bool) -> StyleRecord | None:
    prompt = subject_prompt(backbone, trigger)
    settings = {"training": to_dict(config), "photos": len(photos), "backbone": backbone.name, "prompt": prompt,
                "trigger": trigger}
    run_folder = _prepare_run_folder(library, request.name, settings, [photo.sha256 for photo in photos], resume)
    lora = SubjectLora(backbone, config.rank, config.alpha, config.targets, seed=config.seed)
    run_id = None
    try:
        run_id = library.begin_run("subject", [request.name], settings)
        trainer = SubjectTrainer(backbone, lora, prepare_photos([photo.image for photo in photos], backbone.native_resolution,
                                                                config.min_crop), config, prompt)
        side = backbone.native_resolution
        reference = centre_square(photos[0].image, side)

        def sample() -> Image.Image:
            return generate_image(backbone, (side, side), SamplerSettings(seed=config.seed), prompt=prompt)

        def report(progress: TrainingProgress) -> None:
            if progress.step % 25 == 0 or progress.step == progress.total:
                library.append_log(run_id, f"step {progress.step}/{progress.total} loss {progress.loss:.4f}\n")
            if callback is not None:
                callback(progress)

        with lora.disabled():
            base_loss = trainer.evaluation_loss()
        history = trainer.train(run_folder, report, lambda: _diptych(reference, sample()), should_stop)
        if history["stopped_at"] is not None:
            library.finish_run(run_id, "cancelled", {"stopped_at": history["stopped_at"]})
            return None
        recent = history["losses"][-10:]
        metrics = {"photos": len(photos), "flow_loss": round(trainer.evaluation_loss(), 5), "base_flow_loss": round(base_loss, 5),
                   "final_loss": round(sum(recent) / len(recent), 5) if recent else None,
                   "rank": config.rank, "layers": len(lora.layers)}
        new_subject = NewStyle(request.name, request.description, trigger,
                               [(photo.path, photo.path, "train") for photo in photos],
                               expert_key=None, metrics=metrics, thumbnail=sample())
        with tempfile.TemporaryDirectory(prefix="atelier-subject-") as folder:
            path = lora.save(Path(folder) / "adapter.safetensors", title=request.name, trigger=trigger,
                             description=request.description, training_settings=settings)
            source = AdapterSource(path, KIND, backbone.name, {"rank": config.rank, "layers": len(lora.layers), "prompt": prompt})
            record = library.publish_styles([new_subject], source, run_id)[0]
        library.finish_run(run_id, "finished", metrics)
        shutil.rmtree(run_folder, ignore_errors=True)
        return library.get_style(record.name)  # read again, so its run shows as finished
    except BaseException:
        if run_id is not None:
            library.finish_run(run_id, "failed", None)
        raise
    finally:
        lora.remove()


def _prepare_run_folder(library: StyleLibrary, name: str, settings: dict, photo_digests: list[str], resume: bool) -> Path:
    """The run folder, with ``resume.json`` recording what the run trains on.

    Raises:
        InputError: when resuming a run that trained on other photos or settings.
    """
    run_folder = subject_run_folder(library.root, name)
    resume_file = run_folder / RESUME_FILE
    if not resume and run_folder.exists():
        shutil.rmtree(run_folder)
    fingerprint = {"settings": _weight_settings(settings), "photos": photo_digests}
    if resume_file.is_file():
        try:
            saved = json.loads(resume_file.read_text())
        except json.JSONDecodeError as error:
            raise InputError(f"{resume_file} is damaged ({error.msg}); start over without resuming") from error
        if saved != fingerprint:
            raise InputError(f"the interrupted run of {name!r} in {run_folder} trained on other photos or settings; "
                             "give the same ones to resume it, or start over without resuming (--no-resume)")
    run_folder.mkdir(parents=True, exist_ok=True)
    write_text_atomic(resume_file, json.dumps(fingerprint))
    return run_folder


def _weight_settings(settings: dict) -> dict:
    training = {key: value for key, value in settings["training"].items() if key not in SCHEDULING_SETTINGS}
    return {**settings, "training": training}


def _diptych(reference: Image.Image, sample: Image.Image) -> Image.Image:
    """A training photo beside the current sample, for the preview."""
    sheet = Image.new("RGB", (reference.width + sample.width, max(reference.height, sample.height)), "white")
    sheet.paste(reference, (0, 0))
    sheet.paste(sample.convert("RGB"), (reference.width, 0))
    return sheet
