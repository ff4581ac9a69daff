"""Killing a real training process at random moments never leaves the library inconsistent:
no style without its weights, no orphaned files, no run stuck 'running'; and the next run of
the same style resumes from its checkpoint and publishes it."""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from engine.library import StyleLibrary
from engine.models.backbones.embedded.backbone import EmbeddedBackbone

REPO = Path(__file__).resolve().parents[2]


def make_model(folder: Path) -> None:
    backbone = EmbeddedBackbone.from_config("tiny", seed=0)
    with torch.no_grad():
        weight = backbone.transformer.proj_out.weight
        weight.copy_(0.05 * torch.randn(weight.shape, generator=torch.Generator().manual_seed(0)))
    backbone.save_pretrained(folder)


def make_pairs(folder: Path) -> None:
    generator = np.random.default_rng(0)
    for side in ("before", "after"):
        (folder / side).mkdir(parents=True)
    for index in range(4):
        image = (generator.random((40, 48, 3)) * 255).astype("uint8")
        Image.fromarray(image).save(folder / "before" / f"p{index}.png")
        Image.fromarray(255 - image).save(folder / "after" / f"p{index}.png")


def train_command(model: Path, pairs: Path, library: Path, name: str, steps: int) -> list[str]:
    return [sys.executable, "-m", "engine", "train", "--pairs", str(pairs), "--style", name, "--steps", str(steps),
            "--batch-size", "2", "--model", str(model), "--library", str(library)]


def test_kills_at_random_moments_leave_the_library_consistent(tmp_path):
    model, pairs, library = tmp_path / "model", tmp_path / "pairs", tmp_path / "library"
    make_model(model)
    make_pairs(pairs)
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    subprocess.run(train_command(model, pairs, library, "First", 4), check=True, env=environment, cwd=REPO, capture_output=True)
    chooser = random.Random(7)
    for attempt in range(4):
        process = subprocess.Popen(train_command(model, pairs, library, "Second", 400), env=environment, cwd=REPO,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(chooser.uniform(2.0, 9.0))  # loading, training, checkpointing: wherever it is
        process.send_signal(signal.SIGKILL)
        process.wait()
        with StyleLibrary.open(library) as opened:
            assert opened.check(deep=True) == [], f"attempt {attempt}"
            names = [record.name for record in opened.list_styles()]
            assert "First" in names
            for record in opened.list_styles():
                opened.verify(record)
                assert opened.adapter_path(record).is_file()
            assert all(run.status != "running" for run in opened.list_runs())
    # The interrupted style resumes from its last checkpoint and is published whole.
    subprocess.run(train_command(model, pairs, library, "Second", 400), check=True, env=environment, cwd=REPO,
                   capture_output=True, timeout=600)
    with StyleLibrary.open(library) as opened:
        assert {record.name for record in opened.list_styles()} == {"First", "Second"}
        assert opened.check(deep=True) == []
        assert not (library / "checkpoints" / "second").exists()
