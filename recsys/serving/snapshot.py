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

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from itertools import repeat
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from recsys.index import ItemIndex
from recsys.serving import bundle as B

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
        render_styles: Mapping[tuple[int, int], tuple[str, ...]] | None = None,
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
        # (row, segment) renders made with a category's fallback blend (pipelines.controls):
        # their own styles, not the segment's (a blocked style is never named as shown).
        self.render_styles = dict(render_styles or {})
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
    variant_styles: dict[str, tuple[str, ...]] = {}  # fallback blends of blocked categories
    for c in conds:
        if c.get("condition_hash"):
            hash_seg.setdefault(str(c["condition_hash"]), []).append(seg_pos[str(c["segment_id"])])
        for v in (c.get("category_variants") or {}).values():
            if v.get("condition_hash"):
                hash_seg.setdefault(str(v["condition_hash"]), []).append(
                    seg_pos[str(c["segment_id"])])
                variant_styles[str(v["condition_hash"])] = tuple(str(s) for s in v["style_ids"])
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
            for s in hash_seg.get(ch, ()):
                renders[(r, s)] = full
                if ch in variant_styles:
                    render_styles[(r, s)] = variant_styles[ch]
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
        render_styles=render_styles,
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
    meta = run_dir / B.SEGMENTATION / "segments.json"
    if meta.is_file():
        return str(json.loads(meta.read_text(encoding="utf-8"))["default_segment"])
    if conds:
        return str(max(conds, key=lambda c: c.get("n_users") or 0)["segment_id"])
    return "default"
