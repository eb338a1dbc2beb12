"""One published run in memory: :class:`RunSnapshot` and :func:`load_snapshot`.

Why a separate module: the snapshot is the *data* of a run (vectors, id maps,
segments, the image table, the item index), read once from the store and the
run folder and never mutated; :mod:`recsys.serving.service` is the API that
answers from it.  Rows ``0 .. n_model_items-1`` of the item table are the
model's items; the rows after them are catalogue items the model never saw.
Image references are kept as the store and catalogue hold them (relative to
the render folder and the image root) unless a prefix is given.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from itertools import repeat
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from recsys.factors import StyleFactors, blend
from recsys.run_bundle import CODES, ITEMS, RunBundle

log = logging.getLogger(__name__)

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


def _ro(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


class RunSnapshot:
    """Everything one run answers with, built once and never mutated.

    Rows ``0 .. n_model_items-1`` of the item table are the model's items (in
    item-map order); the rows after them are catalogue items the model never
    saw.  ``factors`` (a :class:`~recsys.factors.StyleFactors` over that whole
    item table) does every score; arrays are read-only so that a bug cannot
    mutate a snapshot that concurrent readers share.
    """

    def __init__(
        self,
        *,
        run_id: str,
        user_ids: list[str],
        factors: StyleFactors,
        user_segment: np.ndarray,
        item_ids: list[str],
        n_model_items: int,
        style_ids: list[str],
        style_embeddings: np.ndarray,
        segment_ids: list[str],
        segment_styles: list[tuple[str, ...]],
        segment_embeddings: np.ndarray,
        default_segment: int,
        original_uri: list[str | None],
        render_uri: Mapping[tuple[int, int], str],
        render_dir: str | None = None,
        render_styles: Mapping[tuple[int, int], tuple[str, ...]] | None = None,
    ) -> None:
        self.run_id = run_id
        self.render_dir = render_dir  # where this run's renders live on the server
        n_items, n_seg = len(item_ids), len(segment_ids)
        if factors.n_items != n_items or factors.n_users != len(user_ids):
            raise ValueError(f"factors hold {factors.n_users} users and {factors.n_items} items; "
                             f"the id lists {len(user_ids)} and {n_items}")
        self.factors = factors
        self.user_row: dict[str, int] = dict(zip(user_ids, range(len(user_ids)), strict=True))
        self.user_segment = _ro(np.asarray(user_segment, np.int32))
        self.item_ids = item_ids
        self.item_row: dict[str, int] = dict(zip(item_ids, range(n_items), strict=True))
        self.n_model_items = n_model_items
        self.pop_order = _ro(np.argsort(-factors.popularity_scores, kind="stable"))
        self.style_ids = style_ids
        self.style_embeddings = _ro(np.asarray(style_embeddings, np.float32))
        self.segment_ids = segment_ids
        self.segment_styles = segment_styles
        self.segment_embeddings = _ro(np.asarray(segment_embeddings, np.float32))
        self.default_seg = default_segment

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
        # Per segment, contiguous float32 (1 = shown rendered): the style term's weight per
        # item, multiplied in without a conversion on every call.
        self.rendered = [_ro(has[:n_items, s].astype(np.float32)) for s in range(n_seg)]
        # (row, segment) renders made with a category's fallback blend (pipelines.controls):
        # their own styles, not the segment's (a blocked style is never named as shown).
        self.render_styles = dict(render_styles or {})
        self.shown_uri = _ro(shown)
        self.n_renders = len(render_uri)

    # Views of the factors under the names the snapshot had before the core existed.
    @property
    def user_factors(self) -> np.ndarray:
        return self.factors.user_factors

    @property
    def item_vectors(self) -> np.ndarray:
        return self.factors.item_factors

    @property
    def item_bias(self) -> np.ndarray:
        return self.factors.item_bias

    @property
    def popularity(self) -> np.ndarray:
        return self.factors.popularity_scores

    @property
    def prior(self) -> float:
        return self.factors.prior

    # ---------------------------------------------------------------- lookups
    def user_vector(self, user_id: str) -> tuple[np.ndarray, int, int]:
        """(vector, segment index, row) of a user; unknown: mean vector, default segment, -1."""
        row = self.user_row.get(user_id, -1)
        if row < 0:
            return self.factors.mean_user, self.default_seg, -1
        return self.factors.user_factors[row], int(self.user_segment[row]), row

    def seen_rows(self, user_row: int) -> np.ndarray:
        """Item rows the user interacted with in training (empty when unknown)."""
        return self.factors.seen_items(user_row)

    def style_term(self, seg: int, treated: bool) -> tuple[np.ndarray | None, np.ndarray | None]:
        """``(blend embedding, rendered mask)`` of the segment, or ``(None, None)`` untreated."""
        if not treated or not self.segment_ids:
            return None, None
        return self.segment_embeddings[seg], self.rendered[seg]

    def scores(self, rows: np.ndarray, user_row: int, seg: int, treated: bool) -> np.ndarray:
        """Scores of item ``rows`` (``-1`` = unknown item) for one user (module docstring)."""
        style, styled = self.style_term(seg, treated)
        return self.factors.score_user_items(user_row, rows, style, styled)

    def top(self, user_row: int, k: int, seg: int, treated: bool, exclude_seen: bool
            ) -> tuple[np.ndarray, np.ndarray]:
        """Exact top ``k`` item rows and scores over the whole item table (brute force)."""
        style, styled = self.style_term(seg, treated)
        exclude = self.seen_rows(user_row) if exclude_seen else None
        return self.factors.recommend_user(user_row, k, exclude, style, styled)

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
            if self.render_styles:
                style_col = [self.render_styles.get((r, seg), st) if st else st
                             for r, st in zip(sel.tolist(), style_col, strict=True)]
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
    """Read one published run (store rows + its :class:`RunBundle`) into a :class:`RunSnapshot`.

    The run's files come through :class:`~recsys.run_bundle.RunBundle` (the model as
    :class:`~recsys.factors.StyleFactors`, numpy only); from the store come the run
    row, the user -> segment assignment and the render index.
    """
    run = store.get_run(run_id)
    if run is None:
        raise ValueError(f"run {run_id!r} not found in the store")
    params = run.get("params") or {}
    if "run_dir" not in params:
        raise ValueError(f"run {run_id!r}: params lack 'run_dir' (not a serving bundle)")
    bundle = RunBundle.open(params["run_dir"]).check_servable()
    model = bundle.read_factors()
    users = bundle.read_ids("user")
    model_items = bundle.read_ids("item")
    if len(users) != model.n_users or len(model_items) != model.n_items:
        raise ValueError(
            f"{bundle.root}: id maps ({len(users)} users, {len(model_items)} items) do not match "
            f"the model ({model.n_users} users, {model.n_items} items)"
        )
    items = _item_table(bundle, model, model_items, image_root)
    segs = _segments(bundle, store, run_id, users, model.n_factors)
    # Render URIs stay relative to the run's render folder unless a prefix is given:
    # an answer must not leak (or depend on) where this server keeps its files.
    renders, render_styles = _renders(store, run_id, items.item_ids, segs,
                                      None if render_root is None else str(render_root))

    snap = RunSnapshot(
        run_id=run_id,
        user_ids=users,
        factors=items.factors,
        user_segment=segs.user_segment,
        item_ids=items.item_ids,
        n_model_items=len(model_items),
        style_ids=segs.style_ids,
        style_embeddings=segs.style_embeddings,
        segment_ids=segs.segment_ids,
        segment_styles=segs.segment_styles,
        segment_embeddings=segs.segment_embeddings,
        default_segment=segs.default,
        original_uri=items.original_uri,
        render_uri=renders,
        render_dir=params.get("render_root"),
        render_styles=render_styles,
    )
    log.info("loaded run %s: %d users, %d items (%d cold, %d from image codes), "
             "%d segments, %d renders", run_id, len(users), len(items.item_ids),
             len(items.item_ids) - len(model_items), items.n_coded, len(segs.segment_ids),
             len(renders))
    return snap


class _ItemTable(NamedTuple):
    """The snapshot's item rows: the model's items, then catalogue items it never saw."""

    item_ids: list[str]
    original_uri: list[str | None]
    factors: StyleFactors  # over the whole item table (cold rows appended)
    n_coded: int


def _item_table(bundle: RunBundle, model: StyleFactors, model_items: list[str],
                image_root: str | Path | None) -> _ItemTable:
    """Item ids, original images and factors; cold catalogue items scored from their codes."""
    items_df = bundle.read_table(ITEMS)
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

    coded_rows, raw_codes = None, None
    if extra and model.has_codes and bundle.has(CODES):
        codes = bundle.read_codes()
        code_row = {i: n for n, i in enumerate(codes.item_ids)}
        pos = [(j, code_row[i]) for j, i in enumerate(extra) if i in code_row]
        if pos:
            coded_rows, src = (np.asarray(x) for x in zip(*pos, strict=True))
            raw_codes = codes.item_codes[src]
    n_coded = 0 if coded_rows is None else len(coded_rows)
    factors = model.append_items(len(extra), coded_rows, raw_codes)
    return _ItemTable(item_ids, original_uri, factors, n_coded)


class _Segments(NamedTuple):
    """Segments, their styles and embeddings, and each user's segment row."""

    style_ids: list[str]
    style_embeddings: np.ndarray
    segment_ids: list[str]
    segment_styles: list[tuple[str, ...]]
    segment_embeddings: np.ndarray
    default: int
    user_segment: np.ndarray
    hash_segments: dict[str, list[int]]  # condition hash -> segment rows rendered with it
    variant_styles: dict[str, tuple[str, ...]]  # fallback blends of blocked categories by hash


def _segments(bundle: RunBundle, store: Any, run_id: str, users: list[str], f: int) -> _Segments:
    """Conditions and the default segment from the bundle; the assignment from the store."""
    styles = bundle.read_style_embeddings()
    style_pos = {s: n for n, s in enumerate(styles.style_ids)}
    conds = bundle.read_conditions()
    seg_ids = [str(c["segment_id"]) for c in conds]
    seg_styles = [tuple(str(s) for s in c["style_ids"]) for c in conds]
    seg_emb = np.zeros((len(conds), f), np.float32)
    for n, c in enumerate(conds):
        # Styles missing from the table contribute nothing (their weight is not re-spread).
        emb = np.zeros((len(c["style_ids"]), f), np.float32)
        for j, sid in enumerate(c["style_ids"]):
            if str(sid) in style_pos:
                emb[j] = styles.embeddings[style_pos[str(sid)]]
        seg_emb[n] = blend(emb, c["weights"])
    default = _default_segment(bundle, conds)
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
    hash_seg: dict[str, list[int]] = {}
    variant_styles: dict[str, tuple[str, ...]] = {}  # fallback blends of blocked categories
    for c in conds:
        if c.get("condition_hash"):
            hash_seg.setdefault(str(c["condition_hash"]), []).append(seg_pos[str(c["segment_id"])])
        for v in (c.get("category_variants") or {}).values():
            if v.get("condition_hash"):
                hash_seg.setdefault(str(v["condition_hash"]), []).append(
                    seg_pos[str(c["segment_id"])])
                variant_styles[str(v["condition_hash"])] = tuple(str(s) for s in v["style_ids"])
    return _Segments(styles.style_ids, styles.embeddings, seg_ids, seg_styles, seg_emb,
                     seg_pos[default], user_seg, hash_seg, variant_styles)


def _renders(store: Any, run_id: str, item_ids: list[str], segs: _Segments, root: str | None
             ) -> tuple[dict[tuple[int, int], str], dict[tuple[int, int], tuple[str, ...]]]:
    """The store's render index of the run as ``(item row, segment row) -> URI``, and the
    styles of the renders made with a blocked category's fallback blend."""
    rdf = store.renders_for_run(run_id)
    renders: dict[tuple[int, int], str] = {}
    render_styles: dict[tuple[int, int], tuple[str, ...]] = {}
    if len(rdf):
        item_pos = pd.Index(item_ids, dtype=object).get_indexer(rdf["item_id"].astype(str))
        for r, ch, uri in zip(item_pos.tolist(), rdf["condition_hash"].astype(str).tolist(),
                              rdf["uri"].astype(str).tolist(), strict=True):
            if r < 0:
                continue
            full = _concat_root(root, uri)
            for s in segs.hash_segments.get(ch, ()):
                renders[(r, s)] = full
                if ch in segs.variant_styles:
                    render_styles[(r, s)] = segs.variant_styles[ch]
    return renders, render_styles


def _default_segment(bundle: RunBundle, conds: list[dict[str, Any]]) -> str:
    """The segmentation's default segment, else the largest segment (format-1 conditions
    recorded their sizes), else "default"."""
    default = bundle.read_default_segment()
    if default is not None:
        return default
    if conds:
        return str(max(conds, key=lambda c: c.get("n_users") or 0)["segment_id"])
    return "default"
