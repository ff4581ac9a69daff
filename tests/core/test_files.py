"""Atomic writes: the target appears whole, readable like any file, or not at all."""

import os

import pytest
import torch
from safetensors.torch import save_file

from engine.core.files import atomic_path, write_text_atomic


def test_written_files_are_readable_by_others_even_when_the_writer_resets_modes(tmp_path):
    target = tmp_path / "weights.safetensors"
    with atomic_path(target) as temporary:
        save_file({"weight": torch.zeros(2)}, temporary)  # safetensors writes an owner-only file
    assert os.stat(target).st_mode & 0o777 == 0o644


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "notes.txt"
    write_text_atomic(target, "first")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as temporary:
            temporary.write_text("half")
            raise RuntimeError("killed")
    assert target.read_text() == "first"
    assert [path.name for path in tmp_path.iterdir()] == ["notes.txt"]
