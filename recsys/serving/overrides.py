"""Shopper style overrides: show the style a shopper picked, from the renders the run has.

Why a separate module: the nightly renders each product once per *segment
condition* (a blend of library styles), never per shopper.  A shopper who picks
a look ("show me everything in kraft paper") is answered from those cached
renders, never by rendering on the request path:

* **exact** -- the item has a render whose condition is the chosen style alone;
* **closest** -- otherwise the item's cached condition nearest the chosen style
  (cosine between the condition's blended style embedding and the style's, in
  the preference model's style space: the styles the model finds alike), with
  the condition's styles named in the answer so that a front end can say
  "closest available look";
* **refused** -- the library blocks the style for the item's category (or
  allows it elsewhere only), or the style is disabled / out of its campaign
  dates: the shopper's usual image is shown and the reason given;
* **unavailable** -- no render of the item at all: the original image.

Scores follow the image shown, as in :mod:`recsys.serving.service`: the
style term is ``p_u . e_cond`` of the condition actually shown.  Per chosen
style, the condition of every item is computed once (one pass over a boolean
``items x conditions`` table) and cached, so an override costs a fancy-index
lookup per request.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import date
from itertools import repeat
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from recsys.factors import blend
from recsys.run_bundle import ITEMS, RunBundle
from recsys.serving.snapshot import RankedItem, RunSnapshot, _concat_root

EXACT, CLOSEST, REFUSED, UNAVAILABLE = "exact", "closest", "refused", "unavailable"
_STATUS = (UNAVAILABLE, EXACT, CLOSEST, REFUSED)  # int8 codes of the per-style tables


class StyledImage(NamedTuple):
    """The image for a shopper's chosen style, and how it was chosen (``status``, ``reason``)."""

    item_id: str
    image_uri: str | None
    requested_style: str
    status: str
    style_ids: tuple[str, ...]
    reason: str


class StyleNote(NamedTuple):
    """What a ranked item's override did (``StyledRanking.style_notes``)."""

    status: str
    reason: str


class UnknownStyleError(ValueError):
    """The chosen style is not in the run's library."""


class StyleOverrides:
    """The cached conditions of one run and the per-style lookup tables built from them."""

    def __init__(self, snap: RunSnapshot, cond_styles: list[tuple[str, ...]],
                 cond_weights: list[np.ndarray], render_uri: dict[tuple[int, int], str],
                 categories: list[str | None], library: Any | None, day: date | None) -> None:
        n_items, n_cond = len(snap.item_ids), len(cond_styles)
        self.snap = snap
        self.cond_styles = cond_styles
        self.style_pos = {s: n for n, s in enumerate(snap.style_ids)}
        f = snap.style_embeddings.shape[1] if snap.style_ids else 0
        emb = np.zeros((n_cond, f), np.float32)
        for c, (ids, w) in enumerate(zip(cond_styles, cond_weights, strict=True)):
            # Styles missing from the table contribute nothing, as in the snapshot's blends.
            rows = np.zeros((len(ids), f), np.float32)
            for j, s in enumerate(ids):
                if s in self.style_pos:
                    rows[j] = snap.style_embeddings[self.style_pos[s]]
            emb[c] = blend(rows, w)
        self.cond_emb = emb
        has = np.zeros((n_items + 1, n_cond), dtype=bool)
        uri = np.empty((n_items + 1, n_cond + 1), dtype=object)  # last column: the original
        uri[:, -1] = snap.original
        for (row, c), u in render_uri.items():
            has[row, c] = True
            uri[row, c] = u
        self.has = has
        self.uri = uri
        self.cond_styles_ext = [*cond_styles, ()]  # index -1: no render
        self.categories = list(categories) + [None]  # row -1 (unknown item)
        self.library = library
        self.day = day
        self._tables: dict[str, tuple[np.ndarray, np.ndarray, dict[str | None, str]]] = {}
        self._lock = threading.Lock()

    # ----------------------------------------------------------------- load
    @classmethod
    def load(cls, store: Any, snap: RunSnapshot, render_root: Any = None) -> StyleOverrides:
        """Read the run's conditions (with category variants), renders, categories, library."""
        from data.styles import StyleLibrary

        run = store.get_run(snap.run_id) or {}
        bundle = RunBundle.open((run.get("params") or {})["run_dir"]).check_servable()
        conds = bundle.read_conditions()
        by_hash: dict[str, int] = {}
        styles: list[tuple[str, ...]] = []
        weights: list[np.ndarray] = []
        for c in conds:
            for v in [c, *(c.get("category_variants") or {}).values()]:
                h = v.get("condition_hash")
                if h and h not in by_hash and v.get("style_ids"):
                    by_hash[h] = len(styles)
                    styles.append(tuple(str(s) for s in v["style_ids"]))
                    w = np.asarray(v["weights"], np.float64)
                    weights.append(w / w.sum() if w.sum() > 0 else w)
        renders: dict[tuple[int, int], str] = {}
        rdf = store.renders_for_run(snap.run_id)
        root = None if render_root is None else str(render_root)
        for iid, ch, u in zip(rdf.get("item_id", []), rdf.get("condition_hash", []),
                              rdf.get("uri", []), strict=True):
            row, c = snap.item_row.get(str(iid), -1), by_hash.get(str(ch), -1)
            if row >= 0 and c >= 0:
                renders[(row, c)] = _concat_root(root, str(u))
        items = bundle.read_table(ITEMS)
        cat_of: dict[str, str | None] = {}
        if "category" in items.columns:
            cat_of = {i: (None if pd.isna(c) or c == "" else str(c))
                      for i, c in zip(items["item_id"], items["category"], strict=True)}
        categories = [cat_of.get(i) for i in snap.item_ids]
        rec = store.style_library_for_run(snap.run_id) if hasattr(
            store, "style_library_for_run") else None
        library = day = None
        if rec is not None:
            library = StyleLibrary.from_records(rec["entries"], rec["source"] or "", rec["digest"])
            day = date.fromisoformat(rec["day"]) if rec.get("day") else None
        return cls(snap, styles, weights, renders, categories, library, day)

    # ---------------------------------------------------------------- rules
    def check_style(self, style: str) -> None:
        """Raise :class:`UnknownStyleError` for a style neither the library nor the run knows."""
        known = style in self.style_pos or (self.library is not None and style in self.library)
        if not known:
            raise UnknownStyleError(f"unknown style {style!r}: not in this run's style library")

    def _refusals(self, style: str) -> dict[str | None, str]:
        """category -> reason, for every category of the run the style may not be shown on."""
        entry = None if self.library is None else self.library.get(style)
        if entry is None:
            return {}
        cats = set(self.categories)
        if not entry.enabled:
            return dict.fromkeys(cats, f"style {style!r} is disabled in the style library")
        if self.day is not None and not entry.active_on(self.day):
            return dict.fromkeys(cats, f"style {style!r} is outside its campaign dates "
                                       f"({entry.active_from} to {entry.active_to})")
        return {c: r for c in cats if (r := entry.refusal(c)) is not None}

    def table(self, style: str) -> tuple[np.ndarray, np.ndarray, dict[str | None, str]]:
        """Per item row (and -1): condition shown (-1: none), status code, refusal reasons."""
        got = self._tables.get(style)
        if got is not None:
            return got
        with self._lock:
            if style in self._tables:
                return self._tables[style]
            self.check_style(style)
            n_rows, n_cond = self.has.shape
            cond = np.full(n_rows, -1, np.int32)
            status = np.zeros(n_rows, np.int8)
            if n_cond:
                exact = np.array([s == (style,) for s in self.cond_styles])
                pos = self.style_pos.get(style)
                if pos is not None and self.cond_emb.shape[1]:
                    e = self.snap.style_embeddings[pos]
                    norms = np.linalg.norm(self.cond_emb, axis=1) * max(np.linalg.norm(e), 1e-12)
                    sim = (self.cond_emb @ e) / np.where(norms > 0, norms, 1.0)
                else:  # no embedding: closest = the condition giving the style the most weight
                    sim = np.array([0.0] * n_cond)
                sim = np.where(exact, np.inf, sim)
                order = np.argsort(-sim, kind="stable")
                ranked = self.has[:, order]
                any_render = ranked.any(axis=1)
                first = order[np.argmax(ranked, axis=1)]
                cond[any_render] = first[any_render]
                status[any_render] = np.where(exact[first[any_render]], 1, 2)
            refusals = self._refusals(style)
            if refusals:
                refused = np.array([c in refusals for c in self.categories])
                status[refused] = 3
                cond[refused] = -1
            self._tables[style] = (cond, status, refusals)
            return self._tables[style]

    # --------------------------------------------------------------- answers
    def image(self, row: int, seg: int, style: str, item_id: str, treated: bool) -> StyledImage:
        """The image of one item for the chosen style (see the module docstring)."""
        cond, status, refusals = self.table(style)
        snap = self.snap
        code = int(status[row])
        if code == 3 or not treated:
            uri = snap.shown_uri[row, seg] if treated else snap.original[row]
            styles = snap.segment_styles[seg] if treated and snap.has_render[row, seg] else ()
            why = refusals.get(self.categories[row], "") if code == 3 else \
                "the shopper's experiment arm shows original images"
            return StyledImage(item_id, uri, style, REFUSED if code == 3 else UNAVAILABLE,
                               styles, why)
        c = int(cond[row])
        if c < 0:
            return StyledImage(item_id, snap.original[row], style, UNAVAILABLE, (),
                               "no render of this item exists; original image")
        styles = self.cond_styles[c]
        why = "" if code == 1 else (f"no render in {style!r} alone; closest cached look: "
                                    f"{' + '.join(styles)}")
        return StyledImage(item_id, self.uri[row, c], style, _STATUS[code], styles, why)

    def scores(self, rows: np.ndarray, urow: int, style: str, seg: int) -> np.ndarray:
        """Scores with the style term of the condition each item is shown in.

        Refused items keep the shopper's usual image, so their usual style term.
        The arithmetic is the factors core's (``score_user_conditions``).
        """
        cond, status, refusals = self.table(style)
        snap = self.snap
        shown = cond[rows].astype(np.int64)  # -1 (no render, refused): no style term
        vectors = self.cond_emb
        if refusals and snap.segment_ids:
            refused = (status[rows] == 3) & snap.has_render[rows, seg]
            if refused.any():
                vectors = np.vstack([vectors, snap.segment_embeddings[seg][None, :]])
                shown[refused] = len(self.cond_emb)
        return snap.factors.score_user_conditions(urow, rows, vectors, shown)

    def ranked(self, ids: Sequence[str], rows: np.ndarray, scores: np.ndarray,
               order: np.ndarray, seg: int, style: str) -> tuple[list[RankedItem], np.ndarray]:
        """RankedItems for ``order`` with the override's images, and their status codes."""
        cond, status, _ = self.table(style)
        snap = self.snap
        sel = rows[order]
        c = cond[sel]
        st = status[sel]
        n = len(sel)
        uris = self.uri[sel, c].tolist()  # column -1 holds the original image
        styles = [self.cond_styles_ext[x] for x in c.tolist()]
        if (st == 3).any():  # refused: the shopper's usual image and its styles
            for j in np.flatnonzero(st == 3).tolist():
                r = int(sel[j])
                uris[j] = snap.shown_uri[r, seg]
                styles[j] = snap.segment_styles[seg] if snap.has_render[r, seg] else ()
        items = list(map(RankedItem, [ids[j] for j in order.tolist()], scores[order].tolist(),
                         uris, repeat(snap.segment_ids[seg], n), styles, repeat(snap.run_id, n)))
        return items, st

    def notes(self, items: Sequence[RankedItem], codes: np.ndarray, style: str
              ) -> dict[str, StyleNote]:
        """Per item, what the override did (``StyledRanking.style_notes``)."""
        _, _, refusals = self.table(style)
        out: dict[str, StyleNote] = {}
        for it, code in zip(items, codes.tolist(), strict=True):
            if code == 3:
                row = self.snap.item_row.get(it.item_id, -1)
                out[it.item_id] = StyleNote(REFUSED, refusals.get(self.categories[row], ""))
            elif code == 0:
                out[it.item_id] = StyleNote(UNAVAILABLE, "no render of this item exists")
            else:
                out[it.item_id] = StyleNote(_STATUS[code], "" if code == 1 else
                                            "closest cached look: " + " + ".join(it.style_ids))
        return out

