"""User segments: spherical k-means on user style vectors, with ids stable across nights.

Why segments at all: rendering every product once per *user* is impossible;
rendering it once per *segment* (a few to a few dozen groups of shoppers with
similar taste) is cheap, and each shopper then sees the render of their
segment.  A segment's *condition* is a blend of the library styles nearest its
centroid: it is what the renderer is conditioned on.

Why ids must be stable: renders are cached by (item, condition).  If tonight's
k-means happens to number its clusters differently, or drifts a little, the
whole catalogue must not be re-rendered.  So each night:

1. k-means (``faiss.Kmeans``, seeded, spherical: user vectors are L2-normalised
   so that segments group *directions of taste*, not how active a user is);
2. new centroids are matched to last night's with the Hungarian algorithm
   (``scipy.optimize.linear_sum_assignment`` on cosine distance); a matched
   cluster inherits the old segment id, extra clusters (K grew) get fresh ids
   that were never used before, unmatched old ids retire;
3. a matched segment keeps last night's condition *object* (same style ids,
   same weights, hence same condition hash and same cached renders) when the
   recomputed condition is within ``condition_tol`` of it: same styles and no
   weight moved more than the tolerance.  Only a visible change re-renders.

Matching by centroid distance assumes tonight's user vectors live in the same
basis as yesterday's — true when the preference model warm-starts from the
previous factors (``recsys.interactions.IdMap`` keeps rows stable for that).

Unknown users (signed up after the run) go to the *default segment*: the
largest one, i.e. the taste of the most shoppers — the least surprising
render for someone we know nothing about.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import faiss
import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment

from recsys.index import StyleIndex, faiss_threads

log = logging.getLogger(__name__)

_FORMAT_VERSION = 1
_ID_RE = re.compile(r"^seg-(\d+)$")


def segment_id(number: int) -> str:
    """``seg-03`` style id; two digits minimum so that ids sort naturally up to 100."""
    return f"seg-{number:02d}"


def _segment_number(sid: str) -> int:
    m = _ID_RE.match(sid)
    if not m:
        raise ValueError(f"segment id {sid!r} is not of the form 'seg-NN'")
    return int(m.group(1))


def _unit_rows(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """L2-normalised float32 copy and a mask of rows that had non-zero norm."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1)
    ok = norms > 0
    out = np.zeros_like(x)
    out[ok] = x[ok] / norms[ok, None]
    return out, ok


def _nearest_centroid(units: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Row of the nearest centroid (max cosine) for each unit vector, via FAISS."""
    faiss.omp_set_num_threads(faiss_threads())
    index = faiss.IndexFlatIP(centroids.shape[1])
    index.add(np.ascontiguousarray(centroids, dtype=np.float32))
    labels = np.empty(units.shape[0], dtype=np.int64)
    step = 262_144  # bounds the temporary distance block
    for start in range(0, units.shape[0], step):
        _, lab = index.search(units[start : start + step], 1)
        labels[start : start + step] = lab[:, 0]
    return labels


@dataclass(frozen=True)
class SegmentCondition:
    """What a segment is rendered with: library styles and their blend weights.

    Weights are positive and sum to 1; the caller blends the styles' codes with
    them (``stylizer.StyleSpace.blend``) — recsys never sees style codes.
    """

    style_ids: tuple[str, ...]
    weights: tuple[float, ...]

    def close_to(self, other: SegmentCondition, tol: float) -> bool:
        """Same styles and no weight differs by more than ``tol``."""
        mine = dict(zip(self.style_ids, self.weights, strict=True))
        theirs = dict(zip(other.style_ids, other.weights, strict=True))
        if mine.keys() != theirs.keys():
            return False
        return all(abs(mine[s] - theirs[s]) <= tol for s in mine)

    def to_dict(self) -> dict[str, Any]:
        return {"style_ids": list(self.style_ids), "weights": list(self.weights)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SegmentCondition:
        return cls(tuple(str(s) for s in d["style_ids"]), tuple(float(w) for w in d["weights"]))


@dataclass
class Segmentation:
    """One night's segments: who is where, what each segment renders with.

    ``assignment`` has columns ``user_id`` (str) and ``segment_id``
    (categorical).  ``centroids`` rows follow ``segment_ids`` and are unit
    vectors.  ``next_index`` is the number the next brand-new segment will get,
    so retired ids are never reused (a reused id with a different meaning
    would confuse reports and A/B analyses across nights).
    """

    segment_ids: list[str]
    centroids: np.ndarray
    conditions: dict[str, SegmentCondition]
    assignment: pd.DataFrame
    default_segment: str
    next_index: int
    _lookup: pd.Index | None = field(default=None, repr=False, compare=False)

    @property
    def sizes(self) -> dict[str, int]:
        """Users per segment (segments with no users included, as 0)."""
        counts = self.assignment["segment_id"].value_counts()
        return {s: int(counts.get(s, 0)) for s in self.segment_ids}

    def assign(self, user_vectors: Any) -> np.ndarray:
        """Segment ids for new user vectors: nearest centroid by cosine.

        All-zero vectors (a user with no signal) go to the default segment.
        """
        x = np.asarray(user_vectors, dtype=np.float32)
        if x.ndim == 1:
            x = x[None, :]
        if x.ndim != 2 or x.shape[1] != self.centroids.shape[1]:
            raise ValueError(
                f"user vectors: expected shape (n, {self.centroids.shape[1]}), got {x.shape}"
            )
        if not np.isfinite(x).all():
            bad = int(np.flatnonzero(~np.isfinite(x).all(axis=1))[0])
            raise ValueError(f"user vectors: row {bad} contains NaN or inf")
        units, ok = _unit_rows(x)
        out = np.full(x.shape[0], self.default_segment, dtype=object)
        if ok.any():
            rows = _nearest_centroid(units[ok], self.centroids)
            out[ok] = np.array(self.segment_ids, dtype=object)[rows]
        return out

    def segment_of(self, user_ids: Sequence[str]) -> np.ndarray:
        """Segment id per user id; users not in the assignment get the default segment."""
        if self._lookup is None:
            self._lookup = pd.Index(self.assignment["user_id"].astype(str))
        pos = self._lookup.get_indexer([str(u) for u in user_ids])
        seg = self.assignment["segment_id"].astype(object).to_numpy()
        out = np.where(pos >= 0, seg[np.where(pos >= 0, pos, 0)], self.default_segment)
        return out.astype(object)

    def save(self, path: str | Path) -> Path:
        """Write ``segments.npz`` (centroids, users, labels) and ``segments.json``.

        No pickle: ids are stored as unicode arrays, conditions as JSON.
        """
        out = Path(path)
        out.mkdir(parents=True, exist_ok=True)
        codes = pd.Categorical(self.assignment["segment_id"], categories=self.segment_ids).codes
        np.savez(
            out / "segments.npz",
            centroids=np.asarray(self.centroids, dtype=np.float32),
            user_ids=self.assignment["user_id"].astype(str).to_numpy(dtype=str),
            labels=np.asarray(codes, dtype=np.int32),
        )
        meta = {
            "format_version": _FORMAT_VERSION,
            "segment_ids": self.segment_ids,
            "default_segment": self.default_segment,
            "next_index": self.next_index,
            "conditions": {s: self.conditions[s].to_dict() for s in self.segment_ids},
        }
        (out / "segments.json").write_text(json.dumps(meta, indent=2))
        return out

    @classmethod
    def load(cls, path: str | Path) -> Segmentation:
        """Read a segmentation written by :meth:`save`."""
        src = Path(path)
        meta_path = src / "segments.json"
        if not meta_path.is_file():
            raise FileNotFoundError(f"{meta_path}: not a saved Segmentation")
        meta = json.loads(meta_path.read_text())
        if meta.get("format_version") != _FORMAT_VERSION:
            raise ValueError(f"{src}: unsupported format version {meta.get('format_version')!r}")
        sids = [str(s) for s in meta["segment_ids"]]
        with np.load(src / "segments.npz", allow_pickle=False) as arr:
            centroids = np.asarray(arr["centroids"], dtype=np.float32)
            user_ids = arr["user_ids"].astype(object)
            labels = np.asarray(arr["labels"])
        if centroids.shape[0] != len(sids):
            raise ValueError(f"{src}: {centroids.shape[0]} centroids for {len(sids)} segment ids")
        return cls(
            segment_ids=sids,
            centroids=centroids,
            conditions={s: SegmentCondition.from_dict(meta["conditions"][s]) for s in sids},
            assignment=_assignment_frame(user_ids, labels, sids),
            default_segment=str(meta["default_segment"]),
            next_index=int(meta["next_index"]),
        )


def _assignment_frame(user_ids: Any, labels: np.ndarray, sids: list[str]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": pd.Series(user_ids, dtype=object).astype(str),
            "segment_id": pd.Categorical.from_codes(labels, categories=sids),
        }
    )


class UserSegmenter:
    """Spherical k-means segments with stable ids and blended style conditions.

    Parameters
    ----------
    n_segments:
        K.  Reduced (with a warning) when there are fewer users with a non-zero
        vector than that.
    n_blend:
        How many nearest library styles make a segment's condition.
    seed, max_iter:
        k-means seed and iterations; the same inputs and seed give the same
        segments (FAISS k-means is deterministic for a fixed seed).
    max_points_per_centroid:
        FAISS k-means trains on a random subsample of at most
        ``max_points_per_centroid * K`` users (FAISS's default, 256, gives 4096
        users for K=16); all users are then assigned to the nearest centroid.
        Raise it (or set ``None`` for all users) when segments are small.
    n_init:
        Cold k-means restarts (FAISS ``nredo``); the best objective wins.  With
        a ``previous`` segmentation a warm start from its centroids competes
        too (see :meth:`_kmeans`).
    similarity:
        How styles near a centroid are found: ``"ip"`` (inner product — the
        preference score a user at the centroid gives each style, what the
        model predicts they like) or ``"cosine"``.
    condition_tol:
        A matched segment keeps last night's condition when the recomputed one
        has the same styles and no weight moved by more than this.
    """

    def __init__(
        self,
        n_segments: int = 8,
        n_blend: int = 3,
        seed: int = 0,
        max_iter: int = 25,
        max_points_per_centroid: int | None = 256,
        n_init: int = 3,
        similarity: Literal["ip", "cosine"] = "ip",
        condition_tol: float = 0.05,
    ) -> None:
        self.n_segments = n_segments
        self.n_blend = n_blend
        self.seed = seed
        self.max_iter = max_iter
        self.max_points_per_centroid = max_points_per_centroid
        self.n_init = n_init
        self.similarity = similarity
        self.condition_tol = condition_tol

    def get_params(self) -> dict[str, Any]:
        """Constructor parameters, scikit-learn style."""
        return {
            "n_segments": self.n_segments,
            "n_blend": self.n_blend,
            "seed": self.seed,
            "max_iter": self.max_iter,
            "max_points_per_centroid": self.max_points_per_centroid,
            "n_init": self.n_init,
            "similarity": self.similarity,
            "condition_tol": self.condition_tol,
        }

    def _validate(self) -> None:
        if self.n_segments < 1:
            raise ValueError(f"n_segments must be >= 1, got {self.n_segments}")
        if self.n_blend < 1:
            raise ValueError(f"n_blend must be >= 1, got {self.n_blend}")
        if self.n_init < 1:
            raise ValueError(f"n_init must be >= 1, got {self.n_init}")
        if self.max_iter < 1:
            raise ValueError(f"max_iter must be >= 1, got {self.max_iter}")
        if self.similarity not in ("ip", "cosine"):
            raise ValueError(f"similarity must be 'ip' or 'cosine', got {self.similarity!r}")
        if self.condition_tol < 0:
            raise ValueError(f"condition_tol must be >= 0, got {self.condition_tol}")

    # ----------------------------------------------------------------- k-means
    def _kmeans(
        self, units: np.ndarray, k: int, init: np.ndarray | None = None
    ) -> np.ndarray:
        """Spherical k-means centroids (unit rows), best of cold restarts and a warm start.

        FAISS initialises with random users, which on unequal groups sometimes
        splits a big group and merges two small ones; ``n_init`` restarts keep
        the best objective.  ``init`` (last night's centroids) gives a warm
        start: it converges to the same optimum as yesterday whenever that is
        still as good, which is what keeps segments — and renders — stable.
        It is kept unless a cold run is better by more than 0.1 %.
        """
        faiss.omp_set_num_threads(faiss_threads())
        mppc = self.max_points_per_centroid
        if units.shape[0] < 39 * k:
            log.warning(
                "segmenting %d users into %d segments: fewer than 39 users per segment, "
                "segments will be noisy", units.shape[0], k,
            )

        def run(nredo: int, start: np.ndarray | None) -> tuple[np.ndarray, float]:
            km = faiss.Kmeans(
                units.shape[1],
                k,
                niter=self.max_iter,
                nredo=nredo,
                seed=self.seed,
                spherical=True,
                max_points_per_centroid=int(mppc) if mppc else units.shape[0] // k + 1,
                min_points_per_centroid=1,  # we warn ourselves, once, above
                verbose=False,
            )
            km.train(units, init_centroids=start)
            # Spherical k-means maximises the summed cosine to the nearest centroid.
            return km.centroids, float(km.obj[-1])

        best, best_obj = run(self.n_init, None)
        if init is not None:
            warm, warm_obj = run(1, np.ascontiguousarray(init[:k], dtype=np.float32))
            if best_obj <= warm_obj * (1.0 + 1e-3):
                best = warm
        centroids, _ = _unit_rows(best)
        return centroids

    # -------------------------------------------------------------- conditions
    def _conditions(
        self, centroids: np.ndarray, style_embeddings: np.ndarray, style_ids: list[str]
    ) -> list[SegmentCondition]:
        """Blend of the ``n_blend`` styles nearest each centroid.

        Weights are the positive similarities normalised to sum to 1: unlike a
        softmax they do not depend on the (arbitrary) scale of the factor
        space.  When no similarity is positive — every nearby style is disliked
        — the single best style gets weight 1.
        """
        n_blend = min(self.n_blend, len(style_ids))
        index = StyleIndex(kind="flat", metric=self.similarity, use_gpu=False)
        ids, sims = index.fit(style_embeddings, style_ids).search(centroids, n_blend)
        out = []
        for row_ids, row_sims in zip(ids, sims.astype(np.float64), strict=True):
            pos = np.clip(row_sims, 0.0, None)
            if pos.sum() > 0:
                w = pos / pos.sum()
            else:
                w = np.zeros_like(pos)
                w[0] = 1.0
            keep = w > 0
            out.append(
                SegmentCondition(
                    tuple(str(s) for s in row_ids[keep]),
                    tuple(round(float(x), 6) for x in w[keep]),
                )
            )
        return out

    # ---------------------------------------------------------------------- fit
    def fit(
        self,
        user_vectors: Any,
        user_ids: Sequence[str],
        style_embeddings: Any,
        style_ids: Sequence[str],
        previous: Segmentation | None = None,
    ) -> UserSegmenter:
        """Segment users, match to ``previous`` for stable ids, compute conditions.

        Learned attributes: ``labels_`` (row into ``segment_ids_`` per user),
        ``segment_ids_``, ``centroids_`` (unit rows), ``conditions_`` (list,
        aligned with ``segment_ids_``), ``sizes_``, ``default_segment_``,
        ``match_distance_`` (cosine distance to the matched previous centroid,
        NaN for fresh segments), ``kept_condition_`` (bool per segment),
        ``next_index_``.
        """
        self._validate()
        x = np.asarray(user_vectors, dtype=np.float32)
        if x.ndim != 2:
            raise ValueError(f"user vectors: expected a 2-D array, got shape {x.shape}")
        uids = [str(u) for u in user_ids]
        if len(uids) != x.shape[0]:
            raise ValueError(f"user ids: {len(uids)} ids for {x.shape[0]} user vectors")
        if not np.isfinite(x).all():
            bad = int(np.flatnonzero(~np.isfinite(x).all(axis=1))[0])
            raise ValueError(f"user vectors: row {bad} ({uids[bad]!r}) contains NaN or inf")
        styles = np.asarray(style_embeddings, dtype=np.float32)
        sids = [str(s) for s in style_ids]
        if styles.ndim != 2 or styles.shape[1] != x.shape[1]:
            raise ValueError(
                f"style embeddings: expected shape (n_styles, {x.shape[1]}), got {styles.shape}"
            )
        if len(sids) != styles.shape[0] or not sids:
            raise ValueError(f"style ids: {len(sids)} ids for {styles.shape[0]} style embeddings")

        units, ok = _unit_rows(x)
        n_ok = int(ok.sum())
        if n_ok == 0:
            raise ValueError("user vectors: every vector is zero; nothing to segment")
        k = min(self.n_segments, n_ok)
        if k < self.n_segments:
            log.warning("only %d users with a non-zero vector; using %d segments", n_ok, k)
        centroids = self._kmeans(units[ok], k, self._warm_start(previous, units.shape[1]))
        raw_labels = np.full(x.shape[0], -1, dtype=np.int64)
        raw_labels[ok] = _nearest_centroid(units[ok], centroids)
        sizes = np.bincount(raw_labels[ok], minlength=k)

        names, distances, next_index = self._name_clusters(centroids, sizes, previous)
        conditions = self._conditions(centroids, styles, sids)
        kept = np.zeros(k, dtype=bool)
        if previous is not None:
            for j, name in enumerate(names):
                old = previous.conditions.get(name)
                if old is not None and old.close_to(conditions[j], self.condition_tol):
                    conditions[j] = old
                    kept[j] = True

        # Present segments in id order: row i of every array is segment_ids_[i].
        order = sorted(range(k), key=lambda j: _segment_number(names[j]))
        remap = np.empty(k, dtype=np.int64)
        remap[order] = np.arange(k)
        self.segment_ids_ = [names[j] for j in order]
        self.centroids_ = centroids[order]
        self.conditions_ = [conditions[j] for j in order]
        self.sizes_ = sizes[order]
        self.match_distance_ = distances[order]
        self.kept_condition_ = kept[order]
        self.next_index_ = next_index
        # Largest segment; ties go to the lowest id so the choice is reproducible.
        self.default_segment_ = self.segment_ids_[int(np.argmax(self.sizes_))]
        default_row = self.segment_ids_.index(self.default_segment_)
        labels = np.where(raw_labels >= 0, remap[np.where(raw_labels >= 0, raw_labels, 0)], default_row)
        if (~ok).any():
            self.sizes_ = np.bincount(labels, minlength=k)
            log.info("%d users with an all-zero vector put in the default segment", int((~ok).sum()))
        self.labels_ = labels.astype(np.int64)
        self.user_ids_ = uids
        log.info(
            "segmented %d users into %d segments (%d kept their condition, %d new)",
            len(uids), k, int(kept.sum()), int(np.isnan(distances).sum()),
        )
        return self

    @staticmethod
    def _warm_start(previous: Segmentation | None, dim: int) -> np.ndarray | None:
        """Previous centroids, largest segment first (FAISS fills any extra ones randomly)."""
        if previous is None or previous.centroids.ndim != 2 or previous.centroids.shape[1] != dim:
            return None
        if not previous.segment_ids:
            return None
        sizes = previous.sizes
        order = sorted(
            range(len(previous.segment_ids)), key=lambda i: -sizes[previous.segment_ids[i]]
        )
        return np.asarray(previous.centroids, dtype=np.float32)[order]

    def _name_clusters(
        self, centroids: np.ndarray, sizes: np.ndarray, previous: Segmentation | None
    ) -> tuple[list[str], np.ndarray, int]:
        """Segment id per raw cluster, the match distances, and the next free number."""
        k = centroids.shape[0]
        names: list[str | None] = [None] * k
        distances = np.full(k, np.nan)
        next_index = 0
        if previous is not None:
            next_index = max(
                [previous.next_index, *(_segment_number(s) + 1 for s in previous.segment_ids)]
            )
            old = np.asarray(previous.centroids, dtype=np.float32)
            if old.ndim == 2 and old.shape[1] == centroids.shape[1] and old.shape[0]:
                cost = 1.0 - old.astype(np.float64) @ centroids.astype(np.float64).T
                rows, cols = linear_sum_assignment(cost)
                for r, c in zip(rows, cols, strict=True):
                    names[c] = previous.segment_ids[r]
                    distances[c] = cost[r, c]
            else:
                log.warning(
                    "previous segmentation has centroids of shape %s, not (K, %d); "
                    "ids cannot be matched and all segments get fresh ids",
                    old.shape, centroids.shape[1],
                )
        # Fresh ids, biggest cluster first, so a first night's seg-00 is the largest.
        for j in sorted(range(k), key=lambda j: (-int(sizes[j]), j)):
            if names[j] is None:
                names[j] = segment_id(next_index)
                next_index += 1
        return [str(n) for n in names], distances, next_index

    def to_segmentation(self) -> Segmentation:
        """The fitted result as a :class:`Segmentation` (what the nightly job stores)."""
        if not hasattr(self, "labels_"):
            raise RuntimeError("UserSegmenter is not fitted; call fit() first")
        return Segmentation(
            segment_ids=list(self.segment_ids_),
            centroids=self.centroids_.copy(),
            conditions=dict(zip(self.segment_ids_, self.conditions_, strict=True)),
            assignment=_assignment_frame(self.user_ids_, self.labels_, self.segment_ids_),
            default_segment=self.default_segment_,
            next_index=self.next_index_,
        )


def segment_users(
    user_vectors: Any,
    user_ids: Sequence[str],
    style_embeddings: Any,
    style_ids: Sequence[str],
    previous: Segmentation | None = None,
    **params: Any,
) -> Segmentation:
    """One-call form used by the nightly stage: fit a :class:`UserSegmenter`, return its result."""
    return (
        UserSegmenter(**params)
        .fit(user_vectors, user_ids, style_embeddings, style_ids, previous=previous)
        .to_segmentation()
    )


__all__ = ["SegmentCondition", "Segmentation", "UserSegmenter", "segment_id", "segment_users"]
