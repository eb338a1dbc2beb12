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
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipelines.runner import RunContext
from pipelines.stages.artifacts import (
    EVENTS,
    ITEM_MAP,
    MODEL,
    STYLE_SPACE,
    USER_MAP,
    load_codes,
    reuse_previous,
)
from recsys.fit_inputs import FitInputs, codes_by_id
from recsys.interactions import IdMap
from recsys.model import StylePreferenceModel
from stylizer.style_space import StyleSpace


def whitened_codes(run_dir: Path) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Codes of the embed stage, whitened with the style library's statistics."""
    codes = load_codes(run_dir)
    space = StyleSpace.load(run_dir / STYLE_SPACE)
    return codes, space.transform(codes["item_codes"]), space.transform(codes["style_codes"])


def model_params(ctx: RunContext) -> dict[str, Any]:
    """Constructor arguments for the model from the config (0 epochs = the model's default)."""
    m = ctx.config.model
    params: dict[str, Any] = {"factors": m.factors, "seed": m.seed}
    if m.epochs:
        params["epochs"] = m.epochs
    return params


def prepare_inputs(ctx: RunContext, events: pd.DataFrame, init: Path | None) -> FitInputs:
    """Interactions (on the warm-start id maps) and the code arrays the model is fitted on.

    :meth:`FitInputs.from_events` is the builder the holdout harness uses too.
    """
    codes, item_w, style_w = whitened_codes(ctx.run_dir)
    user_map = IdMap.load(init.parent / USER_MAP) if init is not None else None
    item_map = IdMap.load(init.parent / ITEM_MAP) if init is not None else None
    return FitInputs.from_events(
        events, user_map=user_map, item_map=item_map,
        item_codes=codes_by_id(codes["item_ids"], item_w),
        style_codes=codes_by_id(codes["style_ids"], style_w),
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
    h.update(json.dumps(ctx.config.to_dict()["model"], sort_keys=True).encode())
    return h.hexdigest()[:24]


def run(ctx: RunContext) -> dict[str, Any]:
    """Evaluate against baselines on a holdout, then fit (or reuse) the production model."""
    events = pd.read_parquet(ctx.run_dir / EVENTS)
    init = None
    if ctx.previous_run_dir is not None and (ctx.previous_run_dir / f"{MODEL}.npz").is_file():
        init = ctx.previous_run_dir / MODEL
    inputs = prepare_inputs(ctx, events, init)
    inter = inputs.interactions
    key = input_key(ctx, inputs)
    if reuse_previous(ctx, "train", key, [f"{MODEL}.npz", f"{MODEL}.json", USER_MAP, ITEM_MAP]):
        prev = ctx.store.get_run(ctx.previous_run_id)  # type: ignore[arg-type]
        old = prev["stages"]["train"]["metrics"]
        return {**old, "input_key": key, "reused_from": ctx.previous_run_id}

    metrics: dict[str, Any] = {"input_key": key}
    if ctx.config.model.baselines and ctx.config.model.holdout_last:
        from pipelines.stages.evaluate import evaluate_holdout

        metrics["holdout"] = evaluate_holdout(ctx, events)
        # A count line for logs that are not a terminal (the fits' bars show only on one).
        ndcg = {m: round(v["ndcg@10"], 4) for m, v in metrics["holdout"]["models"].items()}
        planted = metrics["holdout"].get("planted")
        if planted:
            ndcg["attainable"] = round(planted["personal"], 4)
        ctx.log("train", "holdout_ndcg@10", **ndcg)

    model = StylePreferenceModel(**model_params(ctx)).fit(inter, init_from=init,
                                                          **inputs.fit_kwargs())
    model.save(ctx.run_dir / MODEL)
    inter.user_map.save(ctx.run_dir / USER_MAP)
    inter.item_map.save(ctx.run_dir / ITEM_MAP)
    metrics.update({
        "users": len(inter.user_map),
        "items": len(inter.item_map),
        "nnz": int(inter.matrix.nnz),
        "warm_start": init is not None,
        "epochs_run": len(getattr(model, "history_", []) or []),
    })
    return metrics
