"""Offline evaluation: top-k ranking metrics per user and in aggregate, with bootstrap CIs.

Why vectorised and chunked: scoring every user against every item is the one
dense operation evaluation cannot avoid, so it is done a chunk of users at a
time (bounded memory) and the top-k is taken with ``np.argpartition`` (linear
time) rather than a full sort.

Definitions (documented because papers differ):

* ``recall@k = hits / min(k, |relevant|)`` (so a perfect list scores 1 even
  when a user has more held-out items than ``k``);
* ``ndcg@k`` with binary gains, ideal DCG over ``min(k, |relevant|)`` items;
* ``map@k`` = mean over hit positions of precision@position, divided by
  ``min(k, |relevant|)``;
* ``hit_rate@k`` = 1 when at least one relevant item is in the top k;
* ``coverage@k`` = share of the catalog appearing in anyone's top k;
* ``style_diversity@k`` = mean pairwise cosine distance of the item style codes
  inside each list (only when item codes are given).

Relevant items the model cannot know (unseen in train) still count in
``|relevant|``: they are real misses, and dropping them would flatter models.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

ScoreFn = Callable[[np.ndarray], np.ndarray]
"""Maps an array of known user indices to a dense ``(len, n_items)`` score block."""


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest scores per row, best first (ties broken by index)."""
    n = scores.shape[1]
    k = min(k, n)
    if k <= 0:
        return np.empty((scores.shape[0], 0), dtype=np.int64)
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    part_scores = np.take_along_axis(scores, part, axis=1)
    # argpartition picks arbitrary members of a tie straddling the k-th place
    # (common with integer popularity counts); re-pick those rows by index.
    kth = part_scores.min(axis=1, keepdims=True)
    above = scores > kth
    at = scores == kth
    ambiguous = np.flatnonzero(above.sum(axis=1) + at.sum(axis=1) > k)
    if len(ambiguous):
        a_at = at[ambiguous]
        room = k - above[ambiguous].sum(axis=1, keepdims=True)
        keep = above[ambiguous] | (a_at & (np.cumsum(a_at, axis=1) <= room))
        part[ambiguous] = np.nonzero(keep)[1].reshape(len(ambiguous), k)
        part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.lexsort((part, -part_scores))
    return np.take_along_axis(part, order, axis=1)


def rank_users(
    score_fn: ScoreFn,
    users: np.ndarray,
    k: int,
    exclude: sp.csr_matrix | None = None,
    chunk_size: int = 2048,
) -> np.ndarray:
    """Top-k item indices for ``users`` (``(len(users), k)``), seen items excluded.

    ``exclude`` is a user x item CSR (usually the train matrix); its entries are
    set to ``-inf`` before the top-k, so a model is never credited for
    re-recommending what the user already has.
    """
    out: list[np.ndarray] = []
    for start in range(0, len(users), chunk_size):
        block = np.asarray(users[start : start + chunk_size])
        scores = np.array(score_fn(block), dtype=np.float32, copy=True)
        if exclude is not None:
            sub = exclude[block]
            rows = np.repeat(np.arange(len(block)), np.diff(sub.indptr))
            scores[rows, sub.indices] = -np.inf
        out.append(top_k(scores, k))
    if not out:
        return np.empty((0, k), dtype=np.int64)
    return np.vstack(out)


@dataclass
class EvaluationResult:
    """Per-user metrics (one row per evaluated user) and their aggregate with CIs."""

    per_user: pd.DataFrame
    aggregate: dict[str, float]
    confidence: dict[str, tuple[float, float]]

    def summary(self) -> dict[str, float]:
        """Aggregate metrics as a flat dict (what the CLI prints)."""
        return dict(self.aggregate)


def ranking_metrics(
    recommended: np.ndarray, relevant: list[np.ndarray], k: int
) -> dict[str, np.ndarray]:
    """Per-user NDCG/Recall/MAP/HitRate at ``k`` for given lists (vectorised over users).

    ``recommended`` is ``(n_users, >=k)`` item indices (``-1`` pads short lists);
    ``relevant[u]`` the held-out item indices of user ``u`` (unknown items as ``-1``,
    which never match a recommendation but count in the denominator).
    """
    n = len(relevant)
    rec = recommended[:, :k]
    n_rel = np.fromiter((len(r) for r in relevant), dtype=np.int64, count=n)
    # Membership test vectorised over users: encode (user, item) pairs as one int64 key.
    lengths = np.array([int((r >= 0).sum()) for r in relevant], dtype=np.int64)
    cols = np.concatenate([r[r >= 0] for r in relevant]) if n else np.empty(0, np.int64)
    width = int(max(rec.max(initial=-1), cols.max(initial=-1))) + 1
    rel_keys = np.repeat(np.arange(n, dtype=np.int64), lengths) * width + cols
    rec_keys = np.arange(n, dtype=np.int64)[:, None] * width + rec
    hits = np.isin(rec_keys, rel_keys) & (rec >= 0)
    denom = np.minimum(k, n_rel).astype(np.float64)
    denom_safe = np.where(denom > 0, denom, 1.0)
    discounts = 1.0 / np.log2(np.arange(2, rec.shape[1] + 2))
    dcg = (hits * discounts).sum(axis=1)
    idcg = np.array([discounts[: int(d)].sum() for d in denom])
    idcg_safe = np.where(idcg > 0, idcg, 1.0)
    n_hits = hits.sum(axis=1)
    precision_at = np.cumsum(hits, axis=1) / np.arange(1, rec.shape[1] + 1)
    ap = (precision_at * hits).sum(axis=1) / denom_safe
    valid = n_rel > 0
    return {
        f"ndcg@{k}": np.where(valid, dcg / idcg_safe, np.nan),
        f"recall@{k}": np.where(valid, n_hits / denom_safe, np.nan),
        f"map@{k}": np.where(valid, ap, np.nan),
        f"hit_rate@{k}": np.where(valid, (n_hits > 0).astype(np.float64), np.nan),
    }


def style_diversity(recommended: np.ndarray, item_codes: np.ndarray) -> np.ndarray:
    """Mean pairwise cosine distance of item codes inside each list (per user)."""
    codes = np.asarray(item_codes, dtype=np.float64)
    codes = codes - codes.mean(axis=0, keepdims=True)
    norms = np.linalg.norm(codes, axis=1, keepdims=True)
    unit = codes / np.where(norms > 0, norms, 1.0)
    out = np.full(len(recommended), np.nan)
    for start in range(0, len(recommended), 4096):
        block = recommended[start : start + 4096]
        valid = block >= 0
        vec = unit[np.where(valid, block, 0)] * valid[..., None]
        sims = np.einsum("ukd,ujd->ukj", vec, vec)
        m = valid.sum(axis=1)
        pairs = m * (m - 1)
        off_diag = sims.sum(axis=(1, 2)) - np.einsum("ukk->u", sims)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[start : start + len(block)] = np.where(pairs > 0, 1.0 - off_diag / pairs, np.nan)
    return out


def bootstrap_ci(
    values: np.ndarray, n_boot: int = 1000, alpha: float = 0.05, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean, resampling users (NaNs ignored).

    Users are the unit of resampling because metrics are correlated within a
    user; the resampling is done in blocks so memory stays bounded.
    """
    v = np.asarray(values, dtype=np.float64)
    v = v[~np.isnan(v)]
    if len(v) == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot)
    block = max(1, min(n_boot, 20_000_000 // max(len(v), 1)))
    for start in range(0, n_boot, block):
        b = min(block, n_boot - start)
        idx = rng.integers(0, len(v), size=(b, len(v)))
        means[start : start + b] = v[idx].mean(axis=1)
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return (float(lo), float(hi))


def evaluate_rankings(
    recommended: np.ndarray,
    relevant: list[np.ndarray],
    k: int,
    n_items: int,
    item_codes: np.ndarray | None = None,
    user_ids: np.ndarray | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> EvaluationResult:
    """Metrics for precomputed top-k lists: per user, aggregate means, bootstrap CIs."""
    metrics = ranking_metrics(recommended, relevant, k)
    if item_codes is not None:
        metrics[f"style_diversity@{k}"] = style_diversity(recommended[:, :k], item_codes)
    per_user = pd.DataFrame(metrics)
    if user_ids is not None:
        per_user.insert(0, "user_id", np.asarray(user_ids))
    aggregate = {
        name: float(np.nanmean(v)) if np.isfinite(v).any() else float("nan")
        for name, v in metrics.items()
    }
    rec = recommended[:, :k]
    aggregate[f"coverage@{k}"] = float(len(np.unique(rec[rec >= 0])) / max(n_items, 1))
    aggregate["n_users"] = float(len(relevant))
    confidence = {name: bootstrap_ci(v, n_boot=n_boot, seed=seed) for name, v in metrics.items()}
    return EvaluationResult(per_user, aggregate, confidence)


def relevant_lists(
    test: sp.csr_matrix, users: np.ndarray, unknown_counts: np.ndarray | None = None
) -> list[np.ndarray]:
    """Held-out item indices per user from a test CSR; ``unknown_counts`` adds ``-1`` entries
    for held-out items the model has never seen."""
    out = []
    for j, u in enumerate(users):
        items = test.indices[test.indptr[u] : test.indptr[u + 1]].astype(np.int64)
        extra = 0 if unknown_counts is None else int(unknown_counts[j])
        out.append(np.concatenate([items, -np.ones(extra, dtype=np.int64)]))
    return out


def truth_recall_at_k(
    predicted: np.ndarray, truth: np.ndarray, k: int, mask: np.ndarray | None = None
) -> np.ndarray:
    """Per row: share of the ``k`` best columns by ``truth`` that are among the ``k`` best by
    ``predicted`` (e.g. a user's planted top-3 styles against the model's top 3).

    ``mask`` (boolean, one per column) removes columns from both rankings, such as
    styles a log-based check cannot see.  Ties in ``truth`` are broken by column order.
    """
    pred = np.asarray(predicted, dtype=np.float64)
    true = np.asarray(truth, dtype=np.float64)
    if pred.shape != true.shape or pred.ndim != 2:
        raise ValueError(f"predicted {pred.shape} and truth {true.shape} must be equal 2-D shapes")
    if mask is not None:
        keep = ~np.asarray(mask, dtype=bool)
        pred, true = pred[:, keep], true[:, keep]
    k = min(k, pred.shape[1])
    if k < 1:
        raise ValueError("k must be >= 1 and there must be columns left to rank")
    n = len(pred)
    top_p = top_k(pred, k)
    top_t = top_k(true, k)
    hit = (top_p[:, :, None] == top_t[:, None, :]).any(axis=2).sum(axis=1)
    return hit.astype(np.float64) / k if n else np.empty(0)


def column_spearman(predicted: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Spearman correlation per column between two ``(n_rows, n_cols)`` arrays (e.g. every
    user's affinity for one style, model against planted); NaN for constant columns."""
    from scipy.stats import spearmanr

    pred = np.asarray(predicted, dtype=np.float64)
    true = np.asarray(truth, dtype=np.float64)
    if pred.shape != true.shape or pred.ndim != 2:
        raise ValueError(f"predicted {pred.shape} and truth {true.shape} must be equal 2-D shapes")
    out = np.full(pred.shape[1], np.nan)
    for j in range(pred.shape[1]):
        if np.ptp(pred[:, j]) > 0 and np.ptp(true[:, j]) > 0:
            out[j] = float(spearmanr(pred[:, j], true[:, j]).statistic)
    return out


def evaluate_scores(
    score_fn: ScoreFn,
    train: sp.csr_matrix,
    relevant: list[np.ndarray],
    users: np.ndarray,
    k: int = 10,
    fallback_scores: np.ndarray | None = None,
    item_codes: np.ndarray | None = None,
    chunk_size: int = 2048,
    n_boot: int = 1000,
    seed: int = 0,
) -> EvaluationResult:
    """Rank, exclude seen items, and score ``users`` (indices into ``train``'s rows).

    Users with index ``< 0`` or ``>= train.shape[0]`` are unknown to the model:
    they get ``fallback_scores`` (the popularity prior by convention) — the
    documented cold-start rule — instead of being silently dropped.
    """
    users = np.asarray(users, dtype=np.int64)
    n_users, n_items = train.shape
    known = (users >= 0) & (users < n_users)
    recommended = np.full((len(users), k), -1, dtype=np.int64)
    if known.any():
        recommended[known] = rank_users(
            score_fn, users[known], k, exclude=train, chunk_size=chunk_size
        )
    if (~known).any():
        if fallback_scores is None:
            fallback_scores = np.asarray(train.sum(axis=0)).ravel()
        recommended[~known] = top_k(np.asarray(fallback_scores, dtype=np.float64)[None, :], k)[0]
    return evaluate_rankings(
        recommended, relevant, k, n_items, item_codes=item_codes, n_boot=n_boot, seed=seed
    )
