"""User-level analysis of an A/B test: per-arm metrics, lifts with intervals, SRM, CUPED.

Why the *user* is the unit: assignment randomises users, not impressions.  One
user's impressions share that user's taste and mood, so they are correlated;
a test that treats each impression as an independent Bernoulli trial (the
textbook two-proportion z-test on impression counts) underestimates the
variance and reports false positives far more often than its nominal α.

So every metric is first aggregated per user (:func:`user_table`), and each
metric's p-value, difference interval and relative-lift interval come from one
test statistic (:mod:`recsys.experiments.estimators`): the relative interval is
Fieller's inversion of the difference test, so it excludes 0 exactly when
``p < alpha``.

* **CTR** is a *ratio metric*: ``sum(clicks) / sum(impressions)`` over an arm's
  users, a ratio of two user-level means.  Its variance comes from the delta
  method applied to that ratio of means (Deng et al., "Applying the Delta
  Method in Metric Analytics", 2018), which accounts for the per-user
  clustering; the test is the z-test of the difference of the two ratios.
* **Per-user means** (clicks per user, revenue per user) are plain means of
  independent user values: Welch's t (the arms' variances differ when the
  treatment works), with Welch's degrees of freedom in the intervals too.
* **Proportions of users** (users who converted) are independent Bernoulli per
  user: the unpooled two-proportion z-test.
* A non-parametric **bootstrap** over users (``scipy.stats.bootstrap``, percentile
  method) is reported beside the interval as a check on the normal
  approximation for skewed metrics such as revenue; it gives no p-value.
* **CUPED** (Deng et al. 2013) compares ``mean(y - theta x)`` between the arms,
  where ``x`` is the same metric in a pre-period: unbiased because the
  pre-period cannot be affected by the assignment, and it removes the part of
  the variance that is just "heavy users stay heavy".  ``theta`` minimises the
  variance of the difference; the relative lift divides by the raw control mean.
* **SRM**: a chi-square goodness-of-fit test (``scipy.stats.chisquare``) of the
  users per arm against the configured split.  The customary threshold is
  ``p < 0.001``: the check runs on every experiment, so a strict threshold keeps
  false alarms rare, and real assignment or logging bugs give p-values far
  smaller than that at production sample sizes.  A flagged experiment's lifts
  should not be trusted.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from recsys.experiments.assignment import HOLDOUT
from recsys.experiments.estimators import (
    LiftEstimate,
    bootstrap_lift_ci,
    cuped_adjust,
    cuped_lift,
    mean_lift,
    proportion_lift,
    ratio_lift,
)

__all__ = [
    "ABReport", "LiftEstimate", "SRMResult", "SRM_THRESHOLD", "analyze", "bootstrap_lift_ci",
    "cumulative_lift", "cuped_adjust", "mean_lift", "metric_table", "pre_period_metrics",
    "proportion_lift", "ratio_lift", "segment_table", "srm_check", "user_table",
]

log = logging.getLogger(__name__)

SRM_THRESHOLD = 1e-3
"""p-value below which a sample-ratio mismatch is flagged (customary for SRM checks)."""

IMPRESSION_TYPES = frozenset({"view", "exposure", "impression"})
"""``event_type`` values that count as an impression in a combined log."""

CLICK = "click"
PURCHASE = "purchase"


# --------------------------------------------------------------------------- SRM


@dataclass(frozen=True)
class SRMResult:
    """Outcome of the sample-ratio-mismatch check."""

    observed: dict[str, int]
    expected: dict[str, float]
    chi2: float
    p_value: float
    threshold: float
    flagged: bool


def srm_check(
    observed: Mapping[str, int],
    expected_split: Mapping[str, float] | None = None,
    threshold: float = SRM_THRESHOLD,
) -> SRMResult:
    """Chi-square test of users per arm against the configured split.

    ``expected_split`` defaults to equal shares.  Arms in the split that
    received no users count as zero (a dead arm is the most blatant SRM).
    """
    arms = list(expected_split) if expected_split is not None else list(observed)
    split = (
        {a: float(expected_split[a]) for a in arms}
        if expected_split is not None
        else {a: 1.0 for a in arms}
    )
    unknown = set(observed) - set(arms)
    if unknown:
        raise ValueError(f"SRM: arms {sorted(unknown)} are not in the expected split {arms}")
    obs = np.asarray([int(observed.get(a, 0)) for a in arms], dtype=np.float64)
    w = np.asarray([split[a] for a in arms], dtype=np.float64)
    if len(arms) < 2 or obs.sum() == 0:
        return SRMResult({a: int(o) for a, o in zip(arms, obs, strict=True)}, split,
                         float("nan"), float("nan"), threshold, False)
    exp = obs.sum() * w / w.sum()
    chi2, p = stats.chisquare(obs, exp)
    return SRMResult(
        observed={a: int(o) for a, o in zip(arms, obs, strict=True)},
        expected={a: float(e) for a, e in zip(arms, exp, strict=True)},
        chi2=float(chi2),
        p_value=float(p),
        threshold=threshold,
        flagged=bool(p < threshold),
    )


# --------------------------------------------------------------------------- logs -> users


def _split_logs(
    logs: pd.DataFrame, experiment: str, events: pd.DataFrame | None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Separate impressions of ``experiment`` from outcome events."""
    for col in ("user_id", "experiment", "variant", "timestamp"):
        if col not in logs.columns:
            raise ValueError(f"exposure log lacks column {col!r}")
    if "event_type" in logs.columns:
        is_imp = logs["event_type"].isin(IMPRESSION_TYPES).to_numpy()
        exposures = logs[is_imp & (logs["experiment"] == experiment).to_numpy()]
        if events is None:
            events = logs[~is_imp]
    else:
        exposures = logs[logs["experiment"] == experiment]
        if events is None:
            raise ValueError(
                "the exposure log has no event_type column, so clicks must come from a "
                "separate events log"
            )
    if exposures.empty:
        present = sorted(map(str, logs["experiment"].dropna().unique()))[:10]
        raise ValueError(f"no exposures for experiment {experiment!r} (experiments in log: {present})")
    for col in ("user_id", "event_type", "timestamp"):
        if col not in events.columns:
            raise ValueError(f"events log lacks column {col!r}")
    return exposures, events


def user_table(
    logs: pd.DataFrame,
    experiment: str,
    events: pd.DataFrame | None = None,
    until: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """One row per exposed user: variant, segment, impressions, clicks, purchases, revenue.

    Outcomes (clicks, purchases) count when they come from an exposed user at or
    after that user's first exposure (earlier activity cannot be an effect of the
    treatment).  When the events carry an ``experiment`` column, events tagged
    with a *different* experiment are left out.  Users seen in more than one arm
    (a logging or assignment bug) are dropped and counted in ``attrs["mixed_users"]``.
    ``until`` truncates both logs, which is how the cumulative view is built.
    """
    return _attributed(logs, experiment, events, until)[0]


def _attributed(
    logs: pd.DataFrame,
    experiment: str,
    events: pd.DataFrame | None,
    until: pd.Timestamp | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The user table plus the exposures and attributed outcome events behind it."""
    exposures, events = _split_logs(logs, experiment, events)
    exposures = exposures.assign(timestamp=pd.to_datetime(exposures["timestamp"], utc=True))
    if until is not None:
        exposures = exposures[exposures["timestamp"] <= until]
    grp = exposures.groupby("user_id", sort=True, observed=True)
    n_variants = grp["variant"].nunique()
    mixed = n_variants.index[n_variants > 1]
    seg = None
    if "segment_id" in exposures.columns:
        # Most frequent segment per user, vectorised (a per-group mode() is 100x slower).
        pairs = (
            exposures.dropna(subset=["segment_id"])
            .groupby(["user_id", "segment_id"], sort=True, observed=True)
            .size()
            .rename("n")
            .reset_index()
            .sort_values(["user_id", "n"], ascending=[True, False], kind="stable")
            .drop_duplicates("user_id")
        )
        seg = pairs.set_index("user_id")["segment_id"]
    users = pd.DataFrame(
        {
            "variant": grp["variant"].first().astype(str),
            "impressions": grp.size().astype(np.int64),
            "first_exposure": grp["timestamp"].min(),
        }
    )
    users["segment_id"] = seg.reindex(users.index) if seg is not None else None
    users = users.drop(index=mixed)
    users = users[users["variant"] != HOLDOUT]

    ev = events[events["user_id"].isin(users.index)]
    ev = ev[ev["event_type"].isin((CLICK, PURCHASE))]
    if "experiment" in ev.columns:
        ev = ev[ev["experiment"].isna() | (ev["experiment"] == experiment)]
    ev = ev.assign(timestamp=pd.to_datetime(ev["timestamp"], utc=True))
    if until is not None:
        ev = ev[ev["timestamp"] <= until]
    first = users["first_exposure"].reindex(ev["user_id"])
    ev = ev[ev["timestamp"].array >= first.array]
    clicks = ev[ev["event_type"] == CLICK].groupby("user_id").size()
    buys = ev[ev["event_type"] == PURCHASE]
    purchases = buys.groupby("user_id").size()
    users["clicks"] = clicks.reindex(users.index, fill_value=0).astype(np.int64)
    users["purchases"] = purchases.reindex(users.index, fill_value=0).astype(np.int64)
    has_price = "price" in buys.columns and bool(buys["price"].notna().any())
    if has_price:
        rev = buys.groupby("user_id")["price"].sum(min_count=1).fillna(0.0)
        users["revenue"] = rev.reindex(users.index, fill_value=0.0).astype(float)
    users.index.name = "user_id"
    users.attrs["mixed_users"] = len(mixed)
    users.attrs["has_price"] = has_price
    if len(mixed):
        log.warning("experiment %s: %d users seen in more than one arm were dropped",
                    experiment, len(mixed))
    exposures = exposures[exposures["user_id"].isin(users.index)]
    return users, exposures, ev


def pre_period_metrics(
    events: pd.DataFrame, user_ids: Sequence[str] | pd.Index, before: pd.Timestamp
) -> pd.DataFrame:
    """Per-user clicks, purchases and revenue before ``before`` (CUPED covariates).

    Users without pre-period activity get zeros: that is their true pre-period
    value, and dropping them would make the adjusted comparison depend on who
    happened to be active before.
    """
    ev = events.assign(timestamp=pd.to_datetime(events["timestamp"], utc=True))
    ev = ev[(ev["timestamp"] < before) & ev["user_id"].isin(user_ids)]
    idx = pd.Index(user_ids, name="user_id")
    out = pd.DataFrame(index=idx)
    out["clicks"] = ev[ev["event_type"] == CLICK].groupby("user_id").size().reindex(idx, fill_value=0)
    buys = ev[ev["event_type"] == PURCHASE]
    out["purchases"] = buys.groupby("user_id").size().reindex(idx, fill_value=0)
    if "price" in buys.columns:
        out["revenue"] = buys.groupby("user_id")["price"].sum().reindex(idx, fill_value=0.0)
    return out


# --------------------------------------------------------------------------- the report


@dataclass
class ABReport:
    """Everything an analyst reads off one experiment."""

    experiment: str
    control: str
    users: pd.DataFrame
    table: pd.DataFrame
    srm: SRMResult
    segments: pd.DataFrame
    alpha: float
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (NaN becomes None)."""

        def clean(df: pd.DataFrame) -> list[dict[str, Any]]:
            recs = df.astype(object).where(df.notna(), None).to_dict(orient="records")
            return [{k: (v.item() if hasattr(v, "item") else v) for k, v in r.items()} for r in recs]

        return {
            "experiment": self.experiment,
            "control": self.control,
            "alpha": self.alpha,
            "users": int(len(self.users)),
            "mixed_users_dropped": int(self.users.attrs.get("mixed_users", 0)),
            "srm": {
                "observed": self.srm.observed,
                "expected": self.srm.expected,
                "chi2": None if np.isnan(self.srm.chi2) else self.srm.chi2,
                "p_value": None if np.isnan(self.srm.p_value) else self.srm.p_value,
                "threshold": self.srm.threshold,
                "flagged": self.srm.flagged,
            },
            "metrics": clean(self.table),
            "segments": clean(self.segments),
            "notes": list(self.notes),
        }


def _row(metric: str, variant: str, est: LiftEstimate, n_c: int, n_t: int,
         boot: tuple[float, float] | None) -> dict[str, Any]:
    return {
        "metric": metric,
        "variant": variant,
        "users_control": n_c,
        "users_variant": n_t,
        "control": est.control,
        "value": est.treatment,
        "lift": est.lift,
        "ci_low": est.ci_low,
        "ci_high": est.ci_high,
        "diff": est.diff,
        "diff_low": est.diff_low,
        "diff_high": est.diff_high,
        "boot_low": boot[0] if boot else np.nan,
        "boot_high": boot[1] if boot else np.nan,
        "p_value": est.p_value,
        "test": est.test,
    }


def metric_table(
    users: pd.DataFrame,
    control: str = "control",
    alpha: float = 0.05,
    pre_period: pd.DataFrame | None = None,
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """Per-arm metrics and lifts versus ``control`` for every other arm.

    Rows: ``ctr`` (ratio metric, delta method), ``clicks_per_user`` (Welch),
    ``cvr`` (share of users who bought, two-proportion z), ``revenue_per_user``
    when prices exist (Welch), and ``*_cuped`` rows for the per-user metrics
    when ``pre_period`` (from :func:`pre_period_metrics`) is given (with their
    ``theta`` and ``variance_reduction`` of the difference).  ``lift`` with
    ``ci_low``/``ci_high`` (NaN when the control mean is not distinguishable from
    zero, so that no bounded relative interval exists) and ``diff`` with
    ``diff_low``/``diff_high`` are inversions of the test giving ``p_value``.
    Set ``n_bootstrap=0`` to skip the bootstrap columns.
    """
    if control not in set(users["variant"]):
        raise ValueError(f"control arm {control!r} has no users (arms: {sorted(set(users['variant']))})")
    c = users[users["variant"] == control]
    rows: list[dict[str, Any]] = []
    has_rev = "revenue" in users.columns
    pre: dict[str, np.ndarray] = {}
    if pre_period is not None:
        for m in ("clicks", "revenue"):
            if m in users.columns and m in pre_period.columns:
                pre[m] = pre_period[m].reindex(users.index, fill_value=0).to_numpy(float)

    def bs(nt: np.ndarray, dt: np.ndarray, nc: np.ndarray, dc: np.ndarray) -> tuple[float, float] | None:
        if n_bootstrap <= 0:
            return None
        return bootstrap_lift_ci(nt, dt, nc, dc, alpha, n_bootstrap, seed)

    for variant in sorted(set(users["variant"]) - {control}):
        t = users[users["variant"] == variant]
        n_c, n_t = len(c), len(t)

        ct, it = t["clicks"].to_numpy(float), t["impressions"].to_numpy(float)
        cc, ic = c["clicks"].to_numpy(float), c["impressions"].to_numpy(float)
        rows.append(_row("ctr", variant, ratio_lift(ct, it, cc, ic, alpha), n_c, n_t,
                         bs(ct, it, cc, ic)))
        one_t, one_c = np.ones(n_t), np.ones(n_c)
        rows.append(_row("clicks_per_user", variant, mean_lift(ct, cc, alpha), n_c, n_t,
                         bs(ct, one_t, cc, one_c)))
        bt = int((t["purchases"] > 0).sum())
        bc = int((c["purchases"] > 0).sum())
        rows.append(_row("cvr", variant, proportion_lift(bt, n_t, bc, n_c, alpha), n_c, n_t, None))
        if has_rev:
            rt, rc = t["revenue"].to_numpy(float), c["revenue"].to_numpy(float)
            rows.append(_row("revenue_per_user", variant, mean_lift(rt, rc, alpha), n_c, n_t,
                             bs(rt, one_t, rc, one_c)))
        mask_t = (users["variant"] == variant).to_numpy()
        mask_c = (users["variant"] == control).to_numpy()
        for m, x in pre.items():
            name = "clicks_per_user_cuped" if m == "clicks" else "revenue_per_user_cuped"
            y = users[m].to_numpy(float)
            est, theta, reduction = cuped_lift(y[mask_t], x[mask_t], y[mask_c], x[mask_c], alpha)
            row = _row(name, variant, est, n_c, n_t, None)
            row["theta"] = theta
            row["variance_reduction"] = reduction
            rows.append(row)
    return pd.DataFrame(rows)


def segment_table(users: pd.DataFrame, control: str = "control", alpha: float = 0.05) -> pd.DataFrame:
    """CTR lift per segment and arm (delta method), for the forest plot.

    Segments are pre-treatment attributes of the user (the segment the user
    belongs to whichever arm they are in), so the per-segment comparison is
    still randomised.  Intervals are per segment, not corrected for multiple
    comparisons: read them as a map of where the effect lives, not as tests.
    """
    rows = []
    if "segment_id" not in users.columns or users["segment_id"].isna().all():
        return pd.DataFrame(columns=["segment_id", "variant", "users_control", "users_variant",
                                     "control", "value", "lift", "ci_low", "ci_high", "diff", "diff_low",
                                     "diff_high", "p_value"])
    for seg, g in users.groupby("segment_id", sort=True):
        c = g[g["variant"] == control]
        for variant in sorted(set(g["variant"]) - {control}):
            t = g[g["variant"] == variant]
            est = ratio_lift(t["clicks"].to_numpy(float), t["impressions"].to_numpy(float),
                             c["clicks"].to_numpy(float), c["impressions"].to_numpy(float), alpha)
            rows.append({"segment_id": seg, "variant": variant, "users_control": len(c),
                         "users_variant": len(t), "control": est.control, "value": est.treatment,
                         "lift": est.lift, "ci_low": est.ci_low, "ci_high": est.ci_high,
                         "diff": est.diff, "diff_low": est.diff_low, "diff_high": est.diff_high,
                         "p_value": est.p_value})
    return pd.DataFrame(rows)


def analyze(
    logs: pd.DataFrame,
    experiment: str,
    events: pd.DataFrame | None = None,
    control: str = "control",
    expected_split: Mapping[str, float] | None = None,
    alpha: float = 0.05,
    pre_period: pd.DataFrame | None = None,
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> ABReport:
    """Analyse one experiment from its exposure log (and click/purchase events).

    ``logs`` is either the exposure log plus a separate ``events`` frame, or a
    combined log with an ``event_type`` column (views are impressions; clicks
    and purchases are outcomes), such as the demo world's ``events.parquet``
    or what ``stylerec ab simulate`` writes.  ``expected_split`` defaults to
    equal shares across the arms present in the log.
    """
    users = user_table(logs, experiment, events)
    counts = users["variant"].value_counts().to_dict()
    srm = srm_check({str(k): int(v) for k, v in counts.items()},
                    expected_split if expected_split is not None else None)
    notes: list[str] = []
    if srm.flagged:
        notes.append(
            f"SAMPLE RATIO MISMATCH (p = {srm.p_value:.2e} < {srm.threshold}): the arms did not "
            "receive the configured split; the lifts below are not trustworthy."
        )
    if users.attrs.get("mixed_users", 0):
        notes.append(f"{users.attrs['mixed_users']} users appeared in more than one arm and were dropped.")
    table = metric_table(users, control, alpha, pre_period, n_bootstrap, seed)
    segments = segment_table(users, control, alpha)
    return ABReport(experiment, control, users, table, srm, segments, alpha, notes)


def cumulative_lift(
    logs: pd.DataFrame,
    experiment: str,
    events: pd.DataFrame | None = None,
    control: str = "control",
    freq: str = "D",
    alpha: float = 0.05,
) -> pd.DataFrame:
    """CTR per arm and CTR lift with its interval, using the data up to each period end.

    Shows an analyst how the estimate settled (and why peeking early at a
    wide interval is misleading).  One row per (period end, non-control arm).
    The logs are attributed once (users seen in two arms over the whole test
    are dropped from every period); per-user impressions and clicks are then
    counted per period and accumulated, instead of re-reading the logs for
    every period.
    """
    users, exposures, ev = _attributed(logs, experiment, events)
    if control not in set(users["variant"]):
        raise ValueError(f"control arm {control!r} has no users")
    ts = exposures["timestamp"]
    ends = pd.date_range(ts.min().floor(freq), ts.max().ceil(freq), freq=freq)[1:]
    if len(ends) == 0 or ends[-1] < ts.max():
        ends = ends.append(pd.DatetimeIndex([ts.max()]))
    n_u, n_p = len(users), len(ends)
    pos = pd.Index(users.index)

    def per_period(frame: pd.DataFrame) -> np.ndarray:
        u = pos.get_indexer(frame["user_id"])
        period = np.searchsorted(ends.asi8, frame["timestamp"].dt.as_unit(ends.unit).array.asi8,
                                 side="left")
        ok = (u >= 0) & (period < n_p)
        counts = np.bincount(u[ok] * n_p + period[ok], minlength=n_u * n_p)
        return np.cumsum(counts.reshape(n_u, n_p), axis=1)

    imps = per_period(exposures)
    clicks = per_period(ev[ev["event_type"] == CLICK])
    variant = users["variant"].to_numpy()
    rows = []
    for j, end in enumerate(ends):
        seen = imps[:, j] > 0
        c = seen & (variant == control)
        for arm in sorted(set(variant) - {control}):
            t = seen & (variant == arm)
            est = ratio_lift(clicks[t, j], imps[t, j], clicks[c, j], imps[c, j], alpha)
            rows.append({"until": end, "variant": arm, "users": int(seen.sum()),
                         "ctr_control": est.control, "ctr_variant": est.treatment,
                         "lift": est.lift, "ci_low": est.ci_low, "ci_high": est.ci_high})
    return pd.DataFrame(rows)
