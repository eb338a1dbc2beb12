"""The baselines and the one holdout harness (recsys.baselines), on tiny known logs."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from recsys.baselines import (
    ALSRecommender,
    BPRRecommender,
    ContentRecommender,
    EASERecommender,
    PopularityRecommender,
)
from recsys.fit_inputs import style_event_array
from recsys.holdout import run_holdout
from recsys.interactions import IdMap


def _matrix(seed: int = 0, n_users: int = 60, n_items: int = 25, nnz: int = 500):
    rng = np.random.default_rng(seed)
    m = sp.csr_matrix(
        (np.ones(nnz, np.float32), (rng.integers(0, n_users, nnz), rng.integers(0, n_items, nnz))),
        shape=(n_users, n_items),
    )
    m.sum_duplicates()
    return m


def _log(n_users: int = 80, n_items: int = 30, per_user: int = 12, seed: int = 0) -> pd.DataFrame:
    """Two taste groups (even/odd items), clicks in time order, some purchases and views."""
    rng = np.random.default_rng(seed)
    rows = []
    t0 = pd.Timestamp("2026-01-01", tz="UTC")
    for u in range(n_users):
        group = u % 2
        items = rng.choice(np.arange(group, n_items, 2), size=per_user, replace=True)
        for k, i in enumerate(items):
            kind = "purchase" if k % 5 == 4 else "click"
            rows.append((f"u{u}", f"i{i}", kind, t0 + pd.Timedelta(hours=u + 100 * k)))
        rows.append((f"u{u}", f"i{(group + 1) % 2}", "view", t0))
    return pd.DataFrame(rows, columns=["user_id", "item_id", "event_type", "timestamp"])


def test_popularity_counts_users_not_confidence() -> None:
    X = sp.csr_matrix(np.array([[50.0, 0, 0], [0, 1, 0], [0, 1, 1], [0, 1, 0]], np.float32))
    pop = PopularityRecommender().fit(X)
    np.testing.assert_array_equal(pop.popularity_, [1, 3, 1])


@pytest.mark.parametrize("make", [
    PopularityRecommender,
    lambda: ALSRecommender(factors=4, iterations=3),
    lambda: BPRRecommender(factors=4, iterations=3),
    EASERecommender,
    lambda: ContentRecommender(np.random.default_rng(0).normal(size=(25, 5))),
])
def test_unknown_users_get_popularity(make) -> None:
    X = _matrix()
    model = make().fit(X)
    scores = model.user_scores(np.array([0, -1, X.shape[0]]))
    assert scores.shape == (3, X.shape[1])
    pop = np.diff(X.tocsc().indptr)
    np.testing.assert_array_equal(scores[1], pop)
    np.testing.assert_array_equal(scores[2], pop)


def test_ease_closed_form_and_size_limit() -> None:
    X = _matrix()
    model = EASERecommender(l2=10.0).fit(X)
    G = (X.T @ X).toarray().astype(np.float64) + 10.0 * np.eye(X.shape[1])
    P = np.linalg.inv(G)
    B = -P / np.diag(P)
    np.fill_diagonal(B, 0.0)
    np.testing.assert_allclose(model.B_, B, atol=1e-4)
    with pytest.raises(ValueError, match="25 items exceed max_items=10"):
        EASERecommender(max_items=10).fit(X)


def test_als_and_bpr_are_seeded() -> None:
    X = _matrix()
    for make in (lambda s: ALSRecommender(factors=4, iterations=3, seed=s),
                 lambda s: BPRRecommender(factors=4, iterations=3, seed=s)):
        a, b = make(1).fit(X), make(1).fit(X)
        np.testing.assert_array_equal(a.user_scores(np.arange(5)), b.user_scores(np.arange(5)))


def test_content_style_scores_follow_the_users_items() -> None:
    codes = np.eye(4)[[0, 0, 1, 1, 2, 3]].astype(np.float32) + 0.01
    X = sp.csr_matrix(np.array([[1, 1, 0, 0, 0, 0], [0, 0, 1, 1, 0, 0]], np.float32))
    content = ContentRecommender(codes).fit(X)
    styles = np.eye(4, dtype=np.float32)
    s = content.style_scores(np.array([0, 1, -1]), styles)
    assert s.shape == (3, 4)
    assert np.argmax(s[0]) == 0 and np.argmax(s[1]) == 1
    np.testing.assert_allclose(s[2], content.user_profiles_.mean(0) @ (
        (styles - content.code_mean_) / content.code_std_
        / np.linalg.norm((styles - content.code_mean_) / content.code_std_, axis=1)[:, None]
    ).T, rtol=1e-5)
    with pytest.raises(ValueError, match="shape"):
        content.style_scores(np.array([0]), np.ones((2, 3)))


def test_style_event_array_originals_views_and_unknown_ids() -> None:
    events = pd.DataFrame({
        "user_id": ["a", "a", "a", "b", "zz"],
        "item_id": ["x", "x", "y", "x", "x"],
        "event_type": ["view", "click", "click", "purchase", "click"],
        "timestamp": pd.Timestamp("2026-01-01", tz="UTC"),
        "style_id": ["s1", "s1", None, "s9", "s1"],  # s9 unknown, zz unknown user
    })
    rows = style_event_array(events, IdMap(["s0", "s1"]), IdMap(["a", "b"]), IdMap(["x", "y"]))
    np.testing.assert_array_equal(rows, [[0, 0, 1, -0.1], [0, 0, 1, 1.0], [0, 1, -1, 1.0]])


def test_run_holdout_every_model_same_split_and_json() -> None:
    events = _log()
    codes = {f"i{i}": np.array([i % 2, 1 - i % 2, 0.1 * i], np.float32) for i in range(30)}
    result = run_holdout(events, "last:2", item_codes=codes, n_bootstrap=20,
                         model_params={"factors": 8, "epochs": 20})
    assert set(result.models) == {"stylerec", "als", "bpr", "ease", "popularity", "content"}
    assert result.n_test_users == 80 and result.n_cold_users == 0
    for figures in result.models.values():
        for key in ("ndcg@10", "recall@10", "map@10", "hitrate@10", "coverage", "fit_seconds"):
            assert np.isfinite(figures[key])
        assert figures["ndcg@10_low"] <= figures["ndcg@10"] <= figures["ndcg@10_high"]
    # Two clear taste groups: the style model and EASE rank far above popularity.
    ndcg = {k: v["ndcg@10"] for k, v in result.models.items()}
    assert ndcg["stylerec"] > 1.5 * ndcg["popularity"]
    assert ndcg["ease"] > 1.5 * ndcg["popularity"]
    json.dumps(result.to_dict())


def test_run_holdout_cold_users_and_unknown_items_count_as_misses() -> None:
    events = _log()
    late = pd.DataFrame({
        "user_id": ["new1", "new1", "u0"],
        "item_id": ["i0", "brand_new", "brand_new"],
        "event_type": ["click", "click", "click"],
        "timestamp": pd.Timestamp("2027-01-01", tz="UTC"),
    })
    result = run_holdout(pd.concat([events, late]), "time:2026-12-31", n_bootstrap=10,
                         models=["popularity", "stylerec"], model_params={"epochs": 3})
    assert result.n_cold_users == 1
    assert result.n_unknown_test_items == 2
    assert result.n_test_users == 2
    # The cold user is ranked by popularity by every model, so both score it alike.
    per_user = {k: ev.per_user["ndcg@10"].to_numpy() for k, ev in result.evaluations.items()}
    assert per_user["popularity"][1] == pytest.approx(per_user["stylerec"][1])


def test_run_holdout_rejects_bad_arguments() -> None:
    events = _log()
    with pytest.raises(ValueError, match="unknown model"):
        run_holdout(events, "last:2", models=["nope"])
    with pytest.raises(ValueError, match="needs item codes"):
        run_holdout(events, "last:2", models=["content"])
    with pytest.raises(ValueError, match="leaves"):
        run_holdout(events, "last:50")
    with pytest.raises(ValueError, match="last:N or time"):
        run_holdout(events, "first:2")
