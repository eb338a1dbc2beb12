"""The train stage's holdout check: our model against the baselines, every night.

Why nightly: a model that silently falls behind plain ALS or popularity (a
change in traffic, a broken event source) should show in the report before
anyone looks at an A/B dashboard.  The comparison itself lives in
:func:`recsys.holdout.run_holdout` (the same harness as ``stylerec
evaluate``); this module only feeds it the night's events and image codes and
turns its result into the JSON-safe record kept with the run.  The model is
fitted exactly as the production fit of the train stage is (parameters, whitened
codes, style events, time decay: one builder, ``FitInputs.from_events``), so the
table judges the model that will be served.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from pipelines.context import RunContext
from pipelines.stages.common import model_params, whitened_codes
from recsys.holdout import run_holdout
from recsys.run_bundle import CODES


def _codes(ctx: RunContext) -> tuple[dict[str, np.ndarray] | None, dict[str, np.ndarray] | None]:
    """Item and style codes by id, whitened as the production fit sees them.

    (None, None) when the embed stage produced no codes; raw codes when the run
    has no whitening (whitening is a linear map, so the model's own
    standardisation still puts them on one scale).
    """
    bundle = ctx.bundle
    if not bundle.has(CODES):
        return None, None
    codes = bundle.read_codes()
    if not codes.item_ids:
        return None, None
    arr, style_arr = codes.item_codes, codes.style_codes
    if bundle.read_whitening() is not None:
        _, arr, style_arr = whitened_codes(bundle)
    items = {i: arr[n] for n, i in enumerate(codes.item_ids)}
    styles = None
    if codes.style_ids:
        styles = {s: style_arr[n] for n, s in enumerate(codes.style_ids)}
    return items, styles


def evaluate_holdout(ctx: RunContext, events: pd.DataFrame) -> dict[str, Any]:
    """Fit every model on all but each user's last N positives and score them on those.

    The style-preference model gets what the production fit gets: the config's
    parameters, whitened item codes, and the style events of renders shown.
    Returns ``{"models": {name: {"ndcg@10", "recall@10", "map@10", "hitrate@10",
    "coverage", "fit_seconds", "ndcg@10_ci": [low, high]}}, "holdout_last": N,
    "test_users": n}``, which the report turns into its model table and plot; on a
    generated world also ``"planted": {"personal", "population", "world"}``, the NDCG@10
    of its planted click model on the same split (:mod:`pipelines.ceiling`).
    """
    n = int(ctx.config.model.holdout_last)
    item_codes, style_codes = _codes(ctx)
    result = run_holdout(
        events,
        f"last:{n}",
        item_codes=item_codes,
        style_codes=style_codes,
        k=10,
        seed=int(ctx.config.model.seed),
        model_params=model_params(ctx),
        half_life_days=ctx.config.model.half_life_days,
    )
    models: dict[str, dict[str, Any]] = {}
    for name, figures in result.to_dict()["models"].items():
        row = {k: float(v) for k, v in figures.items() if isinstance(v, int | float)}
        low, high = row.pop("ndcg@10_low", None), row.pop("ndcg@10_high", None)
        if low is not None and high is not None:
            row["ndcg@10_ci"] = [low, high]
        models[name] = row
    out: dict[str, Any] = {"models": models, "holdout_last": n,
                           "test_users": int(result.n_test_users)}
    planted = _planted_ceiling(ctx, events, f"last:{n}")
    if planted is not None:
        out["planted"] = planted
    return out


def _planted_ceiling(ctx: RunContext, events: pd.DataFrame, holdout: str) -> dict[str, Any] | None:
    """The holdout's attainable NDCG@10 when the events come from a generated world.

    The world is recognised by its truth files beside an events file (or in the
    image root), as ``stylerec demo`` and ``stylerec generate`` lay it out.
    """
    from pipelines.ceiling import find_world, planted_ceiling

    cfg = ctx.config
    folders = [cfg.path(e).parent for e in cfg.inputs.events if "://" not in e]
    folders.append(cfg.path(cfg.inputs.image_root))
    world = find_world(folders)
    if world is None:
        return None
    try:
        ceiling = planted_ceiling(world, events, holdout)
    except (FileNotFoundError, ValueError, KeyError) as exc:  # an incomplete or older world
        ctx.log("train", "planted_ceiling_skipped", reason=repr(exc))
        return None
    if ceiling is None:
        return None
    return {**ceiling, "world": str(world.resolve())}
