"""Stage 3, train: the style-preference model on the night's events, warm-started.

Two fits happen here.  First the model and the baselines are fitted on a
per-user time holdout of the events and scored on it (the report's model
table: is the model still better than ALS, BPR, EASE and popularity?).
Then the production model is fitted on all events, warm-started from the
served run's model so that id maps stay stable and training converges fast.
When the events, codes and parameters are exactly those of the served run,
its model is reused instead (a deterministic fit would give the same result).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipelines.context import RunContext
from pipelines.stages.common import model_params, reuse_previous, whitened_codes
from pipelines.stages.evaluate import evaluate_holdout
from recsys.baselines import style_event_array
from recsys.interactions import IdMap, Interactions, build_interactions
from recsys.model import StylePreferenceModel
from recsys.run_bundle import EVENTS, MODEL, MODEL_FILES, RunBundle


def aligned_item_codes(item_map: IdMap, item_ids: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Codes in item-map order; items without a readable image get the mean (neutral) code."""
    out = np.zeros((len(item_map), codes.shape[1]), dtype=np.float32)
    rows = item_map.indices([str(i) for i in item_ids])
    keep = rows >= 0
    out[rows[keep]] = codes[keep]
    missing = np.setdiff1d(np.arange(len(item_map)), rows[keep])
    if len(missing) and keep.any():
        out[missing] = codes[keep].mean(axis=0)
    return out


def style_event_rows(
    events: pd.DataFrame, inter: Interactions, style_ids: np.ndarray
) -> np.ndarray | None:
    """``(user_idx, item_idx, style_idx, weight)`` for every event of a log that records
    which image was shown (``style_idx`` -1: the original photo, the anchor of affinities).

    None when the log has no ``style_id`` column or never showed a render.
    """
    if "style_id" not in events.columns or not events["style_id"].notna().any():
        return None
    style_map = IdMap([str(s) for s in style_ids])
    return style_event_array(events, style_map, inter.user_map, inter.item_map)


def prepare_inputs(
    ctx: RunContext, events: pd.DataFrame, init: Path | None
) -> tuple[Interactions, dict[str, Any]]:
    """Interactions (on the warm-start id maps) and the code arrays the model is fitted on."""
    codes, item_w, style_w = whitened_codes(ctx.bundle)
    warm = RunBundle.open(init.parent) if init is not None else None
    user_map = warm.read_id_map("user") if warm is not None else None
    item_map = warm.read_id_map("item") if warm is not None else None
    inter = build_interactions(
        events, user_map=user_map, item_map=item_map,
        half_life_days=ctx.config.model.half_life_days,
    )
    inputs = {
        "item_codes": aligned_item_codes(inter.item_map, np.asarray(codes.item_ids), item_w),
        "style_codes": style_w,
        "style_events": style_event_rows(events, inter, np.asarray(codes.style_ids)),
    }
    return inter, inputs


def input_key(ctx: RunContext, inter: Interactions, inputs: dict[str, Any]) -> str:
    """Hash of exactly what the fit sees: matrix, id maps, codes, style events, parameters.

    Catalog items nobody interacted with are not in the matrix, so adding them
    leaves the key (and the model, segments and renders) unchanged.
    """
    h = hashlib.sha256()
    m = inter.matrix
    for arr in (m.indptr, m.indices, m.data, inputs["item_codes"], inputs["style_codes"]):
        h.update(np.ascontiguousarray(arr).tobytes())
    if inputs["style_events"] is not None:
        h.update(np.ascontiguousarray(inputs["style_events"]).tobytes())
    h.update("\n".join(map(str, inter.user_map.ids)).encode())
    h.update("\n".join(map(str, inter.item_map.ids)).encode())
    h.update(ctx.config.section_json("model").encode())
    return h.hexdigest()[:24]


def run(ctx: RunContext) -> dict[str, Any]:
    """Evaluate against baselines on a holdout, then fit (or reuse) the production model."""
    events = ctx.bundle.read_table(EVENTS)
    init = None
    previous = ctx.previous_bundle
    if previous is not None and not previous.missing(MODEL_FILES):
        init = previous.path(MODEL)
    inter, inputs = prepare_inputs(ctx, events, init)
    key = input_key(ctx, inter, inputs)
    if reuse_previous(ctx, "train", key, list(MODEL_FILES)):
        prev = ctx.store.get_run(ctx.previous_run_id)  # type: ignore[arg-type]
        old = prev["stages"]["train"]["metrics"]
        return {**old, "input_key": key, "reused_from": ctx.previous_run_id}

    metrics: dict[str, Any] = {"input_key": key}
    if ctx.config.model.baselines and ctx.config.model.holdout_last:
        metrics["holdout"] = evaluate_holdout(ctx, events)
        # A count line for logs that are not a terminal (the fits' bars show only on one).
        ndcg = {m: round(v["ndcg@10"], 4) for m, v in metrics["holdout"]["models"].items()}
        planted = metrics["holdout"].get("planted")
        if planted:
            ndcg["attainable"] = round(planted["personal"], 4)
        ctx.log("train", "holdout_ndcg@10", **ndcg)

    model = StylePreferenceModel(**model_params(ctx)).fit(inter, init_from=init, **inputs)
    ctx.bundle.write_model(model, inter.user_map.ids, inter.item_map.ids)
    metrics.update({
        "users": len(inter.user_map),
        "items": len(inter.item_map),
        "nnz": int(inter.matrix.nnz),
        "warm_start": init is not None,
        "epochs_run": len(getattr(model, "history_", []) or []),
    })
    return metrics
