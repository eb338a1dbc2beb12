"""The report's "Merchandising controls" section: which controls acted, on how many renders.

A merchandiser who pinned a campaign or blocked a style checks the result here:
a table of what acted tonight (from the segment and render stages' metrics), and
contact sheets of the renders the controls produced -- each pinned segment's
renders, and the renders of a blocked category's products with the blend that
replaced the blocked style.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipelines.cache import RenderCache, render_key
from pipelines.controls import conditions_for, item_category
from pipelines.report import Section, Table
from pipelines.stages.common import chosen_items, condition_params
from recsys.run_bundle import EVENTS, ITEMS
from stylizer.image_io import load_image
from stylizer.sheet import contact_sheet
from stylizer.weights import model_version

SHEET_ITEMS = 6
THUMB = 160


def render_path(ctx: Any, cache: RenderCache, version: str, item: Any,
                cond: dict[str, Any]) -> Path | None:
    """The file of ``item``'s render in a segment (its category's condition), None when absent."""
    c = conditions_for([cond], item_category(item))[0]
    if c is None:
        return None
    _, (params,) = condition_params(ctx, [c])
    path = cache.path(render_key(item.image_hash, np.asarray(c["code"], np.float32), version,
                                 params))
    return path if path.is_file() else None


def _sheet(ctx: Any, out: Path, name: str, sample: pd.DataFrame,
           conds: list[dict[str, Any]], labels: list[str]) -> bool:
    """Originals and each condition's renders of ``sample``; False when nothing was rendered."""
    cfg = ctx.config
    cache = RenderCache(cfg.path(cfg.outputs.render_dir), cfg.render.format, cfg.render.quality)
    version = model_version()
    rows: list[list[np.ndarray | None]] = [
        [load_image(p, max_side=THUMB).rgb for p in sample["image_path"]]]
    found = False
    for cond in conds:
        row: list[np.ndarray | None] = []
        for item in sample.itertuples(index=False):
            path = render_path(ctx, cache, version, item, cond)
            row.append(load_image(path, max_side=THUMB).rgb if path is not None else None)
            found |= path is not None
        rows.append(row)
    if found:
        contact_sheet(rows, out / name, row_labels=["original", *labels], thumb=THUMB)
    return found


def controls_section(ctx: Any, out: Path, conditions: list[dict[str, Any]]) -> Section:
    """The section: what acted, how many renders, and sheets of the pinned and blocked renders."""
    sec = Section("controls", "Merchandising controls")
    seg = ctx.metrics.get("segment", {}).get("controls") or {}
    counts = ctx.metrics.get("render", {}).get("controls") or {}
    if not seg:
        sec.paragraphs.append("No controls were evaluated for this run.")
        return sec
    sec.paragraphs.append(
        f"Style library {str(seg.get('library_digest', ''))[:12]}, evaluated for "
        f"{seg.get('day', '?')}.")
    pinned = seg.get("pinned") or {}
    blocked = seg.get("blocked") or {}
    excluded = seg.get("excluded_styles") or []
    rows: list[list[Any]] = [
        ["pinned campaign styles", ", ".join(f"{s} -> {g}" for g, s in pinned.items()) or "none",
         counts.get("pinned", 0)],
        ["blocked categories (fallback blend)",
         "; ".join(f"{s}: {', '.join(c)}" for s, c in blocked.items()) or "none",
         counts.get("blocked_fallback", 0)],
        ["allowed-only styles",
         "; ".join(f"{s}: {', '.join(c)}" for s, c in (seg.get("allowed_only") or {}).items())
         or "none", "(in the fallback count)"],
        ["disabled or out-of-date styles (left every condition)",
         ", ".join(excluded) or "none",
         f"{counts.get('disabled_displaced', 0)} renders in "
         f"{seg.get('conditions_displaced', 0)} conditions"],
        ["products left unrendered (no allowed style)", "",
         counts.get("not_rendered_nothing_allowed", 0)],
    ]
    sec.tables.append(Table(["control", "what", "renders it acted on"], rows))
    items = chosen_items(ctx, ctx.bundle.read_table(ITEMS))
    pop = ctx.bundle.read_table(EVENTS, columns=["item_id"])["item_id"].astype(str)
    items = items.assign(pop=items["item_id"].astype(str).map(pop.value_counts()).fillna(0))
    items = items.sort_values("pop", ascending=False, kind="stable")
    by_id = {c["segment_id"]: c for c in conditions}
    for sid, style in pinned.items():
        cond = by_id.get(sid)
        if cond is None:
            continue
        name = f"controls_pin_{sid}.png"
        blend = ", ".join(f"{s} {w:.0%}" for s, w in zip(cond["style_ids"], cond["weights"],
                                                         strict=True))
        if _sheet(ctx, out, name, items.head(SHEET_ITEMS), [cond], [f"{sid} (pinned {style})"]):
            sec.figures.append((name, f"segment {sid} with campaign style {style} pinned: "
                                      f"originals (top), its renders ({blend})"))
    cats = sorted({c for cs in blocked.values() for c in cs})
    if "category" in items.columns and cats:
        sample = items[items["category"].astype(str).isin(cats)].head(SHEET_ITEMS)
        touched = [c for c in conditions if set(c.get("category_variants") or {}) & set(cats)]
        if len(sample) and touched:
            name = "controls_blocked.png"
            labels = [f"{c['segment_id']} (fallback)" for c in touched]
            if _sheet(ctx, out, name, sample, touched, labels):
                sec.figures.append((name, f"products of the blocked categories ({', '.join(cats)}):"
                                          " originals (top), each affected segment's fallback "
                                          "blend (rows below)"))
    return sec
