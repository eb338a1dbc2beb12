"""Events -> user x item confidence matrix, stable id maps, temporal splits.

Why this module exists: every model in :mod:`recsys` (ours and the baselines)
consumes the same sparse matrix, so the weighting of event types, the time
decay and the treatment of impressions are decided once, here, and stay
comparable across models and nights.

* :class:`IdMap` keeps string ids -> row/column indices *stable across runs*:
  old ids keep their index and new ids are appended.  That lets tomorrow's
  model warm-start from tonight's factors by index, and lets FAISS indices and
  segment tables keep pointing at the right rows.
* :func:`build_interactions` turns an events frame into a CSR matrix of
  confidences (never a dense user x item array).
* :func:`split_last_n` / :func:`split_by_time` are the two temporal holdouts
  used by evaluation; both only ever hold out *positive* events.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

log = logging.getLogger(__name__)

#: Default weight per event type.  Ordered view < click < add-to-cart < purchase;
#: a view (impression) without any positive event on the same item is a *weak
#: negative*.  "rating" covers explicit-feedback logs (MovieLens) read as implicit.
DEFAULT_EVENT_WEIGHTS: dict[str, float] = {
    "view": -0.1,
    "click": 1.0,
    "add_to_cart": 2.0,
    "purchase": 4.0,
    "rating": 1.0,
}


class IdMap:
    """Bidirectional string id <-> int index map that only ever appends.

    Stability is the point: an id that had index 17 yesterday has index 17
    today, so factors, FAISS rows and stored assignments line up across runs
    without a join.  Unknown ids map to ``-1`` in :meth:`indices` (cold start
    is handled by the caller, not by silently growing the map).
    """

    def __init__(self, ids: Iterable[str] = ()) -> None:
        self._ids: list[str] = []
        self._index: dict[str, int] = {}
        self._lookup: pd.Index | None = None
        self.extend(ids)

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, key: object) -> bool:
        return key in self._index

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IdMap) and self._ids == other._ids

    def __repr__(self) -> str:
        return f"IdMap(n={len(self)})"

    @property
    def ids(self) -> np.ndarray:
        """All ids in index order (object array of str)."""
        return np.asarray(self._ids, dtype=object)

    def extend(self, ids: Iterable[str]) -> IdMap:
        """Append ids not yet known (in first-seen order); returns self."""
        for raw in ids:
            key = str(raw)
            if key not in self._index:
                self._index[key] = len(self._ids)
                self._ids.append(key)
        return self

    def index(self, key: str) -> int:
        """Index of one id, ``-1`` when unknown."""
        return self._index.get(str(key), -1)

    def indices(self, keys: Iterable[str]) -> np.ndarray:
        """Vectorised lookup; unknown ids give ``-1`` (int64)."""
        if self._lookup is None or len(self._lookup) != len(self._ids):
            self._lookup = pd.Index(self._ids, dtype=object)
        arr = np.asarray(
            keys if isinstance(keys, np.ndarray | pd.Series | pd.Index) else list(keys)
        )
        return self._lookup.get_indexer(pd.Index(arr.astype(str), dtype=object)).astype(np.int64)

    def copy(self) -> IdMap:
        """An independent copy (extending it leaves this map untouched)."""
        return IdMap(self._ids)

    def save(self, path: str | Path) -> None:
        """Write as JSON (``{"ids": [...]}``); human-readable and pickle-free."""
        Path(path).write_text(json.dumps({"ids": self._ids}), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> IdMap:
        """Read what :meth:`save` wrote; a clear error names a malformed file."""
        path = Path(path)
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
            ids = payload["ids"]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}: not an IdMap file ({exc})") from exc
        if not isinstance(ids, list) or len(set(ids)) != len(ids):
            raise ValueError(f"{path}: 'ids' must be a list of unique strings")
        return cls(ids)


@dataclass
class Interactions:
    """A confidence matrix with the id maps that give its rows and columns meaning.

    ``matrix`` holds summed, decayed event weights; positive entries are
    interactions, negative entries are impressions that were never acted on.
    """

    matrix: sp.csr_matrix
    user_map: IdMap
    item_map: IdMap
    event_counts: dict[str, int] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        return self.matrix.shape  # type: ignore[return-value]

    def positives(self) -> sp.csr_matrix:
        """Only the positive entries (what top-k evaluation and softmax training use)."""
        return positive_part(self.matrix)


def positive_part(matrix: sp.spmatrix) -> sp.csr_matrix:
    """Copy of ``matrix`` keeping entries > 0 (CSR, float32, sorted indices)."""
    m = sp.csr_matrix(matrix, dtype=np.float32, copy=True)
    m.data[m.data < 0] = 0.0
    m.eliminate_zeros()
    m.sort_indices()
    return m


def event_weight_series(
    events: pd.DataFrame,
    weights: Mapping[str, float] | None = None,
    half_life_days: float | None = None,
    now: pd.Timestamp | None = None,
) -> np.ndarray:
    """Weight of each event row: type weight x time decay.

    Unknown event types are an error naming the types, because silently
    weighting them 0 (or 1) changes what the model learns without anyone noticing.
    """
    w = dict(DEFAULT_EVENT_WEIGHTS if weights is None else weights)
    types = events["event_type"].astype(str)
    unknown = sorted(set(types.unique()) - set(w))
    if unknown:
        raise ValueError(f"events: unknown event_type(s) {unknown}; known: {sorted(w)}")
    values = types.map(w).to_numpy(dtype=np.float64)
    if half_life_days is not None:
        if half_life_days <= 0:
            raise ValueError(f"half_life_days must be > 0, got {half_life_days}")
        ts = pd.to_datetime(events["timestamp"], utc=True)
        ref = ts.max() if now is None else pd.Timestamp(now)
        if ref.tzinfo is None:
            ref = ref.tz_localize("UTC")
        age_days = (ref - ts).dt.total_seconds().to_numpy() / 86400.0
        values = values * np.power(0.5, np.clip(age_days, 0.0, None) / half_life_days)
    return values


def build_interactions(
    events: pd.DataFrame,
    user_map: IdMap | None = None,
    item_map: IdMap | None = None,
    weights: Mapping[str, float] | None = None,
    half_life_days: float | None = None,
    now: pd.Timestamp | None = None,
    extend_maps: bool = True,
) -> Interactions:
    """Aggregate events into a user x item confidence matrix (CSR, float32).

    Per (user, item): the sum of positive event weights (decayed) when there is
    any positive event; otherwise the (negative) sum of impression weights, so
    an impression never cancels a click.  ``user_map``/``item_map`` are extended
    in place with new ids (pass copies to keep the originals) unless
    ``extend_maps=False``, in which case events of unknown ids are dropped and
    counted in the log.
    """
    for col in ("user_id", "item_id", "event_type"):
        if col not in events.columns:
            raise ValueError(f"events: missing column {col!r}")
    if half_life_days is not None and "timestamp" not in events.columns:
        raise ValueError("events: time decay needs a 'timestamp' column")
    user_map = IdMap() if user_map is None else user_map
    item_map = IdMap() if item_map is None else item_map
    uid = events["user_id"].astype(str).to_numpy()
    iid = events["item_id"].astype(str).to_numpy()
    if extend_maps:
        user_map.extend(pd.unique(uid))
        item_map.extend(pd.unique(iid))
    rows = user_map.indices(uid)
    cols = item_map.indices(iid)
    w = event_weight_series(events, weights, half_life_days, now)
    keep = (rows >= 0) & (cols >= 0)
    if not keep.all():
        log.info("build_interactions: dropped %d events of unknown users/items", int((~keep).sum()))
    rows, cols, w = rows[keep], cols[keep], w[keep]
    shape = (len(user_map), len(item_map))
    pos = sp.csr_matrix((np.where(w > 0, w, 0.0), (rows, cols)), shape=shape, dtype=np.float64)
    neg = sp.csr_matrix((np.where(w < 0, w, 0.0), (rows, cols)), shape=shape, dtype=np.float64)
    pos.eliminate_zeros()
    neg.eliminate_zeros()
    # Negative entries survive only where there is no positive entry.
    has_pos = pos.copy()
    has_pos.data[:] = 1.0
    neg = neg - neg.multiply(has_pos)
    neg.eliminate_zeros()
    matrix = sp.csr_matrix(pos + neg, dtype=np.float32)
    matrix.sort_indices()
    counts = events.loc[keep, "event_type"].astype(str).value_counts().to_dict()
    log.info(
        "interactions: %d users x %d items, %d positive / %d negative entries",
        shape[0],
        shape[1],
        int((matrix.data > 0).sum()),
        int((matrix.data < 0).sum()),
    )
    return Interactions(matrix, user_map, item_map, {str(k): int(v) for k, v in counts.items()})


def _positive_mask(events: pd.DataFrame, weights: Mapping[str, float] | None) -> np.ndarray:
    w = dict(DEFAULT_EVENT_WEIGHTS if weights is None else weights)
    return events["event_type"].astype(str).map(w).fillna(0.0).to_numpy() > 0


def split_last_n(
    events: pd.DataFrame,
    n: int,
    weights: Mapping[str, float] | None = None,
    min_train: int = 1,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-user temporal holdout: each user's last ``n`` positive events are the test set.

    Everything the user did before the first held-out event is train; events
    after it are dropped (they would leak the future).  Users with fewer than
    ``n + min_train`` positive events stay entirely in train, so every test
    user has a history to be scored from.  Ties in time keep log order.
    """
    if n < 1:
        raise ValueError(f"holdout n must be >= 1, got {n}")
    ev = events.reset_index(drop=True)
    order = np.lexsort(
        (
            np.arange(len(ev)),
            pd.to_datetime(ev["timestamp"], utc=True).to_numpy(),
            ev["user_id"].astype(str).to_numpy(),
        )
    )
    ev = ev.iloc[order].reset_index(drop=True)
    positive = _positive_mask(ev, weights)
    users = ev["user_id"].astype(str)
    pos_rank_from_end = (
        pd.Series(positive.astype(np.int64))[::-1].groupby(users[::-1].to_numpy()).cumsum()[::-1]
    ).to_numpy()
    n_pos = (
        pd.Series(positive.astype(np.int64)).groupby(users.to_numpy()).transform("sum").to_numpy()
    )
    eligible = n_pos >= n + min_train
    # Position of the first held-out event per user = where the reverse positive count reaches n.
    is_test = eligible & positive & (pos_rank_from_end <= n)
    first_test_pos = (
        pd.Series(np.where(is_test, np.arange(len(ev)), np.iinfo(np.int64).max))
        .groupby(users.to_numpy())
        .transform("min")
        .to_numpy()
    )
    is_train = np.arange(len(ev)) < first_test_pos
    return ev[is_train].reset_index(drop=True), ev[is_test].reset_index(drop=True)


def split_by_time(
    events: pd.DataFrame,
    cutoff: pd.Timestamp | str,
    weights: Mapping[str, float] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Global temporal cut-off: train is strictly before ``cutoff``, test the positive events at/after.

    Test may contain users and items unseen in train; evaluation scores them
    with the documented cold-start rules instead of dropping them.
    """
    ts = pd.to_datetime(events["timestamp"], utc=True)
    cut = pd.Timestamp(cutoff)
    if cut.tzinfo is None:
        cut = cut.tz_localize("UTC")
    before = (ts < cut).to_numpy()
    positive = _positive_mask(events, weights)
    return (
        events[before].reset_index(drop=True),
        events[~before & positive].reset_index(drop=True),
    )


def parse_holdout(spec: str) -> tuple[str, str | int]:
    """Parse ``last:N`` or ``time:ISO-DATE`` (the CLI's ``--holdout``)."""
    kind, _, value = spec.partition(":")
    if kind == "last":
        try:
            n = int(value)
        except ValueError:
            raise ValueError(f"--holdout {spec!r}: N must be an integer") from None
        if n < 1:
            raise ValueError(f"--holdout {spec!r}: N must be >= 1")
        return "last", n
    if kind == "time":
        try:
            pd.Timestamp(value)
        except ValueError:
            raise ValueError(f"--holdout {spec!r}: not a timestamp") from None
        return "time", value
    raise ValueError(f"--holdout {spec!r}: expected last:N or time:YYYY-MM-DD")


def split_events(
    events: pd.DataFrame, spec: str, weights: Mapping[str, float] | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Apply a ``--holdout`` spec (see :func:`parse_holdout`)."""
    kind, value = parse_holdout(spec)
    if kind == "last":
        return split_last_n(events, int(value), weights)
    return split_by_time(events, str(value), weights)
