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
