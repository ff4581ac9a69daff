"""Image-quality measures shared by the model card, the benchmarks and the style evaluation."""

from __future__ import annotations

import numpy as np
import torch


def psnr(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB per image for ``(B, 3, H, W)`` tensors in ``[0, 1]``."""
    error = ((prediction.float() - target.float()) ** 2).flatten(1).mean(dim=1).clamp(min=1e-10)
    return 10 * torch.log10(1.0 / error)


def colour_features(images: torch.Tensor) -> np.ndarray:
    """Per-image colour statistics ``(B, 9)``: mean and standard deviation of R, G and B, mean
    saturation (max - min channel), and the 10th and 90th percentiles of luma.
    ``images``: ``(B, 3, H, W)`` in ``[0, 1]``."""
    flat = images.float().flatten(2)
    luma = (0.299 * flat[:, 0] + 0.587 * flat[:, 1] + 0.114 * flat[:, 2])
    saturation = (flat.max(dim=1).values - flat.min(dim=1).values).mean(dim=1, keepdim=True)
    percentiles = torch.quantile(luma, torch.tensor([0.1, 0.9]), dim=1).T
    return torch.cat([flat.mean(dim=2), flat.std(dim=2), saturation, percentiles], dim=1).numpy()


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """Fréchet distance between Gaussian fits of two feature sets (the formula of FID,
    Heusel et al. 2017, applied to :func:`colour_features` instead of Inception features)."""
    from scipy import linalg

    mean_a, mean_b = features_a.mean(axis=0), features_b.mean(axis=0)
    covariance_a, covariance_b = np.cov(features_a, rowvar=False), np.cov(features_b, rowvar=False)
    root, _ = linalg.sqrtm(covariance_a @ covariance_b, disp=False)
    root = root.real
    return float(((mean_a - mean_b) ** 2).sum() + np.trace(covariance_a + covariance_b - 2 * root))
