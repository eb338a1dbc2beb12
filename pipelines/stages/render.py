"""Stage 6, render: every chosen product once per segment condition, only what is missing.

Each (item, condition) pair has a content-addressed key (image bytes, condition
code, model version -- with a student generator's weight hash when
``[render] generator`` names one -- render parameters).  Pairs whose file already exists are
reused; the rest are rendered, written atomically and indexed in the store as
they finish, so a crash loses at most the item in flight and a rerun renders
nothing twice.  Every key the run needs is linked to the run for serving and gc.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pandas as pd

from pipelines.cache import RenderCache, render_key
from pipelines.context import RunContext
from pipelines.controls import conditions_for, item_category, render_counts
from pipelines.executors import RenderJob, make_executor
from pipelines.stages.common import chosen_items, condition_params
from recsys.run_bundle import ITEMS
from stylizer.student import render_model_version

RENDER_FAILED = "render_failed"


def index_key(content_key: str, item_id: str) -> str:
    """The index row's key of one item's render: the content key qualified by the item.

    Two items with the same image have one file (the content key) but two rows,
    so that each is served its render and gc deletes a file only when no row of a
    kept run points at it.
    """
    return hashlib.sha256(f"{content_key}:{item_id}".encode()).hexdigest()


def run(ctx: RunContext) -> dict[str, Any]:
    """Render the missing (item, condition) pairs and link all pairs to the run."""
    cfg = ctx.config
    cache = RenderCache(cfg.path(cfg.outputs.render_dir), cfg.render.format, cfg.render.quality)
    swept = cache.sweep_partials()
    items = chosen_items(ctx, ctx.bundle.read_table(ITEMS))
    conditions = ctx.bundle.read_conditions()
    generator = cfg.path(cfg.render.generator) if cfg.render.generator else None
    version, generator_sha = render_model_version(generator)
    # Controls (pipelines.controls): per product category, the segment conditions it may take.
    per_category: dict[str | None, tuple[Any, ...]] = {}
    control_rows: list[tuple[dict[str, Any] | None, str | None]] = []

    # A render's file is keyed by its content (image bytes, condition, model, params):
    # items that share one image file share the file, rendered once.  Each item still
    # gets its own index row (its own key, the shared URI), which is what serving reads.
    jobs: list[RenderJob] = []
    index_rows: list[dict[str, Any]] = []
    rows_by_content: dict[str, list[dict[str, Any]]] = {}
    sharers: dict[str, list[str]] = {}  # a job's item -> every item whose image it renders
    scheduled: dict[str, str] = {}  # content key -> the item whose job renders it
    for item in items.itertuples(index=False):
        cat = item_category(item)
        if cat not in per_category:
            per_category[cat] = _category_conditions(ctx, conditions, cat)
        conds, codes, strengths, cond_params, all_conds = per_category[cat]
        control_rows.extend((c, cat) for c in all_conds)
        contents = [render_key(item.image_hash, code, version, cp)
                    for code, cp in zip(codes, cond_params, strict=True)]
        for content, cond, cp in zip(contents, conds, cond_params, strict=True):
            row = {
                "key": index_key(content, str(item.item_id)), "item_id": item.item_id,
                "condition_hash": cond["condition_hash"], "uri": cache.relpath(content),
                "params": cp,
            }
            index_rows.append(row)
            rows_by_content.setdefault(content, []).append(row)
        if contents and contents[0] in scheduled:
            sharers[scheduled[contents[0]]].append(str(item.item_id))
            continue
        missing = set(cache.missing(contents))
        if missing:
            # First occurrence only: two segments with one condition need one file.
            pick = [i for i, k in enumerate(contents) if k in missing and contents.index(k) == i]
            jobs.append(RenderJob(
                item_id=item.item_id, image_path=item.image_path,
                keys=[contents[i] for i in pick], codes=codes[pick],
                condition_hashes=[conds[i]["condition_hash"] for i in pick],
                scene_strengths=[strengths[i] for i in pick],
            ))
            for k in contents:
                scheduled[k] = str(item.item_id)
            sharers[str(item.item_id)] = [str(item.item_id)]

    rendered = 0
    fidelity: list[float] = []
    rims: list[float] = []
    failed: list[dict[str, str]] = []
    for outcome in make_executor(cfg).render(jobs, cache):
        if outcome.error is not None:
            failed += [{"item_id": i, "reason": RENDER_FAILED, "detail": outcome.error}
                       for i in sharers.get(str(outcome.item_id), [str(outcome.item_id)])]
            continue
        # Index each item's renders as soon as its files exist (a crash keeps them),
        # with the product's measured colour fidelity beside the render parameters.
        for key, de in outcome.delta_e.items():
            for row in rows_by_content[key]:
                row["params"] = {**row["params"], "product_delta_e": round(de, 3)}
            fidelity.append(de)
        for key, rim in outcome.rim.items():
            for row in rows_by_content[key]:
                row["params"] = {**row["params"], "rim": round(rim, 4)}
            rims.append(rim)
        ctx.store.add_renders(ctx.run_id, [r for k in outcome.written for r in rows_by_content[k]])
        rendered += len(outcome.written)
    if failed:
        ctx.store.add_quarantine(ctx.run_id, "render", pd.DataFrame(failed))
    failed_items = {f["item_id"] for f in failed}
    done_rows = [r for r in index_rows if str(r["item_id"]) not in failed_items]
    ctx.store.add_renders(ctx.run_id, done_rows)
    done_files = {r["uri"] for r in done_rows}
    return {
        "items": len(items),
        "conditions": len(conditions),
        "needed": len(rows_by_content),
        "rendered": rendered,
        # Files this run uses that an earlier run (or night) had already made: >= 0 always,
        # since every file rendered here is one of the files the run uses.
        "reused": len(done_files) - rendered,
        "index_rows": len(done_rows),
        "failed_items": len(failed_items),
        "partials_swept": swept,
        "model_version": version,
        "generator": str(generator) if generator is not None else "imported",
        "generator_sha256": generator_sha,
        "product_delta_e_mean": round(float(np.mean(fidelity)), 3) if fidelity else None,
        "product_delta_e_max": round(float(np.max(fidelity)), 3) if fidelity else None,
        "product_delta_e_over_2_3": int(np.sum(np.asarray(fidelity) > 2.3)),
        "product_delta_e_median": round(float(np.median(fidelity)), 3) if fidelity else None,
        "rim_median": round(float(np.median(rims)), 4) if rims else None,
        "rim_max": round(float(np.max(rims)), 4) if rims else None,
        "scene_strengths": sorted({s for v in per_category.values() for s in v[2]}),
        "controls": render_counts(control_rows),
    }


def _category_conditions(ctx: RunContext, conditions: list[dict[str, Any]],
                         category: str | None) -> tuple[Any, ...]:
    """(conditions, codes, strengths, key params, per-segment list) for one product category."""
    every = conditions_for(conditions, category)
    live = [c for c in every if c is not None]
    strengths, params = condition_params(ctx, live) if live else ([], [])
    codes = (np.asarray([c["code"] for c in live], dtype=np.float32) if live
             else np.zeros((0, 1), np.float32))
    return live, codes, strengths, params, every
