"""What the best possible ranking would score on a holdout, when the log's click model is known.

On a generated demo world (``demo``) every shopper's taste and the click
model are planted, so the NDCG@10 of ranking each shopper by their *true* expected
clicks can be computed on the very split the report's model table uses.  That
number is the attainable ceiling: a model at the ceiling and a model "no better than
popularity" can look alike in a table (on the default world which *item* a shopper
clicks is popularity-dominated, and the personal signal is in the styles), and the
report must let a reader tell them apart.  Real logs have no planted truth, so there
is no ceiling there (``planted_ceiling`` returns None).

Lives in ``pipelines`` because it needs both the world (``data``) and the holdout
metrics (``recsys``), which do not import each other.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

log = logging.getLogger("stylerec.ceiling")

#: Files that mark a folder as a generated world with planted truth.
TRUTH_FILES = ("truth.npz", "truth.json")


def find_world(candidates: list[Path]) -> Path | None:
    """The first folder among ``candidates`` that holds a generated world's truth files."""
    for folder in candidates:
        if all((folder / name).is_file() for name in TRUTH_FILES):
            return folder
    return None


def planted_ceiling(
    world: Any, events: pd.DataFrame, holdout: str, k: int = 10, n_boot: int = 200,
    seed: int = 0,
) -> dict[str, float] | None:
    """NDCG@k of the planted expected clicks on ``events`` split by ``holdout``.

    ``world``: a :class:`demo.World` (or its folder).  Returns
    ``{"personal": ..., "population": ...}`` (each with ``_low``/``_high``, its 95%
    bootstrap interval over test users): ranking each shopper by their own planted
    expected clicks on original photos (true taste, true item popularity, the click
    model), and by the population mean of those (the best non-personal ranking in
    expectation).  These are expectations, not bounds: on a few thousand held-out
    clicks a model can land above them by chance, hence the interval.  The split, the exclusion of seen items and the
    popularity fallback for users unknown to train are those of
    :func:`recsys.holdout.run_holdout`, so the numbers sit beside its table.
    None when the log holds users or items the world does not know (then it is not
    the world's log, or not only).
    """
    from demo import World
    from demo.shoppers import sigmoid
    from recsys.baselines import PopularityRecommender
    from recsys.evaluation import evaluate_scores
    from recsys.holdout import holdout_relevant
    from recsys.interactions import build_interactions, split_events

    if not isinstance(world, World):
        world = World.load(world)
    t, cm = world.truth, world.click_model
    train, test = split_events(events, holdout)
    if train.empty or test.empty:
        return None
    inter = build_interactions(train)
    X = inter.positives()
    user_pos, item_pos = world.index("user"), world.index("item")
    uidx = np.array([user_pos.get(str(u), -1) for u in inter.user_map.ids])
    iidx = np.array([item_pos.get(str(i), -1) for i in inter.item_map.ids])
    if (uidx < 0).any() or (iidx < 0).any():
        log.info("planted ceiling skipped: the log has users or items the world does not know")
        return None
    popularity = t["item_popularity"][iidx]
    exposure = np.exp(popularity)

    def planted(users: np.ndarray) -> np.ndarray:
        s = popularity[None] + cm.beta * t["user_taste"][uidx[users]] @ t["item_latent"][iidx].T
        return exposure[None] * sigmoid(cm.b0 + s)

    mean = planted(np.arange(X.shape[0])).mean(axis=0)
    _, users, relevant = holdout_relevant(test, inter)
    fallback = PopularityRecommender().fit(X).popularity_
    out: dict[str, float] = {}
    for name, fn in (
        ("personal", planted),
        ("population", lambda u: np.broadcast_to(mean, (len(u), len(mean)))),
    ):
        ev = evaluate_scores(fn, X, relevant, users, k=k, fallback_scores=fallback,
                             n_boot=n_boot, seed=seed)
        out[name] = float(ev.aggregate[f"ndcg@{k}"])
        low, high = ev.confidence[f"ndcg@{k}"]
        out[f"{name}_low"], out[f"{name}_high"] = float(low), float(high)
    return out
