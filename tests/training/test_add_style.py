"""Adding a style: a name the library would refuse when publishing is refused before anything trains.

The library compares names after NFC normalisation and case folding
(:meth:`engine.library.StyleLibrary.check_name_free`); a name equal to a style's or a subject's
in that comparison must not train for a whole run and only then be refused at publishing.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from subject_fixtures import write_photos

from engine.core.errors import InputError
from engine.library import StyleLibrary, slug
from engine.training import add_style
from engine.training.add_style import StyleRequest, train_style
from engine.training.style_trainer import StyleTrainingConfig
from engine.training.subject import SubjectRequest, train_subject
from engine.training.subject.config import preset
from tests.adapters.moe.moe_fixtures import base_backbone
from tests.training.tiny_styles import tiny_pairs

pytestmark = pytest.mark.timeout(240)
COMPOSED, DECOMPOSED = "\u00c9t\u00e9 doux", "E\u0301te\u0301 doux"  # "Été doux", precomposed and with combining accents
ONE_STEP = StyleTrainingConfig(steps=1, batch_size=2, warmup_steps=1, sample_every=0, checkpoint_every=0)


class Trained(Exception):
    """Raised by the stand-in trainer: the run got as far as its first training step."""


@pytest.fixture
def library(tmp_path: Path):
    opened = StyleLibrary.open(tmp_path / "library")
    yield opened
    opened.close()


def write_pairs(folder: Path, offset: int = 40) -> Path:
    """Three tiny before/after PNG pairs in ``folder/before`` and ``folder/after``."""
    for side in ("before", "after"):
        (folder / side).mkdir(parents=True)
    for pair in tiny_pairs(offset):
        pair.before.save(folder / "before" / f"{pair.name}.png")
        pair.after.save(folder / "after" / f"{pair.name}.png")
    return folder


def stand_in_trainer(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Replace the style trainer's loop by one that records the call and stops the run; returns the calls."""
    calls: list[str] = []

    def train(self, *args, **kwargs):
        calls.append("train")
        raise Trained

    monkeypatch.setattr(add_style.StyleTrainer, "train", train)
    return calls


def assert_nothing_began(library: StyleLibrary, runs: int, names: list[str]) -> None:
    """No run recorded, no run folder for the name, the library's styles as they were."""
    assert len(library.list_runs()) == runs and not (library.root / "checkpoints" / slug(COMPOSED)).exists()
    assert [record.name for record in library.list_styles()] == names and library.check() == []


@pytest.mark.parametrize("name", [DECOMPOSED, DECOMPOSED.lower(), DECOMPOSED.upper(), COMPOSED.upper(), COMPOSED.lower()])
def test_a_name_equal_to_a_style_after_normalisation_is_refused_before_any_training_step(library, tmp_path, monkeypatch, name):
    backbone = base_backbone()
    train_style(library, backbone, StyleRequest(COMPOSED, write_pairs(tmp_path / "pairs")), ONE_STEP)
    runs = len(library.list_runs())
    calls, progress = stand_in_trainer(monkeypatch), []
    with pytest.raises(InputError, match=f"a style named {name!r} already exists; pick another name or delete it first"):
        train_style(library, backbone, StyleRequest(name, tiny_pairs(-40)), ONE_STEP, callback=progress.append)
    assert calls == [] and progress == []
    assert_nothing_began(library, runs, [COMPOSED])


def test_a_name_a_subject_has_is_refused_before_any_training_step(library, tmp_path, monkeypatch):
    train_subject(library, base_backbone(), SubjectRequest(COMPOSED, write_photos(tmp_path / "photos", 3)), preset("tiny", steps=1))
    runs = len(library.list_runs())
    calls = stand_in_trainer(monkeypatch)
    with pytest.raises(InputError, match="already exists"):
        train_style(library, base_backbone(), StyleRequest(DECOMPOSED.lower(), tiny_pairs(40)), ONE_STEP)
    assert calls == []
    assert_nothing_began(library, runs, [COMPOSED])


def test_a_different_name_reaches_the_trainer(library, monkeypatch):
    # The control for the tests above: with the same stand-in trainer, a free name gets to training.
    calls = stand_in_trainer(monkeypatch)
    with pytest.raises(Trained):
        train_style(library, base_backbone(), StyleRequest("Ete doux", tiny_pairs(40)), ONE_STEP)
    assert calls == ["train"] and library.list_styles() == []


class Killed(BaseException):
    """Raised where a kill would land; nothing should catch it."""


def test_a_run_killed_after_publishing_but_before_its_cleanup_is_done_when_restarted(library, tmp_path, monkeypatch):
    pairs = tmp_path / "pairs"
    write_pairs(pairs)

    real_rmtree = add_style.shutil.rmtree

    def killed_cleanup(path, *arguments, **keywords):
        # Only the run's own checkpoint cleanup dies; the library's staging cleanup inside the
        # publish is the same shutil function and must still run.
        if Path(path).name == slug("Ink") and Path(path).parent.name == "checkpoints":
            raise Killed
        return real_rmtree(path, *arguments, **keywords)

    monkeypatch.setattr(add_style.shutil, "rmtree", killed_cleanup)
    monkeypatch.setattr(StyleLibrary, "finish_run", lambda *arguments, **keywords: None)
    with pytest.raises(Killed):
        train_style(library, base_backbone(), StyleRequest("Ink", pairs), ONE_STEP)
    monkeypatch.undo()
    folder = library.root / "checkpoints" / slug("Ink")
    assert folder.is_dir() and [style.name for style in library.list_styles()] == ["Ink"]
    # Restarting the same training (what `python -m engine train` does again) finds it published.
    record = train_style(library, base_backbone(), StyleRequest("Ink", pairs), ONE_STEP)
    assert record.name == "Ink" and not folder.exists() and library.check() == []
    # Another style of that name is still refused.
    with pytest.raises(InputError, match="already exists"):
        train_style(library, base_backbone(), StyleRequest("ink", pairs), ONE_STEP)


def test_the_same_seed_repeats_a_run_from_its_random_start(tmp_path):
    """The new adapter's and expert's random start comes from the seed, so a run restarted before
    its first checkpoint repeats the one that was killed."""
    from safetensors.torch import load_file

    pairs = write_pairs(tmp_path / "pairs")
    tensors = []
    for attempt in range(2):
        with StyleLibrary.open(tmp_path / f"library-{attempt}") as opened:
            record = train_style(opened, base_backbone(), StyleRequest("Ink", pairs), ONE_STEP)
            loaded = load_file(opened.adapter_path(record))
            tensors.append({name.replace(record.expert_key, "KEY"): value for name, value in loaded.items()})
    assert tensors[0].keys() == tensors[1].keys()
    assert all(torch.equal(tensors[0][name], tensors[1][name]) for name in tensors[0])
