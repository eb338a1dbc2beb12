"""Stage 1, ingest: read the logs, catalog and style library; quarantine what is bad.

Output: ``events.parquet``, ``items_raw.parquet`` and ``styles_raw.parquet`` in the run
folder (image URIs already checked to stay under the configured image root),
the catalog and style rows upserted into the store, and every quarantined row
in the store's quarantine table with its reason.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from data.loading import load_events, load_items, load_styles
from data.paths import UnsafePathError, resolve_under
from data.validation import DuplicateFilter
from pipelines.context import RunContext
from pipelines.controls import record_library
from recsys.run_bundle import EVENTS, ITEMS_RAW, STYLES_RAW

UNSAFE_PATH = "unsafe_path"


def _check_image_paths(ctx: RunContext, table: pd.DataFrame, source: str) -> pd.DataFrame:
    """Drop (and quarantine) rows whose image URI would escape the image root."""
    root = ctx.config.path(ctx.config.inputs.image_root)
    bad_rows: list[int] = []
    reasons: list[str] = []
    for i, uri in enumerate(table["image_uri"].tolist()):
        if uri is None or pd.isna(uri) or uri == "":
            continue
        try:
            resolve_under(root, str(uri))
        except UnsafePathError as exc:
            bad_rows.append(i)
            reasons.append(str(exc))
    if bad_rows:
        bad = table.iloc[bad_rows].astype(str).assign(reason=UNSAFE_PATH, detail=reasons)
        ctx.store.add_quarantine(ctx.run_id, source, bad)
        table = table.drop(table.index[bad_rows]).reset_index(drop=True)
    return table


def run(ctx: RunContext) -> dict[str, Any]:
    """Load and validate all inputs of the night; return the load reports as metrics."""
    cfg = ctx.config
    inputs = cfg.inputs
    items_res = load_items(cfg.path(inputs.catalog))
    styles_res = load_styles(cfg.path(inputs.styles))
    record_library(ctx)  # the described library, validated (errors name the line), kept with the run
    for res, source in ((items_res, "catalog"), (styles_res, "styles")):
        if len(res.quarantine):
            ctx.store.add_quarantine(ctx.run_id, source, res.quarantine)
    items = _check_image_paths(ctx, items_res.items, "catalog")
    styles = _check_image_paths(ctx, styles_res.styles, "styles")
    if items.empty:
        raise ValueError(f"{inputs.catalog}: no valid items in the catalog")
    if styles.empty:
        raise ValueError(f"{inputs.styles}: no valid styles in the style library")

    now = pd.Timestamp(inputs.now) if inputs.now else None
    frames: list[pd.DataFrame] = []
    reports: list[dict[str, Any]] = []
    sources = list(inputs.events) or [cfg.store_url]
    # One filter for all the night's logs: a row repeated in another file is a duplicate too.
    seen = DuplicateFilter()
    for source in sources:
        if inputs.events_query:
            res = load_events(source, "sql", query=inputs.events_query, catalog=items, now=now,
                              duplicates=seen)
        else:
            res = load_events(cfg.path(source), inputs.events_format, catalog=items, now=now,
                              duplicates=seen)
        if len(res.quarantine):
            ctx.store.add_quarantine(ctx.run_id, f"events:{source}", res.quarantine)
        frames.append(res.events)
        reports.append(res.report.to_dict())
    events = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if events.empty:
        raise ValueError("no valid events in the configured logs")
    n_before_window = len(events)
    if inputs.window_days:
        cutoff = events["timestamp"].max() - pd.Timedelta(days=inputs.window_days)
        events = events[events["timestamp"] >= cutoff].reset_index(drop=True)

    ctx.bundle.write_table(EVENTS, events)
    ctx.bundle.write_table(ITEMS_RAW, items)
    ctx.bundle.write_table(STYLES_RAW, styles)
    ctx.store.upsert_items(items)
    tags = [json.loads(v) if isinstance(v, str) and v else [] for v in styles["tags"]]
    ctx.store.upsert_styles(
        styles.drop(columns=["tags"]).assign(attributes=[{"tags": t} for t in tags])
    )
    by_reason: dict[str, int] = {}
    for r in reports:
        for reason, n in r["by_reason"].items():
            by_reason[reason] = by_reason.get(reason, 0) + n
    return {
        "sources": reports,
        "rows_read": sum(r["rows_read"] for r in reports),
        "rows_valid": sum(r["rows_valid"] for r in reports),
        "rows_quarantined": sum(r["rows_quarantined"] for r in reports),
        "by_reason": by_reason,
        "rows_outside_window": n_before_window - len(events),
        "events": len(events),
        "users": int(events["user_id"].nunique()),
        "items": len(items),
        "styles": len(styles),
        "catalog_quarantined": len(items_res.quarantine) + len(items_res.items) - len(items),
        "styles_quarantined": len(styles_res.quarantine) + len(styles_res.styles) - len(styles),
    }
