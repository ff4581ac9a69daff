"""Subject LoRAs: training in generation mode changes what the model generates and lowers the
loss; the saved file is a standard LoRA that reproduces the trained peft model (Atelier's reader
and diffusers' ``load_lora_weights``); cancel, failure and bad input leave the library as it was;
a resumed run ends where an uninterrupted one does."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import FluxKontextPipeline
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file
from subject_fixtures import has_peft_layers, library_files, tiny_backbone, write_photos

from engine.adapters.lora.files import read_lora_file
from engine.adapters.lora.patch import applied_lora
from engine.core.errors import ConfigError, InputError
from engine.library import StyleLibrary, export_style_zip, import_style_zip
from engine.models.backbones.kontext import KontextBackbone
from engine.models.editing import generate_image
from engine.models.sampling.sampler import SamplerSettings
from engine.training.subject import SubjectRequest, SubjectTrainingConfig, generate_subject, list_subjects, train_subject
from engine.training.subject.augment import prepare_photos, sample_crops
from engine.training.subject.config import preset
from engine.training.subject.lora import SubjectLora
from engine.training.subject.trainer import SubjectTrainer
from tests.models.backbones.kontext_fixtures import TINY_SEQUENCE_LENGTH, tiny_kontext_folder  # noqa: F401 - fixture

pytestmark = pytest.mark.timeout(240)
SIDE = 32  # the tiny models' native square


@pytest.fixture
def library(tmp_path: Path):
    opened = StyleLibrary.open(tmp_path / "library")
    yield opened
    opened.close()


def generation_velocity(backbone, prompt: str = "") -> torch.Tensor:
    """The velocity at one fixed noisy input with no source, batch 2."""
    generator = torch.Generator().manual_seed(5)
    probe = backbone.encode(torch.zeros(1, 3, SIDE, SIDE))
    noisy = torch.randn((2, *probe.shape[1:]), generator=generator)
    with torch.no_grad():
        return backbone.predict_velocity(noisy, torch.tensor([0.8, 0.4]), None, backbone.encode_prompt([prompt] * 2))


# Training in the library ----------------------------------------------------------------------
def test_a_trained_subject_changes_generation_lowers_the_loss_and_is_stored_as_a_subject(library, tmp_path):
    backbone = tiny_backbone()
    base_image = np.asarray(generate_image(backbone, (SIDE, SIDE), SamplerSettings(seed=3)))
    seen = []
    record = train_subject(library, backbone, SubjectRequest("Red disc", write_photos(tmp_path / "photos", 4), "a red disc", "sks disc"),
                           preset("tiny", steps=30, sample_every=10), callback=seen.append)

    assert record.adapter.kind == "subject" and [subject.name for subject in list_subjects(library)] == ["Red disc"]
    assert record.trigger == "sks disc" and record.description == "a red disc" and record.thumbnail.is_file()
    assert len(record.pairs) == 4 and all(pair.before_sha256 == pair.after_sha256 and pair.split == "train" for pair in record.pairs)
    assert record.metrics["flow_loss"] < record.metrics["base_flow_loss"]
    assert record.run.status == "finished" and record.settings["photos"] == 4
    assert [progress.step for progress in seen] == list(range(1, 31))
    # At most every 10 steps, and about five previews in any run: every 30 // 5 = 6 steps here.
    assert [progress.step for progress in seen if progress.preview is not None] == [6, 12, 18, 24, 30]
    assert seen[-1].preview.size == (2 * SIDE, SIDE) and seen[-1].seconds_left == 0
    assert library.check() == []

    # The backbone is handed back as it was; the subject is generated with its file folded in.
    assert not has_peft_layers(backbone)
    assert np.array_equal(np.asarray(generate_image(backbone, (SIDE, SIDE), SamplerSettings(seed=3))), base_image)
    subject_image = np.asarray(generate_subject(backbone, library, "red disc", settings=SamplerSettings(seed=3)))
    assert np.abs(subject_image.astype(int) - base_image.astype(int)).mean() > 1.0
    with pytest.raises(InputError, match="one default condition"):
        generate_subject(backbone, library, "Red disc", prompt="sks disc")


def test_the_saved_file_reproduces_the_trained_peft_model(tmp_path):
    """The file's dW = (alpha / r) B A folded into the base gives the peft model's velocity, from
    a non-identity LoRA (random B, then trained) on a non-identity base."""
    backbone = tiny_backbone()
    base = generation_velocity(backbone)
    config = preset("tiny", steps=5, rank=3, alpha=6.0)
    lora = SubjectLora(backbone, config.rank, config.alpha, config.targets, seed=1)
    with torch.no_grad():
        for name, parameter in lora.parameters().items():
            if name.endswith("lora_B"):
                parameter.copy_(0.05 * torch.randn(parameter.shape, generator=torch.Generator().manual_seed(len(name))))
    photos = [Image.open(path) for path in sorted(write_photos(tmp_path / "photos").iterdir())]
    trainer = SubjectTrainer(backbone, lora, prepare_photos(photos, SIDE, config.min_crop), config, prompt="")
    trainer.train()
    trained = generation_velocity(backbone)
    with lora.disabled():
        torch.testing.assert_close(generation_velocity(backbone), base)
    path = lora.save(tmp_path / "subject.safetensors", title="Red disc", trigger="sks disc", description="a disc",
                     training_settings={"steps": 5})
    factors = lora.parameters()
    expected = {name: config.scale * factors[f"{name}.lora_B"].detach() @ factors[f"{name}.lora_A"].detach() for name in lora.layers}
    lora.remove()
    assert not has_peft_layers(backbone)
    torch.testing.assert_close(generation_velocity(backbone), base)

    with safe_open(path, framework="pt") as handle:
        header = handle.metadata()
        keys = set(handle.keys())
    assert keys == {f"transformer.{name}.lora_{side}.weight" for name in expected for side in "AB"}
    assert header["modelspec.title"] == "Red disc" and header["modelspec.trigger_phrase"] == "sks disc"
    assert header["modelspec.architecture"] == "atelier-embedded" and json.loads(header["atelier.training_settings"]) == {"steps": 5}
    peft_config = json.loads(header["lora_adapter_metadata"])
    assert peft_config["transformer.r"] == peft_config["transformer.lora_alpha"] == 3
    layers = read_lora_file(path, backbone)
    assert set(layers) == set(expected) and all(layer.scale == 1.0 for layer in layers.values())
    for name, layer in layers.items():
        torch.testing.assert_close(layer.delta(), expected[name], atol=1e-6, rtol=1e-5)
    with applied_lora(backbone, layers):
        folded = generation_velocity(backbone)
    assert (trained - base).abs().max() > 1e-3
    torch.testing.assert_close(folded, trained, atol=1e-5, rtol=1e-4)


def test_kontext_text_to_image_subject_loads_in_diffusers_as_in_atelier(tiny_kontext_folder, tmp_path):  # noqa: F811
    backbone = KontextBackbone.from_pretrained(str(tiny_kontext_folder))
    library = StyleLibrary.open(tmp_path / "library")
    record = train_subject(library, backbone, SubjectRequest("Toy", write_photos(tmp_path / "photos", 3), trigger="sks toy"),
                           preset("tiny", steps=8, learning_rate=5e-2))
    assert record.adapter.kind == "subject" and record.settings["prompt"] == "sks toy" and not has_peft_layers(backbone)
    assert record.metrics["flow_loss"] < record.metrics["base_flow_loss"]
    path = library.adapter_path(record)
    with safe_open(path, framework="pt") as handle:
        assert handle.metadata()["modelspec.architecture"] == "flux-1-dev/lora"

    generator = torch.Generator().manual_seed(0)
    noisy = torch.randn(1, 4, 16, 12, generator=generator)
    condition = backbone.encode_prompt(["sks toy"])
    call = dict(prompt="sks toy", height=32, width=24, max_area=32 * 24, num_inference_steps=2, guidance_scale=2.5,
                max_sequence_length=TINY_SEQUENCE_LENGTH, output_type="latent", _auto_resize=False)
    with torch.inference_mode():
        base = backbone.predict_velocity(noisy, torch.tensor([0.7]), None, condition)
    with applied_lora(backbone, read_lora_file(path, backbone)), torch.inference_mode():
        ours = backbone.predict_velocity(noisy, torch.tensor([0.7]), None, condition)
        ours_sampled = backbone.pipeline(**call, generator=torch.Generator().manual_seed(4)).images

    pipeline = FluxKontextPipeline.from_pretrained(str(tiny_kontext_folder))
    pipeline.load_lora_weights(str(path))
    lora_layers = [module for module in pipeline.transformer.modules() if hasattr(module, "scaling")]
    assert lora_layers and all(scale == 1.0 for module in lora_layers for scale in module.scaling.values())
    theirs_backbone = KontextBackbone(pipeline, backbone.settings)
    with torch.inference_mode():
        theirs = theirs_backbone.predict_velocity(noisy, torch.tensor([0.7]), None, condition)
        theirs_sampled = pipeline(**call, generator=torch.Generator().manual_seed(4)).images
    assert (ours - base).abs().max() > 1e-4
    torch.testing.assert_close(theirs, ours, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(theirs_sampled, ours_sampled, atol=1e-5, rtol=1e-5)
    library.close()


# Cancel, failure, resume ----------------------------------------------------------------------
def test_cancel_and_failure_leave_the_library_unchanged(library, tmp_path):
    backbone = tiny_backbone()
    photos = write_photos(tmp_path / "photos", 3)
    train_subject(library, backbone, SubjectRequest("First", photos), preset("tiny", steps=2))
    styles_before, files_before = [record.name for record in library.list_styles()], library_files(library.root)

    calls = []
    cancelled = train_subject(library, backbone, SubjectRequest("Second", photos), preset("tiny", steps=10),
                              should_stop=lambda: len(calls) >= 3 or calls.append(1))
    assert cancelled is None
    assert library.list_runs(1)[0].status == "cancelled"

    def failing(progress):
        if progress.step == 2:
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        train_subject(library, backbone, SubjectRequest("Third", photos), preset("tiny", steps=5), callback=failing)
    assert library.list_runs(1)[0].status == "failed"
    assert [record.name for record in library.list_styles()] == styles_before
    assert library_files(library.root) == files_before and library.check() == []
    assert not has_peft_layers(backbone)


def test_a_resumed_run_ends_where_an_uninterrupted_run_does(tmp_path):
    photos = write_photos(tmp_path / "photos", 3)
    config = preset("tiny", steps=6, checkpoint_every=2)
    with StyleLibrary.open(tmp_path / "straight") as library:
        straight = load_file(library.adapter_path(train_subject(library, tiny_backbone(), SubjectRequest("Rex", photos), config)))
    with StyleLibrary.open(tmp_path / "resumed") as library:
        calls = []
        assert train_subject(library, tiny_backbone(), SubjectRequest("Rex", photos), config,
                             should_stop=lambda: len(calls) >= 5 or calls.append(1)) is None  # stops before step 6, after the step-4 checkpoint
        run_folder = library.root / "checkpoints" / "_subjects" / "rex"
        assert json.loads((run_folder / "checkpoint.json").read_text())["step"] == 4
        steps = []
        record = train_subject(library, tiny_backbone(), SubjectRequest("Rex", photos), config, callback=lambda p: steps.append(p.step))
        assert steps == [5, 6] and not run_folder.exists()
        resumed = load_file(library.adapter_path(record))
    assert set(resumed) == set(straight)
    for key, tensor in straight.items():
        torch.testing.assert_close(resumed[key], tensor, atol=1e-6, rtol=1e-5)


def test_resuming_with_other_photos_is_refused(library, tmp_path):
    config = preset("tiny", steps=6, checkpoint_every=2)
    calls = []
    train_subject(library, tiny_backbone(), SubjectRequest("Rex", write_photos(tmp_path / "a", 3)), config,
                  should_stop=lambda: len(calls) >= 3 or calls.append(1))
    with pytest.raises(InputError, match="other photos or settings"):
        train_subject(library, tiny_backbone(), SubjectRequest("Rex", write_photos(tmp_path / "b", 4)), config)
    record = train_subject(library, tiny_backbone(), SubjectRequest("Rex", write_photos(tmp_path / "b", 4)), config, resume=False)
    assert len(record.pairs) == 4


# Input checks ---------------------------------------------------------------------------------
def _two_photos(folder: Path) -> Path:
    write_photos(folder, 2)
    return folder


def _eleven_photos(folder: Path) -> Path:
    return write_photos(folder, 11)


def _unreadable(folder: Path) -> Path:
    write_photos(folder, 3)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return folder


def _wrong_type(folder: Path) -> Path:
    write_photos(folder, 3)
    (folder / "notes.txt").write_text("shot on a sunny day")
    return folder


def _duplicate(folder: Path) -> Path:
    write_photos(folder, 3)
    (folder / "view9.png").write_bytes((folder / "view0.png").read_bytes())
    return folder


def _missing(folder: Path) -> Path:
    return folder / "nowhere"


def _not_a_zip(folder: Path) -> Path:
    write_photos(folder, 3)
    return folder / "view0.png"


def _bad_zip(folder: Path) -> Path:
    folder.mkdir()
    (folder / "photos.zip").write_bytes(b"PK not a zip")
    return folder / "photos.zip"


@pytest.mark.parametrize("make, message", [
    (_two_photos, "has 2 photo\\(s\\); a subject needs at least 3"),
    (_eleven_photos, "has 11 photos; a subject takes at most 10"),
    (_unreadable, "broken.jpg"),
    (_wrong_type, "notes.txt is a .txt file, not a photo"),
    (_duplicate, "view9.png is the same file as view0.png"),
    (_missing, "nowhere not found"),
    (_not_a_zip, "view0.png is a file but not a .zip"),
    (_bad_zip, "photos.zip is not a readable zip file"),
])
def test_bad_photos_are_input_errors_naming_the_file(library, tmp_path, make, message):
    with pytest.raises(InputError, match=message):
        train_subject(library, tiny_backbone(), SubjectRequest("Rex", make(tmp_path / "photos")), preset("tiny"))
    assert library.list_styles() == [] and library.list_runs() == [] and library_files(library.root) == []


@pytest.mark.parametrize("name, message", [("a/b", "contains '/'"), ("..", "starts with '.'"), ("", "is empty"),
                                           ("taken", "already has a style or subject named 'Taken'")])
def test_bad_or_taken_names_are_refused_before_training(library, tmp_path, name, message):
    photos = write_photos(tmp_path / "photos", 3)
    train_subject(library, tiny_backbone(), SubjectRequest("Taken", photos), preset("tiny", steps=1))
    runs = len(library.list_runs())
    with pytest.raises(InputError, match=message):
        train_subject(library, tiny_backbone(), SubjectRequest(name, photos), preset("tiny"))
    assert len(library.list_runs()) == runs and [record.name for record in library.list_styles()] == ["Taken"]


@pytest.mark.parametrize("name", ["E\u0301te\u0301", "e\u0301te\u0301", "E\u0301TE\u0301", "\u00c9T\u00c9", "\u00e9t\u00e9"])
def test_a_name_equal_to_a_subject_after_normalisation_is_refused_before_any_training_step(library, tmp_path, monkeypatch, name):
    # The library compares names NFC-normalised and case-folded: "Été" typed with combining accents is the same name.
    photos = write_photos(tmp_path / "photos", 3)
    train_subject(library, tiny_backbone(), SubjectRequest("\u00c9t\u00e9", photos), preset("tiny", steps=1))
    runs, built = len(library.list_runs()), []
    monkeypatch.setattr(SubjectTrainer, "__init__", lambda self, *args, **kwargs: built.append(args))
    with pytest.raises(InputError, match="already has a style or subject named '\u00c9t\u00e9'; pick another name"):
        train_subject(library, tiny_backbone(), SubjectRequest(name, photos), preset("tiny"), callback=built.append)
    assert built == [] and len(library.list_runs()) == runs and [record.name for record in library.list_styles()] == ["\u00c9t\u00e9"]
    assert not any((library.root / "checkpoints" / "_subjects").iterdir())


def test_a_zip_of_photos_trains_like_the_folder(library, tmp_path):
    folder = write_photos(tmp_path / "photos" / "my subject", 3, suffix=".jpg")
    archive = tmp_path / "photos.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        for path in sorted(folder.iterdir()):
            handle.write(path, f"my subject/{path.name}")
    record = train_subject(library, tiny_backbone(), SubjectRequest("Zipped", archive), preset("tiny", steps=2))
    assert [pair.before.suffix for pair in record.pairs] == [".jpg"] * 3 and library.check() == []


def test_a_subject_round_trips_through_a_style_zip_as_a_subject(library, tmp_path):
    backbone = tiny_backbone()
    record = train_subject(library, backbone, SubjectRequest("Rex", write_photos(tmp_path / "photos", 3), trigger="sks dog"),
                           preset("tiny", steps=2))
    archive = export_style_zip(library, "Rex", tmp_path / "rex.zip", library.adapter_path(record))
    copy = import_style_zip(library, archive, "Rex copy")
    assert copy.adapter.kind == "subject" and copy.trigger == "sks dog" and len(copy.pairs) == 3
    assert [subject.name for subject in list_subjects(library)] == ["Rex", "Rex copy"]
    assert set(read_lora_file(library.adapter_path(copy), backbone)) == set(read_lora_file(library.adapter_path(record), backbone))
    assert library.check() == []


def test_settings_are_checked():
    with pytest.raises(ConfigError, match="rank"):
        SubjectTrainingConfig(rank=0)
    with pytest.raises(ConfigError, match="min_crop"):
        SubjectTrainingConfig(min_crop=0.05)
    with pytest.raises(ConfigError, match="no subject training preset"):
        preset("huge")


def test_crops_are_seeded_native_squares_that_zoom_and_flip():
    photo = Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 60, 3), dtype=np.uint8))
    photos = prepare_photos([photo], SIDE, 0.5)
    assert min(photos[0].shape[1:]) == 2 * SIDE
    first = sample_crops(photos, SIDE, 6, 0.5, True, torch.Generator().manual_seed(1))
    again = sample_crops(photos, SIDE, 6, 0.5, True, torch.Generator().manual_seed(1))
    unflipped = sample_crops(photos, SIDE, 6, 0.5, False, torch.Generator().manual_seed(1))
    assert first.shape == (6, 3, SIDE, SIDE) and torch.equal(first, again)
    flipped = [index for index in range(6) if not torch.equal(first[index], unflipped[index])]
    assert flipped and all(torch.equal(first[index], unflipped[index].flip(-1)) for index in flipped)
    assert len({tuple(crop.flatten()[:8].tolist()) for crop in unflipped}) == 6  # different places and zooms
