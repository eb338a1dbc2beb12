"""StylePreferenceModel: determinism, persistence, warm start, cold start, bad input,
and recovery of the demo world's planted truth (ranking, favourite styles, a
style never shown).

The planted-truth checks fit on a default-size demo world without images
(2,000 shoppers, 200 products, 12 styles, ~100k events; under a second to
generate, a few seconds to fit).  The figures, and those of an estimator that
knows the whole click model except each shopper's taste, are in
docs/benchmarks.md ("Preference model").
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from recsys.baselines import ContentRecommender
from recsys.evaluation import column_spearman, truth_recall_at_k
from recsys.fit_inputs import align_item_codes, style_event_array
from recsys.holdout import run_holdout
from recsys.interactions import IdMap, build_interactions
from recsys.model import StylePreferenceModel


def _random_matrix(n_users: int = 120, n_items: int = 40, nnz: int = 1500, seed: int = 0):
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, n_users, nnz)
    # a popularity skew, so that the popularity prior is not flat
    cols = np.minimum((rng.pareto(1.5, nnz) * 4).astype(int), n_items - 1)
    m = sp.csr_matrix((np.ones(nnz, np.float32), (rows, cols)), shape=(n_users, n_items))
    m.sum_duplicates()
    return m


def _small_model(**params) -> StylePreferenceModel:
    base = dict(factors=8, epochs=6, negatives=16, validation_users=50, show_progress=False)
    return StylePreferenceModel(**{**base, **params})


# --------------------------------------------------------------------------- basics
def test_fit_is_deterministic_per_seed_and_float32() -> None:
    X = _random_matrix()
    codes = np.random.default_rng(1).normal(size=(X.shape[1], 6)).astype(np.float32)
    a = _small_model(seed=3).fit(X, item_codes=codes)
    b = _small_model(seed=3).fit(X, item_codes=codes)
    c = _small_model(seed=4).fit(X, item_codes=codes)
    for name in ("user_factors_", "free_item_factors_", "item_bias_", "W_"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
        assert getattr(a, name).dtype == np.float32
    assert not np.allclose(a.user_factors_, c.user_factors_)
    assert a.user_factors_.shape == (X.shape[0], 8)
    assert a.history_ and a.best_epoch_ > 0


def test_sampled_softmax_path_learns_popularity() -> None:
    """Catalogue above full_softmax_items: shared negatives with logQ still rank well."""
    X = _random_matrix(n_users=300, n_items=60, nnz=4000)
    m = _small_model(full_softmax_items=10, negatives=20, epochs=10).fit(X)
    pop = np.asarray(X.sum(axis=0)).ravel()
    # The mean user's scores follow popularity (rank correlation over items).
    from scipy.stats import spearmanr

    mean_scores = m.user_scores(np.arange(X.shape[0])).mean(axis=0)
    assert spearmanr(mean_scores, pop).statistic > 0.8


def test_small_log_gets_enough_steps_per_epoch() -> None:
    """A 120-user log with batch_size 512 still takes min_batches steps per epoch."""
    m = _small_model(epochs=2, validation_users=0, min_batches=10).fit(_random_matrix())
    assert m.batch_size_ == 12
    assert [h["steps"] for h in m.history_] == [10, 20]


def test_save_load_round_trip(tmp_path: Path) -> None:
    X = _random_matrix()
    codes = np.random.default_rng(1).normal(size=(X.shape[1], 6)).astype(np.float32)
    model = _small_model().fit(X, item_codes=codes)
    model.save(tmp_path / "model")
    again = StylePreferenceModel.load(tmp_path / "model.npz")
    users = np.array([0, 5, 7, 500])  # 500: unknown
    np.testing.assert_array_equal(model.user_scores(users), again.user_scores(users))
    np.testing.assert_array_equal(model.encode_users(X[:4]), again.encode_users(X[:4]))
    assert again.get_params() == model.get_params()
    # A file written by a version with extra parameters still loads.
    meta = json.loads((tmp_path / "model.json").read_text())
    meta["params"]["some_future_knob"] = 1
    (tmp_path / "model.json").write_text(json.dumps(meta))
    StylePreferenceModel.load(tmp_path / "model")
    meta["format_version"] = 1
    (tmp_path / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="format_version"):
        StylePreferenceModel.load(tmp_path / "model")
    with pytest.raises(FileNotFoundError, match="missing.json"):
        StylePreferenceModel.load(tmp_path / "missing")


def test_warm_start_continues_where_the_previous_fit_ended() -> None:
    X = _random_matrix(n_users=200, nnz=3000)
    first = _small_model(epochs=15).fit(X)
    # Tomorrow: the same users and items plus new ones appended (stable id maps).
    grown = sp.vstack([X, _random_matrix(n_users=20, seed=5)]).tocsr()
    grown = sp.hstack([grown, sp.csr_matrix((grown.shape[0], 3))]).tocsr()
    warm = _small_model(epochs=1).fit(grown, init_from=first)
    cold = _small_model(epochs=1).fit(grown)
    assert warm.history_[0]["val_ndcg@10"] > cold.history_[0]["val_ndcg@10"]
    assert warm.user_factors_.shape == (220, 8) and warm.free_item_factors_.shape == (43, 8)


# ----------------------------------------------------------------------- cold start
def test_cold_start_users_and_items() -> None:
    X = _random_matrix()
    codes = np.random.default_rng(1).normal(size=(X.shape[1], 6)).astype(np.float32)
    m = _small_model().fit(X, item_codes=codes)
    unknown = np.array([-1, X.shape[0], 10**6])
    pop = m.popularity_scores()
    np.testing.assert_allclose(m.user_scores(unknown), np.tile(pop, (3, 1)), rtol=1e-6)
    items, _ = m.recommend(unknown, k=5)
    np.testing.assert_array_equal(items[0], np.argsort(-pop, kind="stable")[:5])
    # score(): unknown user -> popularity of the item; unknown user and item -> 0.
    np.testing.assert_allclose(m.score([-1, -1], [3, 999]), [pop[3], 0.0])
    # Known user, unknown item: from its image code when given, else the mean bias.
    new_code = codes[:1] * 2.0
    with_code = m.score([0], [999], item_codes=new_code)
    expected = m.user_factors_[0] @ m.style_embeddings(new_code)[0] + m.item_bias_.mean()
    np.testing.assert_allclose(with_code, [expected], rtol=1e-5)
    np.testing.assert_allclose(m.score([0], [999]), [m.item_bias_.mean()], rtol=1e-6)
    assert m.score_new_items(np.array([0, -1]), codes[:4]).shape == (2, 4)
    # Styles: an unknown user gets the population's mean affinity.
    aff = m.user_style_affinity(np.array([-1]), codes[:3])
    np.testing.assert_allclose(aff[0], m.user_factors_.mean(0) @ m.style_embeddings(codes[:3]).T,
                               rtol=1e-5)
    # Fold-in: a new user's history gives a vector without refitting.
    np.testing.assert_allclose(m.encode_users(X[:3]) + m.user_offsets_[:3],
                               m.user_factors_[:3], rtol=1e-5, atol=1e-6)


def test_bad_input_is_rejected_with_a_clear_error() -> None:
    X = _random_matrix()
    with pytest.raises(ValueError, match="empty"):
        _small_model().fit(sp.csr_matrix((0, 5)))
    with pytest.raises(ValueError, match="no positive"):
        _small_model().fit(-X)
    with pytest.raises(ValueError, match="item_codes has 3 rows"):
        _small_model().fit(X, item_codes=np.zeros((3, 4)))
    bad = np.zeros((X.shape[1], 4))
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        _small_model().fit(X, item_codes=bad)
    with pytest.raises(ValueError, match="style_idx out of range"):
        _small_model().fit(X, style_codes=np.zeros((2, 4)),
                           style_events=np.array([[0, 0, 5, 1.0]]))
    with pytest.raises(ValueError, match="dropout"):
        _small_model(dropout=1.0).fit(X)
    with pytest.raises(ValueError, match="not fitted"):
        StylePreferenceModel().user_scores(np.array([0]))


# ------------------------------------------------------------------ planted truth
@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    from demo import WorldConfig, generate_world

    return generate_world(tmp_path_factory.mktemp("model_world"), WorldConfig(write_images=False))


@pytest.fixture(scope="module")
def planted(world):
    """Model and content baseline fitted on the whole demo log with the proxy codes."""
    t = world.truth
    inter = build_interactions(world.events)
    codes = align_item_codes(dict(zip(t["item_ids"].tolist(), t["item_codes"], strict=True)),
                             inter.item_map)
    style_events = style_event_array(world.events, IdMap(t["style_ids"].tolist()),
                                     inter.user_map, inter.item_map)
    model = StylePreferenceModel(show_progress=False).fit(
        inter, item_codes=codes, style_codes=t["style_codes"], style_events=style_events
    )
    content = ContentRecommender(codes).fit(inter.positives())
    counts = world.events["user_id"].astype(str).value_counts()
    heavy = counts[counts >= 20].index.to_numpy()
    users = inter.user_map.indices(heavy)
    truth = t["affinity"][[world.index("user")[u] for u in heavy]]
    hidden = np.isin(t["style_ids"], t["holdout_style_ids"])
    return {
        "model": model.user_style_affinity(users, t["style_codes"]),
        "content": content.style_scores(users, t["style_codes"]),
        "truth": truth,
        "hidden": hidden,
        "n_users": len(users),
    }


def _style_figures(planted) -> dict[str, float]:
    hidden = planted["hidden"]
    out = {}
    for name in ("model", "content"):
        out[f"{name}_recall3"] = float(
            truth_recall_at_k(planted[name], planted["truth"], 3, mask=hidden).mean()
        )
        out[f"{name}_spearman"] = float(
            column_spearman(planted[name][:, hidden], planted["truth"][:, hidden]).min()
        )
    return out


def test_planted_styles_beat_the_content_baseline(planted) -> None:
    """Regression guard at the measured level (model 0.861 / 0.762, content 0.465 / 0.342,
    716 shoppers with >= 20 events; world seeds 1 and 2 give 0.858 / 0.770, 0.854 / 0.773)."""
    f = _style_figures(planted)
    assert planted["n_users"] > 600
    assert f["model_recall3"] >= 0.83
    assert f["model_recall3"] >= f["content_recall3"] + 0.3
    assert f["model_spearman"] >= 0.73
    assert f["model_spearman"] >= f["content_spearman"] + 0.3


def test_planted_styles_acceptance(planted) -> None:
    """Issue 4: recall@3 of the true top-3 styles >= 0.8 and >= content + 0.1; a style
    never shown in the logs gets affinities with Spearman >= 0.7 against the planted ones."""
    f = _style_figures(planted)
    assert f["model_recall3"] >= 0.8
    assert f["model_recall3"] >= f["content_recall3"] + 0.1
    assert f["model_spearman"] >= 0.7


def test_demo_world_ranking_is_not_beaten_by_popularity(world) -> None:
    """Which item a demo shopper clicks is popularity-dominated: ranking by every shopper's
    planted taste lifts NDCG@10 only ~2 % over the population ranking (docs/benchmarks.md;
    the personal signal is in the styles).  The model must match popularity there and beat
    the baselines that ignore it."""
    t = world.truth
    result = run_holdout(
        world.events,
        "last:2",
        item_codes=dict(zip(t["item_ids"].tolist(), t["item_codes"], strict=True)),
        style_codes=dict(zip(t["style_ids"].tolist(), t["style_codes"], strict=True)),
        n_bootstrap=20,
    )
    ndcg = {name: figures["ndcg@10"] for name, figures in result.models.items()}
    assert ndcg["stylerec"] >= 0.95 * ndcg["popularity"]
    for peer in ("ease", "bpr", "als", "content"):
        assert ndcg["stylerec"] >= 1.2 * ndcg[peer], (peer, ndcg)
