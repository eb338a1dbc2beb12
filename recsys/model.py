"""The style-preference model: collaborative filtering whose item vectors know their style.

Score of user ``u`` for item ``i`` (optionally shown rendered in style ``s``)::

    score(u, i[, s]) = p_u . (q_i + W c_i [+ W c_s]) + b_i
    p_u             = sum_j x_uj y_j / ||x_u||  +  e_u

``q_i`` are free item vectors, ``c_i`` / ``c_s`` the style codes of the item's
image / of the style it was rendered in (standardised with the statistics of the
codes seen at fit time), ``W`` a learned linear projection of the code space into
the preference space and ``b_i`` an item bias.  ``W`` is what makes the model
"learn style embeddings from click/purchase logs": it maps *any* style code, even
that of a style never shown to anyone, into the space where ``p_u . W c_s`` is
user ``u``'s affinity for style ``s`` (relative to the original photo).

User vectors are the sum of two parts.  The first is an *encoder* of the user's
history ``x_u`` (a learned item-to-user embedding ``y_j``, L2-normalised weights,
input dropout while training): a free vector per user would have to be learned
from that user's few events alone, while ``y_j`` is shared by everyone who
touched item ``j``, and the encoder folds in new users without a refit
(:meth:`encode_users`).  The second is a free per-user offset ``e_u`` that carries
what the item history cannot show: the user's reactions to rendered styles.

Objective (why PyTorch rather than ``implicit``): a multinomial likelihood of each
user's positive entries under a softmax over the catalogue -- exact when the
catalogue has at most ``full_softmax_items`` items, otherwise a sampled softmax
with ``negatives`` popularity^0.75 negatives shared by the mini-batch of users and
the logQ correction.  ``implicit`` offers only ALS/BPR/LMF objectives and no way to
tie item factors to a projection of side features, which is the whole point here.

Style events add a second, small softmax: *given* a positive event on an image,
which of the images the user was exposed to (the original photo or a render in
some style) was it?  Its logits are ``log exposure(u, s) + p_u . W c_s`` (0 for
the original), so styles the user saw more often are not mistaken for styles the
user prefers, and the original photo anchors the scale of affinities.

Training, in two stages, each early-stopped on data carved out of the training
input:

1. *Collaborative*: ``Y``, ``Q``, ``b`` (and ``W`` through item codes) on the item
   likelihood, stopped on NDCG@10 of held-out positives.  The bias starts at log
   popularity.  No per-user parameters here: trained on the users' own items the
   free offsets fitted noise (measured, ``docs/benchmarks.md``).
2. *Style* (only with style events): ``W`` and the offsets ``e_u`` on the style
   and item likelihoods with the stage-1 tables frozen, stopped on the
   likelihood of held-out style events.

Each step gathers only the rows it uses (the batch's users, their history
items, the positives and the shared negatives; never a dense user x item
matrix), and a row-wise lazy Adam (:class:`_RowAdam`) writes the updates back.
Seeded and deterministic.  With no codes it is a plain CF model.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from recsys.evaluation import rank_users, ranking_metrics, top_k

log = logging.getLogger(__name__)

_FORMAT_VERSION = 2
_MASKED = -1e9
_PARAMS = (
    "factors",
    "epochs",
    "batch_size",
    "learning_rate",
    "l2",
    "user_l2",
    "dropout",
    "negatives",
    "full_softmax_items",
    "sampling_power",
    "style_weight",
    "validation_users",
    "patience",
    "seed",
    "min_batches",
    "max_steps",
    "validate_every",
    "style_epochs",
    "validation_share_style",
)


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


class StylePreferenceModel:
    """User vectors ``p_u``, item vectors ``q_i + W c_i``, style embeddings ``W c_s``.

    Parameters are plain hyper-parameters (scikit-learn shape); learned
    attributes end in ``_``.  ``batch_size`` counts users; an epoch has at
    least ``min_batches`` optimizer steps (the batch shrinks on small logs) and
    a fit at most ``max_steps`` steps in all (``None``: no cap); early stopping
    validates every epoch or every ``validate_every`` steps, whichever comes
    first, and stops after ``patience`` rounds without improvement.  ``l2`` is
    the weight decay of the item-side parameters (1e-3 rather than 1e-4: mean
    NDCG@10 +1.6 % on MovieLens over 12 seeds, +2.3 % on the generated log,
    neutral on the demo world; 3e-3 already loses on MovieLens;
    docs/benchmarks.md); ``user_l2`` the precision of the Gaussian prior on a
    user's style offset, in units of that user's summed style log-likelihood
    (an offset moves only when the user's clicks on renders outweigh it);
    ``dropout`` the share of history entries hidden from the encoder at each
    step (the denoising that keeps it from learning the identity).
    ``validation_users`` bounds the early-stopping slice (see :meth:`fit`);
    ``style_epochs`` and ``validation_share_style`` drive the style stage.
    """

    def __init__(
        self,
        factors: int = 64,
        epochs: int = 100,
        batch_size: int = 512,
        learning_rate: float = 0.003,
        l2: float = 1e-3,
        user_l2: float = 1.0,
        dropout: float = 0.5,
        negatives: int = 2048,
        full_softmax_items: int = 20_000,
        sampling_power: float = 0.75,
        style_weight: float = 1.0,
        validation_users: int = 2000,
        patience: int = 5,
        seed: int = 0,
        min_batches: int = 16,
        max_steps: int | None = None,
        validate_every: int = 1000,
        style_epochs: int = 100,
        validation_share_style: float = 0.1,
        show_progress: bool | None = None,
    ) -> None:
        self.factors = factors
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.l2 = l2
        self.user_l2 = user_l2
        self.dropout = dropout
        self.negatives = negatives
        self.full_softmax_items = full_softmax_items
        self.sampling_power = sampling_power
        self.style_weight = style_weight
        self.validation_users = validation_users
        self.patience = patience
        self.seed = seed
        self.min_batches = min_batches
        self.max_steps = max_steps
        self.validate_every = validate_every
        self.style_epochs = style_epochs
        self.validation_share_style = validation_share_style
        self.show_progress = show_progress

    # ------------------------------------------------------------------ params
    def get_params(self) -> dict[str, Any]:
        """Hyper-parameters as a dict (saved beside the weights)."""
        return {k: getattr(self, k) for k in _PARAMS}

    def _check_params(self) -> None:
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        for name in ("factors", "batch_size", "negatives", "min_batches", "validate_every"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1 or None, got {self.max_steps}")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")

    # --------------------------------------------------------------- fitting
    def fit(
        self,
        interactions: Any,
        item_codes: np.ndarray | None = None,
        style_codes: np.ndarray | None = None,
        style_events: np.ndarray | None = None,
        init_from: StylePreferenceModel | str | Path | None = None,
    ) -> StylePreferenceModel:
        """Fit on a user x item confidence matrix (CSR or :class:`recsys.Interactions`).

        ``item_codes`` ``(n_items, d)`` are aligned with the item IdMap; ``style_codes``
        ``(n_styles, d)``; ``style_events`` rows ``(user_idx, item_idx, style_idx, weight)``
        with ``style_idx = -1`` for the original image and ``weight <= 0`` for impressions
        without a positive event.  ``init_from`` warm-starts from a previous model:
        stable id maps make old rows line up by index, new rows start fresh.

        Early stopping watches NDCG@10 on positives carved out of the *training*
        matrix: up to ``validation_users`` users, and when fewer users qualify each
        gives several positives (at most a fifth of its own), so the slice holds
        about ``validation_users`` positives on a 300-user log as on a million-user
        one and the stopping signal is not the noise of a few hundred single items.
        """
        t0 = time.perf_counter()
        self._check_params()
        matrix = _as_csr(interactions)
        n_users, n_items = matrix.shape
        if n_users == 0 or n_items == 0:
            raise ValueError("interactions: empty matrix")
        rng = np.random.default_rng(self.seed)
        torch.manual_seed(self.seed)
        pos = matrix.copy()
        pos.data[pos.data < 0] = 0
        pos.eliminate_zeros()
        pos.sort_indices()
        if pos.nnz == 0:
            raise ValueError("interactions: no positive entries to learn from")
        prev = _load_if_path(init_from)
        code_dim, codes_t, style_t = self._prepare_codes(item_codes, style_codes, n_items, prev)

        train, val = self._carve_validation(pos, rng)
        inputs = _row_normalised(train)
        # Targets: confidences scaled to mean 1, so learning rate and l2 mean the same
        # thing whatever the event weights.  ``inputs`` and ``targets`` share train's
        # sparsity pattern, so one gather of a batch's rows serves both.
        targets = train.copy()
        targets.data = (targets.data / targets.data.mean()).astype(np.float32)
        popularity = np.asarray(pos.sum(axis=0)).ravel().astype(np.float64)

        p = self._init_params(n_users, n_items, code_dim, popularity, prev)
        full = n_items <= self.full_softmax_items
        sampler = _NegativeSampler(popularity, self.sampling_power, min(self.negatives, n_items))
        style = self._prepare_style_events(style_events, style_t, n_users)
        active = np.flatnonzero(np.diff(train.indptr) > 0)
        if style is not None:
            active = np.union1d(active, np.flatnonzero(np.diff(style["indptr"]) > 0))
        # Convergence is a matter of optimizer steps, not of passes over the data: on a
        # 300-user log an epoch of 512-user batches is one step, and 100 "epochs" are
        # far too few.  Smaller batches there; full batches on large logs.
        batch = max(1, min(self.batch_size, int(np.ceil(len(active) / self.min_batches))))
        ctx = _FitContext(inputs, targets, style, codes_t, full, sampler,
                          reg_scale=batch / max(len(active), 1), rng=rng)
        opts = self._optimizers(p, train_items=True)

        best: tuple[float, tuple[np.ndarray, ...] | None, int] = (-np.inf, None, 0)
        history: list[dict[str, float]] = []
        bad_rounds = 0
        disable = not sys.stderr.isatty() if self.show_progress is None else not self.show_progress
        for epoch, loss, total_steps in self._rounds(p, ctx, opts, active, batch, self.epochs,
                                                     disable, train_items=True):
            record: dict[str, float] = {"epoch": round(epoch, 4), "loss": loss,
                                        "steps": total_steps}
            if val is not None:
                score = self._validate(inputs, p, codes_t, train, val)
                record["val_ndcg@10"] = score
                if score > best[0] + 1e-6:
                    best = (score, self._snapshot(p), round(epoch, 4))
                    bad_rounds = 0
                else:
                    bad_rounds += 1
            history.append(record)
            # Per-round lines are for `-v`: the CLI shows this logger's INFO only then.
            if val is not None:
                log.info("fit epoch %.2f: loss %.4f, validation NDCG@10 %.4f (best %.4f at "
                         "epoch %.2f)", epoch, loss, record["val_ndcg@10"], best[0], best[2])
            else:
                log.info("fit epoch %.2f: loss %.4f", epoch, loss)
            if val is not None and bad_rounds >= self.patience:
                break
            if self.max_steps is not None and total_steps >= self.max_steps:
                break
        if best[1] is not None:
            self._restore(p, best[1])
            # A validation NDCG that falls from the first epoch on is not a failed fit: the
            # item bias starts at log popularity, which already ranks well on popularity-led
            # logs, and early stopping keeps the best epoch's weights, not the last.
            log.info("fit: kept epoch %.2f of %.2f (validation NDCG@10 %.4f on positives held "
                     "out of the training data; %s)", best[2], history[-1]["epoch"], best[0],
                     "later epochs scored lower, so training stopped early" if
                     best[2] < history[-1]["epoch"] else "the last epoch was the best")
        style_history: list[dict[str, float]] = []
        if style is not None and self.style_epochs > 0:
            style_history = self._fit_style(p, ctx, batch, disable)
        Y_, Q_, b_, W_, E_ = self._snapshot(p)
        self.history_item_factors_ = Y_
        self.user_offsets_ = E_
        self.free_item_factors_ = Q_
        self.item_bias_ = b_.ravel()
        self.W_ = W_
        self.item_codes_ = None if codes_t is None else codes_t.numpy().copy()
        self.item_popularity_ = popularity
        self.seen_ = pos
        self.n_users_, self.n_items_ = n_users, n_items
        # Final user vectors from the *whole* history (validation positives included).
        self.user_factors_ = self.encode_users(pos) + E_
        self.history_ = history
        self.style_history_ = style_history
        self.best_epoch_ = best[2] if best[1] is not None else history[-1]["epoch"]
        self.batch_size_ = batch
        self.fit_seconds_ = time.perf_counter() - t0
        return self

    def _init_params(
        self,
        n_users: int,
        n_items: int,
        code_dim: int,
        popularity: np.ndarray,
        prev: StylePreferenceModel | None,
    ) -> _Params:
        f = self.factors
        gen = torch.Generator().manual_seed(self.seed)
        # The bias starts where the softmax without personalisation ends (log
        # popularity, centred): the personal part then only learns what popularity
        # misses, and a popularity-dominated log is served well from the first epoch.
        lp = np.log1p(popularity)
        p = _Params(
            Y=torch.randn(n_items, f, generator=gen) * (1.0 / np.sqrt(f)),
            Q=torch.randn(n_items, f, generator=gen) * 0.01,
            b=torch.from_numpy((lp - lp.mean()).astype(np.float32)),
            W=torch.zeros(code_dim, f),
            E=torch.zeros(n_users, f),
        )
        if prev is not None:
            self._warm_start(prev, p, code_dim)
        return p

    def _optimizers(self, p: _Params, train_items: bool) -> dict[str, Any]:
        """Row-wise Adam per table; plain Adam for ``W`` (a leaf of its own)."""
        opts: dict[str, Any] = {}
        if train_items:
            for name in ("Y", "Q", "b"):
                opts[name] = _RowAdam(getattr(p, name), self.learning_rate)
        else:
            opts["E"] = _RowAdam(p.E, self.learning_rate)
        if p.W.numel():
            p.W.requires_grad_(True)
            # Adam moves every entry of W by about the learning rate per step, which
            # moves W c by about lr * sum|c| ~ lr * d for standardised codes: W's rate is
            # divided by the code dimension so that the code part of an item vector moves
            # no faster than its free part (at the full rate W overfitted within a few steps).
            opts["W"] = torch.optim.Adam([p.W], lr=self.learning_rate / p.W.shape[0])
        return opts

    def _rounds(
        self,
        p: _Params,
        ctx: _FitContext,
        opts: dict[str, Any],
        users: np.ndarray,
        batch: int,
        epochs: int,
        disable: bool,
        train_items: bool,
    ) -> Iterator[tuple[float, float, int]]:
        """Train in shuffled mini-batches of ``users``; yield ``(epoch, mean loss, steps)``
        after every validation round.

        A round is one epoch, or ``validate_every`` steps when an epoch is longer:
        on a million-user log one epoch is thousands of steps, and the best model
        can lie inside the first (measured on a generated 1M-user log).
        """
        steps_per_epoch = max(1, int(np.ceil(len(users) / batch)))
        interval = max(1, min(steps_per_epoch, self.validate_every))
        total_steps = 0
        desc = "fit" if train_items else "style"
        # One bar per fit, over the most steps it may take (early stopping can end it
        # sooner), so a terminal shows an ETA rather than a flicker of per-epoch bars.
        bar = tqdm(total=epochs * steps_per_epoch, desc=desc, unit="step", disable=disable,
                   leave=False)
        try:
            for epoch in range(epochs):
                perm = users[ctx.rng.permutation(len(users))]
                acc, n = 0.0, 0
                for step in range(steps_per_epoch):
                    sel = np.sort(perm[step * batch : (step + 1) * batch])
                    acc += self._step(sel, p, ctx, opts, train_items)
                    n += 1
                    total_steps += 1
                    bar.update(1)
                    if n == interval or step == steps_per_epoch - 1:
                        bar.set_postfix(epoch=epoch + 1, refresh=False)
                        yield epoch + (step + 1) / steps_per_epoch, acc / n, total_steps
                        acc, n = 0.0, 0
        finally:
            bar.close()

    def _step(
        self, sel: np.ndarray, p: _Params, ctx: _FitContext, opts: dict[str, Any],
        train_items: bool,
    ) -> float:
        """One optimizer step on a mini-batch of users (stage 1 or, if not ``train_items``, 2)."""
        if train_items:
            return self._step_items(sel, p, ctx, opts)
        return self._step_style(sel, p, ctx, opts)

    def _step_items(
        self, sel: np.ndarray, p: _Params, ctx: _FitContext, opts: dict[str, Any]
    ) -> float:
        """Stage 1: item (and style) likelihood of a batch, its gradient, the updates.

        The loss is per unit of positive confidence: the likelihoods are summed over
        the batch and divided by the batch's summed target confidence, so
        ``style_weight`` is in units of summed log-likelihood.  Only the rows the
        batch uses are gathered (history items, positives, shared negatives).
        """
        entries, local = _gather_rows(ctx.inputs.indptr, sel)
        idx = ctx.inputs.indices[entries].astype(np.int64)
        w = ctx.inputs.data[entries]
        hist_local = local
        if self.dropout > 0 and len(w):
            keep = ctx.rng.random(len(w)) >= self.dropout
            idx, hist_local, w = idx[keep], local[keep], w[keep] / (1.0 - self.dropout)
        hist_rows, hist_at = np.unique(idx, return_inverse=True)
        hist_rows_t = torch.from_numpy(hist_rows)
        y = p.Y[hist_rows_t].requires_grad_(True)
        pu = _bag(hist_at, hist_local, w, y, len(sel)) + p.E[torch.from_numpy(sel)]

        # Item likelihood over the rows of the positives (+ shared negatives).
        cols = ctx.targets.indices[entries].astype(np.int64)
        tw = ctx.targets.data[entries]
        if ctx.full:
            item_rows = np.arange(p.Q.shape[0], dtype=np.int64)
            col_at = cols
        else:
            neg = ctx.sampler.draw(ctx.rng)
            item_rows, inv = np.unique(np.concatenate([cols, neg]), return_inverse=True)
            col_at, neg_at = inv[: len(cols)], inv[len(cols) :]
        item_rows_t = torch.from_numpy(item_rows)
        q = p.Q[item_rows_t].requires_grad_(True)
        bb = p.b[item_rows_t].requires_grad_(True)
        V = q + ctx.codes[item_rows_t] @ p.W if ctx.codes is not None else q
        rows_t = torch.from_numpy(local)
        col_t = torch.from_numpy(col_at.astype(np.int64))
        w_t = torch.from_numpy(tw)
        if len(cols) == 0:
            nll = torch.zeros(())
        elif ctx.full:
            logp = torch.log_softmax(pu @ V.T + bb, dim=1)
            nll = -(logp[rows_t, col_t] * w_t).sum()
        else:
            corrected = bb - ctx.sampler.log_q_t[item_rows_t]
            neg_t = torch.from_numpy(neg_at.astype(np.int64))
            lse = torch.logsumexp(pu @ V[neg_t].T + corrected[neg_t], dim=1)
            a = (pu[rows_t] * V[col_t]).sum(1) + corrected[col_t]
            nll = -((a - torch.logaddexp(a, lse[rows_t])) * w_t).sum()
        if ctx.style is not None:
            nll = nll + self.style_weight * self._style_nll(ctx.style, sel, pu, p.W)
        loss = nll / max(float(tw.sum()), 1.0)
        # L2 of the item rows this step used (lazy weight decay: updates are sparse).
        reg = (q**2).sum() + (y**2).sum()
        if p.W.numel():
            reg = reg + (p.W * p.W).sum()
        loss = loss + self.l2 * ctx.reg_scale * reg
        if "W" in opts:
            opts["W"].zero_grad()
        loss.backward()
        with torch.no_grad():
            opts["Y"].step(hist_rows_t, y.grad)
            opts["Q"].step(item_rows_t, q.grad)
            opts["b"].step(item_rows_t, bb.grad)
        if "W" in opts:
            opts["W"].step()
        return float(loss.detach())

    def _step_style(
        self, sel: np.ndarray, p: _Params, ctx: _FitContext, opts: dict[str, Any]
    ) -> float:
        """Stage 2: style likelihood of a batch plus the offsets' Gaussian prior.

        ``user_l2`` and ``style_weight`` are in units of summed log-likelihood (the
        loss is divided by the batch's summed style-event weight only to keep the
        step size independent of the batch).
        """
        assert ctx.style is not None
        sel_t = torch.from_numpy(sel)
        e = p.E[sel_t].requires_grad_(True)
        pu = self._encode_rows(ctx.inputs, sel, p, with_offsets=False) + e
        entries, _ = _gather_rows(ctx.style["indptr"], sel)
        weight = float(ctx.style["weights"][entries].sum())
        total = self.style_weight * self._style_nll(ctx.style, sel, pu, p.W)
        loss = (total + self.user_l2 * (e**2).sum()) / max(weight, 1.0)
        loss = loss + self.l2 * ctx.reg_scale * (p.W * p.W).sum()
        opts["W"].zero_grad()
        loss.backward()
        with torch.no_grad():
            opts["E"].step(sel_t, e.grad)
        opts["W"].step()
        return float(loss.detach())

    def _encode_rows(
        self, inputs: sp.csr_matrix, users: np.ndarray, p: _Params, with_offsets: bool = True
    ) -> torch.Tensor:
        """``p_u`` (no dropout, no gradient) for ``users``: encoder of the history plus offset."""
        entries, local = _gather_rows(inputs.indptr, users)
        with torch.no_grad():
            h = _bag(inputs.indices[entries], local, inputs.data[entries], p.Y, len(users))
            if with_offsets:
                h = h + p.E[torch.from_numpy(np.asarray(users, dtype=np.int64))]
        return h

    def _prepare_codes(
        self,
        item_codes: np.ndarray | None,
        style_codes: np.ndarray | None,
        n_items: int,
        prev: StylePreferenceModel | None,
    ) -> tuple[int, torch.Tensor | None, torch.Tensor | None]:
        """Standardise codes with statistics of all codes given (kept for scoring new ones)."""
        self.code_mean_ = None
        self.code_scale_ = None
        if item_codes is None and style_codes is None:
            return 0, None, None
        blocks = [
            np.asarray(c, dtype=np.float64) for c in (item_codes, style_codes) if c is not None
        ]
        dims = {blk.shape[1] for blk in blocks if blk.ndim == 2}
        if len(dims) != 1 or any(blk.ndim != 2 for blk in blocks):
            raise ValueError("item_codes/style_codes must be 2-D with the same code dimension")
        if item_codes is not None and len(item_codes) != n_items:
            raise ValueError(
                f"item_codes has {len(item_codes)} rows, interactions have {n_items} items"
            )
        for blk in blocks:
            if not np.isfinite(blk).all():
                raise ValueError("item_codes/style_codes contain NaN or inf")
        dim = dims.pop()
        if prev is not None and prev.code_mean_ is not None and prev.code_mean_.shape[0] == dim:
            self.code_mean_, self.code_scale_ = prev.code_mean_, prev.code_scale_
        else:
            stacked = np.vstack(blocks)
            self.code_mean_ = stacked.mean(axis=0)
            # One global scale keeps the code geometry (directions) intact.
            self.code_scale_ = np.asarray(
                float(np.sqrt(((stacked - self.code_mean_) ** 2).sum(1).mean())) or 1.0
            )
        # W exists whenever any code is given: styles alone still train it through style events.
        codes_t = None if item_codes is None else torch.from_numpy(self._standardise(item_codes))
        style_t = None if style_codes is None else torch.from_numpy(self._standardise(style_codes))
        return dim, codes_t, style_t

    def _standardise(self, codes: np.ndarray) -> np.ndarray:
        """Centre and scale codes to unit mean square per dimension (statistics fixed at fit)."""
        if self.code_mean_ is None:
            raise ValueError("this model was fitted without style codes")
        codes = np.asarray(codes, dtype=np.float64)
        if codes.ndim != 2 or codes.shape[1] != self.code_mean_.shape[0]:
            raise ValueError(
                f"codes must have shape (n, {self.code_mean_.shape[0]}), got {codes.shape}"
            )
        return ((codes - self.code_mean_) / self.code_scale_ * np.sqrt(codes.shape[1])).astype(
            np.float32
        )

    def _carve_validation(
        self, pos: sp.csr_matrix, rng: np.random.Generator
    ) -> tuple[sp.csr_matrix, _Validation | None]:
        """Hold out random positives of sampled users (see :meth:`fit`); train keeps the rest."""
        counts = np.diff(pos.indptr)
        candidates = np.flatnonzero(counts >= 3)
        if self.validation_users <= 0 or len(candidates) < 10:
            return pos, None
        chosen = np.sort(
            rng.choice(candidates, size=min(self.validation_users, len(candidates)), replace=False)
        )
        per_user = int(np.ceil(self.validation_users / len(chosen)))
        take = np.clip(counts[chosen] // 5, 1, per_user)
        # A random subset of each chosen row: rank random keys within the row.
        entries, local = _gather_rows(pos.indptr, chosen)
        keys = rng.random(len(entries)) + local
        order = np.argsort(keys, kind="stable")
        row_start = np.concatenate([[0], np.cumsum(counts[chosen])[:-1]])
        rank = np.empty(len(order), dtype=np.int64)
        rank[order] = np.arange(len(order)) - np.repeat(row_start, counts[chosen])
        held = entries[rank < np.repeat(take, counts[chosen])]
        mask = np.zeros(pos.nnz, dtype=bool)
        mask[held] = True
        row_of = np.repeat(np.arange(pos.shape[0]), counts)
        val = sp.csr_matrix(
            (np.ones(len(held), np.float32), (row_of[held], pos.indices[held])), shape=pos.shape
        )
        train = pos.copy()
        train.data[mask] = 0
        train.eliminate_zeros()
        return train, _Validation(chosen.astype(np.int64), val)

    def _validate(
        self,
        inputs: sp.csr_matrix,
        p: _Params,
        codes_t: torch.Tensor | None,
        train: sp.csr_matrix,
        val: _Validation,
    ) -> float:
        V = (p.Q + (codes_t @ p.W.detach() if codes_t is not None else 0.0)).numpy()
        bn = p.b.numpy()
        Pn = self._encode_rows(inputs, val.users, p).numpy()
        row = np.full(train.shape[0], -1, dtype=np.int64)
        row[val.users] = np.arange(len(val.users))

        def score(users: np.ndarray) -> np.ndarray:
            return Pn[row[users]] @ V.T + bn

        k = 10
        rec = rank_users(score, val.users, k, exclude=train, chunk_size=1024)
        relevant = [
            val.items.indices[val.items.indptr[u] : val.items.indptr[u + 1]].astype(np.int64)
            for u in val.users
        ]
        m = ranking_metrics(rec, relevant, k)
        return float(np.nanmean(m[f"ndcg@{k}"]))

    @staticmethod
    def _snapshot(p: _Params) -> tuple[np.ndarray, ...]:
        return tuple(t.detach().numpy().copy() for t in p.all())

    @staticmethod
    def _restore(p: _Params, snap: tuple[np.ndarray, ...]) -> None:
        with torch.no_grad():
            for t, v in zip(p.all(), snap, strict=True):
                t.copy_(torch.from_numpy(v))

    def _fit_style(self, p: _Params, ctx: _FitContext, batch: int, disable: bool
                   ) -> list[dict[str, float]]:
        """Second stage: the style projection ``W`` and the user offsets on the style events.

        Why a stage of its own: the collaborative part is stopped when held-out
        *items* stop improving, which on a sparse log is long before the style
        likelihood has converged (``W`` and the offsets learn from a few clicks on
        renders per user).  Here the encoder, the free item vectors and the biases
        are frozen, so the item ranking the first stage chose is kept except
        through ``W c_i``; the item likelihood stays in the loss so that the
        offsets remain consistent with the items.  Stopped on the likelihood of
        ``validation_share_style`` of the style events, held out from this stage.
        """
        assert ctx.style is not None
        train_style, val_style = _split_style_events(ctx.style, ctx.rng,
                                                     self.validation_share_style)
        if val_style is None:
            return []
        sctx = _FitContext(ctx.inputs, ctx.targets, train_style, ctx.codes, ctx.full,
                           ctx.sampler, ctx.reg_scale, ctx.rng)
        # The item vectors q_i + W c_i stay as stage 1 chose them: whatever W learns
        # here is taken back out of Q at the end.
        w_stage1 = p.W.detach().clone()
        opts = self._optimizers(p, train_items=False)
        users = np.flatnonzero(np.diff(train_style["indptr"]) > 0)
        best = (self._style_val_nll(p, ctx.inputs, val_style), self._snapshot(p), 0)
        history = [{"epoch": 0, "val_style_nll": best[0]}]
        bad = 0
        for epoch, loss, _ in self._rounds(p, sctx, opts, users, batch, self.style_epochs,
                                           disable, train_items=False):
            score = self._style_val_nll(p, ctx.inputs, val_style)
            history.append({"epoch": round(epoch, 4), "loss": loss, "val_style_nll": score})
            log.info("style epoch %.2f: loss %.4f, held-out style NLL %.4f (lower is better)",
                     epoch, loss, score)
            if score < best[0] - 1e-6:
                best = (score, self._snapshot(p), round(epoch, 4))
                bad = 0
            else:
                bad += 1
                if bad >= self.patience:
                    break
        self._restore(p, best[1])
        if ctx.codes is not None:
            with torch.no_grad():
                p.Q += ctx.codes @ (w_stage1 - p.W)
        return history

    def _style_val_nll(self, p: _Params, inputs: sp.csr_matrix, val_style: dict[str, Any]
                       ) -> float:
        """Mean weighted NLL of the held-out style events."""
        users = np.flatnonzero(np.diff(val_style["indptr"]) > 0)
        total, weight = 0.0, float(val_style["weights"].sum())
        with torch.no_grad():
            for start in range(0, len(users), 4096):
                sel = users[start : start + 4096]
                pu = self._encode_rows(inputs, sel, p)
                total += float(self._style_nll(val_style, sel, pu, p.W))
        return total / max(weight, 1e-12)

    def _warm_start(self, prev: StylePreferenceModel, p: _Params, code_dim: int) -> None:
        """Copy the previous run's rows by index (stable id maps make them line up)."""
        if prev.factors != self.factors:
            log.warning("warm start skipped: previous model has a different number of factors")
            return
        ni = min(len(p.Q), len(prev.free_item_factors_))
        p.Q[:ni] = torch.from_numpy(np.asarray(prev.free_item_factors_[:ni], np.float32))
        p.b[:ni] = torch.from_numpy(np.asarray(prev.item_bias_[:ni], np.float32))
        if prev.history_item_factors_ is not None:
            p.Y[:ni] = torch.from_numpy(np.asarray(prev.history_item_factors_[:ni], np.float32))
        nu = 0
        if prev.user_offsets_ is not None:
            nu = min(len(p.E), len(prev.user_offsets_))
            p.E[:nu] = torch.from_numpy(np.asarray(prev.user_offsets_[:nu], np.float32))
        if code_dim and prev.W_.shape == (code_dim, self.factors):
            p.W = torch.from_numpy(np.asarray(prev.W_, np.float32).copy())
        log.info("warm start: %d users, %d items copied from the previous model", nu, ni)

    def _prepare_style_events(self, style_events, style_t, n_users):  # noqa: ANN001
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

    @staticmethod
    def _style_nll(style, sel, pu, W) -> torch.Tensor:  # noqa: ANN001
        """Summed NLL of: which of the styles the user was exposed to did the positive event
        happen on?"""
        entries, local = _gather_rows(style["indptr"], sel)
        if len(entries) == 0:
            return torch.zeros(())
        expo = style["global"][None, :]
        if style["exposure"] is not None:
            expo = np.asarray(style["exposure"][sel].todense()) + expo
        with np.errstate(divide="ignore"):
            log_expo = np.where(expo > 0, np.log(expo), _MASKED).astype(np.float32)
        emb = style["codes"] @ W  # (n_styles, f)
        logits = torch.cat([torch.zeros(len(sel), 1), pu @ emb.T], dim=1)
        logits = logits + torch.from_numpy(log_expo)
        rows = torch.from_numpy(local)
        target = torch.from_numpy(style["cols"][entries])
        w = torch.from_numpy(style["weights"][entries])
        ce = F.cross_entropy(logits[rows], target, reduction="none")
        return (ce * w).sum()

    # --------------------------------------------------------------- scoring
    def _check_fitted(self) -> None:
        if not hasattr(self, "user_factors_"):
            raise ValueError("StylePreferenceModel is not fitted yet; call fit() or load()")

    @property
    def item_factors_(self) -> np.ndarray:
        """Full item vectors ``q_i + W c_i`` (what scoring and FAISS indices use)."""
        self._check_fitted()
        if self.item_codes_ is None or self.W_.size == 0:
            return self.free_item_factors_
        return self.free_item_factors_ + self.item_codes_ @ self.W_

    def encode_users(self, history: sp.spmatrix) -> np.ndarray:
        """History-encoder part of ``p_u`` for rows of a user x item matrix (fold-in).

        A user absent at fit time gets a vector from its history alone, without a
        refit; the rows of known users still need their free offset added
        (``user_factors_`` has both).  Negative entries (impressions) are ignored.
        """
        if not hasattr(self, "history_item_factors_"):
            raise ValueError("StylePreferenceModel is not fitted yet; call fit() or load()")
        if self.history_item_factors_ is None:
            raise ValueError(
                "this model was assembled from plain vectors and has no history encoder"
            )
        m = sp.csr_matrix(history, dtype=np.float32, copy=True)
        if m.shape[1] != self.n_items_:
            raise ValueError(f"history must have {self.n_items_} columns, got {m.shape[1]}")
        m.data[m.data < 0] = 0
        m.eliminate_zeros()
        return np.asarray(_row_normalised(m) @ self.history_item_factors_, dtype=np.float32)

    def style_embeddings(self, codes: np.ndarray) -> np.ndarray:
        """``W c`` for raw style codes ``(n, d)`` -> ``(n, factors)``; works for never-shown styles."""
        self._check_fitted()
        return self._standardise(codes) @ self.W_

    def _user_vectors(self, user_idx: np.ndarray) -> np.ndarray:
        """User vectors; unknown users get the mean user vector (population taste)."""
        u = np.asarray(user_idx, dtype=np.int64)
        known = (u >= 0) & (u < self.n_users_)
        out = np.empty((len(u), self.factors), dtype=np.float32)
        out[known] = self.user_factors_[u[known]]
        if (~known).any():
            out[~known] = self.user_factors_.mean(axis=0)
        return out

    def user_style_affinity(self, user_idx: np.ndarray, style_codes: np.ndarray) -> np.ndarray:
        """Affinity ``p_u . W c_s`` of users for styles, ``(len(user_idx), n_styles)``.

        Relative to the original image (affinity 0).  Unknown users get the
        population's mean affinity.
        """
        users = np.atleast_1d(np.asarray(user_idx))
        return self._user_vectors(users) @ self.style_embeddings(style_codes).T

    def popularity_scores(self) -> np.ndarray:
        """Log-popularity prior per item: the cold-start ranking for unknown users."""
        self._check_fitted()
        return np.log1p(self.item_popularity_)

    def user_scores(self, user_idx: np.ndarray) -> np.ndarray:
        """Dense scores ``(len(user_idx), n_items)``; unknown users get the popularity prior."""
        self._check_fitted()
        u = np.atleast_1d(np.asarray(user_idx, dtype=np.int64))
        known = (u >= 0) & (u < self.n_users_)
        out = np.empty((len(u), self.n_items_), dtype=np.float32)
        if known.any():
            out[known] = self.user_factors_[u[known]] @ self.item_factors_.T + self.item_bias_
        if (~known).any():
            out[~known] = self.popularity_scores()
        return out

    def score(
        self,
        user_idx: np.ndarray | int,
        item_idx: np.ndarray | int,
        item_codes: np.ndarray | None = None,
    ) -> np.ndarray:
        """Score (user, item) pairs elementwise.

        Cold start: an unknown user scores items by the popularity prior; an
        unknown item (index out of range) is scored from its image code when
        ``item_codes`` (one row per pair) is given, else gets the mean item bias.
        """
        self._check_fitted()
        u = np.atleast_1d(np.asarray(user_idx, dtype=np.int64))
        i = np.atleast_1d(np.asarray(item_idx, dtype=np.int64))
        u, i = np.broadcast_arrays(u, i)
        known_u = (u >= 0) & (u < self.n_users_)
        known_i = (i >= 0) & (i < self.n_items_)
        out = np.zeros(len(u), dtype=np.float32)
        pu = self._user_vectors(u)
        both = known_u & known_i
        V = self.item_factors_
        out[both] = (pu[both] * V[i[both]]).sum(1) + self.item_bias_[i[both]]
        prior = float(self.item_bias_.mean())
        new_item = known_u & ~known_i
        if new_item.any():
            if item_codes is not None and self.code_mean_ is not None:
                codes = (
                    np.asarray(item_codes)[np.flatnonzero(new_item)]
                    if len(item_codes) == len(u)
                    else item_codes
                )
                out[new_item] = (pu[new_item] * (self._standardise(codes) @ self.W_)).sum(1) + prior
            else:
                out[new_item] = prior
        pop = self.popularity_scores()
        unknown_u = ~known_u
        out[unknown_u & known_i] = pop[i[unknown_u & known_i]]
        out[unknown_u & ~known_i] = 0.0
        return out

    def score_new_items(self, user_idx: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """Scores ``(len(user_idx), len(codes))`` of items never seen in training, from their codes."""
        self._check_fitted()
        emb = (
            self._standardise(codes) @ self.W_
            if self.code_mean_ is not None
            else np.zeros((len(codes), self.factors))
        )
        return self._user_vectors(np.atleast_1d(user_idx)) @ emb.T + float(self.item_bias_.mean())

    def recommend(
        self, user_idx: np.ndarray | int, k: int = 10, exclude_seen: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` item indices and scores per user (best first), seen items excluded."""
        users = np.atleast_1d(np.asarray(user_idx, dtype=np.int64))
        scores = self.user_scores(users)
        if exclude_seen and self.seen_ is not None:
            known = (users >= 0) & (users < self.n_users_)
            for row in np.flatnonzero(known):
                u = users[row]
                scores[
                    row, self.seen_.indices[self.seen_.indptr[u] : self.seen_.indptr[u + 1]]
                ] = -np.inf
        items = top_k(scores, k)
        return items, np.take_along_axis(scores, items, axis=1)

    # ------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> None:
        """Write ``<path>.npz`` (arrays) and ``<path>.json`` (params, history); no pickle."""
        self._check_fitted()
        base = Path(path).with_suffix("")
        arrays: dict[str, np.ndarray] = {
            "user_factors": self.user_factors_,
            "free_item_factors": self.free_item_factors_,
            "item_bias": self.item_bias_,
            "W": self.W_,
            "item_popularity": self.item_popularity_,
        }
        # Encoder and free offsets are absent from a model assembled from plain vectors
        # (``recsys.serving.bundle.write_model``): such a model serves but cannot fold in.
        for name in ("user_offsets", "history_item_factors"):
            value = getattr(self, name + "_", None)
            if value is not None:
                arrays[name] = value
        if self.item_codes_ is not None:
            arrays["item_codes"] = self.item_codes_
        if self.code_mean_ is not None:
            arrays["code_mean"] = self.code_mean_
            arrays["code_scale"] = np.atleast_1d(self.code_scale_)
        if self.seen_ is not None:
            arrays["seen_indptr"] = self.seen_.indptr.astype(np.int64)
            arrays["seen_indices"] = self.seen_.indices.astype(np.int32)
        np.savez(base.with_suffix(".npz"), **arrays)
        meta = {
            "format_version": _FORMAT_VERSION,
            "params": self.get_params(),
            "history": self.history_,
            "best_epoch": self.best_epoch_,
            "fit_seconds": self.fit_seconds_,
            "n_users": self.n_users_,
            "n_items": self.n_items_,
        }
        base.with_suffix(".json").write_text(json.dumps(meta, indent=2), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> StylePreferenceModel:
        """Read a model written by :meth:`save` (``path`` with or without suffix)."""
        base = Path(path).with_suffix("")
        meta_path, npz_path = base.with_suffix(".json"), base.with_suffix(".npz")
        for p in (meta_path, npz_path):
            if not p.is_file():
                raise FileNotFoundError(f"model file not found: {p}")
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("format_version") != _FORMAT_VERSION:
            raise ValueError(
                f"{meta_path}: unsupported format_version {meta.get('format_version')} "
                f"(this code reads {_FORMAT_VERSION}; retrain to upgrade)"
            )
        known = set(_PARAMS) | {"show_progress"}
        model = cls(**{k: v for k, v in meta["params"].items() if k in known})
        with np.load(npz_path, allow_pickle=False) as z:
            model.user_factors_ = z["user_factors"]
            model.user_offsets_ = z["user_offsets"] if "user_offsets" in z else None
            model.history_item_factors_ = (
                z["history_item_factors"] if "history_item_factors" in z else None
            )
            model.free_item_factors_ = z["free_item_factors"]
            model.item_bias_ = z["item_bias"]
            model.W_ = z["W"]
            model.item_popularity_ = z["item_popularity"]
            model.item_codes_ = z["item_codes"] if "item_codes" in z else None
            model.code_mean_ = z["code_mean"] if "code_mean" in z else None
            model.code_scale_ = z["code_scale"][0] if "code_scale" in z else None
            model.n_users_, model.n_items_ = int(meta["n_users"]), int(meta["n_items"])
            if "seen_indptr" in z:
                indices = z["seen_indices"]
                model.seen_ = sp.csr_matrix(
                    (np.ones(len(indices), np.float32), indices, z["seen_indptr"]),
                    shape=(model.n_users_, model.n_items_),
                )
            else:
                model.seen_ = None
        model.history_ = meta["history"]
        model.best_epoch_ = meta["best_epoch"]
        model.fit_seconds_ = meta["fit_seconds"]
        return model


def _load_if_path(obj: Any) -> StylePreferenceModel | None:
    if obj is None:
        return None
    if isinstance(obj, StylePreferenceModel):
        return obj
    return StylePreferenceModel.load(obj)
