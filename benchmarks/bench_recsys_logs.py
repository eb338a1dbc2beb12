"""Generated implicit-feedback logs for the recsys benchmarks (not a benchmark itself).

Why a generator of its own and not the demo world: the demo world simulates
views of 200 products by 2,000 shoppers with a planted style model; the scale
benchmark needs 1M users x 50k items x 20M events in seconds and a few GB, and
the quality benchmark needs a second log whose structure nobody tuned the
model on.  The log here is a latent-factor world with the usual long tails:

* item exposure ~ Zipf-like (lognormal, sigma ``item_sigma``): a few items are
  shown far more than the rest;
* user activity ~ lognormal (sigma ``user_sigma``), every user at least one event;
* each event: ``candidates`` items drawn by exposure, the user picks one with
  probability ``softmax(taste_u . latent_i / temperature)`` (a Gumbel-max
  draw), so preference matters as much as exposure lets it;
* timestamps uniform over ``days`` days; one event in ``purchase_every`` is a
  purchase, the rest clicks (``recsys.interactions`` weights them).

Everything is vectorised and chunked; 20M events take about a minute and peak
at about 2 GB.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp


@dataclass(frozen=True)
class GeneratedLog:
    """Event arrays of a generated log (indices, not string ids) and its shape."""

    users: np.ndarray  # int32 user index per event
    items: np.ndarray  # int32 item index per event
    seconds: np.ndarray  # int64 seconds since the start of the log
    purchase: np.ndarray  # bool: purchase (else click)
    n_users: int
    n_items: int

    def matrix(self, click: float = 1.0, purchase: float = 4.0) -> sp.csr_matrix:
        """User x item confidence CSR (float32), duplicates summed (what the models fit on)."""
        w = np.where(self.purchase, np.float32(purchase), np.float32(click)).astype(np.float32)
        m = sp.csr_matrix(
            (w, (self.users, self.items)), shape=(self.n_users, self.n_items), dtype=np.float32
        )
        m.sum_duplicates()
        m.sort_indices()
        return m

    def to_frame(self, start: str = "2026-01-01") -> pd.DataFrame:
        """Events in the stylerec schema (string ids), for ``run_holdout``; small logs only."""
        t0 = pd.Timestamp(start, tz="UTC")
        return pd.DataFrame({
            "user_id": ("u" + pd.Series(self.users).astype(str)).to_numpy(),
            "item_id": ("i" + pd.Series(self.items).astype(str)).to_numpy(),
            "event_type": np.where(self.purchase, "purchase", "click"),
            "timestamp": t0 + pd.to_timedelta(self.seconds, unit="s"),
        })


def generate_log(
    n_users: int,
    n_items: int,
    n_events: int,
    *,
    seed: int = 0,
    n_latent: int = 16,
    candidates: int = 16,
    temperature: float = 0.5,
    item_sigma: float = 1.5,
    user_sigma: float = 1.0,
    days: int = 60,
    purchase_every: int = 10,
    chunk: int = 2_000_000,
) -> GeneratedLog:
    """Draw a log as described in the module doc (deterministic for a seed)."""
    if n_events < n_users:
        raise ValueError(f"n_events ({n_events}) must be >= n_users ({n_users})")
    rng = np.random.default_rng(seed)
    taste = (rng.normal(size=(n_users, n_latent)) / np.sqrt(n_latent)).astype(np.float32)
    latent = rng.normal(size=(n_items, n_latent)).astype(np.float32)
    exposure = rng.lognormal(0.0, item_sigma, size=n_items)
    item_cdf = np.cumsum(exposure / exposure.sum())
    activity = rng.lognormal(0.0, user_sigma, size=n_users)
    # Every user once, the rest by activity.
    extra = rng.choice(n_users, size=n_events - n_users, p=activity / activity.sum())
    users = np.concatenate([np.arange(n_users), extra]).astype(np.int32)
    rng.shuffle(users)
    items = np.empty(n_events, dtype=np.int32)
    for start in range(0, n_events, chunk):
        u = users[start : start + chunk]
        cand = np.searchsorted(item_cdf, rng.random((len(u), candidates)) * item_cdf[-1])
        cand = np.minimum(cand, n_items - 1)
        logits = np.einsum("nf,nkf->nk", taste[u], latent[cand]) / temperature
        logits -= np.log(-np.log(rng.random(logits.shape)))  # Gumbel-max = softmax draw
        items[start : start + chunk] = cand[np.arange(len(u)), np.argmax(logits, axis=1)]
    seconds = rng.integers(0, days * 86400, size=n_events).astype(np.int64)
    purchase = rng.random(n_events) < 1.0 / purchase_every
    return GeneratedLog(users, items, seconds, purchase, n_users, n_items)
