"""Baselines the style-preference model must beat (the harness that compares them is
:func:`recsys.holdout.run_holdout`).

The baselines share one small interface (scikit-learn shape)::

    model = Baseline(**params).fit(X)   # X: user x item CSR of positive confidences
    scores = model.user_scores(users)   # dense (len(users), n_items) block

They wrap the libraries rather than re-implementing them: ``implicit``'s CPU
ALS and BPR, and EASE's closed form with numpy/scipy (there is no maintained
library for it; it is one regularised Gram-matrix inverse).  Defaults are the
libraries' or the papers' published defaults, not values tuned on one file:

* :class:`PopularityRecommender`: number of users with a positive interaction.
* :class:`ALSRecommender`: ``implicit``'s own defaults (100 factors,
  regularization 0.01, confidence ``1 + x``, 15 iterations).
* :class:`BPRRecommender`: ``implicit``'s own defaults (100 factors, learning
  rate 0.01, regularization 0.01, 100 epochs).
* :class:`EASERecommender`: Steck (2019) with ``l2 = 500`` (the paper's value
  for MovieLens-20M and Netflix), refused above 20,000 items because the dense
  item x item inverse costs ``4 * n_items**2`` bytes per copy and ``O(n_items**3)`` time.
* :class:`ContentRecommender`: the standardised mean style code of a user's
  items, cosine against every item's standardised code.  Needs item codes.

Cold start (one rule for every model, so no model is flattered):

* a test user with no training history (possible with a ``time:`` holdout) is
  ranked by training popularity, whichever model is evaluated;
* a held-out item never seen in training cannot be recommended by any model:
  it stays in the user's relevant set and counts as a miss (see
  :mod:`recsys.evaluation`), so a test user whose held-out items are *all*
  unknown scores 0 on every model rather than being dropped.  Both counts are
  reported (``n_cold_users``, ``n_unknown_test_items``).
"""

from __future__ import annotations

import logging
import os
from typing import Any, Protocol

import numpy as np
import scipy.linalg.lapack
import scipy.sparse as sp
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

log = logging.getLogger(__name__)

#: Largest catalogue EASE accepts (dense item x item float32 inverse: 1.6 GB at 20k,
#: several such matrices alive during the fit).
EASE_MAX_ITEMS = 20_000

#: Every model name :func:`run_holdout` knows, in report order.
MODEL_NAMES: tuple[str, ...] = ("stylerec", "als", "bpr", "ease", "popularity", "content")


def default_threads() -> int:
    """Threads for ``implicit``: the CPUs this process may use, capped at 8.

    ``implicit``'s own default (0 = every core of the machine) oversubscribes
    containers and shared hosts whose affinity mask is smaller than the machine.
    """
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        n = os.cpu_count() or 1
    return max(1, min(n, 8))


def _as_positive_csr(matrix: sp.spmatrix) -> sp.csr_matrix:
    """float32 CSR with only the positive entries (impressions dropped), sorted indices."""
    if not sp.issparse(matrix):
        raise ValueError("baselines fit on a scipy.sparse user x item matrix")
    m = sp.csr_matrix(matrix, dtype=np.float32, copy=True)
    m.data[m.data < 0] = 0.0
    m.eliminate_zeros()
    m.sort_indices()
    return m


def _user_rows(users: np.ndarray, n_users: int) -> tuple[np.ndarray, np.ndarray]:
    u = np.atleast_1d(np.asarray(users, dtype=np.int64))
    known = (u >= 0) & (u < n_users)
    return u, known


class Recommender(Protocol):
    """What the harness needs from a model: ``fit`` on a CSR, dense ``user_scores``."""

    def fit(self, matrix: sp.csr_matrix) -> Recommender: ...

    def user_scores(self, users: np.ndarray) -> np.ndarray: ...


class _Baseline(BaseEstimator):
    """Shared plumbing: popularity prior for users the model has never seen."""

    n_users_: int
    n_items_: int
    popularity_: np.ndarray

    def _check_fitted(self) -> None:
        check_is_fitted(self, "popularity_")

    def _remember(self, X: sp.csr_matrix) -> None:
        self.n_users_, self.n_items_ = X.shape
        self.popularity_ = np.diff(X.tocsc().indptr).astype(np.float32)

    def _known_scores(self, users: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def user_scores(self, users: np.ndarray) -> np.ndarray:
        """Dense ``(len(users), n_items)`` scores; unknown users get the popularity prior."""
        self._check_fitted()
        u, known = _user_rows(users, self.n_users_)
        out = np.empty((len(u), self.n_items_), dtype=np.float32)
        if known.any():
            out[known] = self._known_scores(u[known])
        if (~known).any():
            out[~known] = self.popularity_
        return out


class PopularityRecommender(_Baseline):
    """Everyone gets the same list: items by number of users who interacted with them.

    Counting users rather than summing confidences keeps one heavy buyer from
    making an item "popular".
    """

    def fit(self, matrix: sp.spmatrix) -> PopularityRecommender:
        """Count users per item on the positive entries."""
        self._remember(_as_positive_csr(matrix))
        return self

    def _known_scores(self, users: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.popularity_, (len(users), self.n_items_))


class _ImplicitRecommender(_Baseline):
    """Scores from an ``implicit`` CPU model's user and item factors."""

    model_: Any

    def _known_scores(self, users: np.ndarray) -> np.ndarray:
        return self.model_.user_factors[users] @ self.model_.item_factors.T


class ALSRecommender(_ImplicitRecommender):
    """``implicit.cpu.als.AlternatingLeastSquares`` on the confidence matrix.

    ``implicit`` reads confidence as ``1 + alpha * x``; BLAS is held to one
    thread during the fit because ``implicit`` parallelises over users itself
    (nested threading is slower, and ``implicit`` warns about it).
    """

    def __init__(
        self,
        factors: int = 100,
        regularization: float = 0.01,
        alpha: float = 1.0,
        iterations: int = 15,
        num_threads: int | None = None,
        seed: int = 0,
    ) -> None:
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.iterations = iterations
        self.num_threads = num_threads
        self.seed = seed

    def fit(self, matrix: sp.spmatrix) -> ALSRecommender:
        """Fit ALS (``implicit`` 0.7 takes the user x item CSR directly)."""
        from implicit.cpu.als import AlternatingLeastSquares
        from threadpoolctl import threadpool_limits

        X = _as_positive_csr(matrix)
        self._remember(X)
        with threadpool_limits(1, "blas"):
            self.model_ = AlternatingLeastSquares(
                factors=self.factors,
                regularization=self.regularization,
                alpha=self.alpha,
                iterations=self.iterations,
                num_threads=self.num_threads or default_threads(),
                random_state=self.seed,
            )
            self.model_.fit(X, show_progress=False)
        return self


class BPRRecommender(_ImplicitRecommender):
    """``implicit.cpu.bpr.BayesianPersonalizedRanking``: pairwise ranking on observed vs not.

    BPR uses only which entries are observed, not their confidence.  Its item
    factors carry a bias column (the user side has a matching column of ones),
    so the plain dot product is the full score.  One thread by default:
    ``implicit`` runs BPR's SGD lock-free ("Hogwild") across threads, which
    makes a seeded fit differ from run to run; ``num_threads=None`` uses every
    available core when speed matters more than reproducibility.
    """

    def __init__(
        self,
        factors: int = 100,
        learning_rate: float = 0.01,
        regularization: float = 0.01,
        iterations: int = 100,
        num_threads: int | None = 1,
        seed: int = 0,
    ) -> None:
        self.factors = factors
        self.learning_rate = learning_rate
        self.regularization = regularization
        self.iterations = iterations
        self.num_threads = num_threads
        self.seed = seed

    def fit(self, matrix: sp.spmatrix) -> BPRRecommender:
        """Fit BPR with ``implicit``'s sampler (negatives verified against the user's items)."""
        from implicit.cpu.bpr import BayesianPersonalizedRanking

        X = _as_positive_csr(matrix)
        self._remember(X)
        self.model_ = BayesianPersonalizedRanking(
            factors=self.factors,
            learning_rate=self.learning_rate,
            regularization=self.regularization,
            iterations=self.iterations,
            num_threads=self.num_threads or default_threads(),
            random_state=self.seed,
        )
        self.model_.fit(X, show_progress=False)
        return self


class EASERecommender(_Baseline):
    """EASE (Steck 2019): item-item weights ``B`` with a zero diagonal, in closed form.

    ``P = (X^T X + l2 I)^-1``, ``B = -P / diag(P)`` off the diagonal; scores are
    ``X_u B``.  The Gram matrix is dense ``n_items x n_items``, so catalogues
    above ``max_items`` are refused with a clear error instead of exhausting memory.
    """

    def __init__(self, l2: float = 500.0, max_items: int = EASE_MAX_ITEMS) -> None:
        self.l2 = l2
        self.max_items = max_items

    def fit(self, matrix: sp.spmatrix) -> EASERecommender:
        """Solve the closed form (Cholesky inverse of the regularised Gram matrix)."""
        X = _as_positive_csr(matrix)
        n_items = X.shape[1]
        if n_items > self.max_items:
            gib = 3 * 4 * n_items**2 / 2**30
            raise ValueError(
                f"EASE: {n_items:,} items exceed max_items={self.max_items:,} "
                f"(the dense item x item inverse would need {gib:.1f} GiB and O(n^3) time); "
                "use ALS/BPR or the style-preference model for this catalogue"
            )
        if self.l2 <= 0:
            raise ValueError(f"EASE: l2 must be > 0, got {self.l2}")
        self._remember(X)
        gram = (X.T @ X).toarray().astype(np.float32, copy=False)
        gram[np.diag_indices_from(gram)] += self.l2
        # Gram + l2 I is symmetric positive definite with condition number
        # (largest eigenvalue + l2) / l2: a float32 Cholesky inverse (potrf + potri,
        # ~n^3 flops) is 4x faster than a float64 LU inverse and, measured on
        # MovieLens, differs from it by 1e-7 on weights of order 0.05.
        chol, info = scipy.linalg.lapack.spotrf(gram, lower=False, overwrite_a=True)
        if info != 0:
            raise ValueError(f"EASE: Gram matrix not positive definite (LAPACK info {info})")
        P, info = scipy.linalg.lapack.spotri(chol, lower=False, overwrite_c=True)
        if info != 0:
            raise ValueError(f"EASE: inverse failed (LAPACK info {info})")
        # potri fills the upper triangle only; mirror it in place, a block of rows at a time.
        for start in range(0, n_items, 1024):
            stop = min(start + 1024, n_items)
            P[start:stop, :start] = P[:start, start:stop].T
            block = P[start:stop, start:stop]
            block[np.tril_indices(stop - start, -1)] = block.T[np.tril_indices(stop - start, -1)]
        P /= -np.diag(P).copy()
        np.fill_diagonal(P, 0.0)
        self.B_ = P
        self.X_ = X
        return self

    def _known_scores(self, users: np.ndarray) -> np.ndarray:
        return np.asarray(self.X_[users] @ self.B_)


class ContentRecommender(_Baseline):
    """Content only: cosine between a user's mean item code and every item's code.

    Codes are standardised per dimension first (raw style codes all point the
    same way, cosine > 0.9 between unrelated images, so a raw cosine ranks by
    noise).  The user profile is the confidence-weighted mean of the
    standardised codes of the user's positive items.  Items without a code
    should be given the mean code (they then score 0, i.e. neutral).
    """

    def __init__(self, item_codes: np.ndarray | None = None) -> None:
        self.item_codes = item_codes

    def fit(self, matrix: sp.spmatrix) -> ContentRecommender:
        """Standardise the codes and build user profiles."""
        if self.item_codes is None:
            raise ValueError("ContentRecommender needs item_codes (one style code per item)")
        X = _as_positive_csr(matrix)
        codes = np.asarray(self.item_codes, dtype=np.float64)
        if codes.ndim != 2 or codes.shape[0] != X.shape[1]:
            raise ValueError(
                f"ContentRecommender: item_codes shape {codes.shape} does not match "
                f"{X.shape[1]} items"
            )
        self._remember(X)
        self.code_mean_ = codes.mean(axis=0)
        self.code_std_ = np.maximum(codes.std(axis=0), 1e-8)
        z = (codes - self.code_mean_) / self.code_std_
        norms = np.linalg.norm(z, axis=1, keepdims=True)
        self.unit_codes_ = (z / np.where(norms > 0, norms, 1.0)).astype(np.float32)
        weights = X.sum(axis=1).A.ravel()
        profiles = np.asarray(X @ self.unit_codes_) / np.maximum(weights, 1e-12)[:, None]
        pnorm = np.linalg.norm(profiles, axis=1, keepdims=True)
        self.user_profiles_ = (profiles / np.where(pnorm > 0, pnorm, 1.0)).astype(np.float32)
        return self

    def _known_scores(self, users: np.ndarray) -> np.ndarray:
        return self.user_profiles_[users] @ self.unit_codes_.T

    def style_scores(self, users: np.ndarray, style_codes: np.ndarray) -> np.ndarray:
        """Content-only style affinity: cosine of each user's profile with each style's code.

        Style codes are standardised with the *item* codes' statistics (the space the
        profiles live in).  Users unknown to the fit get the mean profile.
        """
        self._check_fitted()
        codes = np.asarray(style_codes, dtype=np.float64)
        if codes.ndim != 2 or codes.shape[1] != self.code_mean_.shape[0]:
            raise ValueError(
                f"style_codes must have shape (n, {self.code_mean_.shape[0]}), got {codes.shape}"
            )
        z = (codes - self.code_mean_) / self.code_std_
        z /= np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
        u, known = _user_rows(users, self.n_users_)
        profiles = np.empty((len(u), z.shape[1]), dtype=np.float32)
        profiles[known] = self.user_profiles_[u[known]]
        if (~known).any():
            profiles[~known] = self.user_profiles_.mean(axis=0)
        return profiles @ z.T.astype(np.float32)


def make_baseline(name: str, *, item_codes: np.ndarray | None = None, seed: int = 0) -> Any:
    """A baseline by harness name (``popularity``, ``als``, ``bpr``, ``ease``, ``content``)."""
    if name == "popularity":
        return PopularityRecommender()
    if name == "als":
        return ALSRecommender(seed=seed)
    if name == "bpr":
        return BPRRecommender(seed=seed)
    if name == "ease":
        return EASERecommender()
    if name == "content":
        return ContentRecommender(item_codes)
    raise ValueError(f"unknown baseline {name!r}; known: popularity, als, bpr, ease, content")


_MOVED = {
    "HoldoutResult": "recsys.holdout",
    "holdout_relevant": "recsys.holdout",
    "run_holdout": "recsys.holdout",
    "align_item_codes": "recsys.fit_inputs",
    "style_event_array": "recsys.fit_inputs",
}


def __getattr__(name: str) -> Any:
    """The harness moved to :mod:`recsys.holdout`, the input builders to :mod:`recsys.fit_inputs`."""
    module = _MOVED.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib
    import warnings

    warnings.warn(f"recsys.baselines.{name} moved to {module}.{name}", DeprecationWarning,
                  stacklevel=2)
    return getattr(importlib.import_module(module), name)


__all__ = [
    "ALSRecommender",
    "BPRRecommender",
    "ContentRecommender",
    "EASERecommender",
    "EASE_MAX_ITEMS",
    "MODEL_NAMES",
    "PopularityRecommender",
    "Recommender",
    "default_threads",
    "make_baseline",
]
