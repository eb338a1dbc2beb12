"""PersonalizationService: the in-process ranking API over one published run.

Why a snapshot: every piece of state a response needs (vectors, maps, the
segment of each user, the image table, the item index) lives in one immutable
:class:`RunSnapshot`.  Each call takes one reference to the current snapshot
at its start and computes everything from it, so :meth:`~PersonalizationService.refresh`
can swap a newer run in with a single attribute assignment (atomic under the
GIL): readers never block, never see half of two runs, and need no lock.
Every :class:`RankedItem` carries the ``run_id`` it was computed from.

Scoring: ``s(u, i) = p_u . v_i + b_i + [render shown] * p_u . e_seg(u)`` where
``v_i = q_i + W c_i`` (the model's item vectors), ``b_i`` the item bias and
``e_seg`` the blend of style embeddings of the user's segment condition -- the
style the user will actually be shown.  An item shown in its original image
has style term 0 (the model's convention), so the score accounts for which
image the user gets: a render the user's taste dislikes can push an item down.

Cold start (defined behaviour):

* unknown user: popularity ranking (``log1p`` of interaction counts) and the
  run's default segment (so the default segment's renders);
* catalogue item the model never saw (in ``items.parquet`` but not in the
  item map, e.g. new stock nobody clicked yet): its original image (and any
  render the run made of it), scored ``p_u . W c_i + mean bias`` from its
  image code when ``codes.npz`` holds one, else the mean bias (popularity
  prior); for unknown users its popularity is 0;
* item unknown to the run altogether (in neither the model nor the catalogue):
  not scored and not returned by :meth:`~PersonalizationService.rank` -- a
  made-up score would rank an id the service knows nothing about -- and listed
  in :attr:`Ranking.unknown_items` by :meth:`~PersonalizationService.rank_response`,
  which also says ``cold_start`` when the user is unknown.  ``image_for`` of such
  an item is ``None``.

Image references: render URIs are relative to the run's render folder
(``<key[:2]>/<key>.webp``) and catalogue images relative to the image root, as
the store and catalogue hold them, unless ``render_root`` / ``image_root`` give
a prefix (a CDN URL, or a local folder for an in-process caller that opens the
files).  An answer therefore never carries an absolute server path by default;
``RankedItem.style_ids`` is non-empty exactly when the image is a render.

Id types: user and item ids are strings; ``int`` (and numpy integer) ids are
converted with ``str()`` (catalogues with integer ids, JSON clients); any other
type (float, bytes, None, bool) raises ``TypeError`` naming the value, because
silently ``str()``-ing ``1.0`` to ``"1.0"`` would miss the real item.  A bare
string given as a candidate *list* is a ``TypeError`` too (it would otherwise
be iterated character by character).

Experiments: ``experiment=`` (a name, or an :class:`~recsys.experiments.assignment.Experiment`)
assigns the user with the A/B module's deterministic hash; users in the
``control`` arm (or the holdout) get original images and are scored without
the style term, everyone else gets the renders.  Named experiments are looked
up in the ``experiments`` mapping given to the service (so that serving and
analysis share one split and salt); an unregistered name means a 50/50
control/treatment split with no salt.
"""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from recsys.experiments.assignment import HOLDOUT, Experiment
from recsys.serving.overrides import StyledImage, StyleNote, StyleOverrides
from recsys.serving.snapshot import RankedItem, RunSnapshot, load_snapshot

log = logging.getLogger(__name__)

MAX_CANDIDATES = 100_000
"""Largest candidate list rank() accepts (counted before de-duplication);
a bigger one is a client bug, not a query."""

CONTROL_ARMS = frozenset({"control", HOLDOUT})
"""Arms whose users are shown original images."""


class Ranking(NamedTuple):
    """A ranked answer that says when it fell back (what the HTTP front returns).

    ``cold_start``: the user is unknown to the run (popularity order, default
    segment).  ``unknown_items``: candidates unknown to the run, in input order;
    they are not scored and not in ``items``.
    """

    run_id: str
    user_id: str
    items: list[RankedItem]
    cold_start: bool
    unknown_items: list[str]


class StyledRanking(NamedTuple):
    """A :class:`Ranking` for a shopper's chosen style, plus how the override went per item.

    A separate type (not a sixth field of ``Ranking``) so that answers without a
    style keep their exact shape, tuple equality included.
    """

    run_id: str
    user_id: str
    items: list[RankedItem]
    cold_start: bool
    unknown_items: list[str]
    style_notes: dict[str, StyleNote]


@dataclass(frozen=True, slots=True)
class StyleScore:
    """A style a user prefers, with the affinity ``p_u . W c_s``."""

    style_id: str
    score: float


def _norm_id(x: Any, what: str) -> str:
    """Apply the id-type rule of this module (str as is, int -> str, else TypeError)."""
    if isinstance(x, str):
        return str(x)
    if isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_)):
        return str(int(x))
    raise TypeError(f"{what} must be a str (or int), got {type(x).__name__}: {x!r}")


def _norm_ids(values: Any, what: str) -> list[str]:
    """Normalise an id list (fast path for plain ``str``); a bare string is refused."""
    if values is None or isinstance(values, (str, bytes)):
        raise TypeError(f"{what} must be a list of ids, got {type(values).__name__}: {values!r}")
    return [v if type(v) is str else _norm_id(v, what) for v in values]


class PersonalizationService:
    """Ranking API over the published run; thread-safe, refreshable, deterministic.

    Build with :meth:`from_store`.  Every public method reads the current
    snapshot once, so concurrent calls and :meth:`refresh` need no locking.
    """

    def __init__(self, store: Any, snapshot: RunSnapshot,
                 render_root: str | Path | None = None,
                 image_root: str | Path | None = None,
                 experiments: Mapping[str, Experiment] | Iterable[Experiment] | None = None,
                 freeze_gc: bool = False) -> None:
        self._store = store
        self._snap = snapshot
        self._render_root = render_root
        self._image_root = image_root
        if experiments is None:
            experiments = {}
        if not isinstance(experiments, Mapping):
            experiments = {e.name: e for e in experiments}
        self._experiments: dict[str, Experiment] = dict(experiments)
        self._refresh_lock = threading.Lock()  # serialises loaders only, never readers
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        self._freeze_gc = freeze_gc
        self._overrides: StyleOverrides | None = None  # built on the first style= call
        if freeze_gc:
            freeze_gc_now()

    @classmethod
    def from_store(cls, url: str | Any = None, run: str = "current",
                   render_root: str | Path | None = None,
                   image_root: str | Path | None = None,
                   experiments: Mapping[str, Experiment] | Iterable[Experiment] | None = None,
                   freeze_gc: bool = False,
                   ) -> PersonalizationService:
        """Open the store at ``url`` (or use a ``Store``) and load ``run`` ("current" = published).

        ``render_root`` prefixes render URIs (a CDN URL, or the run's folder
        :attr:`render_dir` for an in-process caller that opens the files; default:
        relative to the render folder); ``image_root`` prefixes relative catalogue
        image URIs.
        ``freeze_gc`` (for a process that exists to serve, such as ``stylerec
        serve``) calls :func:`freeze_gc_now` after this load and after every
        refresh; it is process-wide, hence off by default.
        """
        from data.store import Store

        store = Store(url) if isinstance(url, str) or url is None else url
        run_id = store.current_run_id() if run == "current" else run
        if run_id is None:
            raise ValueError("the store has no published run; publish one first")
        snap = load_snapshot(store, run_id, render_root, image_root)
        return cls(store, snap, render_root, image_root, experiments, freeze_gc)

    @property
    def run_id(self) -> str:
        """Id of the run now being served."""
        return self._snap.run_id

    def snapshot(self) -> RunSnapshot:
        """The current snapshot (what a call started now would answer from)."""
        return self._snap

    @property
    def render_dir(self) -> str | None:
        """The served run's render folder on this machine (to open render files in process)."""
        return self._snap.render_dir

    def refresh(self) -> bool:
        """Load the newly published run, if any, and swap it in; True when it changed.

        Loading happens outside any reader path; the swap is one reference
        assignment, so calls in flight finish on the run they started with.  A
        run that fails to load raises and leaves the served run in place.
        """
        with self._refresh_lock:
            run_id = self._store.current_run_id()
            if run_id is None or run_id == self._snap.run_id:
                return False
            snap = load_snapshot(self._store, run_id, self._render_root, self._image_root)
            self._snap = snap
            del snap
            if self._freeze_gc:
                freeze_gc_now()  # also collects the old run's cycles, if it has any
            log.info("serving run %s", run_id)
            return True

    def start_auto_refresh(self, interval_s: float = 60.0) -> None:
        """Poll the store every ``interval_s`` seconds in a daemon thread and refresh.

        A failed load is logged and retried at the next poll; the old run keeps
        being served meanwhile.
        """
        if self._poller is not None:
            return
        self._stop.clear()

        def loop() -> None:
            while not self._stop.wait(interval_s):
                try:
                    self.refresh()
                except Exception:  # noqa: BLE001 - keep serving the old run
                    log.exception("refresh failed; still serving run %s", self.run_id)

        self._poller = threading.Thread(target=loop, name="stylerec-refresh", daemon=True)
        self._poller.start()

    def close(self) -> None:
        """Stop the auto-refresh thread (if any)."""
        self._stop.set()
        if self._poller is not None:
            self._poller.join(timeout=5)
            self._poller = None

    # -------------------------------------------------------------- helpers
    def _treated(self, user_id: str, experiment: str | Experiment | None) -> bool:
        """Whether the user sees renders: always, unless the experiment puts them in control."""
        if experiment is None:
            return True
        if isinstance(experiment, Experiment):
            exp = experiment
        elif isinstance(experiment, str):
            exp = self._experiments.get(experiment) or Experiment(experiment)
        else:
            raise TypeError(f"experiment must be a name or an Experiment, got {experiment!r}")
        return str(exp.assign([user_id])[0]) not in CONTROL_ARMS

    def variant(self, user_id: str | int, experiment: str | Experiment) -> str:
        """The user's arm in ``experiment`` (what exposure logs record)."""
        exp = experiment if isinstance(experiment, Experiment) else (
            self._experiments.get(experiment) or Experiment(str(experiment)))
        return str(exp.assign([_norm_id(user_id, "user_id")])[0])

    @staticmethod
    def _check_k(k: Any, minimum: int) -> None:
        if not isinstance(k, (int, np.integer)) or isinstance(k, (bool, np.bool_)):
            raise TypeError(f"k must be an int, got {type(k).__name__}: {k!r}")
        if k < minimum:
            raise ValueError(f"k must be >= {minimum}, got {k}")

    # ------------------------------------------------------------------ rank
    def rank(self, user_id: str | int, candidate_item_ids: Iterable[str | int],
             k: int | None = None, experiment: str | Experiment | None = None,
             style: str | None = None) -> list[RankedItem]:
        """Rank candidates for a user, best first, with the image to show.

        Duplicates are dropped (first occurrence kept); ties keep the input
        order; ``k`` cuts the list (``None``: all).  Ids unknown to the run are
        left out (:meth:`rank_response` lists them); at most
        :data:`MAX_CANDIDATES` ids per call (``ValueError`` beyond).  ``style``: the
        shopper's chosen style (:mod:`recsys.serving.overrides`; :meth:`rank_response`
        says per item whether it was exact, the closest cached look or refused).
        """
        return self._rank(self._snap, _norm_id(user_id, "user_id"), candidate_item_ids, k,
                          experiment, style=style)

    def rank_response(self, user_id: str | int, candidate_item_ids: Iterable[str | int],
                      k: int | None = None, experiment: str | Experiment | None = None,
                      style: str | None = None) -> Ranking | StyledRanking:
        """:meth:`rank` plus the fallbacks: ``cold_start`` and ``unknown_items``.

        With ``style``: a :class:`StyledRanking`, which adds ``style_notes``.
        """
        snap = self._snap
        uid = _norm_id(user_id, "user_id")
        unknown: list[str] = []
        notes: dict[str, StyleNote] = {}
        items = self._rank(snap, uid, candidate_item_ids, k, experiment, unknown, style, notes)
        if style is None:
            return Ranking(snap.run_id, uid, items, uid not in snap.user_row, unknown)
        return StyledRanking(snap.run_id, uid, items, uid not in snap.user_row, unknown, notes)

    def _rank(self, snap: RunSnapshot, uid: str, candidates: Iterable[Any], k: int | None,
              experiment: str | Experiment | None, unknown: list[str] | None = None,
              style: str | None = None, notes: dict[str, StyleNote] | None = None
              ) -> list[RankedItem]:
        if k is not None:
            self._check_k(k, 0)
        if hasattr(candidates, "__len__") and len(candidates) > MAX_CANDIDATES:  # type: ignore[arg-type]
            raise ValueError(f"{len(candidates)} candidates; at most {MAX_CANDIDATES} per call")  # type: ignore[arg-type]
        ids = list(dict.fromkeys(_norm_ids(candidates, "item_id")))
        if len(ids) > MAX_CANDIDATES:
            raise ValueError(f"{len(ids)} candidates; at most {MAX_CANDIDATES} per call")
        if not ids:
            return []
        rows = np.fromiter(map(snap.item_row.get, ids, repeat(-1)), np.int64, len(ids))
        if rows.min() < 0:  # ids unknown to the run: reported, never scored
            known = np.flatnonzero(rows >= 0)
            if unknown is not None:
                unknown.extend(ids[j] for j in np.flatnonzero(rows < 0).tolist())
            ids = [ids[j] for j in known.tolist()]
            rows = rows[known]
        if not ids or k == 0:
            return []
        _, seg, urow = snap.user_vector(uid)
        treated = self._treated(uid, experiment)
        ov, sid = self._override(snap, style, treated)
        scores = (snap.scores(rows, urow, seg, treated) if ov is None
                  else ov.scores(rows, urow, sid, seg))
        order = np.argsort(-scores, kind="stable")
        if k is not None:
            order = order[:k]
        if ov is None:
            return snap.items(ids, rows, scores, order, seg, treated)
        items, codes = ov.ranked(ids, rows, scores, order, seg, sid)
        if notes is not None:
            notes.update(ov.notes(items, codes, sid))
        return items

    def _override(self, snap: RunSnapshot, style: Any, treated: bool
                  ) -> tuple[StyleOverrides | None, str]:
        """The run's override tables when a treated shopper chose a style (else None)."""
        if style is None:
            return None, ""
        sid = _norm_id(style, "style")
        ov = self._overrides
        if ov is None or ov.snap is not snap:
            with self._refresh_lock:
                ov = self._overrides
                if ov is None or ov.snap is not snap:
                    ov = StyleOverrides.load(self._store, snap, self._render_root)
                    self._overrides = ov
        ov.check_style(sid)
        return (ov if treated else None), sid

    def rank_many(self, requests: Sequence[tuple[str | int, Iterable[str | int]]],
                  k: int | None = None, experiment: str | Experiment | None = None
                  ) -> list[list[RankedItem]]:
        """Batch form of :meth:`rank` over ``(user_id, candidates)`` pairs; one run serves all."""
        snap = self._snap
        return [self._rank(snap, _norm_id(u, "user_id"), c, k, experiment) for u, c in requests]

    # ------------------------------------------------------------- recommend
    def recommend(self, user_id: str | int, k: int = 10, exclude_seen: bool = True,
                  experiment: str | Experiment | None = None, style: str | None = None
                  ) -> list[RankedItem]:
        """Top ``k`` items of the whole catalogue, exactly as :meth:`rank` would order them.

        Known users: every item of the run scored by the factors core in one
        mat-vec (brute force; as fast as the FAISS flat index it replaced at
        1M users x 100k items, ``docs/benchmarks.md``), the style term of the
        user's segment added to rendered items, seen items excluded, the exact
        top ``k`` by ``argpartition``.  Unknown users: the most popular items.
        ``style``: the shopper's chosen style; the whole catalogue is then scored
        with the style term of each item's override image (exact, dense).
        """
        return self._recommend(self._snap, _norm_id(user_id, "user_id"), k, exclude_seen,
                               experiment, style)

    def recommend_response(self, user_id: str | int, k: int = 10, exclude_seen: bool = True,
                           experiment: str | Experiment | None = None,
                           style: str | None = None) -> Ranking | StyledRanking:
        """:meth:`recommend` plus ``cold_start`` (``unknown_items`` is always empty)."""
        snap = self._snap
        uid = _norm_id(user_id, "user_id")
        notes: dict[str, StyleNote] = {}
        items = self._recommend(snap, uid, k, exclude_seen, experiment, style, notes)
        if style is None:
            return Ranking(snap.run_id, uid, items, uid not in snap.user_row, [])
        return StyledRanking(snap.run_id, uid, items, uid not in snap.user_row, [], notes)

    def _recommend(self, snap: RunSnapshot, uid: str, k: int, exclude_seen: bool,
                   experiment: str | Experiment | None, style: str | None = None,
                   notes: dict[str, StyleNote] | None = None) -> list[RankedItem]:
        self._check_k(k, 1)
        _, seg, urow = snap.user_vector(uid)
        treated = self._treated(uid, experiment)
        ov, sid = self._override(snap, style, treated)
        if ov is not None:  # every item's style term depends on the chosen style: score densely
            n = len(snap.item_ids)
            if n == 0:
                return []
            cand = np.arange(n)
            if exclude_seen and urow >= 0:
                cand = cand[~np.isin(cand, snap.seen_rows(urow))]
            scores = ov.scores(cand, urow, sid, seg)
            order = np.lexsort((cand, -scores))[:k]
            top = cand[order]
            items, codes = ov.ranked([snap.item_ids[r] for r in top.tolist()], top,
                                     scores[order], np.arange(len(top)), seg, sid)
            if notes is not None:
                notes.update(ov.notes(items, codes, sid))
            return items
        rows, scores = snap.top(urow, k, seg, treated, exclude_seen)
        ids = [snap.item_ids[r] for r in rows.tolist()]
        return snap.items(ids, rows, scores, np.arange(len(rows)), seg, treated)

    def recommend_many(self, user_ids: Sequence[str | int], k: int = 10,
                       exclude_seen: bool = True, experiment: str | Experiment | None = None
                       ) -> list[list[RankedItem]]:
        """Batch form of :meth:`recommend` over one run."""
        snap = self._snap
        return [self._recommend(snap, _norm_id(u, "user_id"), k, exclude_seen, experiment)
                for u in user_ids]

    # ----------------------------------------------------------------- styles
    def user_styles(self, user_id: str | int, k: int = 3) -> list[StyleScore]:
        """The user's ``k`` preferred library styles, ``p_u . W c_s`` best first.

        Unknown users get the population's (mean user vector's) preferences.
        """
        return self._user_styles(self._snap, _norm_id(user_id, "user_id"), k)

    def _user_styles(self, snap: RunSnapshot, uid: str, k: int) -> list[StyleScore]:
        self._check_k(k, 0)
        _, _, urow = snap.user_vector(uid)
        if not snap.style_ids or k == 0:
            return []
        s = snap.factors.affinity(urow, snap.style_embeddings)[0]
        order = np.argsort(-s, kind="stable")[:k]
        return [StyleScore(snap.style_ids[j], float(s[j])) for j in order.tolist()]

    def user_styles_many(self, user_ids: Sequence[str | int], k: int = 3
                         ) -> list[list[StyleScore]]:
        """Batch form of :meth:`user_styles` over one run."""
        snap = self._snap
        return [self._user_styles(snap, _norm_id(u, "user_id"), k) for u in user_ids]

    def segment_of(self, user_id: str | int) -> str:
        """Segment of a user (the default segment for unknown users)."""
        snap = self._snap
        return snap.segment_ids[snap.user_vector(_norm_id(user_id, "user_id"))[1]]

    # ----------------------------------------------------------------- images
    def image_for(self, user_id: str | int, item_id: str | int,
                  experiment: str | Experiment | None = None, style: str | None = None
                  ) -> str | StyledImage | None:
        """Render for the user's segment, else the original; ``None`` for an item unknown to the run.

        With ``style`` (a shopper's chosen look) the answer is a
        :class:`~recsys.serving.overrides.StyledImage`: the image, its ``status``
        (``exact``, ``closest``, ``refused``, ``unavailable``), the styles shown
        and the reason -- a style blocked for the item's category is refused
        there, with the shopper's usual image.  An unknown style is a ``ValueError``.
        """
        snap = self._snap
        uid, iid = _norm_id(user_id, "user_id"), _norm_id(item_id, "item_id")
        if style is None:
            return self._image_for(snap, uid, iid, experiment)
        treated = self._treated(uid, experiment)
        ov, sid = self._override(snap, style, True)
        assert ov is not None
        _, seg, _ = snap.user_vector(uid)
        return ov.image(snap.item_row.get(iid, -1), seg, sid, iid, treated)

    def _image_for(self, snap: RunSnapshot, uid: str, iid: str,
                   experiment: str | Experiment | None) -> str | None:
        _, seg, _ = snap.user_vector(uid)
        row = snap.item_row.get(iid, -1)
        if self._treated(uid, experiment):
            return snap.shown_uri[row, seg]
        return snap.original[row]

    def image_for_many(self, pairs: Sequence[tuple[str | int, str | int]],
                       experiment: str | Experiment | None = None) -> list[str | None]:
        """Batch form of :meth:`image_for` over ``(user_id, item_id)`` pairs."""
        snap = self._snap
        return [self._image_for(snap, _norm_id(u, "user_id"), _norm_id(i, "item_id"), experiment)
                for u, i in pairs]

    # ------------------------------------------------------------ cold items
    def score_new_items(self, user_id: str | int, raw_codes: np.ndarray) -> np.ndarray:
        """Scores of items not in the run from their raw image codes (whitened here).

        Same formula as the run's own cold catalogue items (``p_u . W c + mean
        bias``); without codes in the run, every item gets the prior.  Unknown
        users are scored with the mean user vector.
        """
        snap = self._snap
        _, _, urow = snap.user_vector(_norm_id(user_id, "user_id"))
        codes = np.atleast_2d(np.asarray(raw_codes, np.float32))
        return snap.factors.score_new_items(urow, codes, raw=True)[0]


def freeze_gc_now() -> None:
    """Collect once, then exclude every object alive now from the cyclic GC (``gc.freeze``).

    Why: the imports of a serving process (pandas, scipy, SQLAlchemy, FAISS,
    FastAPI) leave ~170k container objects that every full (generation 2)
    collection walks again -- 50-100 ms on the reference machine, and a
    response that triggers one waits for it (``bench_serving.py`` saw rank
    with 10k candidates at p50 12 ms, p99 130 ms, the p99 being these pauses).
    Frozen objects are still freed by reference counting; ``unfreeze`` +
    ``collect`` first lets the previous run's cyclic garbage go, so repeated
    refreshes do not leak.  Process-wide, so never called implicitly.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def set_search_threads(n: int = 1) -> None:
    """Limit the BLAS/OpenMP threads of the per-request top-k (a mat-vec per call).

    A serving process answers many small queries from many threads; letting
    each also spin up BLAS workers oversubscribes the cores (a numpy peer fell
    to ~100 calls/s with 8 request threads on 2 cores, ``docs/benchmarks.md``).
    Called by the HTTP front and the benchmark, not implicitly, because it is
    process-wide.
    """
    from threadpoolctl import threadpool_limits

    threadpool_limits(int(n))
