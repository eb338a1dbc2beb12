"""The FAISS machinery shared by :class:`recsys.index.StyleIndex` and :class:`recsys.index.ItemIndex`.

Why apart: building, searching, exclusion filtering, the user table and
save/load are the same for both indices; :mod:`recsys.index` keeps only what
differs (styles vs items with seen items and a popularity cold start).  See
:mod:`recsys.index` for the result conventions.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import faiss
import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted
from tqdm.auto import tqdm

log = logging.getLogger("recsys.index")

IndexKind = Literal["auto", "flat", "ivf", "hnsw"]
Metric = Literal["ip", "cosine"]

#: Up to this many vectors "auto" uses an exact (flat) index.  Exact search of
#: 100k x 64 floats is a few ms per query batch, and exactness is worth more
#: than speed below this size (no recall loss to explain to anyone).
EXACT_MAX = 100_000

_FORMAT_VERSION = 1
_INDEX_FILE = "index.faiss"
_META_FILE = "meta.json"
_ARRAYS_FILE = "arrays.npz"


def faiss_threads() -> int:
    """How many threads FAISS should use on this machine.

    FAISS's OpenMP default is the number of *hardware* CPUs, which over-subscribes
    a container or a CPU-pinned job (``taskset``, cgroup cpusets) and makes every
    search slower.  We take the CPUs this process may actually run on, capped by
    ``$OMP_NUM_THREADS`` when the operator set it.
    """
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        n = os.cpu_count() or 1
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        n = min(n, int(env))
    return max(1, n)


def _gpu_available() -> bool:
    """faiss-gpu present and a GPU visible; prefers the project's single device switch."""
    try:
        from compute.device import faiss_gpu_available
    except ImportError:  # pragma: no cover - compute.device is part of the project
        get = getattr(faiss, "get_num_gpus", None)
        try:
            return bool(get is not None and get() > 0)
        except Exception:  # noqa: BLE001 - a broken faiss-gpu means "no GPU"
            return False
    return faiss_gpu_available()


def _as_matrix(x: Any, name: str, dim: int | None = None) -> np.ndarray:
    """C-contiguous float32 2-D copy-if-needed; FAISS silently misreads anything else."""
    arr = np.ascontiguousarray(x, dtype=np.float32)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D array (n, dim), got shape {arr.shape}")
    if dim is not None and arr.shape[1] != dim:
        raise ValueError(f"{name}: expected dimension {dim}, got {arr.shape[1]}")
    if arr.size and not np.isfinite(arr).all():
        bad = int(np.flatnonzero(~np.isfinite(arr).all(axis=1))[0])
        raise ValueError(f"{name}: row {bad} contains NaN or inf")
    return arr


def _normalise(x: np.ndarray) -> np.ndarray:
    """Row-wise L2 normalisation; all-zero rows stay zero instead of becoming NaN."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return np.ascontiguousarray(x / norms, dtype=np.float32)


def _check_ids(ids: Sequence[str], n: int, name: str) -> list[str]:
    out = [str(i) for i in ids]
    if len(out) != n:
        raise ValueError(f"{name}: {len(out)} ids for {n} vectors")
    if len(set(out)) != len(out):
        seen: set[str] = set()
        for i in out:
            if i in seen:
                raise ValueError(f"{name}: duplicate id {i!r}")
            seen.add(i)
    return out


def _progress(total: int, desc: str) -> tqdm:
    """A tqdm bar on a terminal, silent (but counted in the log) otherwise."""
    return tqdm(total=total, desc=desc, unit="q", disable=not sys.stderr.isatty(), leave=False)


def _filter_excluded(
    labels: np.ndarray, scores: np.ndarray, excluded: sp.csr_matrix, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Drop excluded rows from each query's candidate list and keep the best ``k``.

    Vectorised: a candidate (query r, row c) is excluded when the key r*n + c is
    among the CSR's keys; a stable sort of the boolean "drop" flags then moves
    the survivors to the front without disturbing their score order.
    """
    q, width = labels.shape
    n = max(int(excluded.shape[1]), 1)
    coo = excluded.tocoo()
    ex_keys = np.unique(coo.row.astype(np.int64) * n + coo.col.astype(np.int64))
    keys = np.arange(q, dtype=np.int64)[:, None] * n + np.where(labels < 0, 0, labels)
    drop = np.isin(keys, ex_keys) | (labels < 0)
    order = np.argsort(drop, axis=1, kind="stable")[:, :k]
    out_l = np.take_along_axis(labels, order, axis=1)
    out_s = np.take_along_axis(scores, order, axis=1)
    dropped = np.take_along_axis(drop, order, axis=1)
    out_l[dropped] = -1
    out_s[dropped] = -np.inf
    if width < k:  # pad so the shape is always (q, k)
        out_l = np.pad(out_l, ((0, 0), (0, k - width)), constant_values=-1)
        out_s = np.pad(out_s, ((0, 0), (0, k - width)), constant_values=-np.inf)
    return out_l, out_s


class _FaissIndex(BaseEstimator):
    """Shared machinery of :class:`StyleIndex` and :class:`ItemIndex`.

    Parameters
    ----------
    kind:
        ``"flat"`` exact inner product; ``"ivf"`` inverted file (k-means cells,
        fast build, good for very large sets); ``"hnsw"`` graph (best
        recall/speed at query time, slower build, no training); ``"auto"``
        picks flat up to ``exact_max`` vectors and IVF beyond.
    metric:
        ``"ip"`` ranks by inner product — the preference score of a factor
        model, which is what we want for recommendations.  ``"cosine"``
        normalises both sides first (useful for similarity between styles).
    nlist, nprobe:
        IVF cells and cells visited per query.  ``None`` picks
        ``nlist = 4*sqrt(n)`` and ``nprobe = max(16, nlist // 8)``, which gave
        recall@10 >= 0.95 on the test sets (see tests/recsys/test_index.py).
    hnsw_m, ef_construction, ef_search:
        HNSW graph degree and beam widths; defaults trade a little build time
        for recall >= 0.95 in 64 dimensions.
    use_gpu:
        ``"auto"`` uses a GPU copy of flat/IVF indices when faiss-gpu sees a
        GPU (``compute.device.faiss_gpu_available``); ``True`` requires one;
        ``False`` never.  HNSW has no GPU implementation and stays on CPU.
    batch_size:
        Queries per FAISS call.  Bounds the temporary (batch x k) result and
        lets a progress bar move during a million-user search.
    exact_max:
        The ``"auto"`` threshold between flat and IVF.
    seed:
        Seed of IVF's k-means, so that rebuilding an index is reproducible.
    """

    _what = "vectors"

    def __init__(
        self,
        kind: IndexKind = "auto",
        metric: Metric = "ip",
        nlist: int | None = None,
        nprobe: int | None = None,
        hnsw_m: int = 32,
        ef_construction: int = 80,
        ef_search: int = 128,
        use_gpu: bool | Literal["auto"] = "auto",
        batch_size: int = 65_536,
        exact_max: int = EXACT_MAX,
        seed: int = 0,
    ) -> None:
        self.kind = kind
        self.metric = metric
        self.nlist = nlist
        self.nprobe = nprobe
        self.hnsw_m = hnsw_m
        self.ef_construction = ef_construction
        self.ef_search = ef_search
        self.use_gpu = use_gpu
        self.batch_size = batch_size
        self.exact_max = exact_max
        self.seed = seed

    # ------------------------------------------------------------------ params
    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Constructor parameters (scikit-learn style; also what ``save`` records)."""
        return {
            "kind": self.kind,
            "metric": self.metric,
            "nlist": self.nlist,
            "nprobe": self.nprobe,
            "hnsw_m": self.hnsw_m,
            "ef_construction": self.ef_construction,
            "ef_search": self.ef_search,
            "use_gpu": self.use_gpu,
            "batch_size": self.batch_size,
            "exact_max": self.exact_max,
            "seed": self.seed,
        }

    def _validate_params(self) -> None:
        if self.kind not in ("auto", "flat", "ivf", "hnsw"):
            raise ValueError(f"kind must be 'auto', 'flat', 'ivf' or 'hnsw', got {self.kind!r}")
        if self.metric not in ("ip", "cosine"):
            raise ValueError(f"metric must be 'ip' or 'cosine', got {self.metric!r}")
        if self.use_gpu not in ("auto", True, False):
            raise ValueError(f"use_gpu must be 'auto', True or False, got {self.use_gpu!r}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")

    # --------------------------------------------------------------- building
    def _resolve_kind(self, n: int) -> str:
        if self.kind != "auto":
            return self.kind
        return "flat" if n <= self.exact_max else "ivf"

    def _default_nlist(self, n: int) -> int:
        # 4*sqrt(n) cells is FAISS's usual guidance; at least 39 training points
        # per cell, otherwise k-means is underdetermined and FAISS warns.
        return int(max(1, min(round(4 * np.sqrt(n)), n // 39)))

    def _build(self, vectors: np.ndarray) -> faiss.Index:
        n, dim = vectors.shape
        kind = self._resolve_kind(n)
        faiss.omp_set_num_threads(faiss_threads())
        if kind == "flat":
            index = faiss.IndexFlatIP(dim)
        elif kind == "hnsw":
            index = faiss.IndexHNSWFlat(dim, self.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = self.ef_construction
        else:
            nlist = self.nlist or self._default_nlist(n)
            if nlist > n:
                raise ValueError(f"nlist={nlist} exceeds the number of {self._what} ({n})")
            quantizer = faiss.IndexFlatIP(dim)
            index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
            index.cp.seed = self.seed
            index.train(vectors)
        index.add(vectors)
        self.kind_ = kind
        self._configure_search(index)
        return index

    def _configure_search(self, index: faiss.Index) -> None:
        """Apply query-time knobs (they are not all stored by ``write_index``)."""
        if isinstance(index, faiss.IndexIVF):
            nprobe = self.nprobe or max(16, index.nlist // 8)
            index.nprobe = int(min(nprobe, index.nlist))
        elif isinstance(index, faiss.IndexHNSW):
            index.hnsw.efSearch = self.ef_search

    def _maybe_gpu(self) -> None:
        """Clone flat/IVF indices to the GPU when asked and possible."""
        self.gpu_index_ = None
        wants = self.use_gpu is True or (self.use_gpu == "auto" and _gpu_available())
        if not wants:
            return
        if self.use_gpu is True and not _gpu_available():
            raise RuntimeError("use_gpu=True but faiss-gpu with a visible GPU is not available")
        if self.kind_ == "hnsw":
            log.info("HNSW has no FAISS GPU implementation; searching on CPU")
            return
        self.gpu_index_ = faiss.index_cpu_to_all_gpus(self.index_)
        log.info("FAISS %s index cloned to %d GPU(s)", self.kind_, faiss.get_num_gpus())

    def _fit_vectors(self, vectors: Any, ids: Sequence[str]) -> None:
        self._validate_params()
        vecs = _as_matrix(vectors, self._what)
        if vecs.shape[0] == 0:
            raise ValueError(f"{self._what}: cannot build an index of zero vectors")
        self.ids_ = _check_ids(ids, vecs.shape[0], f"{self._what} ids")
        self._ids_obj = np.array(self.ids_, dtype=object)
        self._row_of = {i: r for r, i in enumerate(self.ids_)}
        self.dim_ = int(vecs.shape[1])
        if self.metric == "cosine":
            vecs = _normalise(vecs)
        self.index_ = self._build(vecs)
        self._maybe_gpu()
        log.info("built %s index of %d %s (dim %d)", self.kind_, len(self.ids_), self._what, self.dim_)

    def __len__(self) -> int:
        return len(getattr(self, "ids_", ()))

    def _check_fitted(self) -> None:
        check_is_fitted(self, "index_")

    # -------------------------------------------------------------- searching
    def rows_of(self, ids: Iterable[str]) -> np.ndarray:
        """Index rows of ``ids``; ``-1`` for ids the index does not hold."""
        self._check_fitted()
        return np.array([self._row_of.get(str(i), -1) for i in ids], dtype=np.int64)

    def _exclusion_matrix(self, exclude: Any, q: int) -> sp.csr_matrix | None:
        """Normalise ``exclude`` to a (q, n) CSR of rows to drop per query."""
        if exclude is None:
            return None
        n = len(self.ids_)
        if sp.issparse(exclude):
            mat = sp.csr_matrix(exclude)
            if mat.shape != (q, n):
                raise ValueError(
                    f"exclude: sparse matrix must have shape (n_queries, n_{self._what}) = "
                    f"({q}, {n}), got {mat.shape}"
                )
            return mat
        if len(exclude) != q:
            raise ValueError(f"exclude: {len(exclude)} id sets for {q} queries")
        rows: list[int] = []
        cols: list[int] = []
        for r, ex in enumerate(exclude):
            if not ex:
                continue
            c = [self._row_of[i] for i in map(str, ex) if i in self._row_of]
            rows.extend([r] * len(c))
            cols.extend(c)
        data = np.ones(len(rows), dtype=np.int8)
        return sp.csr_matrix((data, (rows, cols)), shape=(q, n))

    def search_rows(
        self, queries: Any, k: int, exclude: Any = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Like :meth:`search` but returns index rows (``-1`` = padding), not ids.

        Cheaper for callers that index their own arrays with the result.
        """
        self._check_fitted()
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        qv = _as_matrix(queries, "queries", self.dim_)
        if self.metric == "cosine":
            qv = _normalise(qv)
        q = qv.shape[0]
        excluded = self._exclusion_matrix(exclude, q)
        n = len(self.ids_)
        labels = np.full((q, k), -1, dtype=np.int64)
        scores = np.full((q, k), -np.inf, dtype=np.float32)
        faiss.omp_set_num_threads(faiss_threads())
        index = self.gpu_index_ if self.gpu_index_ is not None else self.index_
        with _progress(q, f"top-{k} {self._what}") as bar:
            for start in range(0, q, self.batch_size):
                stop = min(start + self.batch_size, q)
                extra = 0
                ex_chunk = None
                if excluded is not None:
                    ex_chunk = excluded[start:stop]
                    counts = np.diff(ex_chunk.indptr)
                    extra = int(counts.max()) if counts.size else 0
                # Search k + (most excluded in this chunk) so that after filtering
                # every query still has k candidates whenever k exist at all.
                kk = min(k + extra, n)
                if self.gpu_index_ is not None:
                    kk = min(kk, 2048)  # faiss-gpu's k limit
                s, lab = index.search(qv[start:stop], kk)
                if ex_chunk is not None:
                    lab, s = _filter_excluded(lab, s, ex_chunk, k)
                else:
                    s[lab < 0] = -np.inf
                w = min(k, lab.shape[1])
                labels[start:stop, :w] = lab[:, :w]
                scores[start:stop, :w] = s[:, :w]
                bar.update(stop - start)
        log.debug("searched %d queries for top-%d %s", q, k, self._what)
        return labels, scores

    def search(
        self, queries: Any, k: int, exclude: Any = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` ids and scores for each query vector.

        Parameters
        ----------
        queries:
            ``(q, dim)`` array (a single ``(dim,)`` vector is treated as one query).
        k:
            How many results per query.
        exclude:
            ``None``; a sequence of ``q`` id collections to leave out per query;
            or a ``(q, n)`` sparse matrix whose non-zeros mark index rows to
            leave out (the "seen items" CSR of the queried users).

        Returns
        -------
        ids, scores:
            ``(q, k)`` object array of ids and ``(q, k)`` float32 scores, best
            first; padded with ``None`` / ``-inf`` when fewer than ``k`` remain.
        """
        labels, scores = self.search_rows(queries, k, exclude)
        return self._ids_of(labels), scores

    def _ids_of(self, labels: np.ndarray) -> np.ndarray:
        out = self._ids_obj[np.where(labels < 0, 0, labels)]
        out[labels < 0] = None
        return out

    def add(self, vectors: Any, ids: Sequence[str]) -> None:
        """Append new vectors (e.g. items first listed today) without a rebuild.

        IVF keeps its trained cells, so adding many vectors that look unlike
        the training set slowly degrades recall; the nightly job rebuilds.
        """
        self._check_fitted()
        vecs = _as_matrix(vectors, self._what, self.dim_)
        new = _check_ids(ids, vecs.shape[0], f"{self._what} ids")
        clash = [i for i in new if i in self._row_of]
        if clash:
            raise ValueError(f"{self._what} ids already in the index: {clash[:5]}")
        if self.metric == "cosine":
            vecs = _normalise(vecs)
        self.index_.add(vecs)
        for i in new:
            self._row_of[i] = len(self.ids_)
            self.ids_.append(i)
        self._ids_obj = np.array(self.ids_, dtype=object)
        self._maybe_gpu()

    # ------------------------------------------------------------- user table
    def set_users(
        self,
        user_vectors: Any,
        user_ids: Sequence[str],
        default_vector: Any = None,
    ) -> None:
        """Hold a user table so that callers can ask by user id.

        ``default_vector`` is the cold-start query used for users the table
        does not know (e.g. the model's popularity direction).  When it is not
        given, the mean of the known user vectors is used: it ranks what the
        average shopper prefers, a sensible answer for a shopper we know
        nothing about, and it is defined for any non-empty table.
        """
        self._check_fitted()
        uv = _as_matrix(user_vectors, "user vectors", self.dim_)
        uids = _check_ids(user_ids, uv.shape[0], "user ids")
        if default_vector is None:
            if uv.shape[0] == 0:
                raise ValueError("user vectors: empty table and no default_vector given")
            default = uv.mean(axis=0)
        else:
            default = _as_matrix(default_vector, "default_vector", self.dim_)[0]
        self.user_vectors_ = uv
        self.user_ids_ = uids
        self.default_vector_ = np.ascontiguousarray(default, dtype=np.float32)
        self.user_rows_ = {u: r for r, u in enumerate(uids)}

    def user_rows(self, user_ids: Iterable[str]) -> np.ndarray:
        """Rows of ``user_ids`` in the user table; ``-1`` for unknown users."""
        if getattr(self, "user_rows_", None) is None:
            raise RuntimeError("no user table; call set_users() or pass users to fit()")
        get = self.user_rows_.get
        return np.fromiter((get(str(u), -1) for u in user_ids), dtype=np.int64)

    def user_query_vectors(self, user_ids: Iterable[str]) -> tuple[np.ndarray, np.ndarray]:
        """Query vectors for ``user_ids`` (default vector for unknown ones) and a known-mask."""
        rows = self.user_rows(user_ids)
        known = rows >= 0
        q = self.user_vectors_[np.where(known, rows, 0)]
        if not known.all():
            q[~known] = self.default_vector_
        return q, known

    # -------------------------------------------------------------- save/load
    def _extra_arrays(self) -> dict[str, np.ndarray]:
        return {}

    def _load_extra(self, arrays: Any) -> None:
        return None

    def save(self, path: str | Path) -> Path:
        """Write the index to the directory ``path`` (created if needed).

        ``index.faiss`` (``faiss.write_index`` of the CPU index), ``arrays.npz``
        (ids and the user table; no pickle) and ``meta.json`` (parameters and
        format version).  GPU clones are not saved; ``load`` re-creates them.
        """
        self._check_fitted()
        out = Path(path)
        out.mkdir(parents=True, exist_ok=True)
        faiss.write_index(self.index_, str(out / _INDEX_FILE))
        arrays: dict[str, np.ndarray] = {"ids": np.array(self.ids_, dtype=str)}
        if getattr(self, "user_rows_", None) is not None:
            arrays["user_ids"] = np.array(self.user_ids_, dtype=str)
            arrays["user_vectors"] = self.user_vectors_
            arrays["default_vector"] = self.default_vector_
        arrays.update(self._extra_arrays())
        np.savez(out / _ARRAYS_FILE, **arrays)
        meta = {
            "format_version": _FORMAT_VERSION,
            "class": type(self).__name__,
            "params": self.get_params(),
            "kind_": self.kind_,
            "dim_": self.dim_,
        }
        (out / _META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True))
        return out

    @classmethod
    def load(cls, path: str | Path) -> Any:
        """Read an index written by :meth:`save`; searches give identical results."""
        src = Path(path)
        meta_path = src / _META_FILE
        if not meta_path.is_file():
            raise FileNotFoundError(f"{meta_path}: not a saved {cls.__name__} (meta.json missing)")
        meta = json.loads(meta_path.read_text())
        if meta.get("class") != cls.__name__:
            raise ValueError(f"{src}: holds a {meta.get('class')!r}, not a {cls.__name__}")
        if meta.get("format_version") != _FORMAT_VERSION:
            raise ValueError(f"{src}: unsupported format version {meta.get('format_version')!r}")
        self = cls(**meta["params"])
        self.index_ = faiss.read_index(str(src / _INDEX_FILE))
        self.kind_ = meta["kind_"]
        self.dim_ = int(meta["dim_"])
        with np.load(src / _ARRAYS_FILE, allow_pickle=False) as arrays:
            self.ids_ = [str(i) for i in arrays["ids"]]
            if self.index_.ntotal != len(self.ids_):
                raise ValueError(
                    f"{src}: index holds {self.index_.ntotal} vectors but {len(self.ids_)} ids"
                )
            self._ids_obj = np.array(self.ids_, dtype=object)
            self._row_of = {i: r for r, i in enumerate(self.ids_)}
            if "user_ids" in arrays:
                self.set_users(
                    arrays["user_vectors"], [str(u) for u in arrays["user_ids"]],
                    arrays["default_vector"],
                )
            self._load_extra(arrays)
        self._configure_search(self.index_)
        self._maybe_gpu()
        return self
