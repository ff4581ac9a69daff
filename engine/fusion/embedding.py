"""Image embeddings for EST-LoRA's style discrepancy ``beta = 1 - cos(e_subject, e_style)``.

EST-LoRA (arXiv 2508.02165) embeds a subject-only and a style-only sample with DINO ViT-S/16
(the CLS token of the last layer). :class:`DinoEmbedding` does exactly that from a local folder
holding ``facebook/dino-vits16`` (weights are never downloaded here).

Without DINO weights, :class:`OfflineStyleEmbedding` is the default. It needs no download and
describes how an image looks rather than what it shows, with three blocks, each centred (its
mean subtracted, so cosines spread over ``[-1, 1]`` instead of crowding near 1) and scaled to unit
norm, so each counts equally:

* texture: the channel correlations ``R_ij = G_ij / sqrt(G_ii G_jj)`` of the seeded random
  multi-scale filters of :mod:`engine.metrics.perceptual` (Ustyuzhaninov et al. 2016), upper
  triangle, per pyramid level;
* colour: the square roots of a 16-bin luma histogram and an 8 x 8 histogram of the opponent
  chroma ``(R - G, (R + G) / 2 - B)`` (square roots: the Hellinger embedding, where the cosine of
  two histograms is their Bhattacharyya coefficient);
* edges: the square roots of a 12-bin histogram of the luma gradient magnitude (lines and flat
  regions, which the cartoon and ink styles change).

On the benchmark's five styles this tells a style's outputs from another style's more often than
the random-feature style distance or the texture block alone
(docs/decisions/2026-11-24-offline-style-embedding.md). The cosines are on this embedding's own
scale, not DINO's: the same-style/other-style gap is smaller, so ``beta`` from it is not comparable
with the paper's numbers (``style_bias`` offsets it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, Sequence

import numpy as np
import torch
from PIL import Image

from engine.core.errors import InputError
from engine.metrics.perceptual import RandomFeatures, default_features

LUMA_BINS, CHROMA_BINS, GRADIENT_BINS = 16, 8, 12
# Gradient magnitudes (luma in [0, 1] per pixel) above this fall in the last bin.
MAX_GRADIENT = 0.6


class ImageEmbedding(Protocol):
    """Images (one size or several) to embeddings ``(N, D)``."""

    def __call__(self, images: Sequence[Image.Image]) -> torch.Tensor: ...


class OfflineStyleEmbedding:
    """The download-free style embedding described in the module docstring."""

    def __init__(self, features: RandomFeatures | None = None) -> None:
        self.features = features or default_features()

    @torch.no_grad()
    def __call__(self, images: Sequence[Image.Image]) -> torch.Tensor:
        return torch.stack([self.embed(image) for image in images])

    def embed(self, image: Image.Image) -> torch.Tensor:
        """One RGB image to its embedding ``(D,)``; sides of at least ``features.config.min_side`` px."""
        pixels = torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0).permute(2, 0, 1)
        blocks = [self._texture(pixels), self._colour(pixels), self._edges(pixels)]
        return torch.cat([_unit(block - block.mean()) for block in blocks])

    def _texture(self, pixels: torch.Tensor) -> torch.Tensor:
        described = self.features.describe(pixels.unsqueeze(0))
        parts = []
        for correlations in described.correlations:
            channels = correlations.shape[-1]
            rows, columns = torch.triu_indices(channels, channels, 1)
            upper = correlations[0, rows, columns]
            parts.append(upper - upper.mean())  # per level, so no level's offset dominates
        return torch.cat(parts)

    @staticmethod
    def _colour(pixels: torch.Tensor) -> torch.Tensor:
        red, green, blue = pixels
        luma = 0.299 * red + 0.587 * green + 0.114 * blue
        count = luma.numel()
        luma_histogram = torch.histc(luma, LUMA_BINS, 0.0, 1.0) / count
        chroma = torch.stack([(red - green).flatten(), (0.5 * (red + green) - blue).flatten()], dim=1)
        chroma_histogram = torch.histogramdd(chroma, bins=[CHROMA_BINS, CHROMA_BINS], range=[-1.0, 1.0, -1.0, 1.0]).hist / count
        return torch.cat([luma_histogram, chroma_histogram.flatten()]).sqrt()

    @staticmethod
    def _edges(pixels: torch.Tensor) -> torch.Tensor:
        red, green, blue = pixels
        luma = 0.299 * red + 0.587 * green + 0.114 * blue
        across, down = luma[:-1, 1:] - luma[:-1, :-1], luma[1:, :-1] - luma[:-1, :-1]
        magnitude = (across.square() + down.square()).sqrt().clamp(max=MAX_GRADIENT)
        return (torch.histc(magnitude, GRADIENT_BINS, 0.0, MAX_GRADIENT) / magnitude.numel()).sqrt()


class DinoEmbedding:
    """DINO ViT-S/16's last-layer CLS token (EST-LoRA's choice), from a local model folder."""

    def __init__(self, folder: str | Path) -> None:
        from transformers import AutoImageProcessor, AutoModel

        folder = Path(folder).expanduser()
        if not (folder / "config.json").is_file():
            raise InputError(f"{folder} holds no DINO model (no config.json); give a folder with facebook/dino-vits16 "
                             "saved by save_pretrained, or leave it empty for the offline embedding")
        try:
            self.processor = AutoImageProcessor.from_pretrained(folder, local_files_only=True)
            self.model = AutoModel.from_pretrained(folder, local_files_only=True).eval()
        except (OSError, ValueError) as error:
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise InputError(f"cannot load the DINO model in {folder}: {first}") from error

    @torch.no_grad()
    def __call__(self, images: Sequence[Image.Image]) -> torch.Tensor:
        inputs = self.processor(images=[image.convert("RGB") for image in images], return_tensors="pt")
        hidden = self.model(pixel_values=inputs["pixel_values"]).last_hidden_state  # (N, 1 + patches, D)
        return hidden[:, 0].float()


def load_embedding(dino_folder: str = "") -> ImageEmbedding:
    """DINO from ``dino_folder``, or the offline embedding when it is empty."""
    return DinoEmbedding(dino_folder) if dino_folder else OfflineStyleEmbedding()


def style_discrepancy(first: Image.Image, second: Image.Image, embedding: ImageEmbedding | None = None) -> float:
    """``1 - cos(e(first), e(second))`` in ``[0, 2]``."""
    embedded = (embedding or OfflineStyleEmbedding())([first, second])
    return float(1.0 - torch.nn.functional.cosine_similarity(embedded[0], embedded[1], dim=0))


def _unit(vector: torch.Tensor) -> torch.Tensor:
    norm = vector.norm()
    # A flat block (e.g. a one-colour image's edge histogram) has nothing to compare: all zeros.
    return vector / norm if norm > 0 else vector
