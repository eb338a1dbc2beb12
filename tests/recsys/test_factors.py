"""recsys.factors.StyleFactors: the one scoring core (cold start, exclusion, style term, files)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recsys.evaluation import top_k
from recsys.factors import StyleFactors, blend, top_k_row


def _factors(seed: int = 0, n_users: int = 30, n_items: int = 50, f: int = 6, d: int = 4
             ) -> StyleFactors:
    rng = np.random.default_rng(seed)
    seen = [np.sort(rng.choice(n_items, size=3, replace=False)) for _ in range(n_users)]
    return StyleFactors(
        user_factors=rng.normal(size=(n_users, f)), item_factors=rng.normal(size=(n_items, f)),
        item_bias=rng.normal(size=n_items), item_popularity=rng.integers(0, 9, n_items),
        W=rng.normal(size=(d, f)), code_mean=rng.normal(size=d), code_scale=2.0,
        seen_indptr=np.arange(0, 3 * n_users + 1, 3), seen_indices=np.concatenate(seen),
    )


def test_scores_follow_the_formula_and_cold_start() -> None:
    f = _factors()
    s = f.user_scores([2, -1])
    np.testing.assert_allclose(s[0], f.user_factors[2] @ f.item_factors.T + f.item_bias,
                               rtol=1e-6)
    np.testing.assert_allclose(s[1], np.log1p(f.item_popularity), rtol=1e-6)
    pairs = f.score([2, 2, -1, 2], [5, 99, 5, 99])
    assert pairs[0] == pytest.approx(s[0, 5], abs=1e-5)
    assert pairs[1] == pytest.approx(f.prior)  # unknown item, no code: the prior
    assert pairs[2] == pytest.approx(np.log1p(f.item_popularity[5]))
    code = np.ones((1, 4))
    with_code = f.score([2], [99], item_codes=code)[0]
    assert with_code == pytest.approx(f.prior + f.user_factors[2] @ f.embed_codes(code)[0],
                                      abs=1e-5)
    assert not f.user_factors.flags.writeable  # shared by readers: read-only


def test_recommend_user_is_the_exact_top_with_style_term_and_exclusion() -> None:
    f = _factors(1)
    style = np.random.default_rng(2).normal(size=f.n_factors).astype(np.float32)
    styled = np.zeros(f.n_items, bool)
    styled[::3] = True
    for u in (0, 7, -1):
        rows, scores = f.recommend_user(u, 5, f.seen_items(u), style, styled)
        full = f.score_user_items(u, np.arange(f.n_items), style, styled)
        full[f.seen_items(u)] = -np.inf
        np.testing.assert_array_equal(rows, top_k(full[None, :], 5)[0])
        np.testing.assert_allclose(scores, full[rows], rtol=1e-6)
        assert not set(rows.tolist()) & set(f.seen_items(u).tolist())
    # the batch recommend agrees with the one-user path
    items, _ = f.recommend([0, 7], k=5)
    np.testing.assert_array_equal(items[1], f.recommend_user(7, 5, f.seen_items(7))[0])


def test_top_k_row_matches_the_full_sort_with_ties_and_exclusions() -> None:
    rng = np.random.default_rng(3)
    for n in (5, 700, 20_000):
        s = rng.integers(0, 4, n).astype(np.float32)  # many ties
        s[rng.choice(n, n // 3, replace=False)] = -np.inf
        np.testing.assert_array_equal(top_k_row(s, 10), top_k(s[None, :], 10)[0])


def test_appended_cold_items_score_from_their_codes() -> None:
    f = _factors(4).with_whitening(np.zeros(4), np.eye(4) * 2)
    raw = np.random.default_rng(5).normal(size=(2, 4))
    g = f.append_items(3, coded_rows=np.array([0, 2]), raw_codes=raw)
    assert g.n_items == f.n_items + 3
    s = g.score_user_items(1, np.array([f.n_items, f.n_items + 1, f.n_items + 2, -1]))
    emb = f.embed_codes(raw * 2)
    want = [f.user_factors[1] @ emb[0] + f.prior, f.prior, f.user_factors[1] @ emb[1] + f.prior,
            f.prior]
    np.testing.assert_allclose(s, want, atol=1e-5)
    assert g.score_user_items(-1, np.array([f.n_items]))[0] == 0.0  # no popularity yet


def test_blend_and_top_styles() -> None:
    emb = np.eye(3, dtype=np.float32)
    np.testing.assert_allclose(blend(emb[:2], [3.0, 1.0]), [0.75, 0.25, 0.0])
    f = _factors(6, f=3, d=3)
    rows, vals = f.top_by_embedding(emb, 2, chunk=7)
    aff = f.affinity(np.arange(f.n_users), emb)
    np.testing.assert_array_equal(rows, top_k(aff, 2))
    np.testing.assert_allclose(vals, np.take_along_axis(aff, rows, 1))


def test_save_load_and_bad_files(tmp_path: Path) -> None:
    f = _factors(7)
    f.save(tmp_path / "m", extra_arrays={"note": np.arange(3)}, meta={"who": "test"})
    g, arrays, meta = StyleFactors.read(tmp_path / "m.npz")
    assert meta["who"] == "test" and "note" in arrays
    np.testing.assert_array_equal(g.user_scores([0, 3]), f.user_scores([0, 3]))
    assert g.code_scale == 2.0
    (tmp_path / "m.json").write_text('{"format_version": 1, "n_users": 30, "n_items": 50}')
    with pytest.raises(ValueError, match="format_version 1"):
        StyleFactors.load(tmp_path / "m")
    with pytest.raises(FileNotFoundError):
        StyleFactors.load(tmp_path / "missing")
    with pytest.raises(ValueError, match="factor shapes"):
        StyleFactors(user_factors=np.zeros((2, 3)), item_factors=np.zeros((2, 4)),
                     item_bias=np.zeros(2), item_popularity=np.zeros(2), W=None)
