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
from recsys.fit_inputs import FitInputs, codes_by_id
from recsys.model import StylePreferenceModel
from recsys.run_bundle import EVENTS, MODEL, MODEL_FILES, RunBundle


def prepare_inputs(ctx: RunContext, events: pd.DataFrame, init: Path | None) -> FitInputs:
    """Interactions (on the warm-start id maps) and the code arrays the model is fitted on.

    :meth:`FitInputs.from_events` is the builder the holdout harness uses too.
    """
    codes, item_w, style_w = whitened_codes(ctx.bundle)
    warm = RunBundle.open(init.parent) if init is not None else None
    user_map = warm.read_id_map("user") if warm is not None else None
    item_map = warm.read_id_map("item") if warm is not None else None
    return FitInputs.from_events(
        events, user_map=user_map, item_map=item_map,
        item_codes=codes_by_id(codes.item_ids, item_w),
        style_codes=codes_by_id(codes.style_ids, style_w),
        half_life_days=ctx.config.model.half_life_days,
    )


def input_key(ctx: RunContext, inputs: FitInputs) -> str:
    """Hash of exactly what the fit sees: matrix, id maps, codes, style events, parameters.

    Catalog items nobody interacted with are not in the matrix, so adding them
    leaves the key (and the model, segments and renders) unchanged.
    """
    h = hashlib.sha256()
    inter = inputs.interactions
    m = inter.matrix
    for arr in (m.indptr, m.indices, m.data, inputs.item_codes, inputs.style_codes,
                inputs.style_events):
        if arr is not None:
            h.update(np.ascontiguousarray(arr).tobytes())
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
    inputs = prepare_inputs(ctx, events, init)
    inter = inputs.interactions
    key = input_key(ctx, inputs)
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

    model = StylePreferenceModel(**model_params(ctx)).fit(inter, init_from=init,
                                                          **inputs.fit_kwargs())
    ctx.bundle.write_model(model, inter.user_map.ids, inter.item_map.ids)
    metrics.update({
        "users": len(inter.user_map),
        "items": len(inter.item_map),
        "nnz": int(inter.matrix.nnz),
        "warm_start": init is not None,
        "epochs_run": len(getattr(model, "history_", []) or []),
    })
    return metrics
