"""The space of style codes: whitening for similarity, blending and strength.

Raw style codes of different paintings point in nearly the same direction
(cosine > 0.9): most of each code is a shared offset and a few high-variance
directions.  Similarity is therefore only meaningful after centring on the
style library's mean and whitening with its covariance.  A library has few
styles (a dozen or so) and codes have 100 dimensions, so the sample covariance
is singular; we shrink it towards a scaled identity, which keeps every
direction finite and stable instead of projecting onto the handful of
directions the library happens to span.  The default shrinkage (0.7) is
strong on purpose: Ledoit-Wolf's choice (about 0.35 on a 14-painting library)
minimises covariance error, not retrieval error, and over-amplifies the
directions the library barely samples.  Measured on 14 artworks and renders
of 6 products in 4 of them, the true style was the most similar library
style for 96 % of full renders at 0.7, against 75 % with Ledoit-Wolf.

Blending and interpolation stay in *raw* code space, because that is the space
the generator was trained on: a convex combination of raw codes is a valid
conditioning input, while a point in whitened space is not.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from sklearn.covariance import LedoitWolf

__all__ = ["StyleSpace"]

_FORMAT_VERSION = 1


class StyleSpace:
    """Centring and whitening fitted on a style library (scikit-learn estimator shape).

    Parameters
    ----------
    shrinkage:
        Weight of the identity target in the covariance, in [0, 1] (1 = only
        centre).  ``None`` picks it with Ledoit-Wolf.
    eps:
        Floor on eigenvalues, relative to the mean variance, so that whitening
        never divides by zero even for degenerate libraries.
    """

    def __init__(self, shrinkage: float | None = 0.7, eps: float = 1e-6) -> None:
        self.shrinkage = shrinkage
        self.eps = eps

    # ------------------------------------------------------------------ fit / transform
    def fit(self, library_codes: np.ndarray) -> StyleSpace:
        """Learn ``mean_``, ``covariance_``, ``whitening_`` from ``(n_styles, dim)`` codes."""
        codes = _as_2d(library_codes, "library_codes")
        n, dim = codes.shape
        if n < 2:
            raise ValueError(f"need at least 2 library codes to fit a StyleSpace, got {n}")
        if self.shrinkage is not None and not 0.0 <= self.shrinkage <= 1.0:
            raise ValueError(f"shrinkage must be in [0, 1], got {self.shrinkage}")
        self.mean_ = codes.mean(axis=0)
        centred = codes - self.mean_
        if self.shrinkage is None:
            lw = LedoitWolf(assume_centered=True).fit(centred)
            cov = lw.covariance_
            self.shrinkage_ = float(lw.shrinkage_)
        else:
            emp = centred.T @ centred / n
            mu = np.trace(emp) / dim
            cov = (1.0 - self.shrinkage) * emp + self.shrinkage * mu * np.eye(dim)
            self.shrinkage_ = float(self.shrinkage)
        evals, evecs = np.linalg.eigh(cov)
        floor = self.eps * max(float(evals.mean()), 1e-12)
        evals = np.maximum(evals, floor)
        # ZCA (symmetric) whitening: stays aligned with the original code axes.
        self.covariance_ = cov
        self.whitening_ = (evecs / np.sqrt(evals)) @ evecs.T
        self.n_styles_ = n
        self.n_features_in_ = dim
        return self

    def transform(self, codes: np.ndarray) -> np.ndarray:
        """Whitened codes: ``(codes - mean_) @ whitening_``; keeps a 1-D input 1-D."""
        self._check_fitted()
        arr = np.asarray(codes, dtype=np.float64)
        one = arr.ndim == 1
        arr2 = _as_2d(arr, "codes")
        if arr2.shape[1] != self.n_features_in_:
            raise ValueError(f"codes have {arr2.shape[1]} dims, space has {self.n_features_in_}")
        out = (arr2 - self.mean_) @ self.whitening_
        return out[0] if one else out

    def similarity(self, a: np.ndarray, b: np.ndarray) -> np.ndarray | float:
        """Cosine similarity of whitened codes.

        Two 1-D codes give a float; otherwise a ``(len(a), len(b))`` matrix.
        """
        wa = self.transform(a)
        wb = self.transform(b)
        one = wa.ndim == 1 and wb.ndim == 1
        wa2, wb2 = np.atleast_2d(wa), np.atleast_2d(wb)
        na = wa2 / np.maximum(np.linalg.norm(wa2, axis=1, keepdims=True), 1e-12)
        nb = wb2 / np.maximum(np.linalg.norm(wb2, axis=1, keepdims=True), 1e-12)
        sim = na @ nb.T
        return float(sim[0, 0]) if one else sim

    # ------------------------------------------------------------------ raw-space operations
    @staticmethod
    def blend(codes: np.ndarray, weights: np.ndarray | list[float]) -> np.ndarray:
        """Weighted mix of ``(k, dim)`` raw codes; weights are non-negative and normalised."""
        arr = _as_2d(codes, "codes")
        w = np.asarray(weights, dtype=np.float64).ravel()
        if w.shape[0] != arr.shape[0]:
            raise ValueError(f"{arr.shape[0]} codes but {w.shape[0]} weights")
        if np.any(w < 0) or not np.all(np.isfinite(w)):
            raise ValueError("blend weights must be finite and non-negative")
        total = w.sum()
        if total <= 0:
            raise ValueError("blend weights sum to zero")
        return ((w / total) @ arr).astype(np.float32)

    @staticmethod
    def interpolate(
        content_code: np.ndarray, target_code: np.ndarray, strength: float
    ) -> np.ndarray:
        """``(1 - strength) * content + strength * target``: strength 0 keeps the content's look.

        Broadcasts, so ``(N, dim)`` content codes with one ``(dim,)`` target work.
        """
        if not 0.0 <= float(strength) <= 1.0:
            raise ValueError(f"strength must be in [0, 1], got {strength}")
        c = np.asarray(content_code, dtype=np.float64)
        t = np.asarray(target_code, dtype=np.float64)
        return ((1.0 - strength) * c + strength * t).astype(np.float32)

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the fitted space as ``.npz`` (arrays + JSON params; no pickle)."""
        self._check_fitted()
        p = Path(path)
        params = {
            "format_version": _FORMAT_VERSION,
            "shrinkage": self.shrinkage,
            "eps": self.eps,
            "shrinkage_": self.shrinkage_,
            "n_styles_": self.n_styles_,
        }
        with open(p, "wb") as fh:
            np.savez(
                fh,
                mean_=self.mean_,
                whitening_=self.whitening_,
                covariance_=self.covariance_,
                params=np.array(json.dumps(params)),
            )
        return p

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> StyleSpace:
        """Read a space written by :meth:`save`."""
        with np.load(Path(path), allow_pickle=False) as data:
            params = json.loads(str(data["params"]))
            if params.get("format_version") != _FORMAT_VERSION:
                raise ValueError(f"{path}: unsupported StyleSpace format {params}")
            space = cls(shrinkage=params["shrinkage"], eps=params["eps"])
            space.mean_ = data["mean_"].copy()
            space.whitening_ = data["whitening_"].copy()
            space.covariance_ = data["covariance_"].copy()
        space.shrinkage_ = float(params["shrinkage_"])
        space.n_styles_ = int(params["n_styles_"])
        space.n_features_in_ = int(space.mean_.shape[0])
        return space

    def _check_fitted(self) -> None:
        if not hasattr(self, "whitening_"):
            raise RuntimeError("StyleSpace is not fitted; call fit(library_codes) first")


def _as_2d(codes: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(codes, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[0] == 0:
        raise ValueError(f"{name} must be a (n, dim) array, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr
