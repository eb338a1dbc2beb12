"""FAISS retrieval: top styles and top items per user.

Why this module exists: the nightly job must answer "which styles (items) does
each of a million shoppers prefer?" — a maximum-inner-product search of every
user vector against every style (item) embedding.  FAISS does that with BLAS
and a fused top-k heap, so the full user x style score matrix is never held in
memory, and it offers approximate indices (IVF, HNSW) for catalogues too large
for exact search, plus GPU indices when faiss-gpu is installed.

The classes take plain ``float32`` arrays and string id lists, never a model
object, because ``recsys`` hands arrays across stage boundaries (see
``docs/architecture.md``) and because an index rebuilt from saved arrays must
not depend on the model class that produced them.

* :class:`StyleIndex` — style embeddings; ``top_styles(user_ids, k)``.
* :class:`ItemIndex` — item vectors; ``top_items(user_ids, k)`` with
  "exclude what the user has already seen" and a popularity cold start.

Both keep a *user table* (user id -> vector row) so that callers can ask by id.
Users the table does not know get a defined cold-start answer (see
:meth:`StyleIndex.set_users`), never an exception: a shopper who signed up
today must still see a ranked page.

Result convention: ``search`` returns ``(ids, scores)`` of shape ``(q, k)``;
``ids`` is an object array of ``str``.  When fewer than ``k`` candidates exist
(tiny index, or everything excluded) the tail is padded with ``None`` ids and
``-inf`` scores, so shapes never depend on the data.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from recsys._faiss_base import (
    EXACT_MAX,
    IndexKind,
    Metric,
    _FaissIndex,
    _filter_excluded,
    faiss_threads,
)

log = logging.getLogger(__name__)

__all__ = ["EXACT_MAX", "IndexKind", "ItemIndex", "Metric", "StyleIndex", "faiss_threads"]


class StyleIndex(_FaissIndex):
    """FAISS index over style embeddings: which library styles does a user prefer?

    ``StyleIndex(**params).fit(style_embeddings, style_ids, user_vectors=...,
    user_ids=...)`` then ``top_styles(user_ids, k)``.  See :class:`_FaissIndex`
    for the parameters.  Style libraries are small (hundreds to thousands), so
    ``"auto"`` is nearly always exact.
    """

    _what = "styles"

    def fit(
        self,
        style_embeddings: Any,
        style_ids: Sequence[str],
        user_vectors: Any = None,
        user_ids: Sequence[str] | None = None,
        default_vector: Any = None,
    ) -> StyleIndex:
        """Build the index; optionally hold a user table (see :meth:`set_users`)."""
        self._fit_vectors(style_embeddings, style_ids)
        if user_vectors is not None:
            if user_ids is None:
                raise ValueError("user_vectors given without user_ids")
            self.set_users(user_vectors, user_ids, default_vector)
        return self

    def top_styles(
        self, user_ids: Sequence[str], k: int, exclude: Any = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` style ids and scores for each user id.

        Unknown users are answered with the table's default vector (the cold
        start defined in :meth:`set_users`).
        """
        q, _ = self.user_query_vectors(user_ids)
        return self.search(q, k, exclude)


class ItemIndex(_FaissIndex):
    """FAISS index over item vectors: which items should a user see next?

    Adds two things to :class:`StyleIndex`'s behaviour:

    * ``seen`` — a (n_users, n_items) CSR held with the user table, whose
      columns follow the ``ids`` given to :meth:`fit`; ``top_items`` leaves
      those items out (a shopper should not be recommended what they bought).
    * ``popularity`` — per-item scores; unknown users get the most popular
      items (scores = popularity), the standard cold start for a shop.  Without
      it they get the default vector's answer, as in :class:`StyleIndex`.
    """

    _what = "items"

    def fit(
        self,
        item_vectors: Any,
        item_ids: Sequence[str],
        user_vectors: Any = None,
        user_ids: Sequence[str] | None = None,
        default_vector: Any = None,
        seen: Any = None,
        popularity: Any = None,
    ) -> ItemIndex:
        """Build the index; optionally hold users, their seen items and item popularity."""
        self._fit_vectors(item_vectors, item_ids)
        self.popularity_: np.ndarray | None = None
        if popularity is not None:
            pop = np.asarray(popularity, dtype=np.float32).ravel()
            if pop.shape[0] != len(self.ids_):
                raise ValueError(f"popularity: {pop.shape[0]} values for {len(self.ids_)} items")
            if not np.isfinite(pop).all():
                raise ValueError("popularity: contains NaN or inf")
            self.popularity_ = pop
        self.seen_: sp.csr_matrix | None = None
        if user_vectors is not None:
            if user_ids is None:
                raise ValueError("user_vectors given without user_ids")
            self.set_users(user_vectors, user_ids, default_vector, seen=seen)
        elif seen is not None:
            raise ValueError("seen given without user_vectors/user_ids")
        return self

    def set_users(  # type: ignore[override]
        self,
        user_vectors: Any,
        user_ids: Sequence[str],
        default_vector: Any = None,
        seen: Any = None,
    ) -> None:
        """Hold the user table and, optionally, each user's seen items (CSR)."""
        super().set_users(user_vectors, user_ids, default_vector)
        if seen is None:
            self.seen_ = None
            return
        mat = sp.csr_matrix(seen)
        want = (len(self.user_ids_), len(self.ids_))
        if mat.shape != want:
            raise ValueError(f"seen: expected shape (n_users, n_items) = {want}, got {mat.shape}")
        mat.eliminate_zeros()
        self.seen_ = mat

    def top_items(
        self,
        user_ids: Sequence[str],
        k: int,
        exclude_seen: bool = True,
        exclude: Any = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` item ids and scores per user id.

        ``exclude_seen`` drops the user's seen items (when a ``seen`` matrix was
        given); ``exclude`` adds per-query exclusions (same forms as
        :meth:`search`).  Unknown users: most popular items when ``popularity``
        was given at fit time, else the default-vector answer.
        """
        rows = self.user_rows(user_ids)
        known = rows >= 0
        q = len(rows)
        n = len(self.ids_)
        ex = self._exclusion_matrix(exclude, q)
        if exclude_seen and self.seen_ is not None:
            seen_rows = self.seen_[np.where(known, rows, 0)]
            seen_rows = sp.diags(known.astype(np.int8), dtype=np.int8) @ seen_rows  # unknown users saw nothing
            ex = seen_rows if ex is None else (ex + seen_rows)
        if ex is not None:
            ex = sp.csr_matrix(ex)
        labels = np.full((q, k), -1, dtype=np.int64)
        scores = np.full((q, k), -np.inf, dtype=np.float32)
        if self.popularity_ is None:
            qv, _ = self.user_query_vectors(user_ids)
            labels, scores = self.search_rows(qv, k, ex)
            return self._ids_of(labels), scores
        kn = np.flatnonzero(known)
        if kn.size:
            qv = self.user_vectors_[rows[kn]]
            labels[kn], scores[kn] = self.search_rows(qv, k, None if ex is None else ex[kn])
        unk = np.flatnonzero(~known)
        if unk.size:
            ex_u = None if ex is None else ex[unk]
            extra = int(np.diff(ex_u.indptr).max()) if ex_u is not None else 0
            width = min(k + extra, n)
            order = np.argsort(-self.popularity_, kind="stable")[:width]
            lab = np.broadcast_to(order, (unk.size, width)).copy()
            sc = np.broadcast_to(self.popularity_[order], (unk.size, width)).copy()
            if ex_u is not None:
                lab, sc = _filter_excluded(lab, sc, ex_u, k)
            w = min(k, lab.shape[1])
            labels[unk, :w] = lab[:, :w]
            scores[unk, :w] = sc[:, :w]
        return self._ids_of(labels), scores

    def _extra_arrays(self) -> dict[str, np.ndarray]:
        arrays: dict[str, np.ndarray] = {}
        if self.popularity_ is not None:
            arrays["popularity"] = self.popularity_
        if self.seen_ is not None:
            arrays["seen_indptr"] = self.seen_.indptr
            arrays["seen_indices"] = self.seen_.indices
        return arrays

    def _load_extra(self, arrays: Any) -> None:
        self.popularity_ = np.asarray(arrays["popularity"]) if "popularity" in arrays else None
        self.seen_ = None
        if "seen_indptr" in arrays:
            indptr = np.asarray(arrays["seen_indptr"])
            indices = np.asarray(arrays["seen_indices"])
            data = np.ones(indices.shape[0], dtype=np.int8)
            self.seen_ = sp.csr_matrix(
                (data, indices, indptr), shape=(len(indptr) - 1, len(self.ids_))
            )
