"""Interrupted training runs and what it takes to resume one after the studio restarts.

:func:`engine.training.add_style.train_style` keeps ``<library>/checkpoints/<slug>/`` (its
``resume.json`` and the last checkpoint) until it publishes the style, then removes the folder.
That is enough to resume from the command line, where the user names the pairs again. The studio
has no pairs to name after a restart, so a run it starts also saves, in the same folder, before
training begins::

    request/job.json            name, description, trigger and training settings
    request/pairs/before/...    a copy of the pairs, as uploaded
    request/pairs/after/...

A folder with ``resume.json`` is an interrupted run; without ``request/`` it was started outside
the studio and can only be resumed there (or discarded). Everything here is plain files; the
runner (:mod:`engine.services.jobs`) decides when to call it.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from engine.core.configuration import from_dict, to_dict
from engine.core.errors import InputError
from engine.core.files import atomic_path, write_text_atomic
from engine.library import slug
from engine.training.checkpoint import RECORD_FILE
from engine.training.pairs import Pair, extract_zip
from engine.training.style_trainer import StyleTrainingConfig

LOGGER = logging.getLogger(__name__)
CHECKPOINTS = "checkpoints"  # train_style's folder of run folders, inside the library
RESUME_FILE = "resume.json"  # written by train_style when a run starts
REQUEST_FOLDER = "request"
REQUEST_FILE = "job.json"
PAIRS_FOLDER = "pairs"
SIDES = ("before", "after")


@dataclass(frozen=True)
class SavedRequest:
    """What a studio run was asked to do, read back from its run folder."""

    name: str
    description: str
    trigger: str
    pairs_folder: Path
    config: StyleTrainingConfig


@dataclass(frozen=True)
class ResumableRun:
    """An interrupted run folder. ``step`` is its last checkpoint (0: none yet, so resuming
    starts again from the first step with the same pairs and expert)."""

    key: str  # the folder's name, the style name's slug
    folder: Path
    name: str | None  # None when the run was started outside the studio
    step: int
    total: int | None
    pairs: int | None

    @property
    def saved_request(self) -> bool:
        """Whether the studio saved the request and pairs, so it can resume the run itself."""
        return self.name is not None

    def label(self) -> str:
        """How a list of runs names this one, e.g. ``ink wash · step 100 of 300 · 6 pairs``."""
        title = self.name if self.name is not None else f"{self.key} (started outside the studio)"
        progress = f"step {self.step} of {self.total}" if self.total else f"step {self.step}"
        pairs = f" · {self.pairs} pairs" if self.pairs else ""
        return f"{title} · {progress}{pairs}"


def run_folder(library_root: Path, name: str) -> Path:
    """The folder train_style keeps a run of style ``name`` in."""
    return Path(library_root) / CHECKPOINTS / slug(name)


def read_run(folder: Path) -> ResumableRun | None:
    """The interrupted run in ``folder``, or None when it holds none (no ``resume.json``)."""
    resume_file = folder / RESUME_FILE
    if not resume_file.is_file():
        return None
    try:
        settings = json.loads(resume_file.read_text()).get("settings", {})
        record_file = folder / RECORD_FILE
        step = int(json.loads(record_file.read_text())["step"]) if record_file.is_file() else 0
        request_file = folder / REQUEST_FOLDER / REQUEST_FILE
        name = json.loads(request_file.read_text())["name"] if request_file.is_file() else None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        # A damaged folder cannot be resumed; it stays on disk for the user to look at or discard.
        LOGGER.warning("skipping the unreadable run folder %s (%s)", folder, error)
        return None
    total = settings.get("training", {}).get("steps") if isinstance(settings, dict) else None
    pairs = settings.get("pairs") if isinstance(settings, dict) else None
    return ResumableRun(folder.name, folder, name, step, total if isinstance(total, int) else None,
                        pairs if isinstance(pairs, int) else None)


def list_resumable(library_root: Path) -> list[ResumableRun]:
    """Every interrupted run of the library, by folder name."""
    checkpoints = Path(library_root) / CHECKPOINTS
    if not checkpoints.is_dir():
        return []
    runs = (read_run(folder) for folder in sorted(checkpoints.iterdir()) if folder.is_dir())
    return [run for run in runs if run is not None]


def save_request(folder: Path, name: str, description: str, trigger: str, pairs: str | Path | list[Pair],
                 config: StyleTrainingConfig) -> Path:
    """Copy the pairs into ``folder/request/pairs`` and write the request beside them; returns the
    pairs folder (``before/`` and ``after/``), which :func:`engine.training.pairs.read_pairs` reads.

    ``pairs`` is a folder or zip with ``before/`` and ``after/``, or pairs whose files exist. The
    request file is written last, so a folder without it was never complete.
    """
    target = folder / REQUEST_FOLDER / PAIRS_FOLDER
    if isinstance(pairs, list):
        for pair in pairs:
            if pair.before_path is None or pair.after_path is None:
                raise ValueError(f"pair {pair.name!r} has no files to copy; pass a pairs folder instead")
            _copy(Path(pair.before_path), target / "before" / f"{pair.name}{Path(pair.before_path).suffix}")
            _copy(Path(pair.after_path), target / "after" / f"{pair.name}{Path(pair.after_path).suffix}")
    else:
        source = Path(pairs).expanduser()
        if source.is_file():
            with tempfile.TemporaryDirectory(prefix="atelier-pairs-") as temporary:
                _copy_sides(extract_zip(source, Path(temporary)), target)
        elif source.is_dir():
            _copy_sides(source, target)
        else:
            raise InputError(f"{source} not found; give a folder with before/ and after/ or a zip of one")
    request = {"name": name, "description": description, "trigger": trigger, "training": to_dict(config)}
    write_text_atomic(folder / REQUEST_FOLDER / REQUEST_FILE, json.dumps(request, indent=2))
    return target


def load_request(run: ResumableRun) -> SavedRequest:
    """The request a studio run saved (see :func:`save_request`)."""
    if not run.saved_request:
        raise InputError(f"the run in {run.folder} was started outside the studio, so its pairs are unknown; resume it with "
                         f"`python -m engine train --style NAME --pairs FOLDER`, or discard it")
    request_folder = run.folder / REQUEST_FOLDER
    try:
        request = json.loads((request_folder / REQUEST_FILE).read_text())
        # Runs saved before training_scale existed were started at the native scale; resuming
        # them at another would change the crops half-way through.
        config = from_dict(StyleTrainingConfig, {"training_scale": "native", **request["training"]})
        return SavedRequest(request["name"], request.get("description", ""), request.get("trigger", ""),
                            request_folder / PAIRS_FOLDER, config)
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise InputError(f"the saved request in {request_folder} cannot be read ({error}); discard this run and train again") from error


def discard_run(run: ResumableRun) -> None:
    """Delete an interrupted run's folder (its checkpoint and saved pairs)."""
    shutil.rmtree(run.folder)


def _copy_sides(source: Path, target: Path) -> None:
    for side in SIDES:
        folder = source / side
        if not folder.is_dir():
            raise InputError(f"{folder} not found; a pairs folder holds before/ and after/ with matching file names")
        for path in sorted(folder.iterdir()):
            if path.is_file() and not path.name.startswith("."):
                _copy(path, target / side / path.name)


def _copy(source: Path, target: Path) -> None:
    try:
        with atomic_path(target) as temporary:
            shutil.copyfile(source, temporary)
    except FileNotFoundError as error:
        raise InputError(f"{source} is gone; upload the pairs again") from error
