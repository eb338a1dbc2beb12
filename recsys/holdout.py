"""The one holdout harness: every model on the same split, interactions and metrics.

Why a harness here and not in each caller: ``stylerec evaluate``, the nightly
train stage, the benchmark and the notebook must compare models on *exactly*
the same split, the same interactions, the same exclusion of already-seen
items and the same metric definitions, or their figures stop being
comparable.  :func:`run_holdout` is that single path.  The style-preference
model is fitted on :meth:`recsys.fit_inputs.FitInputs.from_events` of the
train split -- the builder the production fit uses, time decay included --
and scored by its :class:`~recsys.factors.StyleFactors`.  Cold start is
described in :mod:`recsys.baselines`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from recsys.baselines import EASE_MAX_ITEMS, MODEL_NAMES, PopularityRecommender, make_baseline
from recsys.evaluation import EvaluationResult, evaluate_scores
from recsys.fit_inputs import FitInputs
from recsys.interactions import split_events

log = logging.getLogger(__name__)


class _StyleModelAdapter:
    """The style-preference model behind the harness's ``fit(X)`` / ``user_scores`` interface.

    ``fit`` ignores the matrix it is handed in favour of ``inputs`` (the same
    train split, built by :class:`FitInputs` as production builds it, with
    impressions, which the model weighs itself); ``user_scores`` is the
    factors core's, the function every other scorer of the model calls.
    """

    def __init__(self, inputs: FitInputs, seed: int,
                 params: Mapping[str, Any] | None = None) -> None:
        self.inputs = inputs
        self.seed = seed
        self.params = dict(params or {})

    def fit(self, matrix: Any = None) -> _StyleModelAdapter:
        from recsys.model import StylePreferenceModel

        params = {"seed": self.seed, "show_progress": False, **self.params}
        self.model_ = StylePreferenceModel(**params)
        self.model_.fit(self.inputs.interactions, **self.inputs.fit_kwargs())
        return self

    def user_scores(self, users: np.ndarray) -> np.ndarray:
        return self.model_.factors_.user_scores(users)


@dataclass
class HoldoutResult:
    """Figures of every model on one holdout.

    ``models[name]`` holds ``ndcg@k``, ``recall@k``, ``map@k``, ``hitrate@k``,
    ``coverage`` (share of the catalogue in anyone's top k), ``fit_seconds``,
    ``score_seconds``, bootstrap 95 % bounds ``ndcg@k_low``/``ndcg@k_high`` and
    ``recall@k_low``/``recall@k_high``, and ``style_diversity@k`` when item codes
    were given.  A model that could not be fitted (EASE on a huge catalogue) is
    absent from ``models`` and listed in ``skipped`` with the reason.
    """

    holdout: str
    k: int
    n_test_users: int
    models: dict[str, dict[str, float]]
    n_users: int = 0
    n_items: int = 0
    n_train_events: int = 0
    n_test_events: int = 0
    n_cold_users: int = 0
    n_unknown_test_items: int = 0
    skipped: dict[str, str] = field(default_factory=dict)
    evaluations: dict[str, EvaluationResult] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (NaN becomes None); per-user tables are left out."""

        def clean(v: float) -> float | None:
            v = float(v)
            return v if math.isfinite(v) else None

        return {
            "holdout": self.holdout,
            "k": self.k,
            "n_test_users": int(self.n_test_users),
            "n_users": int(self.n_users),
            "n_items": int(self.n_items),
            "n_train_events": int(self.n_train_events),
            "n_test_events": int(self.n_test_events),
            "n_cold_users": int(self.n_cold_users),
            "n_unknown_test_items": int(self.n_unknown_test_items),
            "models": {
                name: {key: clean(val) for key, val in figures.items()}
                for name, figures in self.models.items()
            },
            "skipped": dict(self.skipped),
        }

    def table(self) -> pd.DataFrame:
        """One row per model, one column per figure (what the CLI prints)."""
        frame = pd.DataFrame.from_dict(self.models, orient="index")
        frame.index.name = "model"
        return frame


def holdout_relevant(
    test_ev: pd.DataFrame, inter: Any
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Test users, their train row (-1 = unknown) and their distinct held-out items.

    Items are in the train index space (-1 = an item the train split never saw). One
    definition for the holdout harness and the planted-truth ceiling, so that both
    score exactly the same (user, item) pairs.
    """
    test_users, inverse = np.unique(test_ev["user_id"].astype(str).to_numpy(), return_inverse=True)
    users = inter.user_map.indices(test_users)
    pairs = pd.DataFrame({
        "user": inverse,
        "item_id": test_ev["item_id"].astype(str).to_numpy(),
        "item": inter.item_map.indices(test_ev["item_id"].astype(str).to_numpy()),
    }).drop_duplicates(["user", "item_id"]).sort_values("user", kind="stable")
    cuts = np.searchsorted(pairs["user"].to_numpy(), np.arange(1, len(test_users)))
    relevant = [np.asarray(r, dtype=np.int64) for r in np.split(pairs["item"].to_numpy(), cuts)]
    return test_users, users, relevant


def run_holdout(
    events: pd.DataFrame,
    holdout: str = "last:10",
    *,
    item_codes: Mapping[str, np.ndarray] | None = None,
    style_codes: Mapping[str, np.ndarray] | np.ndarray | None = None,
    models: Sequence[str] | None = None,
    k: int = 10,
    seed: int = 0,
    n_bootstrap: int = 200,
    event_weights: Mapping[str, float] | None = None,
    model_params: Mapping[str, Any] | None = None,
    half_life_days: float | None = None,
) -> HoldoutResult:
    """Split ``events`` by ``holdout``, fit every model on train, score them on the held-out positives.

    ``holdout``: ``last:N`` (each user's last N positive events) or
    ``time:DATE`` (see :func:`recsys.interactions.parse_holdout`).
    ``item_codes``: style code per item id; enables ``content``, style
    diversity and the style-preference model's ``W``.  ``style_codes``: style
    id -> code (events with a ``style_id`` become the model's style events).
    ``models``: names from :data:`MODEL_NAMES`; default all of them
    (``content`` only when codes are given; ``ease`` is skipped, with the
    reason recorded, when the catalogue exceeds its limit).  Items a user
    interacted with in train are excluded from that user's ranking.  Every
    model is scored on the same users; see the module doc for cold start.
    ``model_params``: constructor arguments of the style-preference model
    (e.g. the nightly config's ``factors``); the baselines keep their defaults.
    ``half_life_days``: the time decay of event weights, as the production fit
    uses it (every model sees the same decayed matrix).
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    names = list(models) if models is not None else [
        m for m in MODEL_NAMES if m != "content" or item_codes
    ]
    unknown = [m for m in names if m not in MODEL_NAMES]
    if unknown:
        raise ValueError(f"unknown model(s) {unknown}; known: {list(MODEL_NAMES)}")
    if "content" in names and not item_codes:
        raise ValueError("model 'content' needs item codes (item_codes=...)")

    train_ev, test_ev = split_events(events, holdout, event_weights)
    if train_ev.empty or test_ev.empty:
        raise ValueError(
            f"holdout {holdout!r} leaves {len(train_ev)} train / {len(test_ev)} test events; "
            "need both (for last:N, users need more than N positive events)"
        )
    inputs = FitInputs.from_events(train_ev, item_codes=item_codes, style_codes=style_codes,
                                   half_life_days=half_life_days, event_weights=event_weights)
    inter = inputs.interactions
    X = inter.positives()
    codes = inputs.item_codes

    test_users, users, relevant = holdout_relevant(test_ev, inter)
    n_unknown_items = int(sum(int((r < 0).sum()) for r in relevant))
    cold = users < 0
    popularity = PopularityRecommender().fit(X).popularity_

    result = HoldoutResult(
        holdout=holdout,
        k=k,
        n_test_users=len(test_users),
        models={},
        n_users=X.shape[0],
        n_items=X.shape[1],
        n_train_events=len(train_ev),
        n_test_events=len(test_ev),
        n_cold_users=int(cold.sum()),
        n_unknown_test_items=n_unknown_items,
    )
    for name in names:
        if name == "stylerec":
            model: Any = _StyleModelAdapter(inputs, seed, model_params)
            fit_on: Any = inter.matrix  # the model weighs impressions itself
        else:
            model = make_baseline(name, item_codes=codes, seed=seed)
            fit_on = X
        if name == "ease" and X.shape[1] > EASE_MAX_ITEMS and models is None:
            result.skipped[name] = f"{X.shape[1]} items > {EASE_MAX_ITEMS}"
            log.warning("holdout: skipping ease (%s)", result.skipped[name])
            continue
        t0 = time.perf_counter()
        model.fit(fit_on)
        fit_seconds = time.perf_counter() - t0
        t0 = time.perf_counter()
        ev = evaluate_scores(
            model.user_scores,
            X,
            relevant,
            users,
            k=k,
            fallback_scores=popularity,
            item_codes=codes,
            n_boot=n_bootstrap,
            seed=seed,
        )
        score_seconds = time.perf_counter() - t0
        result.evaluations[name] = ev
        agg, ci = ev.aggregate, ev.confidence
        figures = {
            f"ndcg@{k}": agg[f"ndcg@{k}"],
            f"recall@{k}": agg[f"recall@{k}"],
            f"map@{k}": agg[f"map@{k}"],
            f"hitrate@{k}": agg[f"hit_rate@{k}"],
            "coverage": agg[f"coverage@{k}"],
            "fit_seconds": fit_seconds,
            "score_seconds": score_seconds,
            f"ndcg@{k}_low": ci[f"ndcg@{k}"][0],
            f"ndcg@{k}_high": ci[f"ndcg@{k}"][1],
            f"recall@{k}_low": ci[f"recall@{k}"][0],
            f"recall@{k}_high": ci[f"recall@{k}"][1],
        }
        if f"style_diversity@{k}" in agg:
            figures[f"style_diversity@{k}"] = agg[f"style_diversity@{k}"]
        result.models[name] = {key: float(v) for key, v in figures.items()}
        log.info("holdout %s: %s ndcg@%d=%.4f fit %.1fs", holdout, name, k,
                 figures[f"ndcg@{k}"], fit_seconds)
    return result


__all__ = ["HoldoutResult", "holdout_relevant", "run_holdout"]
