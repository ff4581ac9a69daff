"""The embeddings beta is measured with: the offline style embedding ranks same-style pairs above
different-style pairs on the benchmark styles; DINO loads from a local folder."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from PIL import Image

from benchmarks.dataset import benchmark_pairs
from benchmarks.styles import STYLES
from engine.core.errors import InputError
from engine.fusion.embedding import DinoEmbedding, OfflineStyleEmbedding, load_embedding, style_discrepancy

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def embedded_styles() -> dict[str, torch.Tensor]:
    """Per benchmark style, the embeddings ``(8, D)`` of its outputs on the eight training photos."""
    embedding = OfflineStyleEmbedding()
    return {style: embedding([pair.after for pair in benchmark_pairs(style, "train")]) for style in STYLES}


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a, b, dim=0))


def test_same_style_on_another_photo_is_nearer_than_another_style(embedded_styles):
    # For photos A != B and styles s != t: cos(s(A), s(B)) > cos(s(A), t(B)) in most cases
    # (86 % measured; chance is 50 %), and on average for every single style.
    photo_pairs = list(itertools.permutations(range(8), 2))
    wins = total = 0
    for style, other in itertools.permutations(STYLES, 2):
        for a, b in photo_pairs:
            same = cosine(embedded_styles[style][a], embedded_styles[style][b])
            wins += same > cosine(embedded_styles[style][a], embedded_styles[other][b])
            total += 1
    assert wins / total >= 0.8
    for style in STYLES:
        same = np.mean([cosine(embedded_styles[style][a], embedded_styles[style][b]) for a, b in photo_pairs])
        others = np.mean([cosine(embedded_styles[style][a], embedded_styles[other][b])
                          for other in STYLES if other != style for a, b in photo_pairs])
        assert same > others, style


def test_discrepancy_is_zero_for_one_image_and_bounded():
    generator = np.random.default_rng(0)
    first = Image.fromarray(generator.integers(0, 256, (40, 48, 3), dtype=np.uint8))
    second = Image.new("RGB", (48, 40), (200, 120, 40))
    assert style_discrepancy(first, first) == pytest.approx(0.0, abs=1e-6)
    assert 0.0 < style_discrepancy(first, second) <= 2.0
    assert isinstance(load_embedding(""), OfflineStyleEmbedding)


def test_dino_embedding_reads_a_local_folder(tmp_path):
    from transformers import ViTConfig, ViTImageProcessorPil, ViTModel

    folder = tmp_path / "dino"
    torch.manual_seed(0)
    ViTModel(ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37,
                       image_size=32, patch_size=16)).save_pretrained(folder)
    ViTImageProcessorPil(size={"height": 32, "width": 32}).save_pretrained(folder)
    embedding = load_embedding(str(folder))
    assert isinstance(embedding, DinoEmbedding)
    images = [Image.new("RGB", (40, 30), (10, 200, 30)), Image.new("RGB", (64, 64), (250, 10, 90))]
    embedded = embedding(images)
    assert embedded.shape == (2, 32) and torch.isfinite(embedded).all()
    assert 0.0 < style_discrepancy(*images, embedding) <= 2.0
    with pytest.raises(InputError, match="holds no DINO model"):
        load_embedding(str(tmp_path / "missing"))
