"""A/B test simulator on the demo world's planted click model, where the true lift is known.

Control shows every item's original photo; treatment shows each user the
render of the item in their *segment's* style.  Because the demo world plants
the click probability of every (user, item, style), the simulator can compute
the expected CTR of both arms over the same population and so the true lift,
which is what checks the analysis: A/A false-positive rate, interval coverage,
and power at the calculator's sample size.

Speed is the point (hundreds of simulated tests per second): the click
probability of every (world user, item) pair is evaluated once for each arm
into two ``(n_users, n_items)`` matrices, and a simulated test is then only
index sampling, one uniform draw per impression and a ``bincount`` per user.

Segments: the recsys segmenter works on learned vectors; here, where the
planted taste is known, a user's segment is their top planted style among the
styles shown in the logs (``"top_style"``) or a k-means cluster of the planted
taste vectors whose style is the one the cluster likes best on average
(``"kmeans"``).

The world is anything with ``truth`` (the arrays of ``truth.npz``) and
``click_probability(user_idx, item_idx, style_idx)``; ``demo.World``
is one.  When it also has ``click_model`` (with ``score``,
``cart_probability`` and ``purchase_probability``) purchases are simulated
through the planted funnel, and item prices come from ``items["price"]``
or the ``price`` in ``items["attributes"]`` when present.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd

from recsys.experiments.assignment import assign
from recsys.experiments.estimators import ratio_lift

log = logging.getLogger(__name__)

_TABLE = 1 << 16


class WorldLike(Protocol):
    """What the simulator needs from a world."""

    truth: dict[str, np.ndarray]

    def click_probability(
        self, user_idx: np.ndarray, item_idx: np.ndarray, style_idx: np.ndarray
    ) -> np.ndarray: ...


@dataclass(frozen=True)
class SimulatedUsers:
    """Per-user aggregates of one simulated test (the analysis' input, without the logs)."""

    treated: np.ndarray  # bool (n,)
    impressions: np.ndarray  # int (n,)
    clicks: np.ndarray  # int (n,)
    pre_clicks: np.ndarray  # int (n,) clicks in a control-only pre-period, for CUPED


def _prices(world: Any, n_items: int) -> np.ndarray | None:
    items = getattr(world, "items", None)
    if not isinstance(items, pd.DataFrame) or len(items) != n_items:
        return None
    if "price" in items.columns:
        return pd.to_numeric(items["price"], errors="coerce").fillna(0.0).to_numpy(float)
    if "attributes" in items.columns:
        def price(a: Any) -> float:
            try:
                return float(json.loads(a).get("price", 0.0)) if isinstance(a, str) else 0.0
            except (ValueError, AttributeError, TypeError):
                return 0.0
        p = items["attributes"].map(price).to_numpy(float)
        return p if np.any(p > 0) else None
    return None


def _activity(world: Any, user_ids: np.ndarray) -> np.ndarray:
    """Per-user activity (mean 1): the user's share of views in the world's own log.

    Real shoppers differ in how much they browse, and the same shoppers stay
    heavy from one month to the next; taking that from the world's log gives
    the simulated tests realistic clustering and gives CUPED something to use.
    Users without views get the smallest observed activity; no log, all ones.
    """
    events = getattr(world, "events", None)
    if not isinstance(events, pd.DataFrame) or "event_type" not in events.columns:
        return np.ones(len(user_ids))
    views = events.loc[events["event_type"] == "view", "user_id"].astype(str).value_counts()
    counts = views.reindex(user_ids).to_numpy(float)
    if np.all(np.isnan(counts)):
        return np.ones(len(user_ids))
    counts = np.where(np.isnan(counts), np.nanmin(counts), counts)
    return counts / counts.mean()


class ABSimulator:
    """Precomputed click probabilities of both arms for fast simulated experiments.

    Parameters
    ----------
    world:
        The demo world (see module docstring).
    segmenting:
        ``"top_style"`` or ``"kmeans"``.
    n_segments:
        Number of k-means segments (``"kmeans"`` only).
    treatment_multiplier:
        When set, treatment's click probability is control's times this factor
        (e.g. 1.05 plants exactly +5 % relative CTR lift) instead of the
        segment render's planted probability: used for power checks.
    item_sharpness:
        Items are shown with probability ∝ ``exp(sharpness · popularity)``
        (popular items get more impressions, as a real ranker would do).
    seed:
        Seeds k-means.
    """

    def __init__(
        self,
        world: WorldLike,
        segmenting: str = "top_style",
        n_segments: int = 8,
        treatment_multiplier: float | None = None,
        item_sharpness: float = 1.0,
        seed: int = 0,
    ) -> None:
        truth = world.truth
        self.world = world
        self.user_ids = np.asarray(truth["user_ids"]).astype(str)
        self.item_ids = np.asarray(truth["item_ids"]).astype(str)
        self.style_ids = np.asarray(truth["style_ids"]).astype(str)
        affinity = np.asarray(truth["affinity"], float)
        n_users, n_items = len(self.user_ids), len(self.item_ids)
        holdout = set(np.asarray(truth.get("holdout_style_ids", [])).astype(str))
        shown = np.array([s not in holdout for s in self.style_ids])
        if not shown.any():
            raise ValueError("the world has no style outside the holdout to render with")
        masked = np.where(shown[None, :], affinity, -np.inf)
        if segmenting == "top_style":
            # A user planted with equal taste for several styles has affinities equal up to the
            # last bit, and which one wins differs between machines (the A/B notebook's user
            # u00053 went to s08 on one, s11 on an AVX-512 one); rounded first, such a tie goes
            # to the first style on every machine.
            self.user_style = np.round(masked, 9).argmax(axis=1)
            self.user_segment = np.array([f"seg-{self.style_ids[s]}" for s in self.user_style])
        elif segmenting == "kmeans":
            from sklearn.cluster import KMeans

            taste = np.asarray(truth["user_taste"], float)
            km = KMeans(n_clusters=min(n_segments, n_users), n_init=4, random_state=seed).fit(taste)
            labels = km.labels_
            seg_style = np.array(
                [masked[labels == k].mean(axis=0).argmax() for k in range(km.n_clusters)]
            )
            self.user_style = seg_style[labels]
            self.user_segment = np.array([f"seg{k:02d}" for k in labels])
        else:
            raise ValueError(f"segmenting must be 'top_style' or 'kmeans', got {segmenting!r}")

        uu, ii = np.meshgrid(np.arange(n_users), np.arange(n_items), indexing="ij")
        self.p_control = np.asarray(world.click_probability(uu, ii, np.full_like(uu, -1)), float)
        if treatment_multiplier is not None:
            if treatment_multiplier <= 0 or self.p_control.max() * treatment_multiplier >= 1:
                raise ValueError(f"treatment multiplier {treatment_multiplier} is out of range")
            self.p_treatment = self.p_control * treatment_multiplier
            self.treatment_style = np.full(n_users, -1)
        else:
            ss = np.broadcast_to(self.user_style[:, None], uu.shape)
            self.p_treatment = np.asarray(world.click_probability(uu, ii, ss), float)
            self.treatment_style = self.user_style
        self._stacked = np.stack([self.p_control, self.p_treatment]).astype(np.float32)
        pop = np.asarray(truth.get("item_popularity", np.zeros(n_items)), float)
        w = np.exp(item_sharpness * (pop - pop.max()))
        # Items are drawn through a 2**16-entry lookup table (one integer draw and one
        # gather per impression; a CDF search is 3x slower).  The table's own
        # frequencies define item_p, so the true CTRs below are exact for it.
        quota = w / w.sum() * _TABLE
        counts = np.floor(quota).astype(np.int64)
        short = _TABLE - int(counts.sum())
        counts[np.argsort(counts - quota)[:short]] += 1
        self._item_table = np.repeat(np.arange(n_items), counts)
        self.item_p = counts / _TABLE
        self.prices = _prices(world, n_items)
        self.activity = _activity(world, self.user_ids)
        self._buy = self._purchase_matrices(world, uu, ii)

    def _purchase_matrices(
        self, world: Any, uu: np.ndarray, ii: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """P(purchase | click) for both arms, through the planted funnel when the world has one."""
        model = getattr(world, "click_model", None)
        if model is None or not all(
            hasattr(model, a) for a in ("score", "cart_probability", "purchase_probability")
        ):
            return None
        out = []
        for styles in (np.full_like(uu, -1), np.broadcast_to(self.treatment_style[:, None], uu.shape)):
            score = model.score(world.truth, uu, ii, styles)
            out.append(model.cart_probability(score) * model.purchase_probability(score))
        return out[0], out[1]

    # ------------------------------------------------------------------ truth

    def _expected_impressions(self, mean_impressions: float) -> np.ndarray:
        return 1.0 + max(mean_impressions - 1.0, 0.0) * self.activity

    def true_ctr(self, mean_impressions: float = 10.0) -> tuple[float, float]:
        """Expected CTR of (control, treatment) over the user population and item mix.

        Users are drawn uniformly from the world; the arm's CTR is a ratio of
        means, so each user's item-weighted click probability counts in
        proportion to the user's expected impressions (heavy users weigh more).
        """
        w = self._expected_impressions(mean_impressions)
        w = w / w.sum()
        return float(w @ (self.p_control @ self.item_p)), float(w @ (self.p_treatment @ self.item_p))

    def true_lift(self, aa: bool = False, mean_impressions: float = 10.0) -> float:
        """Planted relative CTR lift of treatment over control (0 in A/A mode)."""
        if aa:
            return 0.0
        c, t = self.true_ctr(mean_impressions)
        return t / c - 1.0

    # ------------------------------------------------------------------ fast path

    def _draw(self, rng: np.random.Generator, n_users: int, mean_impressions: float,
              p: np.ndarray, users: np.ndarray, pt: np.ndarray | None, treated: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        imps = 1 + rng.poisson(max(mean_impressions - 1.0, 0.0) * self.activity[users])
        owner = np.repeat(np.arange(n_users), imps)
        items = self._item_table[rng.integers(0, _TABLE, size=owner.size)]
        flat = users[owner] * p.shape[1] + items
        if pt is None:
            prob = p.ravel()[flat]
        else:
            # One gather from the stacked (control, treatment) table instead of two plus a where.
            both = self._stacked if pt is self.p_treatment else np.stack([p, pt])
            prob = both.ravel()[flat + treated[owner] * p.size]
        clicked = rng.random(owner.size, dtype=np.float32) < prob
        clicks = np.bincount(owner, weights=clicked, minlength=n_users).astype(np.int64)
        return imps, clicks, owner, items

    def simulate_users(
        self,
        n_users: int,
        rng: np.random.Generator,
        mean_impressions: float = 10.0,
        aa: bool = False,
        treat_share: float = 0.5,
        pre_impressions: float = 0.0,
    ) -> SimulatedUsers:
        """Per-user impressions and clicks of one simulated test.

        Users are drawn from the world with replacement and assigned by an
        independent coin with ``treat_share`` (a hash assignment is uniform too;
        see :meth:`simulate_log` for the logged version).  ``pre_impressions > 0``
        also draws a control-only pre-period for CUPED.
        """
        users = rng.integers(0, len(self.user_ids), size=n_users)
        treated = rng.random(n_users) < treat_share
        imps, clicks, _, _ = self._draw(rng, n_users, mean_impressions, self.p_control, users,
                                        None if aa else self.p_treatment, treated)
        if pre_impressions > 0:
            _, pre, _, _ = self._draw(rng, n_users, pre_impressions, self.p_control, users, None,
                                      treated)
        else:
            pre = np.zeros(n_users, dtype=np.int64)
        return SimulatedUsers(treated, imps, clicks, pre)

    def run_many(
        self,
        n_tests: int,
        n_users: int,
        mean_impressions: float = 10.0,
        aa: bool = False,
        alpha: float = 0.05,
        seed: int = 0,
        progress: Callable[[int], None] | None = None,
    ) -> pd.DataFrame:
        """Simulate ``n_tests`` experiments and analyse each with :func:`ratio_lift`.

        Returns one row per test: estimated CTR lift, its delta-method interval,
        p-value, the true lift, whether the interval covers it and whether the
        test rejected at ``alpha``.
        """
        rng = np.random.default_rng(seed)
        truth = self.true_lift(aa, mean_impressions)
        rows = []
        for k in range(n_tests):
            s = self.simulate_users(n_users, rng, mean_impressions, aa)
            t, c = s.treated, ~s.treated
            est = ratio_lift(s.clicks[t], s.impressions[t], s.clicks[c], s.impressions[c], alpha)
            rows.append((est.lift, est.ci_low, est.ci_high, est.p_value))
            if progress is not None:
                progress(k)
        df = pd.DataFrame(rows, columns=["lift", "ci_low", "ci_high", "p_value"])
        df["true_lift"] = truth
        df["covered"] = (df["ci_low"] <= truth) & (truth <= df["ci_high"])
        df["rejected"] = df["p_value"] < alpha
        return df

    # ------------------------------------------------------------------ logged path

    def simulate_log(
        self,
        n_users: int,
        experiment: str = "segment_renders",
        salt: str = "sim",
        mean_impressions: float = 10.0,
        days: int = 14,
        start: pd.Timestamp | str | None = None,
        aa: bool = False,
        seed: int = 0,
        holdout: float = 0.0,
    ) -> pd.DataFrame:
        """A combined exposure + outcome log of one simulated experiment.

        Rows with ``event_type == "view"`` are exposures (with every exposure
        column, ``shown_image`` the original photo or the segment render URI);
        ``click`` and ``purchase`` rows follow them a few minutes later.  Users
        are assigned with :func:`recsys.experiments.assign`, so the log is what
        the serving side would have produced.  When ``n_users`` does not exceed
        the world, the world's own user ids are used (so the world's event log
        serves as the CUPED pre-period); otherwise users are drawn with
        replacement and suffixed ``-k``.
        """
        rng = np.random.default_rng(seed)
        n_world = len(self.user_ids)
        if n_users <= n_world:
            users = np.sort(rng.choice(n_world, size=n_users, replace=False))
            uid = self.user_ids[users]
        else:
            users = rng.integers(0, n_world, size=n_users)
            uid = np.array([f"{self.user_ids[u]}-{k}" for k, u in enumerate(users)])
        variant = assign(uid, experiment, {"control": 0.5, "treatment": 0.5}, salt, holdout)
        keep = variant != "holdout"
        users, uid, variant = users[keep], uid[keep], variant[keep]
        treated = variant == "treatment"
        n = len(users)
        pt = None if aa else self.p_treatment
        imps, clicks, owner, items = self._draw(rng, n, mean_impressions, self.p_control, users,
                                                pt, treated)
        u = users[owner]
        tr = treated[owner]
        prob = self.p_control[u, items] if pt is None else np.where(tr, pt[u, items],
                                                                    self.p_control[u, items])
        clicked = rng.random(owner.size) < prob  # fresh draw: the log is its own test
        t0 = pd.Timestamp(start if start is not None else "2026-01-01")
        t0 = t0.tz_localize("UTC") if t0.tzinfo is None else t0.tz_convert("UTC")
        offset_s = rng.uniform(0, days * 86400.0, size=owner.size)
        ts = t0 + pd.to_timedelta(offset_s, unit="s")
        style = np.where(tr & (not aa), self.treatment_style[u], -1)
        item_id = self.item_ids[items]
        style_id = np.where(style >= 0, self.style_ids[np.maximum(style, 0)], None)
        shown = np.where(
            style >= 0,
            np.char.add(np.char.add(np.char.add("renders/", self.user_segment[u].astype(str)), "/"),
                        np.char.add(item_id.astype(str), ".webp")),
            np.char.add(np.char.add("images/", item_id.astype(str)), ".png"),
        )
        seg = self.user_segment[u]
        views = pd.DataFrame({
            "user_id": uid[owner], "item_id": item_id, "experiment": experiment,
            "variant": variant[owner], "shown_image": shown, "segment_id": seg,
            "timestamp": ts, "event_type": "view", "style_id": style_id, "price": np.nan,
        })
        frames = [views]
        if clicked.any():
            cl = views[clicked].copy()
            cl["event_type"] = "click"
            cl["timestamp"] = cl["timestamp"] + pd.to_timedelta(rng.uniform(1, 120, len(cl)), unit="s")
            frames.append(cl)
            if self._buy is not None:
                pb = np.where(tr, self._buy[1][u, items], self._buy[0][u, items])[clicked]
                bought = rng.random(pb.size) < pb
                if bought.any():
                    buy = cl[bought].copy()
                    buy["event_type"] = "purchase"
                    buy["timestamp"] = buy["timestamp"] + pd.to_timedelta(
                        rng.uniform(60, 3600, len(buy)), unit="s")
                    if self.prices is not None:
                        buy["price"] = self.prices[items[clicked][bought]]
                    frames.append(buy)
        out = pd.concat(frames, ignore_index=True).sort_values("timestamp", kind="stable")
        log.info("simulated %s: %d users, %d impressions, %d clicks", experiment, n,
                 int(owner.size), int(clicked.sum()))
        return out.reset_index(drop=True)
