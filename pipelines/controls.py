"""Merchandising controls in the nightly: disabled styles, campaign pins, blocked categories.

Why one module: the library says what may be rendered where (``data.styles``);
this module turns that into segment conditions, and the segment, render and
report stages call it with a few lines each.

* **disabled / out-of-date styles** leave every condition: the segmenter never
  sees them (a campaign style outside its ``active_from..active_to`` is
  treated as disabled for the night);
* **pins**: a usable style with ``pin_segments`` enters those segments'
  conditions with ``pin_weight`` of the blend (the segment's own styles share
  the rest in their proportions);
* **blocked / allowed categories**: for each product category a segment's
  condition cannot be used on, the condition *for that category* is the
  segment's next allowed blend -- the ``n_blend`` allowed styles nearest the
  segment's centroid, weighted as the segmenter weighs them (pins applied when
  the pinned style is allowed).  It is stored beside the segment's condition in
  ``conditions.json`` (``category_variants``), rendered for that category's
  items only, and kept from the previous night while its blend has not moved
  (as the segmenter keeps conditions), so a rerun renders nothing new.  A
  category that no usable style allows is not rendered in that segment.

The night's date is ``[inputs] now`` when set, else today (UTC); it is recorded
with the run's library in the store.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from typing import Any

import numpy as np

from data.styles import StyleLibrary, load_style_library

log = logging.getLogger("stylerec.controls")


def control_day(cfg: Any) -> date:
    """The day campaigns are evaluated for: ``[inputs] now`` (its date) or today in UTC."""
    now = getattr(getattr(cfg, "inputs", None), "now", "") if cfg is not None else ""
    if now:
        return datetime.fromisoformat(str(now).replace("Z", "+00:00")).date()
    return datetime.now(UTC).date()


def record_library(ctx: Any) -> StyleLibrary:
    """Load the configured library (strict: errors name the line) and record it with the run.

    Image files are not checked here: the ingest stage loads the same rows with
    quarantine, so a style whose image is missing or outside the image root is
    quarantined with its reason and the night proceeds without it (a library
    problem of any other kind -- unknown columns, duplicate ids, bad dates -- stops
    the night with the lines named).  ``stylerec styles`` checks the images.
    """
    path = ctx.config.path(ctx.config.inputs.styles)
    lib = load_style_library(path, check_images=False)
    ctx.store.save_style_library(ctx.run_id, lib.digest, str(path), lib.to_records(),
                                 control_day(ctx.config).isoformat())
    return lib


def run_library(ctx: Any) -> tuple[StyleLibrary, date]:
    """The library and day recorded for this run (recorded now if an older run lacks them)."""
    rec = ctx.store.style_library_for_run(ctx.run_id)
    if rec is None:
        lib = record_library(ctx)
        return lib, control_day(ctx.config)
    day = date.fromisoformat(rec["day"]) if rec.get("day") else control_day(ctx.config)
    return StyleLibrary.from_records(rec["entries"], rec["source"] or "", rec["digest"]), day


class NightControls:
    """The library's rules for one night, applied to the segmenter's conditions."""

    def __init__(self, library: StyleLibrary, day: date) -> None:
        self.library = library
        self.day = day

    @classmethod
    def for_run(cls, ctx: Any) -> NightControls:
        """Controls from the library recorded with the run."""
        lib, day = run_library(ctx)
        return cls(lib, day)

    # ------------------------------------------------------------- styles
    def usable(self, style_id: str) -> bool:
        """Enabled and in its date range (a style the library does not list is usable)."""
        e = self.library.get(style_id)
        return e is None or e.usable_on(self.day)

    def allowed(self, style_id: str, category: str | None) -> bool:
        """Usable and allowed on ``category``."""
        e = self.library.get(style_id)
        return e is None or (e.usable_on(self.day) and e.allows(category))

    def excluded(self, style_ids: Iterable[str]) -> list[str]:
        """The styles the segmenter must not see tonight (disabled or out of their dates)."""
        return [s for s in style_ids if not self.usable(s)]

    def pins(self, segment_ids: Iterable[str]) -> dict[str, tuple[str, float]]:
        """segment id -> (pinned style, weight); the first usable pin in library order wins."""
        segs = set(segment_ids)
        out: dict[str, tuple[str, float]] = {}
        for e in self.library.entries:
            if e.pin_segments and e.usable_on(self.day):
                for sid in e.pin_segments:
                    if sid in segs and sid not in out:
                        out[sid] = (e.style_id, e.pin_weight)
        return out

    # --------------------------------------------------------- conditions
    def apply(self, conditions: list[dict[str, Any]], *, segmenter: Any,
              centroids: dict[str, np.ndarray], style_emb: np.ndarray, style_ids: list[str],
              raw_codes: dict[str, np.ndarray], categories: Sequence[str | None],
              previous: list[dict[str, Any]] | None, blend: Any, hasher: Any
              ) -> dict[str, Any]:
        """Pin, then add ``category_variants``; returns what acted (for the report).

        ``conditions`` are changed in place.  ``blend(codes, weights)`` and
        ``hasher(code)`` are the segment stage's (``StyleSpace.blend``,
        ``condition_hash``); ``previous`` is last night's ``conditions.json``.
        """
        pins = self.pins(c["segment_id"] for c in conditions)
        prev = {c["segment_id"]: c for c in previous or []}
        tol = float(getattr(segmenter, "condition_tol", 0.0))
        n_variants = 0
        for cond in conditions:
            pin = pins.get(cond["segment_id"])
            if pin is not None and pin[0] not in raw_codes:
                log.warning("pinned style %s has no style code tonight; not pinned", pin[0])
                pin = None
            if pin is not None:
                self._pin(cond, pin, raw_codes, blend, hasher)
            variants: dict[str, Any] = {}
            for cat in sorted({c for c in categories if c is not None}) + (
                    [None] if None in categories else []):
                if all(self.allowed(s, cat) for s in cond["style_ids"]):
                    continue
                key = "" if cat is None else cat
                old = (prev.get(cond["segment_id"]) or {}).get("category_variants", {}).get(key)
                variants[key] = self._variant(cond, cat, pin, segmenter, centroids, style_emb,
                                              style_ids, raw_codes, blend, hasher, old, tol)
                n_variants += 1
            if variants:
                cond["category_variants"] = variants
        blocked = {e.style_id: sorted(e.blocked_categories) for e in self.library.entries
                   if e.blocked_categories}
        allowed = {e.style_id: sorted(e.allowed_categories) for e in self.library.entries
                   if e.allowed_categories is not None}
        return {"day": self.day.isoformat(), "library_digest": self.library.digest,
                "pinned": {sid: s for sid, (s, _) in pins.items()},
                "blocked": blocked, "allowed_only": allowed, "category_variants": n_variants}

    @staticmethod
    def _set_blend(cond: dict[str, Any], ids: list[str], weights: list[float],
                   raw_codes: dict[str, np.ndarray], blend: Any, hasher: Any) -> None:
        code = blend(np.stack([raw_codes[s] for s in ids]), weights)
        cond.update(style_ids=ids, weights=[round(float(w), 6) for w in weights],
                    code=[float(x) for x in code], condition_hash=hasher(code))

    def _pin(self, cond: dict[str, Any], pin: tuple[str, float],
             raw_codes: dict[str, np.ndarray], blend: Any, hasher: Any) -> None:
        style, w = pin
        rest = [(s, float(x)) for s, x in zip(cond["style_ids"], cond["weights"], strict=True)
                if s != style]
        total = sum(x for _, x in rest)
        if not rest or total <= 0 or w >= 1.0:
            ids, weights = [style], [1.0]
        else:
            ids = [style] + [s for s, _ in rest]
            weights = [w] + [(1.0 - w) * x / total for _, x in rest]
        # The segment's own blend stays on record: the segmentation (and tomorrow's
        # matching) is about taste, the pin only about what is rendered.
        cond.setdefault("base", {"style_ids": list(cond["style_ids"]),
                                 "weights": [float(w) for w in cond["weights"]]})
        self._set_blend(cond, ids, weights, raw_codes, blend, hasher)
        cond["pinned"] = style

    def _variant(self, cond: dict[str, Any], cat: str | None, pin: tuple[str, float] | None,
                 segmenter: Any, centroids: dict[str, np.ndarray], style_emb: np.ndarray,
                 style_ids: list[str], raw_codes: dict[str, np.ndarray], blend: Any,
                 hasher: Any, old: dict[str, Any] | None, tol: float) -> dict[str, Any]:
        """The segment's next allowed blend for ``cat`` (empty style list: nothing allowed)."""
        replaced = [s for s in cond["style_ids"] if not self.allowed(s, cat)]
        ok = [n for n, s in enumerate(style_ids) if self.allowed(s, cat)]
        out: dict[str, Any] = {"replaces": replaced, "style_ids": [], "weights": []}
        if not ok:
            return out
        allowed_ids = [style_ids[n] for n in ok]
        centroid = centroids[cond["segment_id"]][None, :].astype(np.float32)
        nb = segmenter._conditions(centroid, style_emb[ok], allowed_ids)[0]
        ids, weights = list(nb.style_ids), list(nb.weights)
        pinned = pin[0] if pin is not None and self.allowed(pin[0], cat) else None
        base = (old or {}).get("base") or {}
        if (base.get("style_ids") == ids and len(base.get("weights", [])) == len(weights)
                and max(abs(a - b) for a, b in zip(base["weights"], weights, strict=True)) <= tol
                and (old or {}).get("pinned") == pinned and (old or {}).get("replaces") == replaced):
            return dict(old or {})  # blend has not moved: keep last night's (and its renders)
        self._set_blend(out, ids, weights, raw_codes, blend, hasher)
        out["base"] = {"style_ids": ids, "weights": [float(w) for w in weights]}
        if pin is not None and pinned is not None:
            self._pin(out, pin, raw_codes, blend, hasher)
        out["replaces"] = replaced
        return out

    def displaced(self, conditions: list[dict[str, Any]], segmenter: Any,
                  centroids: dict[str, np.ndarray], style_emb: np.ndarray,
                  style_ids: list[str]) -> int:
        """Mark (``displaced``) conditions whose blend would have used an excluded style."""
        gone = set(self.excluded(style_ids))
        if not gone:
            return 0
        n = 0
        for cond in conditions:
            centroid = centroids[cond["segment_id"]][None, :].astype(np.float32)
            unfiltered = segmenter._conditions(centroid, style_emb, style_ids)[0]
            hit = sorted(gone & set(unfiltered.style_ids))
            if hit:
                cond["displaced"] = hit
                n += 1
        return n


def conditions_for(conditions: Sequence[dict[str, Any]], category: str | None
                   ) -> list[dict[str, Any] | None]:
    """Per segment, the condition to render an item of ``category`` with (None: not rendered)."""
    key = "" if category is None else str(category)
    out: list[dict[str, Any] | None] = []
    for cond in conditions:
        var = (cond.get("category_variants") or {}).get(key)
        if var is None:
            out.append(cond)
        elif var.get("style_ids"):
            own = {k: v for k, v in cond.items() if k not in ("pinned", "displaced")}
            out.append({**own, **var, "variant_of": cond["condition_hash"], "category": key})
        else:
            out.append(None)
    return out


def item_category(item: Any) -> str | None:
    """An item row's category (None when missing)."""
    cat = getattr(item, "category", None)
    return None if cat is None or cat != cat or cat == "" else str(cat)


def item_categories(items: Any) -> list[str | None]:
    """The distinct product categories of the run's catalogue table (None: items without one)."""
    import pandas as pd

    if "category" not in items.columns:
        return [None]
    return list(dict.fromkeys(None if pd.isna(c) or c == "" else str(c)
                              for c in items["category"]))


def render_counts(rows: Iterable[tuple[dict[str, Any] | None, str | None]]) -> dict[str, int]:
    """How many (item, segment) renders each control changed, from ``(condition, category)``."""
    n: Counter[str] = Counter()
    for cond, _ in rows:
        if cond is None:
            n["not_rendered_nothing_allowed"] += 1
            continue
        if cond.get("variant_of"):
            n["blocked_fallback"] += 1
        if cond.get("pinned"):
            n["pinned"] += 1
        if cond.get("displaced"):
            n["disabled_displaced"] += 1
    return dict(n)


def previous_conditions(prev_bundle: Any) -> list[dict[str, Any]] | None:
    """Last night's conditions (None when there are none or they are unreadable)."""
    from recsys.run_bundle import CONDITIONS, BundleError

    if prev_bundle is None or not prev_bundle.has(CONDITIONS):
        return None
    try:
        return prev_bundle.read_conditions()
    except (OSError, ValueError, BundleError):
        log.warning("%s: unreadable; category variants start afresh", prev_bundle.path(CONDITIONS))
        return None
