"""The training loop of the style-preference model (PyTorch), as a mixin of the estimator.

Why a mixin: :class:`recsys.model.StylePreferenceModel` is the estimator a
caller sees (parameters, ``fit``, scoring, save/load); this is how ``fit``
learns, in two early-stopped stages (see :mod:`recsys.model`).  Its result is
a :class:`recsys.factors.StyleFactors`, which does every scoring afterwards,
plus the parts only a warm start needs (history encoder, user offsets, free
item vectors, standardised item codes).
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from tqdm.auto import tqdm

from recsys._torch_parts import (
    _as_csr,
    _bag,
    _FitContext,
    _gather_rows,
    _NegativeSampler,
    _Params,
    _row_normalised,
    _RowAdam,
    _split_style_events,
    _Validation,
    prepare_style_events,
    style_nll,
)
from recsys.evaluation import rank_users, ranking_metrics
from recsys.factors import StyleFactors, standardise_codes

log = logging.getLogger("recsys.model")  # one logger for the model, as before the split


def encode_history(history: sp.spmatrix, history_item_factors: np.ndarray) -> np.ndarray:
    """History-encoder part of ``p_u``: L2-normalised positive history rows times ``Y``."""
    m = sp.csr_matrix(history, dtype=np.float32, copy=True)
    m.data[m.data < 0] = 0
    m.eliminate_zeros()
    return np.asarray(_row_normalised(m) @ history_item_factors, dtype=np.float32)


class _TorchTrainer:
    """``fit``'s machinery; reads the hyper-parameters of the estimator it is mixed into."""

    factors: int
    seed: int

    def _fit(
        self,
        interactions: Any,
        item_codes: np.ndarray | None,
        style_codes: np.ndarray | None,
        style_events: np.ndarray | None,
        prev: Any,
    ) -> None:
        """Learn the tables and set the fitted attributes (``factors_`` and the warm-start parts)."""
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
        code_dim, codes_t, style_t, code_stats = self._prepare_codes(
            item_codes, style_codes, n_items, prev)

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
        style = prepare_style_events(style_events, style_t, n_users)
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
        self.item_codes_ = None if codes_t is None else codes_t.numpy().copy()
        items = Q_ if self.item_codes_ is None or W_.size == 0 else Q_ + self.item_codes_ @ W_
        # Final user vectors from the *whole* history (validation positives included).
        users = encode_history(pos, Y_) + E_
        self.factors_ = StyleFactors(
            user_factors=users, item_factors=items, item_bias=b_.ravel(), W=W_,
            item_popularity=popularity, code_mean=code_stats[0], code_scale=code_stats[1],
            seen_indptr=pos.indptr, seen_indices=pos.indices,
        )
        self.history_ = history
        self.style_history_ = style_history
        self.best_epoch_ = best[2] if best[1] is not None else history[-1]["epoch"]
        self.batch_size_ = batch
        self.fit_seconds_ = time.perf_counter() - t0

    def _init_params(
        self,
        n_users: int,
        n_items: int,
        code_dim: int,
        popularity: np.ndarray,
        prev: Any,
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
            nll = nll + self.style_weight * style_nll(ctx.style, sel, pu, p.W)
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
        total = self.style_weight * style_nll(ctx.style, sel, pu, p.W)
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
        prev: Any,
    ) -> tuple[int, torch.Tensor | None, torch.Tensor | None, tuple[Any, Any]]:
        """Standardise codes with statistics of all codes given (kept for scoring new ones).

        Returns the code dimension, both standardised blocks as tensors and the
        statistics ``(mean, scale)`` (``(None, None)`` without codes).
        """
        if item_codes is None and style_codes is None:
            return 0, None, None, (None, None)
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
            mean, scale = prev.code_mean_, prev.code_scale_
        else:
            stacked = np.vstack(blocks)
            mean = stacked.mean(axis=0)
            # One global scale keeps the code geometry (directions) intact.
            scale = float(np.sqrt(((stacked - mean) ** 2).sum(1).mean())) or 1.0
        # W exists whenever any code is given: styles alone still train it through style events.
        codes_t = (None if item_codes is None
                   else torch.from_numpy(standardise_codes(item_codes, mean, scale)))
        style_t = (None if style_codes is None
                   else torch.from_numpy(standardise_codes(style_codes, mean, scale)))
        return dim, codes_t, style_t, (mean, scale)

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
        current = StyleFactors(
            user_factors=self._encode_rows(inputs, val.users, p).numpy(), item_factors=V,
            item_bias=p.b.numpy(), item_popularity=np.zeros(len(V)), W=None,
        )
        row = np.full(train.shape[0], -1, dtype=np.int64)
        row[val.users] = np.arange(len(val.users))

        def score(users: np.ndarray) -> np.ndarray:
            return current.user_scores(row[users])

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
                total += float(style_nll(val_style, sel, pu, p.W))
        return total / max(weight, 1e-12)

    def _warm_start(self, prev: Any, p: _Params, code_dim: int) -> None:
        """Copy the previous run's rows by index (stable id maps make them line up)."""
        if prev.factors != self.factors:
            log.warning("warm start skipped: previous model has a different number of factors")
            return
        ni = min(len(p.Q), len(prev.free_item_factors_))
        p.Q[:ni] = torch.from_numpy(np.array(prev.free_item_factors_[:ni], np.float32))
        p.b[:ni] = torch.from_numpy(np.array(prev.item_bias_[:ni], np.float32))
        if prev.history_item_factors_ is not None:
            p.Y[:ni] = torch.from_numpy(np.array(prev.history_item_factors_[:ni], np.float32))
        nu = 0
        if prev.user_offsets_ is not None:
            nu = min(len(p.E), len(prev.user_offsets_))
            p.E[:nu] = torch.from_numpy(np.array(prev.user_offsets_[:nu], np.float32))
        if code_dim and prev.W_.shape == (code_dim, self.factors):
            p.W = torch.from_numpy(np.array(prev.W_, np.float32).copy())
        log.info("warm start: %d users, %d items copied from the previous model", nu, ni)
