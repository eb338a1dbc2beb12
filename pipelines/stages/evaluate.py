"""The train stage's holdout check: our model against the baselines, every night.

Why nightly: a model that silently falls behind plain ALS or popularity (a
change in traffic, a broken event source) should show in the report before
anyone looks at an A/B dashboard.  The comparison itself lives in
:func:`recsys.baselines.run_holdout` (the same harness as ``stylerec
evaluate``); this module only feeds it the night's events and image codes and
turns its result into the JSON-safe record kept with the run.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from pipelines.runner import RunContext
from pipelines.stages.artifacts import load_codes


def _item_codes(ctx: RunContext) -> dict[str, np.ndarray] | None:
    """Raw item codes by item id, or None when the embed stage produced none."""
    try:
        codes = load_codes(ctx.run_dir)
    except FileNotFoundError:
        return None
    ids, arr = codes.get("item_ids"), codes.get("item_codes")
    if ids is None or arr is None or len(ids) == 0:
        return None
    return {str(i): arr[n] for n, i in enumerate(ids)}


def evaluate_holdout(ctx: RunContext, events: pd.DataFrame) -> dict[str, Any]:
    """Fit every model on all but each user's last N positives and score them on those.

    Returns ``{"models": {name: {"ndcg@10", "recall@10", "map@10", "hitrate@10",
    "coverage", "fit_seconds", "ndcg@10_ci": [low, high]}}, "holdout_last": N,
    "test_users": n}``, which the report turns into its model table and plot.
    """
    from recsys.baselines import run_holdout

    n = int(ctx.config.model.holdout_last)
    result = run_holdout(
        events,
        f"last:{n}",
        item_codes=_item_codes(ctx),
        k=10,
        seed=int(ctx.config.model.seed),
    )
    models: dict[str, dict[str, Any]] = {}
    for name, figures in result.to_dict()["models"].items():
        row = {k: float(v) for k, v in figures.items() if isinstance(v, int | float)}
        low, high = row.pop("ndcg@10_low", None), row.pop("ndcg@10_high", None)
        if low is not None and high is not None:
            row["ndcg@10_ci"] = [low, high]
        models[name] = row
    return {"models": models, "holdout_last": n, "test_users": int(result.n_test_users)}
