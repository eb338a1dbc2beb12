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
import json
from typing import Any

import numpy as np
import pandas as pd

from pipelines.cache import RenderCache, render_key
from pipelines.controls import conditions_for, item_category, render_counts
from pipelines.executors import RenderJob, make_executor
from pipelines.runner import RunContext
from pipelines.stages.artifacts import CONDITIONS, EVENTS, ITEMS
from stylizer.student import render_model_version

RENDER_FAILED = "render_failed"


def render_params(ctx: RunContext) -> dict[str, Any]:
    """The render parameters that change a render's pixels (and so its key).

    The scene strength is per condition (see :func:`condition_strengths`) and is
    added to each key's parameters by :func:`run`.
    """
    from stylizer.mask_fusion import MASK_VERSION

    r = ctx.config.render
    return {"mode": r.mode, "max_side": r.max_side, "format": r.format, "quality": r.quality,
            "strength": r.strength, "shadow_strength": r.shadow_strength, "tone": r.tone,
            "mask": MASK_VERSION}


def style_strengths(ctx: RunContext) -> dict[str, float]:
    """Per-style scene strength from the style library's optional ``strength`` column.

    A library without the column is valid (every style gets ``render.scene_strength``);
    an empty cell means the default too; a value outside [0, 1] or not a number is
    ignored with a warning naming the style, and the default is used.
    """
    import logging

    path = ctx.config.path(ctx.config.inputs.styles)
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            table = pd.read_parquet(path)
        elif suffix in (".csv", ".txt"):
            table = pd.read_csv(path, dtype=str, keep_default_na=False)
        else:
            return {}
    except (OSError, ValueError):
        return {}
    if "strength" not in table.columns or "style_id" not in table.columns:
        return {}
    out: dict[str, float] = {}
    for sid, raw in zip(table["style_id"].astype(str), table["strength"], strict=True):
        text = str(raw).strip()
        if text in ("", "nan", "None"):
            continue
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not 0.0 <= value <= 1.0:
            logging.getLogger("stylerec.render").warning(
                "style %s: strength %r is not in [0, 1]; using render.scene_strength", sid, text
            )
            continue
        out[sid] = value
    return out


def condition_strengths(
    conditions: list[dict[str, Any]], per_style: dict[str, float], default: float
) -> list[float]:
    """Scene strength per condition: its styles' strengths, weighted as the styles are blended."""
    out = []
    for cond in conditions:
        styles = cond.get("style_ids") or []
        weights = np.asarray(cond.get("weights") or [1.0] * len(styles), dtype=np.float64)
        if not styles or weights.sum() <= 0:
            out.append(default)
            continue
        values = np.asarray([per_style.get(str(s), default) for s in styles], dtype=np.float64)
        out.append(round(float(values @ weights / weights.sum()), 4))
    return out


def condition_params(
    ctx: RunContext, conditions: list[dict[str, Any]]
) -> tuple[list[float], list[dict[str, Any]]]:
    """Scene strength and render-key parameters of each condition (the report finds files by them)."""
    strengths = condition_strengths(
        conditions, style_strengths(ctx), ctx.config.render.scene_strength
    )
    params = render_params(ctx)
    return strengths, [{**params, "scene_strength": s} for s in strengths]


def chosen_items(ctx: RunContext, items: pd.DataFrame) -> pd.DataFrame:
    """All items, or the top-N by interactions in this run's events (``render.items``)."""
    spec = ctx.config.render.items
    if spec == "all":
        return items
    n = int(spec.split(":", 1)[1])
    events = pd.read_parquet(ctx.run_dir / EVENTS, columns=["item_id"])
    counts = events["item_id"].astype(str).value_counts()
    order = counts.reindex(items["item_id"].astype(str)).fillna(0).to_numpy()
    top = np.argsort(-order, kind="stable")[:n]
    return items.iloc[np.sort(top)].reset_index(drop=True)


def index_key(content_key: str, item_id: str) -> str:
    """The index row's key of one item's render: the content key qualified by the item.

    Two items with the same image have one file (the content key) but two rows,
    so that each is served its render and gc deletes a file only when no row of a
    kept run points at it.
    """
    return hashlib.sha256(f"{content_key}:{item_id}".encode()).hexdigest()


def load_conditions(ctx: RunContext) -> list[dict[str, Any]]:
    """The segment conditions the segment stage wrote (id, hash, code, blend)."""
    return json.loads((ctx.run_dir / CONDITIONS).read_text())


def run(ctx: RunContext) -> dict[str, Any]:
    """Render the missing (item, condition) pairs and link all pairs to the run."""
    cfg = ctx.config
    cache = RenderCache(cfg.path(cfg.outputs.render_dir), cfg.render.format, cfg.render.quality)
    swept = cache.sweep_partials()
    items = chosen_items(ctx, pd.read_parquet(ctx.run_dir / ITEMS))
    conditions = load_conditions(ctx)
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
