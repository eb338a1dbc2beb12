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

import faiss
import numpy as np
import pandas as pd

from recsys.experiments.assignment import HOLDOUT, Experiment
from recsys.index import ItemIndex
from recsys.serving import bundle as B

log = logging.getLogger(__name__)

MAX_CANDIDATES = 100_000
"""Largest candidate list rank() accepts (counted before de-duplication);
a bigger one is a client bug, not a query."""

DENSE_ABOVE = 4096
"""recommend() scores the whole catalogue with one mat-vec instead of asking
FAISS for more than this many neighbours (cheaper past that point)."""

CONTROL_ARMS = frozenset({"control", HOLDOUT})
"""Arms whose users are shown original images."""


class RankedItem(NamedTuple):
    """One ranked item: what to show (image) and why (score, segment, styles).

    ``style_ids`` are the library styles of the render shown (empty when the
    original image is shown); ``run_id`` names the run the answer came from.
    A named tuple rather than a frozen dataclass: a response builds one per
    candidate, and a frozen dataclass's ``__init__`` (one ``object.__setattr__``
    per field) cost about 0.5 us each -- a third of ``rank``'s time at 100
    candidates.  It is just as immutable.
    """

    item_id: str
    score: float
    image_uri: str | None
    segment_id: str
    style_ids: tuple[str, ...]
    run_id: str


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


def _ro(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


class RunSnapshot:
    """Everything one run answers with, built once and never mutated.

    Rows ``0 .. n_model_items-1`` of the item table are the model's items (in
    item-map order); the rows after them are catalogue items the model never
    saw.  Arrays are read-only so that a bug cannot mutate a snapshot that
    concurrent readers share.
    """

    def __init__(
        self,
        *,
        run_id: str,
        user_ids: list[str],
        user_factors: np.ndarray,
        user_segment: np.ndarray,
        item_ids: list[str],
        n_model_items: int,
        item_vectors: np.ndarray,
        item_bias: np.ndarray,
        popularity: np.ndarray,
        seen_indptr: np.ndarray | None,
        seen_indices: np.ndarray | None,
        style_ids: list[str],
        style_embeddings: np.ndarray,
        segment_ids: list[str],
        segment_styles: list[tuple[str, ...]],
        segment_embeddings: np.ndarray,
        default_segment: int,
        original_uri: list[str | None],
        render_uri: Mapping[tuple[int, int], str],
        code_projection: tuple[np.ndarray, ...] | None,
        prior: float,
        render_dir: str | None = None,
    ) -> None:
        self.run_id = run_id
        self.render_dir = render_dir  # where this run's renders live on the server
        n_items, n_seg = len(item_ids), len(segment_ids)
        self.user_row: dict[str, int] = dict(zip(user_ids, range(len(user_ids)), strict=True))
        self.user_factors = _ro(np.ascontiguousarray(user_factors, np.float32))
        self.user_segment = _ro(np.asarray(user_segment, np.int32))
        self.item_ids = item_ids
        self.item_row: dict[str, int] = dict(zip(item_ids, range(n_items), strict=True))
        self.n_model_items = n_model_items
        self.item_vectors = _ro(np.ascontiguousarray(item_vectors, np.float32))
        self.item_bias = _ro(np.asarray(item_bias, np.float32))
        self.popularity = _ro(np.asarray(popularity, np.float32))
        self.pop_order = _ro(np.argsort(-self.popularity, kind="stable"))
        self.prior = float(prior)
        f = self.item_vectors.shape[1]
        self.mean_user = _ro(self.user_factors.mean(axis=0) if len(user_ids)
                             else np.zeros(f, np.float32))
        self.seen_indptr = seen_indptr
        self.seen_indices = seen_indices
        self.style_ids = style_ids
        self.style_embeddings = _ro(np.asarray(style_embeddings, np.float32))
        self.segment_ids = segment_ids
        self.segment_styles = segment_styles
        self.segment_embeddings = _ro(np.asarray(segment_embeddings, np.float32))
        self.default_seg = default_segment
        self.code_projection = code_projection

        # Image table: the URI to show per (item, segment) when treated, precomputed
        # so that a response looks images up by fancy indexing, not per-item dicts.
        self.original = np.asarray(original_uri + [None], dtype=object)  # row -1 -> None
        has = np.zeros((n_items + 1, n_seg), dtype=bool)  # last row: unknown items
        shown = np.empty((n_items + 1, n_seg), dtype=object)
        shown[:] = self.original[:, None]
        for (row, seg), uri in render_uri.items():
            has[row, seg] = True
            shown[row, seg] = uri
        self.has_render = _ro(has)
        self.shown_uri = _ro(shown)
        self.n_renders = len(render_uri)

        # Serving index over [v_i, b_i]: query [p_u, 1] gives p_u . v_i + b_i
        # exactly, the score rank() uses before the style term.
        aug = np.hstack([self.item_vectors, self.item_bias[:, None]]).astype(np.float32)
        self.index = ItemIndex(use_gpu=False).fit(aug, item_ids) if n_items else None
        # The style term adds c = p_u . e_seg to rendered items only.  Per segment,
        # the smaller of {rendered} and {not rendered} is scored explicitly and
        # FAISS is asked for enough extra neighbours to make the top-k exact.
        self.minority: list[tuple[np.ndarray, bool]] = []
        for s in range(n_seg):
            r = np.flatnonzero(has[:n_items, s])
            if len(r) <= n_items - len(r):
                self.minority.append((_ro(r), True))
            else:
                self.minority.append((_ro(np.flatnonzero(~has[:n_items, s])), False))

    # ---------------------------------------------------------------- lookups
    def user_vector(self, user_id: str) -> tuple[np.ndarray, int, int]:
        """(vector, segment index, row) of a user; unknown: mean vector, default segment, -1."""
        row = self.user_row.get(user_id, -1)
        if row < 0:
            return self.mean_user, self.default_seg, -1
        return self.user_factors[row], int(self.user_segment[row]), row

    def seen_rows(self, user_row: int) -> np.ndarray:
        """Item rows the user interacted with in training (empty when unknown)."""
        if user_row < 0 or self.seen_indptr is None or self.seen_indices is None:
            return np.empty(0, dtype=np.int64)
        return self.seen_indices[self.seen_indptr[user_row]: self.seen_indptr[user_row + 1]]

    def scores(self, rows: np.ndarray, pu: np.ndarray, user_row: int, seg: int,
               treated: bool) -> np.ndarray:
        """Scores of item ``rows`` (``-1`` = unknown item) for one user (module docstring)."""
        ok = rows >= 0
        safe = np.where(ok, rows, 0)
        if user_row < 0:
            return np.where(ok, self.popularity[safe], np.float32(0.0)).astype(np.float32)
        s = self.item_vectors[safe] @ pu + self.item_bias[safe]
        if treated and self.segment_ids:
            c = float(self.segment_embeddings[seg] @ pu)
            s = s + self.has_render[rows, seg] * np.float32(c)
        return np.where(ok, s, np.float32(self.prior)).astype(np.float32)

    def items(self, ids: Sequence[str], rows: np.ndarray, scores: np.ndarray,
              order: np.ndarray, seg: int, treated: bool) -> list[RankedItem]:
        """RankedItems for ``order`` (positions into ids/rows/scores)."""
        sel = rows[order]
        n = len(sel)
        item_ids = [ids[j] for j in order.tolist()]
        if treated:
            uris = self.shown_uri[sel, seg].tolist()
            styles = self.segment_styles[seg]
            style_col: Iterable[tuple[str, ...]] = [
                styles if r else () for r in self.has_render[sel, seg].tolist()]
        else:
            uris = self.original[sel].tolist()
            style_col = repeat((), n)
        return list(map(RankedItem, item_ids, scores[order].tolist(), uris,
                        repeat(self.segment_ids[seg], n), style_col, repeat(self.run_id, n)))


def _concat_root(root: str | None, uri: str) -> str:
    """``root/uri`` for a relative render URI (string join: works for URL prefixes too)."""
    if not root or "://" in uri or uri.startswith("/"):
        return uri
    return root.rstrip("/") + "/" + uri


def load_snapshot(store: Any, run_id: str, render_root: str | Path | None = None,
                  image_root: str | Path | None = None) -> RunSnapshot:
    """Read one published run (store rows + its bundle folder) into a :class:`RunSnapshot`."""
    run = store.get_run(run_id)
    if run is None:
        raise ValueError(f"run {run_id!r} not found in the store")
    params = run.get("params") or {}
    if "run_dir" not in params:
        raise ValueError(f"run {run_id!r}: params lack 'run_dir' (not a serving bundle)")
    run_dir = B.check_bundle(params["run_dir"])
    # Render URIs stay relative to the run's render folder unless a prefix is given:
    # an answer must not leak (or depend on) where this server keeps its files.
    root = None if render_root is None else str(render_root)

    model = B.read_model(run_dir)
    users = B.read_ids(run_dir / B.USER_MAP)
    model_items = B.read_ids(run_dir / B.ITEM_MAP)
    if len(users) != model.n_users or len(model_items) != model.n_items:
        raise ValueError(
            f"{run_dir}: id maps ({len(users)} users, {len(model_items)} items) do not match "
            f"the model ({model.n_users} users, {model.n_items} items)"
        )
    f = int(model.user_factors.shape[1])
    prior = float(model.item_bias.mean()) if len(model.item_bias) else 0.0

    # Item table: model items, then catalogue items the model never saw.
    items_df = B.read_items(run_dir)
    cat_ids = items_df["item_id"].tolist()
    known = set(model_items)
    extra = [i for i in dict.fromkeys(cat_ids) if i not in known]
    item_ids = model_items + extra
    uri_col = items_df["image_uri"]
    orig_of = dict(zip(cat_ids, [None if pd.isna(u) or u == "" else str(u) for u in uri_col],
                       strict=True))
    if image_root is not None:
        orig_of = {k: None if v is None else _concat_root(str(image_root), v)
                   for k, v in orig_of.items()}
    original_uri = [orig_of.get(i) for i in item_ids]

    code_proj = _code_projection(run_dir, model)
    vectors = np.zeros((len(item_ids), f), np.float32)
    vectors[: len(model_items)] = model.item_factors
    bias = np.full(len(item_ids), prior, np.float32)
    bias[: len(model_items)] = model.item_bias
    popularity = np.zeros(len(item_ids), np.float32)
    popularity[: len(model_items)] = model.popularity
    n_coded = 0
    if extra and code_proj is not None:
        codes = B.read_codes(run_dir)
        if codes is not None:
            code_row = {i: n for n, i in enumerate(codes[0])}
            pos = [(len(model_items) + j, code_row[i]) for j, i in enumerate(extra)
                   if i in code_row]
            if pos:
                dst, src = (np.asarray(x) for x in zip(*pos, strict=True))
                vectors[dst] = _project(code_proj, codes[1][src])
                n_coded = len(pos)

    # Segments and their conditions (conditions.json; the store holds the assignment).
    styles = B.read_style_embeddings(run_dir)
    style_pos = {s: n for n, s in enumerate(styles.style_ids)}
    conds = B.read_conditions(run_dir)
    seg_ids = [str(c["segment_id"]) for c in conds]
    seg_styles = [tuple(str(s) for s in c["style_ids"]) for c in conds]
    seg_emb = np.zeros((len(conds), f), np.float32)
    for n, c in enumerate(conds):
        w = np.asarray(c["weights"], np.float64)
        w = w / w.sum() if len(w) and w.sum() > 0 else w
        for s, wt in zip(c["style_ids"], w, strict=True):
            if str(s) in style_pos:
                seg_emb[n] += float(wt) * styles.embeddings[style_pos[str(s)]]
    default = _default_segment(run_dir, conds)
    if default not in seg_ids:  # no segments at all, or a default without a condition
        seg_ids.append(default)
        seg_styles.append(())
        seg_emb = np.vstack([seg_emb, np.zeros((1, f), np.float32)])
    seg_pos = {s: n for n, s in enumerate(seg_ids)}
    user_seg = np.full(len(users), seg_pos[default], dtype=np.int32)
    seg_df = store.read_user_segments(run_id)
    if len(seg_df):
        rows = pd.Index(users, dtype=object).get_indexer(seg_df["user_id"].astype(str))
        segs = seg_df["segment_id"].astype(str).map(seg_pos).to_numpy()
        ok = (rows >= 0) & pd.notna(segs)
        user_seg[rows[ok]] = segs[ok].astype(np.int32)
        del seg_df, rows, segs

    # Renders: (item, condition hash) rows of the store -> (item row, segment).
    hash_seg: dict[str, list[int]] = {}
    for c in conds:
        if c.get("condition_hash"):
            hash_seg.setdefault(str(c["condition_hash"]), []).append(seg_pos[str(c["segment_id"])])
    rdf = store.renders_for_run(run_id)
    renders: dict[tuple[int, int], str] = {}
    if len(rdf):
        item_pos = pd.Index(item_ids, dtype=object).get_indexer(rdf["item_id"].astype(str))
        for r, ch, uri in zip(item_pos.tolist(), rdf["condition_hash"].astype(str).tolist(),
                              rdf["uri"].astype(str).tolist(), strict=True):
            if r < 0:
                continue
            full = _concat_root(root, uri)
            for s in hash_seg.get(ch, ()):
                renders[(r, s)] = full
    del rdf

    snap = RunSnapshot(
        run_id=run_id,
        user_ids=users,
        user_factors=model.user_factors,
        user_segment=user_seg,
        item_ids=item_ids,
        n_model_items=len(model_items),
        item_vectors=vectors,
        item_bias=bias,
        popularity=popularity,
        seen_indptr=None if model.seen_indptr is None else _ro(model.seen_indptr),
        seen_indices=None if model.seen_indices is None else _ro(model.seen_indices),
        style_ids=styles.style_ids,
        style_embeddings=styles.embeddings,
        segment_ids=seg_ids,
        segment_styles=seg_styles,
        segment_embeddings=seg_emb,
        default_segment=seg_pos[default],
        original_uri=original_uri,
        render_uri=renders,
        code_projection=code_proj,
        prior=prior,
        render_dir=params.get("render_root"),
    )
    log.info("loaded run %s: %d users, %d items (%d cold, %d from image codes), "
             "%d segments, %d renders", run_id, len(users), len(item_ids), len(extra),
             n_coded, len(seg_ids), len(renders))
    return snap


def _code_projection(run_dir: Path, model: B.ModelArrays) -> tuple[np.ndarray, ...] | None:
    """``(whiten mean, whiten matrix, code mean, code scale, W)``, or None without codes."""
    if model.code_mean is None or model.W.size == 0:
        return None
    d = int(model.code_mean.shape[0])
    wh = B.read_whitening(run_dir)
    mean, matrix = wh if wh is not None else (np.zeros(d, np.float32), np.eye(d, dtype=np.float32))
    return (mean, matrix, np.asarray(model.code_mean, np.float32),
            np.float32(model.code_scale), np.asarray(model.W, np.float32))


def _project(proj: tuple[np.ndarray, ...], raw: np.ndarray) -> np.ndarray:
    """Item vectors ``W c`` of raw image codes: whiten, standardise as in training, project."""
    mean, matrix, cmean, cscale, W = proj
    raw = np.atleast_2d(np.asarray(raw, np.float32))
    if raw.shape[1] != mean.shape[0]:
        raise ValueError(f"codes must have {mean.shape[0]} dims, got {raw.shape[1]}")
    std = ((raw - mean) @ matrix - cmean) / cscale * np.float32(np.sqrt(raw.shape[1]))
    return (std @ W).astype(np.float32)


def _default_segment(run_dir: Path, conds: list[dict[str, Any]]) -> str:
    """The segmentation's default segment, else the largest segment, else "default"."""
    import json

    meta = run_dir / B.SEGMENTATION / "segments.json"
    if meta.is_file():
        return str(json.loads(meta.read_text(encoding="utf-8"))["default_segment"])
    if conds:
        return str(max(conds, key=lambda c: c.get("n_users") or 0)["segment_id"])
    return "default"


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
             k: int | None = None, experiment: str | Experiment | None = None
             ) -> list[RankedItem]:
        """Rank candidates for a user, best first, with the image to show.

        Duplicates are dropped (first occurrence kept); ties keep the input
        order; ``k`` cuts the list (``None``: all).  Ids unknown to the run are
        left out (:meth:`rank_response` lists them); at most
        :data:`MAX_CANDIDATES` ids per call (``ValueError`` beyond).
        """
        return self._rank(self._snap, _norm_id(user_id, "user_id"), candidate_item_ids, k,
                          experiment)

    def rank_response(self, user_id: str | int, candidate_item_ids: Iterable[str | int],
                      k: int | None = None, experiment: str | Experiment | None = None
                      ) -> Ranking:
        """:meth:`rank` plus the fallbacks: ``cold_start`` and the ``unknown_items``."""
        snap = self._snap
        uid = _norm_id(user_id, "user_id")
        unknown: list[str] = []
        items = self._rank(snap, uid, candidate_item_ids, k, experiment, unknown)
        return Ranking(snap.run_id, uid, items, uid not in snap.user_row, unknown)

    def _rank(self, snap: RunSnapshot, uid: str, candidates: Iterable[Any], k: int | None,
              experiment: str | Experiment | None, unknown: list[str] | None = None
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
        pu, seg, urow = snap.user_vector(uid)
        treated = self._treated(uid, experiment)
        scores = snap.scores(rows, pu, urow, seg, treated)
        order = np.argsort(-scores, kind="stable")
        if k is not None:
            order = order[:k]
        return snap.items(ids, rows, scores, order, seg, treated)

    def rank_many(self, requests: Sequence[tuple[str | int, Iterable[str | int]]],
                  k: int | None = None, experiment: str | Experiment | None = None
                  ) -> list[list[RankedItem]]:
        """Batch form of :meth:`rank` over ``(user_id, candidates)`` pairs; one run serves all."""
        snap = self._snap
        return [self._rank(snap, _norm_id(u, "user_id"), c, k, experiment) for u, c in requests]

    # ------------------------------------------------------------- recommend
    def recommend(self, user_id: str | int, k: int = 10, exclude_seen: bool = True,
                  experiment: str | Experiment | None = None) -> list[RankedItem]:
        """Top ``k`` items of the whole catalogue, exactly as :meth:`rank` would order them.

        Known users: the FAISS index over ``[v_i, b_i]`` answers the query
        ``[p_u, 1]``; items whose style term differs from the rest of their
        segment's (the smaller of rendered / not rendered) are scored
        explicitly, and FAISS is asked for ``k + |seen| + |those|`` neighbours,
        which makes the result the exact top ``k``.  Unknown users: the most
        popular items.  ``exclude_seen`` drops what the user interacted with.
        """
        return self._recommend(self._snap, _norm_id(user_id, "user_id"), k, exclude_seen,
                               experiment)

    def recommend_response(self, user_id: str | int, k: int = 10, exclude_seen: bool = True,
                           experiment: str | Experiment | None = None) -> Ranking:
        """:meth:`recommend` plus ``cold_start`` (``unknown_items`` is always empty)."""
        snap = self._snap
        uid = _norm_id(user_id, "user_id")
        items = self._recommend(snap, uid, k, exclude_seen, experiment)
        return Ranking(snap.run_id, uid, items, uid not in snap.user_row, [])

    def _recommend(self, snap: RunSnapshot, uid: str, k: int, exclude_seen: bool,
                   experiment: str | Experiment | None) -> list[RankedItem]:
        self._check_k(k, 1)
        pu, seg, urow = snap.user_vector(uid)
        treated = self._treated(uid, experiment)
        n = len(snap.item_ids)
        if n == 0:
            return []
        if urow < 0:
            cand = snap.pop_order[: min(k, n)]
        else:
            seen = snap.seen_rows(urow) if exclude_seen else np.empty(0, np.int64)
            special = np.empty(0, np.int64)
            if treated and snap.segment_ids and float(snap.segment_embeddings[seg] @ pu) != 0.0:
                special = snap.minority[seg][0]
            width = k + len(seen) + len(special)
            if width >= min(n, DENSE_ABOVE) or snap.index is None:
                cand = np.arange(n)
            else:
                q = np.append(pu, np.float32(1.0))[None, :].astype(np.float32)
                _, labels = snap.index.index_.search(q, width)
                cand = labels[0][labels[0] >= 0]
                if len(special):
                    cand = np.union1d(cand, special)
            if len(seen):
                cand = cand[~np.isin(cand, seen, assume_unique=False)]
        cand = np.sort(cand)  # row order: ties break the same way on every path
        scores = snap.scores(cand, pu, urow, seg, treated)
        if len(cand) > k:
            top = np.argpartition(-scores, k - 1)[:k]
            order = top[np.lexsort((cand[top], -scores[top]))]
        else:
            order = np.lexsort((cand, -scores))
        ids = [snap.item_ids[r] for r in cand[order].tolist()]
        return snap.items(ids, cand[order], scores[order], np.arange(len(order)), seg, treated)

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
        pu, _, _ = snap.user_vector(uid)
        if not snap.style_ids or k == 0:
            return []
        s = snap.style_embeddings @ pu
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
                  experiment: str | Experiment | None = None) -> str | None:
        """Render for the user's segment, else the original; ``None`` for an item unknown to the run."""
        return self._image_for(self._snap, _norm_id(user_id, "user_id"),
                               _norm_id(item_id, "item_id"), experiment)

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
        pu, _, _ = snap.user_vector(_norm_id(user_id, "user_id"))
        codes = np.atleast_2d(np.asarray(raw_codes, np.float32))
        if snap.code_projection is None:
            return np.full(len(codes), snap.prior, np.float32)
        return (_project(snap.code_projection, codes) @ pu + np.float32(snap.prior)).astype(
            np.float32)


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
    """Limit FAISS's OpenMP threads (per-request searches are single queries).

    A serving process answers many small queries from many threads; letting
    each also spin up OpenMP workers oversubscribes the cores.  Called by the
    HTTP front and the benchmark, not implicitly, because it is process-wide.
    """
    faiss.omp_set_num_threads(int(n))
