"""recsys.evaluation against values computed by hand on tiny examples."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

from recsys.evaluation import (
    bootstrap_ci,
    column_spearman,
    evaluate_rankings,
    evaluate_scores,
    ranking_metrics,
    style_diversity,
    top_k,
    truth_recall_at_k,
)

L2_3 = math.log2(3)


def test_ranking_metrics_hand_computed() -> None:
    recommended = np.array([
        [0, 1, 2],  # one hit at rank 2 of 2 relevant
        [3, 4, 5],  # hit at rank 1, single relevant item
        [0, 1, 2],  # relevant item not recommended + one unknown (-1) item
        [6, 7, 8],  # three relevant, two hits (ranks 1 and 3)
    ])
    relevant = [
        np.array([1, 5]),
        np.array([3]),
        np.array([7, -1]),
        np.array([6, 8, 9]),
    ]
    m = ranking_metrics(recommended, relevant, k=3)
    ndcg0 = (1 / L2_3) / (1 + 1 / L2_3)
    ndcg3 = (1 + 1 / 2) / (1 + 1 / L2_3 + 1 / 2)
    np.testing.assert_allclose(m["ndcg@3"], [ndcg0, 1.0, 0.0, ndcg3])
    np.testing.assert_allclose(m["recall@3"], [1 / 2, 1.0, 0.0, 2 / 3])
    # AP: mean of precision at hit positions, over min(k, |relevant|).
    np.testing.assert_allclose(m["map@3"], [(1 / 2) / 2, 1.0, 0.0, (1 + 2 / 3) / 3])
    np.testing.assert_allclose(m["hit_rate@3"], [1, 1, 0, 1])


def test_recall_denominator_is_capped_at_k() -> None:
    m = ranking_metrics(np.array([[0, 1]]), [np.array([0, 1, 2, 3])], k=2)
    assert m["recall@2"][0] == pytest.approx(1.0)
    assert m["ndcg@2"][0] == pytest.approx(1.0)
    assert m["map@2"][0] == pytest.approx(1.0)


def test_user_without_relevant_items_is_nan_not_zero() -> None:
    m = ranking_metrics(np.array([[0, 1], [0, 1]]), [np.array([0]), np.array([], np.int64)], k=2)
    assert m["ndcg@2"][0] == 1.0
    assert np.isnan(m["ndcg@2"][1])


def test_padding_never_matches_unknown_items() -> None:
    # -1 pads a short list and -1 marks an unknown relevant item: they must not "hit".
    m = ranking_metrics(np.array([[2, -1, -1]]), [np.array([-1])], k=3)
    assert m["hit_rate@3"][0] == 0.0


def test_coverage_and_aggregate() -> None:
    recommended = np.array([[0, 1], [1, 2], [2, 3]])
    relevant = [np.array([0]), np.array([9]), np.array([3])]
    res = evaluate_rankings(recommended, relevant, k=2, n_items=10, n_boot=50)
    assert res.aggregate["coverage@2"] == pytest.approx(4 / 10)
    assert res.aggregate["hit_rate@2"] == pytest.approx(2 / 3)
    assert res.aggregate["ndcg@2"] == pytest.approx((1 + 0 + 1 / L2_3) / 3)
    assert len(res.per_user) == 3


def test_style_diversity_by_hand() -> None:
    codes = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])  # already centred
    div = style_diversity(np.array([[0, 1], [0, 2], [0, 0]]), codes)
    np.testing.assert_allclose(div, [2.0, 1.0, 0.0])


def test_bootstrap_ci_contains_mean_and_narrows() -> None:
    rng = np.random.default_rng(0)
    small = rng.random(50)
    large = rng.random(5000)
    lo, hi = bootstrap_ci(small, n_boot=500, seed=1)
    assert lo < small.mean() < hi
    lo2, hi2 = bootstrap_ci(large, n_boot=500, seed=1)
    assert lo2 < large.mean() < hi2
    assert hi2 - lo2 < (hi - lo) / 4  # ~ 1/sqrt(n): 10x narrower expected
    # NaNs (users with nothing held out) are ignored, not propagated.
    lo3, hi3 = bootstrap_ci(np.r_[small, np.nan], n_boot=500, seed=1)
    assert (lo3, hi3) == (lo, hi)


def test_top_k_breaks_ties_by_index() -> None:
    scores = np.array([[0.5, 0.9, 0.5, 0.1, 0.9]])
    assert top_k(scores, 3).tolist() == [[1, 4, 0]]


def test_evaluate_scores_excludes_train_and_ranks_cold_users_by_fallback() -> None:
    train = sp.csr_matrix(np.array([[1, 0, 0, 0], [0, 1, 0, 0]], dtype=np.float32))
    scores = np.array([[9.0, 1.0, 2.0, 3.0], [0.0, 9.0, 5.0, 1.0]], dtype=np.float32)
    fallback = np.array([0.0, 0.0, 0.0, 1.0])
    # user 0 must not get item 0 (seen); unknown user (-1) gets the fallback's best, item 3.
    res = evaluate_scores(lambda u: scores[u], train, [np.array([3]), np.array([2]),
                                                        np.array([3])],
                          np.array([0, 1, -1]), k=1, fallback_scores=fallback, n_boot=10)
    np.testing.assert_allclose(res.per_user["hit_rate@1"], [1.0, 1.0, 1.0])


def test_truth_recall_at_k_counts_shared_top_columns_and_respects_mask() -> None:
    truth = np.array([[5.0, 4.0, 3.0, 0.0, -1.0], [0.0, 1.0, 2.0, 3.0, 4.0]])
    pred = np.array([[9.0, 0.0, 8.0, 7.0, 1.0], [4.0, 3.0, 2.0, 1.0, 0.0]])
    # row 0: true top-3 {0,1,2}, predicted {0,2,3}: 2 of 3; row 1: {4,3,2} vs {0,1,2}: 1 of 3
    np.testing.assert_allclose(truth_recall_at_k(pred, truth, 3), [2 / 3, 1 / 3])
    # Masking column 3 (unseen) removes it from both rankings: row 0 {0,2,4} vs {0,1,2},
    # row 1 {0,1,2} vs {4,2,1}.
    mask = np.array([False, False, False, True, False])
    np.testing.assert_allclose(truth_recall_at_k(pred, truth, 3, mask), [2 / 3, 2 / 3])
    with pytest.raises(ValueError, match="shapes"):
        truth_recall_at_k(pred[:, :3], truth, 3)


def test_column_spearman_per_column_and_constant_columns() -> None:
    rng = np.random.default_rng(0)
    truth = rng.normal(size=(50, 3))
    pred = np.column_stack([truth[:, 0] ** 3, -truth[:, 1], np.ones(50)])
    rho = column_spearman(pred, truth)
    assert rho[0] == pytest.approx(1.0)
    assert rho[1] == pytest.approx(-1.0)
    assert np.isnan(rho[2])
