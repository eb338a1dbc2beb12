"""PyTorch building blocks of the style-preference model's fit (:mod:`recsys.model`).

Why apart from the trainer: these are the pieces that know nothing of the
model's hyper-parameters -- gathering CSR rows, the weighted bag of history
rows, the row-wise Adam, the negative sampler, the style events and their
likelihood -- so the training loop (:mod:`recsys._trainer`) reads as the
algorithm.  Importing this module loads PyTorch; serving never does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F

MASKED = -1e9
"""Log-exposure of a style the user was never shown (a logit that never wins)."""


def _as_csr(interactions: Any) -> sp.csr_matrix:
    matrix = getattr(interactions, "matrix", interactions)
    if not sp.issparse(matrix):
        raise ValueError("interactions must be a scipy.sparse matrix or recsys.Interactions")
    return sp.csr_matrix(matrix, dtype=np.float32)


def _row_normalised(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """Rows scaled to unit L2 norm: heavy users do not get longer vectors by count alone."""
    out = matrix.astype(np.float32, copy=True)
    sq = np.asarray(out.multiply(out).sum(axis=1)).ravel()
    scale = np.where(sq > 0, 1.0 / np.sqrt(np.maximum(sq, 1e-12)), 0.0).astype(np.float32)
    out.data *= np.repeat(scale, np.diff(out.indptr))
    return out


def _gather_rows(indptr: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Entry positions of CSR ``rows`` and the batch-local row of each (vectorised)."""
    starts = indptr[rows]
    lengths = indptr[rows + 1] - starts
    total = int(lengths.sum())
    local = np.repeat(np.arange(len(rows)), lengths)
    offsets = np.arange(total) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return np.repeat(starts, lengths) + offsets, local


def _bag(
    idx: np.ndarray, local: np.ndarray, w: np.ndarray, table: torch.Tensor, n_rows: int
) -> torch.Tensor:
    """Weighted sums of ``table`` rows per batch row (``local``: batch row of each entry)."""
    counts = np.bincount(local, minlength=n_rows)
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    return F.embedding_bag(
        torch.from_numpy(np.asarray(idx, dtype=np.int64)),
        table,
        torch.from_numpy(offsets),
        mode="sum",
        per_sample_weights=torch.from_numpy(np.ascontiguousarray(w, dtype=np.float32)),
    )


@dataclass
class _Params:
    """The model's tables: encoder ``Y``, free item part ``Q``, bias ``b``, ``W``, offsets ``E``.

    Plain tensors, not autograd leaves: each step copies the rows a batch uses
    into small leaves, and :class:`_RowAdam` writes the updates back.
    """

    Y: torch.Tensor
    Q: torch.Tensor
    b: torch.Tensor
    W: torch.Tensor
    E: torch.Tensor

    def all(self) -> tuple[torch.Tensor, ...]:
        return (self.Y, self.Q, self.b, self.W, self.E)


class _RowAdam:
    """Adam for the rows of a table that a step used (lazy, as ``torch.optim.SparseAdam``).

    Why not ``SparseAdam``: it coalesces a sparse gradient with one row per
    *lookup* and masks the whole moment tables with it; on a 1M-user log that
    cost ten times the model itself.  Here the step gathers each used row once
    (unique ids), autograd runs on those small dense blocks, and the update is
    written back by index.  Moments of rows a step did not use stay untouched;
    bias correction uses the global step count, as ``SparseAdam`` does.
    """

    def __init__(self, table: torch.Tensor, lr: float, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8) -> None:
        self.table, self.lr, self.betas, self.eps = table, lr, betas, eps
        self.m = torch.zeros_like(table)
        self.v = torch.zeros_like(table)
        self.t = 0

    def step(self, rows: torch.Tensor, grad: torch.Tensor) -> None:
        self.t += 1
        b1, b2 = self.betas
        m = self.m[rows].mul_(b1).add_(grad, alpha=1.0 - b1)
        v = self.v[rows].mul_(b2).addcmul_(grad, grad, value=1.0 - b2)
        self.m[rows] = m
        self.v[rows] = v
        denom = (v / (1.0 - b2**self.t)).sqrt_().add_(self.eps)
        self.table[rows] -= (self.lr / (1.0 - b1**self.t)) * m / denom


@dataclass
class _Validation:
    """Users of the early-stopping slice and their held-out positives (user x item CSR)."""

    users: np.ndarray
    items: sp.csr_matrix


class _NegativeSampler:
    """Shared negatives drawn from popularity^power, with their log-probabilities (logQ).

    One draw of ``n`` items serves the whole mini-batch (a ``(batch, n)`` matrix
    product instead of per-user sampling); the logQ correction keeps the sampled
    softmax an unbiased stand-in for the full one.
    """

    def __init__(self, popularity: np.ndarray, power: float, n: int) -> None:
        q = np.power(np.maximum(popularity, 0) + 1.0, power)
        q /= q.sum()
        self.n = n
        self.cdf = np.cumsum(q)
        self.log_q_t = torch.from_numpy(np.log(q * n).astype(np.float32))

    def draw(self, rng: np.random.Generator) -> np.ndarray:
        idx = np.searchsorted(self.cdf, rng.random(self.n) * self.cdf[-1])
        return np.minimum(idx, len(self.cdf) - 1).astype(np.int64)


@dataclass
class _FitContext:
    """What every training step reads: the matrices, style events, codes and sampler."""

    inputs: sp.csr_matrix
    targets: sp.csr_matrix
    style: dict[str, Any] | None
    codes: torch.Tensor | None
    full: bool
    sampler: _NegativeSampler
    reg_scale: float
    rng: np.random.Generator


def _split_style_events(
    style: dict[str, Any], rng: np.random.Generator, share: float
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Hold out ``share`` of the positive style events (exposures stay shared)."""
    n = len(style["cols"])
    n_val = int(round(share * n))
    if n_val < 1 or n - n_val < 1:
        return style, None
    held = np.zeros(n, dtype=bool)
    held[rng.choice(n, size=n_val, replace=False)] = True
    counts = np.diff(style["indptr"])
    row = np.repeat(np.arange(len(counts)), counts)

    def part(mask: np.ndarray) -> dict[str, Any]:
        out = dict(style)
        out["indptr"] = np.concatenate([[0], np.cumsum(np.bincount(row[mask],
                                                                    minlength=len(counts)))])
        out["cols"] = style["cols"][mask]
        out["weights"] = style["weights"][mask]
        return out

    return part(~held), part(held)


def prepare_style_events(
    style_events: np.ndarray | None, style_t: torch.Tensor | None, n_users: int
) -> dict[str, Any] | None:
    """Positive style events grouped by user, and the per-user exposure counts."""
    if style_events is None or style_t is None or len(style_events) == 0:
        return None
    ev = np.asarray(style_events, dtype=np.float64)
    if ev.ndim != 2 or ev.shape[1] != 4:
        raise ValueError("style_events must have rows (user_idx, item_idx, style_idx, weight)")
    users = ev[:, 0].astype(np.int64)
    styles = ev[:, 2].astype(np.int64)
    w = ev[:, 3]
    n_styles = len(style_t)
    if (users < 0).any() or (users >= n_users).any():
        raise ValueError("style_events: user_idx out of range")
    if (styles < -1).any() or (styles >= n_styles).any():
        raise ValueError("style_events: style_idx out of range (-1 = original image)")
    # Candidate column 0 is the original image, columns 1.. the styles.
    col = styles + 1
    impressions = w <= 0
    expo_rows = impressions if impressions.any() else np.ones_like(impressions)
    exposure = sp.csr_matrix(
        (np.ones(int(expo_rows.sum())), (users[expo_rows], col[expo_rows])),
        shape=(n_users, n_styles + 1),
    )
    global_share = np.asarray(exposure.sum(axis=0)).ravel()
    global_share = global_share / max(global_share.sum(), 1.0)
    positive = w > 0
    if not positive.any():
        return None
    order = np.argsort(users[positive], kind="stable")
    pu_users = users[positive][order]
    wpos = w[positive][order]
    return {
        "indptr": np.searchsorted(pu_users, np.arange(n_users + 1)),
        "cols": col[positive][order],
        "weights": (wpos / wpos.mean()).astype(np.float32),
        "exposure": exposure if impressions.any() else None,
        "global": global_share,
        "codes": style_t,
    }

def style_nll(
    style: dict[str, Any], sel: np.ndarray, pu: torch.Tensor, W: torch.Tensor
) -> torch.Tensor:
    """Summed NLL of: which of the styles the user was exposed to did the positive event
    happen on?"""
    entries, local = _gather_rows(style["indptr"], sel)
    if len(entries) == 0:
        return torch.zeros(())
    expo = style["global"][None, :]
    if style["exposure"] is not None:
        expo = np.asarray(style["exposure"][sel].todense()) + expo
    with np.errstate(divide="ignore"):
        log_expo = np.where(expo > 0, np.log(expo), MASKED).astype(np.float32)
    emb = style["codes"] @ W  # (n_styles, f)
    logits = torch.cat([torch.zeros(len(sel), 1), pu @ emb.T], dim=1)
    logits = logits + torch.from_numpy(log_expo)
    rows = torch.from_numpy(local)
    target = torch.from_numpy(style["cols"][entries])
    w = torch.from_numpy(style["weights"][entries])
    ce = F.cross_entropy(logits[rows], target, reduction="none")
    return (ce * w).sum()
