"""Fixtures for the studio tests: a tiny random embedded model saved as a model folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.models.backbones.embedded.backbone import EmbeddedBackbone


@pytest.fixture(scope="session")
def tiny_model_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder that ``load_backbone`` (and so ``app.py --model``) loads: the random 'tiny' preset."""
    folder = tmp_path_factory.mktemp("tiny-embedded", numbered=False)
    EmbeddedBackbone.from_config("tiny").save_pretrained(folder)
    return folder
