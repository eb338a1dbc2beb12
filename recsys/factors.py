"""The learned factors of the style-preference model, and the one place that scores with them.

Why a module of its own: the formula that turns factors and style codes into
scores is needed by the trainer (validation, ``score``/``recommend``), the
holdout harness, the nightly stages (top styles, segment embeddings) and the
serving snapshot.  It used to be written out in each of them; now each of them
holds a :class:`StyleFactors` and calls it, so a change of the formula is made
here once.  numpy only: a ranking process imports this without PyTorch (the
trainer in :mod:`recsys.model` produces it, as ``implicit`` has one factors base
behind its CPU and GPU fits).

The formula (see :mod:`recsys.model` for how the factors are learned)::

    code space:   c~ = ((whiten(c) - code_mean) / code_scale) * sqrt(d)
    style vector: e(c) = c~ W
    score(u, i)   = p_u . v_i + b_i            (+ p_u . e_seg when item i is shown
                                                 rendered in the blend e_seg)

``v_i = q_i + W c_i`` are the full item vectors.  Cold start: an unknown user
scores items by log popularity (``log1p`` of the positive confidence mass)
and, where a vector is needed (style affinities), is the mean user vector; an
item the factors do not hold scores the prior (mean item bias), or
``p_u . e(c) + prior`` from its image code.

File format (``save``/``load``): ``<base>.npz`` (arrays, no pickle) and
``<base>.json`` (``format_version``, ``n_users``, ``n_items`` and whatever
metadata the trainer adds).  Version 3 stores ``item_factors`` (the full item
vectors); version 2 files (written before this module) stored only
``free_item_factors`` and ``item_codes``, and are still read (the full vectors
are derived as they were then).  The whitening of raw image codes is the run's
(``whitening.npz``), attached by the reader with :meth:`StyleFactors.with_whitening`,
so that a run has one whitening file.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from recsys.evaluation import top_k

FORMAT_VERSION = 3
"""``format_version`` that :meth:`StyleFactors.save` writes."""

READABLE_VERSIONS = (2, 3)
"""Versions :meth:`StyleFactors.load` reads (2: before the full item vectors were stored)."""


_FACTOR_KEYS = ("user_factors", "item_factors", "item_bias", "W", "item_popularity",
                "code_mean", "code_scale", "seen_indptr", "seen_indices",
                "free_item_factors", "item_codes")  # the last two: version-2 files
"""Arrays of a model file that the factors are made of."""


def standardise_codes(codes: np.ndarray, mean: np.ndarray, scale: float) -> np.ndarray:
    """``((c - mean) / scale) * sqrt(d)``: unit mean square per dimension, directions kept.

    One global scale (not one per dimension) keeps the code geometry; the
    trainer calls this with the statistics it is computing, scoring through
    :meth:`StyleFactors.standardise` with the ones it kept.
    """
    codes = np.asarray(codes, dtype=np.float64)
    mean = np.asarray(mean, dtype=np.float64).ravel()
    if codes.ndim != 2 or codes.shape[1] != mean.shape[0]:
        raise ValueError(f"codes must have shape (n, {mean.shape[0]}), got {codes.shape}")
    return ((codes - mean) / float(np.ravel(scale)[0]) * np.sqrt(codes.shape[1])).astype(
        np.float32)


def blend(embeddings: np.ndarray, weights: Sequence[float]) -> np.ndarray:
    """Embedding of a blend of styles: the weighted mean (weights normalised to sum 1).

    A segment's condition is a blend of library styles; its style term is the
    same blend of their embeddings, because ``e(c)`` is linear in the code.
    """
    emb = np.asarray(embeddings, dtype=np.float32)
    w = np.asarray(weights, dtype=np.float64)
    if len(w) == 0:
        return np.zeros(emb.shape[1] if emb.ndim == 2 else 0, np.float32)
    if w.sum() > 0:
        w = w / w.sum()
    out = np.zeros(emb.shape[1], np.float32)
    for row, wt in zip(emb, w, strict=True):
        out += np.float32(wt) * row
    return out


def top_k_row(scores: np.ndarray, k: int) -> np.ndarray:
    """Positions of the ``k`` largest of one score row, best first, ties by position.

    Exact, and much cheaper than ``argpartition`` over a whole catalogue: the
    ``k``-th largest of every 32nd score is a lower bound of the ``k``-th largest
    overall, so every member of the top ``k`` is among the (few) scores at or
    above it; only those are sorted.  The same order as :func:`recsys.evaluation.top_k`.
    """
    n = len(scores)
    k = min(int(k), n)
    if k <= 0:
        return np.empty(0, np.int64)
    cand = None
    if n >= 64 * k:
        sub = scores[::32]
        bound = np.partition(sub, len(sub) - k)[len(sub) - k]
        if np.isfinite(bound):
            cand = np.flatnonzero(scores >= bound)
    if cand is None:
        cand = np.arange(n)
    order = np.lexsort((cand, -scores[cand]))[:k]
    return cand[order].astype(np.int64)


def _f32(x: Any, ndim: int, name: str) -> np.ndarray:
    arr = np.ascontiguousarray(x, dtype=np.float32)
    if arr.ndim != ndim:
        raise ValueError(f"{name}: expected {ndim}-D, got shape {arr.shape}")
    return arr


@dataclass(frozen=True, eq=False)
class StyleFactors:
    """User vectors, item vectors and biases, the code projection ``W``; every score.

    Immutable (arrays are made read-only), so one instance can be shared by
    concurrent readers.  ``item_popularity`` is the positive confidence mass
    per item (the cold-start prior is its ``log1p``); ``seen_indptr`` /
    ``seen_indices`` the CSR of each user's training items (excluded by
    :meth:`recommend`).  ``code_mean``/``code_scale`` are ``None`` when the
    factors were learned without style codes; ``W`` is then ``(0, f)``.
    """

    user_factors: np.ndarray
    item_factors: np.ndarray
    item_bias: np.ndarray
    item_popularity: np.ndarray
    W: np.ndarray
    code_mean: np.ndarray | None = None
    code_scale: float | None = None
    seen_indptr: np.ndarray | None = None
    seen_indices: np.ndarray | None = None
    whitening: tuple[np.ndarray, np.ndarray] | None = field(default=None)

    def __post_init__(self) -> None:
        users = _f32(self.user_factors, 2, "user_factors")
        items = _f32(self.item_factors, 2, "item_factors")
        if users.shape[1] != items.shape[1]:
            raise ValueError(f"factor shapes differ: users {users.shape}, items {items.shape}")
        f = items.shape[1]
        bias = _f32(np.ravel(self.item_bias), 1, "item_bias")
        pop = np.ascontiguousarray(np.ravel(self.item_popularity), dtype=np.float64)
        if len(bias) != len(items) or len(pop) != len(items):
            raise ValueError(f"{len(items)} item vectors, {len(bias)} biases, "
                             f"{len(pop)} popularities")
        W = np.zeros((0, f), np.float32) if self.W is None else _f32(self.W, 2, "W")
        if W.size and W.shape[1] != f:
            raise ValueError(f"W has shape {W.shape}; expected (code dim, {f})")
        mean = None if self.code_mean is None else np.asarray(self.code_mean, np.float64).ravel()
        if mean is not None and W.size and W.shape[0] != len(mean):
            raise ValueError(f"code_mean has {len(mean)} dims, W {W.shape[0]}")
        scale = None if self.code_scale is None else float(np.ravel(self.code_scale)[0])
        indptr = indices = None
        if self.seen_indptr is not None:
            indptr = np.asarray(self.seen_indptr, np.int64)
            indices = np.asarray(self.seen_indices, np.int32)
            if len(indptr) != len(users) + 1:
                raise ValueError(f"seen: {len(indptr) - 1} rows for {len(users)} users")
        wh = None
        if self.whitening is not None:
            wh = (np.asarray(self.whitening[0], np.float32), np.asarray(self.whitening[1],
                                                                         np.float32))
        for name, value in (("user_factors", users), ("item_factors", items),
                            ("item_bias", bias), ("item_popularity", pop), ("W", W),
                            ("code_mean", mean), ("code_scale", scale),
                            ("seen_indptr", indptr), ("seen_indices", indices),
                            ("whitening", wh)):
            if isinstance(value, np.ndarray):
                value = value.view()  # read-only here; the caller's array stays as it was
                value.setflags(write=False)
            elif isinstance(value, tuple):
                value = tuple(v.view() for v in value)
                for v in value:
                    v.setflags(write=False)
            object.__setattr__(self, name, value)

    # ------------------------------------------------------------------ shape
    @property
    def n_users(self) -> int:
        return int(self.user_factors.shape[0])

    @property
    def n_items(self) -> int:
        return int(self.item_factors.shape[0])

    @property
    def n_factors(self) -> int:
        return int(self.item_factors.shape[1])

    @property
    def has_codes(self) -> bool:
        """Whether item/style codes can be projected (``W`` and the statistics are known)."""
        return self.code_mean is not None and self.W.size > 0

    @cached_property
    def prior(self) -> float:
        """Score of an item the factors do not hold: the mean item bias."""
        return float(self.item_bias.mean()) if self.n_items else 0.0

    @cached_property
    def popularity_scores(self) -> np.ndarray:
        """``log1p`` popularity per item: the ranking of users the factors do not know."""
        out = np.log1p(self.item_popularity).astype(np.float32)
        out.setflags(write=False)
        return out

    @cached_property
    def mean_user(self) -> np.ndarray:
        """The population's taste: the vector of users the factors do not know."""
        out = (self.user_factors.mean(axis=0) if self.n_users
               else np.zeros(self.n_factors, np.float32)).astype(np.float32)
        out.setflags(write=False)
        return out

    def with_whitening(self, mean: Any, matrix: Any) -> StyleFactors:
        """A copy that whitens raw codes with ``(raw - mean) @ matrix`` before projecting."""
        return dataclasses.replace(self, whitening=(mean, matrix))

    # ------------------------------------------------------------ code space
    def standardise(self, codes: np.ndarray) -> np.ndarray:
        """Codes (in the space the factors were learned in) centred and scaled as at fit."""
        if self.code_mean is None or self.code_scale is None:
            raise ValueError("these factors were learned without style codes")
        return standardise_codes(codes, self.code_mean, self.code_scale)

    def embed_codes(self, codes: np.ndarray) -> np.ndarray:
        """``e(c) = c~ W`` for codes ``(n, d)`` -> ``(n, f)``; works for never-shown styles."""
        return self.standardise(codes) @ self.W

    def whiten(self, raw: np.ndarray) -> np.ndarray:
        """Raw image codes into the space the factors were learned in (identity without whitening)."""
        raw = np.atleast_2d(np.asarray(raw, np.float32))
        if self.whitening is None:
            return raw
        mean, matrix = self.whitening
        if raw.shape[1] != mean.shape[0]:
            raise ValueError(f"codes must have {mean.shape[0]} dims, got {raw.shape[1]}")
        return (raw - mean) @ matrix

    def embed_raw_codes(self, raw: np.ndarray) -> np.ndarray:
        """``e(whiten(raw))``: item vectors of images the factors never saw."""
        return self.embed_codes(self.whiten(raw)).astype(np.float32)

    # ----------------------------------------------------------------- users
    def user_vectors(self, user_idx: Any) -> np.ndarray:
        """User vectors; rows outside the table get :attr:`mean_user`."""
        u = np.atleast_1d(np.asarray(user_idx, dtype=np.int64))
        known = (u >= 0) & (u < self.n_users)
        out = np.empty((len(u), self.n_factors), dtype=np.float32)
        out[known] = self.user_factors[u[known]]
        out[~known] = self.mean_user
        return out

    def seen_items(self, user_row: int) -> np.ndarray:
        """Item rows the user had in training (empty for unknown users or without a seen CSR)."""
        if self.seen_indptr is None or not 0 <= user_row < self.n_users:
            return np.empty(0, dtype=np.int64)
        return self.seen_indices[self.seen_indptr[user_row]: self.seen_indptr[user_row + 1]]

    def affinity(self, user_idx: Any, embeddings: np.ndarray) -> np.ndarray:
        """``p_u . e`` of users for rows of ``embeddings`` (style or blend vectors)."""
        return self.user_vectors(user_idx) @ np.asarray(embeddings, np.float32).T

    def style_affinity(self, user_idx: Any, style_codes: np.ndarray) -> np.ndarray:
        """``p_u . e(c_s)``, ``(n_users, n_styles)``, relative to the original image (0)."""
        return self.affinity(user_idx, self.embed_codes(style_codes))

    def top_by_embedding(self, embeddings: np.ndarray, k: int, user_idx: Any = None,
                         chunk: int = 65_536) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` rows of ``embeddings`` (e.g. style embeddings) per user, best first.

        Exact, in chunks of users so that a million users never hold a full
        score matrix; ``user_idx`` ``None`` means every user of the table.
        """
        emb = _f32(embeddings, 2, "embeddings")
        users = np.arange(self.n_users) if user_idx is None else np.atleast_1d(user_idx)
        k = min(int(k), len(emb))
        rows = np.empty((len(users), k), np.int64)
        vals = np.empty((len(users), k), np.float32)
        for start in range(0, len(users), chunk):
            s = self.affinity(users[start: start + chunk], emb)
            r = top_k(s, k)
            rows[start: start + chunk] = r
            vals[start: start + chunk] = np.take_along_axis(s, r, axis=1)
        return rows, vals

    # --------------------------------------------------------------- scoring
    def user_scores(self, user_idx: Any) -> np.ndarray:
        """Dense ``(len(user_idx), n_items)``: ``p_u . v_i + b_i``; unknown users: popularity."""
        u = np.atleast_1d(np.asarray(user_idx, dtype=np.int64))
        known = (u >= 0) & (u < self.n_users)
        out = np.empty((len(u), self.n_items), dtype=np.float32)
        if known.any():
            out[known] = self.user_factors[u[known]] @ self.item_factors.T + self.item_bias
        if (~known).any():
            out[~known] = self.popularity_scores
        return out

    def score(self, user_idx: Any, item_idx: Any, item_codes: np.ndarray | None = None
              ) -> np.ndarray:
        """Scores of (user, item) pairs, elementwise (see the module doc for cold start).

        ``item_codes`` (one row per pair, or one per unknown item) scores items
        outside the table from their codes (in the factors' code space).
        """
        u = np.atleast_1d(np.asarray(user_idx, dtype=np.int64))
        i = np.atleast_1d(np.asarray(item_idx, dtype=np.int64))
        u, i = np.broadcast_arrays(u, i)
        known_u = (u >= 0) & (u < self.n_users)
        known_i = (i >= 0) & (i < self.n_items)
        out = np.zeros(len(u), dtype=np.float32)
        pu = self.user_vectors(u)
        both = known_u & known_i
        out[both] = (pu[both] * self.item_factors[i[both]]).sum(1) + self.item_bias[i[both]]
        new_item = known_u & ~known_i
        if new_item.any():
            out[new_item] = self.prior
            if item_codes is not None and self.has_codes:
                codes = np.asarray(item_codes)
                if len(codes) == len(u):
                    codes = codes[np.flatnonzero(new_item)]
                out[new_item] += (pu[new_item] * self.embed_codes(codes)).sum(1)
        cold = ~known_u & known_i
        out[cold] = self.popularity_scores[i[cold]]
        return out

    def score_new_items(self, user_idx: Any, codes: np.ndarray, raw: bool = False
                        ) -> np.ndarray:
        """``(len(user_idx), len(codes))`` scores of items outside the table, from their codes.

        ``p_u . e(c) + prior``; ``raw`` codes are whitened first (:meth:`whiten`).
        Without codes in the factors every item scores the prior.
        """
        codes = np.atleast_2d(np.asarray(codes))
        if not self.has_codes:
            emb = np.zeros((len(codes), self.n_factors), np.float32)
        else:
            emb = self.embed_raw_codes(codes) if raw else self.embed_codes(codes)
        return (self.affinity(user_idx, emb) + np.float32(self.prior)).astype(np.float32)

    def score_user_items(self, user_row: int, rows: np.ndarray,
                         style_vector: np.ndarray | None = None,
                         styled: np.ndarray | None = None) -> np.ndarray:
        """One user's scores of item ``rows`` (``-1``: an item unknown to the table).

        ``style_vector`` (a blend's embedding) adds ``p_u . style_vector`` to the
        items where ``styled`` is true (those shown rendered).  Unknown user:
        popularity, and 0 for unknown items; known user: the prior for them.
        """
        rows = np.asarray(rows, dtype=np.int64)
        ok = rows >= 0
        safe = np.where(ok, rows, 0)
        if not 0 <= user_row < self.n_users:
            return np.where(ok, self.popularity_scores[safe], np.float32(0.0)).astype(np.float32)
        pu = self.user_factors[user_row]
        s = self.item_factors[safe] @ pu + self.item_bias[safe]
        if style_vector is not None and styled is not None:
            s = s + np.asarray(styled)[safe] * np.float32(style_vector @ pu)
        return np.where(ok, s, np.float32(self.prior)).astype(np.float32)

    def score_user_conditions(self, user_row: int, rows: np.ndarray,
                              condition_vectors: np.ndarray, shown: np.ndarray) -> np.ndarray:
        """One user's scores of item ``rows`` where each item shows its own condition.

        ``shown[j]`` indexes ``condition_vectors`` (blend embeddings) for row ``j``
        (``-1``: no render shown, no style term).  A shopper's style override
        shows different cached conditions on different items; the formula is
        :meth:`score_user_items`'s with a per-item style vector.
        """
        rows = np.asarray(rows, dtype=np.int64)
        s = self.score_user_items(user_row, rows)
        vectors = np.asarray(condition_vectors, np.float32)
        if not 0 <= user_row < self.n_users or len(vectors) == 0:
            return s
        terms = np.append(vectors @ self.user_factors[user_row], np.float32(0.0))
        extra = terms[np.asarray(shown, np.int64)]  # -1 -> the appended 0
        return np.where(rows >= 0, s + extra, s).astype(np.float32)

    def recommend_user(self, user_row: int, k: int, exclude: np.ndarray | None = None,
                       style_vector: np.ndarray | None = None,
                       styled: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Exact top ``k`` item rows and scores of one user over the whole table.

        Brute force (one mat-vec, ``argpartition``); ``exclude`` are rows to
        leave out (the user's seen items); ties break by row.  Measured against
        FAISS at 1M users x 100k items in ``docs/benchmarks.md``.
        """
        n = self.n_items
        if n == 0 or k < 1:
            return np.empty(0, np.int64), np.empty(0, np.float32)
        if not 0 <= user_row < self.n_users:
            scores = self.popularity_scores.copy()
        else:
            pu = self.user_factors[user_row]
            scores = self.item_factors @ pu + self.item_bias
            if style_vector is not None and styled is not None:
                scores += np.asarray(styled, np.float32) * np.float32(style_vector @ pu)
        if exclude is not None and len(exclude):
            scores[np.asarray(exclude, np.int64)] = -np.inf
        top = top_k_row(scores, k)
        top = top[np.isfinite(scores[top])]
        return top, scores[top]

    def recommend(self, user_idx: Any, k: int = 10, exclude_seen: bool = True
                  ) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` item rows and scores per user, best first; seen items excluded.

        Unknown users get the most popular items.  Excluded items are never
        returned: a user who saw nearly everything gets ``-inf`` scores in the tail.
        """
        users = np.atleast_1d(np.asarray(user_idx, dtype=np.int64))
        scores = self.user_scores(users)
        if exclude_seen and self.seen_indptr is not None:
            for row, u in enumerate(users.tolist()):
                scores[row, self.seen_items(u)] = -np.inf
        items = top_k(scores, k)
        return items, np.take_along_axis(scores, items, axis=1)

    # --------------------------------------------------------- cold catalogue
    def append_items(self, n: int, coded_rows: np.ndarray | None = None,
                     raw_codes: np.ndarray | None = None) -> StyleFactors:
        """A copy with ``n`` catalogue items nobody interacted with appended to the table.

        Their bias is the prior, their popularity 0, and their vector ``e(c)``
        for the new rows ``coded_rows`` (0-based among the ``n``) whose raw
        image codes are given, 0 otherwise (so they score the prior).
        """
        if n <= 0:
            return self
        vectors = np.zeros((n, self.n_factors), np.float32)
        if coded_rows is not None and len(coded_rows) and raw_codes is not None:
            vectors[np.asarray(coded_rows)] = self.embed_raw_codes(raw_codes)
        return dataclasses.replace(
            self,
            item_factors=np.vstack([self.item_factors, vectors]),
            item_bias=np.concatenate([self.item_bias, np.full(n, self.prior, np.float32)]),
            item_popularity=np.concatenate([self.item_popularity, np.zeros(n)]),
        )

    # ----------------------------------------------------------- persistence
    def to_arrays(self) -> dict[str, np.ndarray]:
        """The arrays :meth:`save` writes (keys of the npz)."""
        arrays: dict[str, np.ndarray] = {
            "user_factors": self.user_factors,
            "item_factors": self.item_factors,
            "item_bias": self.item_bias,
            "W": self.W,
            "item_popularity": self.item_popularity,
        }
        if self.code_mean is not None:
            arrays["code_mean"] = self.code_mean
            arrays["code_scale"] = np.atleast_1d(np.float64(self.code_scale))
        if self.seen_indptr is not None:
            arrays["seen_indptr"] = self.seen_indptr
            arrays["seen_indices"] = self.seen_indices
        return arrays

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> StyleFactors:
        """Inverse of :meth:`to_arrays`; also reads version-2 model arrays.

        Version 2 held ``free_item_factors`` and the standardised ``item_codes``;
        the full item vectors are ``free + codes @ W``, computed as then.
        """
        W = np.asarray(arrays["W"], np.float32)
        if "item_factors" in arrays:
            items = np.asarray(arrays["item_factors"], np.float32)
        else:
            items = np.asarray(arrays["free_item_factors"], np.float32)
            if "item_codes" in arrays and W.size:
                items = items + np.asarray(arrays["item_codes"]) @ W
        return cls(
            user_factors=arrays["user_factors"],
            item_factors=items,
            item_bias=arrays["item_bias"],
            item_popularity=arrays["item_popularity"],
            W=W,
            code_mean=arrays["code_mean"] if "code_mean" in arrays else None,
            code_scale=float(np.ravel(arrays["code_scale"])[0]) if "code_scale" in arrays
            else None,
            seen_indptr=arrays["seen_indptr"] if "seen_indptr" in arrays else None,
            seen_indices=arrays["seen_indices"] if "seen_indices" in arrays else None,
        )

    def save(self, path: str | Path, extra_arrays: Mapping[str, np.ndarray] | None = None,
             meta: Mapping[str, Any] | None = None) -> None:
        """Write ``<base>.npz`` and ``<base>.json`` (format version :data:`FORMAT_VERSION`).

        ``extra_arrays``/``meta`` are the trainer's own (history encoder, fit
        history); readers of the factors ignore them.
        """
        base = Path(path).with_suffix("")
        arrays = dict(extra_arrays or {})
        arrays.update(self.to_arrays())
        np.savez(base.with_suffix(".npz"), **arrays)
        payload = {**dict(meta or {}), "format_version": FORMAT_VERSION,
                   "n_users": self.n_users, "n_items": self.n_items}
        base.with_suffix(".json").write_text(json.dumps(payload, indent=2), encoding="utf-8")

    @classmethod
    def read(cls, path: str | Path, all_arrays: bool = True
             ) -> tuple[StyleFactors, dict[str, np.ndarray], dict[str, Any]]:
        """``(factors, arrays of the npz, the json)`` of a saved model (no pickle).

        ``all_arrays=False`` reads only the factors' arrays: a ranking process
        does not load the trainer's history encoder and user offsets (another
        user table's worth of memory at a million users).
        """
        base = Path(path).with_suffix("")
        meta_path, npz_path = base.with_suffix(".json"), base.with_suffix(".npz")
        for p in (meta_path, npz_path):
            if not p.is_file():
                raise FileNotFoundError(f"model file not found: {p}")
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("format_version") not in READABLE_VERSIONS:
            raise ValueError(
                f"{meta_path}: unsupported format_version {meta.get('format_version')!r} "
                f"(this code reads {list(READABLE_VERSIONS)}; retrain to upgrade)"
            )
        wanted = None if all_arrays else set(_FACTOR_KEYS)
        with np.load(npz_path, allow_pickle=False) as z:
            if wanted is not None and "item_factors" in z.files:
                wanted -= {"free_item_factors", "item_codes"}
            arrays = {name: z[name] for name in z.files if wanted is None or name in wanted}
        factors = cls.from_arrays(arrays)
        n_users, n_items = int(meta["n_users"]), int(meta["n_items"])
        if factors.n_users != n_users or factors.n_items != n_items:
            raise ValueError(
                f"{npz_path}: {factors.n_users} user and {factors.n_items} item vectors, but "
                f"{meta_path.name} says {n_users} and {n_items}"
            )
        return factors, arrays, meta

    @classmethod
    def load(cls, path: str | Path) -> StyleFactors:
        """Read the factors written by :meth:`save` (or by a version-2 model save)."""
        return cls.read(path, all_arrays=False)[0]


__all__ = ["FORMAT_VERSION", "READABLE_VERSIONS", "StyleFactors", "blend", "standardise_codes",
           "top_k_row"]
