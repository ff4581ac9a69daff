"""A kill at any moment of a checkpoint write leaves a record whose tensors are those of its step."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from engine.training import checkpoint
from engine.training.checkpoint import RECORD_FILE, TENSORS_FILE, load_checkpoint, save_checkpoint


class Killed(BaseException):
    """Raised where a kill would land."""


def parts(value: float):
    weight = torch.nn.Parameter(torch.full((2, 3), value))
    optimizer = torch.optim.AdamW([weight], lr=0.1)
    weight.grad = torch.ones_like(weight)
    optimizer.step()
    weight.data.fill_(value)
    return {"model": {"weight": weight.data}}, {"model": (optimizer, {"weight": weight})}


def test_a_kill_between_the_tensors_and_the_record_leaves_the_previous_checkpoint_whole(tmp_path: Path, monkeypatch) -> None:
    save_checkpoint(tmp_path, 4, *parts(1.0))

    def killed(*arguments):
        raise Killed

    monkeypatch.setattr(checkpoint, "write_text_atomic", killed)
    with pytest.raises(Killed):
        save_checkpoint(tmp_path, 8, *parts(2.0))  # the new tensors are in place, the record is not
    monkeypatch.undo()
    groups, optimizers = parts(0.0)
    assert load_checkpoint(tmp_path, groups, optimizers) == {"step": 4}
    assert torch.all(groups["model"]["weight"] == 1.0)  # step 4's weights, not step 8's
    save_checkpoint(tmp_path, 8, *parts(2.0))  # the next write removes the stale file
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted([RECORD_FILE, "checkpoint-000008.safetensors"])


def test_a_checkpoint_written_before_step_named_files_still_loads(tmp_path: Path) -> None:
    save_checkpoint(tmp_path, 3, *parts(5.0))
    (tmp_path / "checkpoint-000003.safetensors").rename(tmp_path / TENSORS_FILE)
    (tmp_path / RECORD_FILE).write_text('{"step": 3}')
    groups, optimizers = parts(0.0)
    assert load_checkpoint(tmp_path, groups, optimizers) == {"step": 3}
    assert torch.all(groups["model"]["weight"] == 5.0)
