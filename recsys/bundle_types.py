"""The value types of :mod:`recsys.run_bundle`: what its readers return, and its errors.

Kept apart from the reader/writer module only for size; every file of a run is
still written and read in :mod:`recsys.run_bundle`, which re-exports these names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


class BundleError(ValueError):
    """A run bundle (or one of its files) that is corrupt or not a stylerec run bundle."""


class BundleVersionError(BundleError):
    """A run bundle written by a newer stylerec than this one."""


@dataclass(frozen=True)
class Codes:
    """Raw style codes of the readable items and library styles (``codes.npz``)."""

    item_ids: list[str]
    item_codes: np.ndarray  # (n_items, d) float32
    style_ids: list[str]
    style_codes: np.ndarray  # (n_styles, d) float32


@dataclass(frozen=True)
class Whitening:
    """The style library's whitening (``whitening.npz``): ``(raw - mean) @ matrix``."""

    mean: np.ndarray
    matrix: np.ndarray

    def transform(self, codes: Any) -> np.ndarray:
        """Whitened codes in float64 (what ``stylizer.StyleSpace.transform`` computes)."""
        arr = np.atleast_2d(np.asarray(codes, dtype=np.float64))
        if arr.shape[1] != self.mean.shape[0]:
            raise ValueError(f"codes have {arr.shape[1]} dims, the whitening {self.mean.shape[0]}")
        return (arr - self.mean) @ self.matrix


@dataclass(frozen=True)
class StyleTable:
    """Style ids and their embeddings in the preference space (``W c_s``)."""

    style_ids: list[str]
    embeddings: np.ndarray


@dataclass(frozen=True)
class ModelArrays:
    """What serving needs of a saved ``StylePreferenceModel``, read without PyTorch (which
    costs ~0.5 GB resident per ranking process).  ``item_factors`` is the model's
    ``item_factors_`` (``q_i + W c_i``), ``popularity`` its ``popularity_scores()``; a test
    compares both readers on a trained model."""

    n_users: int
    n_items: int
    user_factors: np.ndarray
    item_factors: np.ndarray
    item_bias: np.ndarray
    popularity: np.ndarray
    W: np.ndarray
    code_mean: np.ndarray | None
    code_scale: float | None
    seen_indptr: np.ndarray | None
    seen_indices: np.ndarray | None
