"""Image-quality metrics for comparing two generators: PSNR, SSIM, style-trunk Fréchet distance.

PSNR and SSIM are scikit-image's (``peak_signal_noise_ratio``,
``structural_similarity`` over the three colour channels, data range 255): a
student render against the teacher's render of the same photo and style.

``frechet_distance`` is the Fréchet distance between two Gaussians fitted to
image features, as in FID, but the features are NOT Inception-v3's: they are
the shipped style predictor's MobileNetV2 trunk (the 320-channel output of its
last inverted-residual block, averaged over the image).  Torch is imported only
by :func:`trunk_features`, so importing this module (and :mod:`stylizer.metrics`,
which re-exports it) stays cheap.  Its values are
therefore not comparable with published FID numbers; it is called the
"style-trunk Fréchet distance" wherever it is reported.  With the ~100 renders
of a held-out set the estimate is biased and noisy, so it always comes with a
bootstrap interval (:func:`frechet_interval`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import linalg
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

__all__ = ["psnr", "ssim", "trunk_features", "frechet_distance", "frechet_interval"]

TRUNK_FEATURE_DIM = 320


def _check(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape != b.shape or a.ndim != 3 or a.shape[2] != 3 or a.dtype != np.uint8 or b.dtype != np.uint8:
        raise ValueError(f"need two equal-shape HxWx3 uint8 images, got {a.shape}/{a.dtype} and "
                         f"{b.shape}/{b.dtype}")  # fmt: skip


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB between two uint8 RGB images (inf when identical)."""
    _check(a, b)
    if np.array_equal(a, b):
        return float("inf")
    return float(peak_signal_noise_ratio(a, b, data_range=255))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean structural similarity (scikit-image, Gaussian-free 7x7 window) over the RGB channels."""
    _check(a, b)
    return float(structural_similarity(a, b, channel_axis=2, data_range=255))


def trunk_features(images: Sequence[np.ndarray], predictor: Any, size: int = 256) -> np.ndarray:
    """``(N, 320)`` pooled trunk features of uint8 RGB images, each resized to ``size`` square.

    ``predictor`` is a :class:`stylizer.networks.StylePredictor` (its ``stem`` and
    ``blocks`` are run; the head and the bottleneck are not).
    """
    import torch
    import torch.nn.functional as F

    device = next(predictor.parameters()).device
    out = []
    for img in images:
        x = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None].float().div(255)
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        with torch.no_grad():
            h = F.relu6(predictor.stem(x.to(device)))
            for block in predictor.blocks:
                h = block(h)
        out.append(h.mean(dim=(2, 3)).cpu().numpy()[0])
    return np.asarray(out, dtype=np.float64)


def frechet_distance(feats_a: np.ndarray, feats_b: np.ndarray) -> float:
    """``|mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2))`` of two feature sets (rows = images)."""
    a, b = np.asarray(feats_a, np.float64), np.asarray(feats_b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or min(len(a), len(b)) < 2:
        raise ValueError(f"need two (N>=2, D) feature arrays, got {a.shape} and {b.shape}")
    mu_a, mu_b = a.mean(0), b.mean(0)
    xa, xb = a - mu_a, b - mu_b
    # Tr((S_a S_b)^(1/2)) without a D x D matrix square root: with S = X^T X / (n - 1) the
    # nonzero eigenvalues of S_a S_b are the squared singular values of X_a X_b^T / sqrt(..)
    # (an N_a x N_b matrix), exact and far cheaper than scipy's sqrtm when N < D.
    sv = linalg.svdvals(xa @ xb.T) / np.sqrt((len(a) - 1) * (len(b) - 1))
    tr_a = float(np.sum(xa * xa)) / (len(a) - 1)
    tr_b = float(np.sum(xb * xb)) / (len(b) - 1)
    value = float(np.sum((mu_a - mu_b) ** 2) + tr_a + tr_b - 2 * np.sum(sv))
    return max(value, 0.0)


def frechet_interval(
    feats_a: np.ndarray,
    feats_b: np.ndarray,
    n_boot: int = 200,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """(distance, lower, upper): the Fréchet distance and a percentile bootstrap interval.

    When both sets have the same length the rows are taken as pairs (a student
    and a teacher render of the same photo and style) and resampled together.
    """
    a, b = np.asarray(feats_a, np.float64), np.asarray(feats_b, np.float64)
    point = frechet_distance(a, b)
    rng = np.random.default_rng(seed)
    paired = len(a) == len(b)
    stats = []
    for _ in range(n_boot):
        ia = rng.integers(len(a), size=len(a))
        ib = ia if paired else rng.integers(len(b), size=len(b))
        stats.append(frechet_distance(a[ia], b[ib]))
    lo, hi = np.quantile(stats, [(1 - level) / 2, (1 + level) / 2])
    return point, float(lo), float(hi)
