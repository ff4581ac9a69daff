"""Resumable training checkpoints in safetensors (never pickles).

A checkpoint holds named tensor groups (model weights, EMA, adapter, discriminator), the AdamW
moments of each optimizer keyed by parameter name, and a JSON record with the step. The tensors
go to a file named after the step (``checkpoint-000040.safetensors``) and the JSON record, written
last, names that file; both are written atomically and the previous tensors file is removed only
after the record, so a kill at any moment leaves a record whose tensors are the ones of its step.
(With one fixed tensors file, a kill between the two writes left the new tensors under the old
step, and the resumed run repeated steps on weights that had already taken them.)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping

import torch
from safetensors.torch import load_file, save_file

from engine.core.files import atomic_path, write_text_atomic

TENSORS_FILE = "checkpoint.safetensors"  # what records without a "tensors" entry (older checkpoints) use
RECORD_FILE = "checkpoint.json"


def tensors_file_name(step: int) -> str:
    return f"checkpoint-{step:06d}.safetensors"


def _optimizer_tensors(prefix: str, optimizer: torch.optim.Optimizer, names: Mapping[torch.Tensor, str]) -> dict:
    tensors = {}
    for parameter, state in optimizer.state.items():
        for key in ("exp_avg", "exp_avg_sq", "step"):
            if key in state:
                # Each optimizer's own step count: one that started late (the discriminator's)
                # has a different bias correction from the run's step.
                tensors[f"{prefix}.{key}.{names[parameter]}"] = torch.as_tensor(state[key], dtype=torch.float32).detach().contiguous()
    return tensors


def save_checkpoint(
    folder: Path,
    step: int,
    groups: Mapping[str, Mapping[str, torch.Tensor]],
    optimizers: Mapping[str, tuple[torch.optim.Optimizer, Mapping[str, torch.Tensor]]],
    record: Mapping | None = None,
) -> None:
    """Write ``groups`` (name -> state dict) and ``optimizers`` (name -> (optimizer, named
    parameters)) at ``step``."""
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {f"{group}.{key}": value.detach().contiguous() for group, state in groups.items() for key, value in state.items()}
    for name, (optimizer, parameters) in optimizers.items():
        names = {parameter: parameter_name for parameter_name, parameter in parameters.items()}
        tensors.update(_optimizer_tensors(f"optim-{name}", optimizer, names))
    name = tensors_file_name(step)
    with atomic_path(folder / name) as temporary:
        save_file(tensors, temporary)
    write_text_atomic(folder / RECORD_FILE, json.dumps({"step": step, **(record or {}), "tensors": name}))
    for stale in [folder / TENSORS_FILE, *folder.glob("checkpoint-*.safetensors")]:
        if stale.name != name:
            stale.unlink(missing_ok=True)


def load_checkpoint(
    folder: Path,
    groups: Mapping[str, Mapping[str, torch.Tensor]],
    optimizers: Mapping[str, tuple[torch.optim.Optimizer, Mapping[str, torch.Tensor]]],
) -> dict | None:
    """Restore in place what :func:`save_checkpoint` wrote; returns its record, or ``None`` when
    ``folder`` holds no checkpoint. ``groups`` map names to live state dicts whose tensors are
    overwritten."""
    if not (folder / RECORD_FILE).is_file():
        return None
    record = json.loads((folder / RECORD_FILE).read_text())
    tensors = load_file(folder / record.pop("tensors", TENSORS_FILE))
    with torch.no_grad():
        for group, state in groups.items():
            for key, value in state.items():
                value.copy_(tensors[f"{group}.{key}"])
    for name, (optimizer, parameters) in optimizers.items():
        for parameter_name, parameter in parameters.items():
            moment = f"optim-{name}.exp_avg.{parameter_name}"
            if moment in tensors:
                optimizer.state[parameter] = {
                    "step": tensors[f"optim-{name}.step.{parameter_name}"].clone(),
                    "exp_avg": tensors[moment].clone(),
                    "exp_avg_sq": tensors[f"optim-{name}.exp_avg_sq.{parameter_name}"].clone(),
                }
    return record
