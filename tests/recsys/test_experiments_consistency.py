"""Every interval the A/B analysis reports agrees with its p-value.

For each metric row (CTR, clicks/user, CVR, revenue/user, both CUPED rows, and
the per-segment CTR rows) the relative-lift interval and the difference interval
must exclude 0 exactly when ``p < alpha``: they are inversions of the same test.
Simulated user tables span null and non-null effects, unequal and multi-arm
splits, and the case that broke it: a small control mean with a treatment effect
that grows with pre-period activity (the demo notebook's CUPED revenue row).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsys.experiments import mean_lift, metric_table, proportion_lift, ratio_lift, segment_table
from recsys.experiments.estimators import cuped_lift

ALPHA = 0.05


def _users(seed: int, effect: float, n: int = 1200, shares: tuple[float, ...] = (0.5, 0.5),
           heterogeneous: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-user table (variant, segment, impressions, clicks, purchases, revenue) + pre-period.

    ``effect`` multiplies the click probability of every non-control arm by
    ``1 + effect`` (arm k gets ``k * effect``); ``heterogeneous`` makes it
    proportional to the user's pre-period activity, with a rare-buying control.
    """
    rng = np.random.default_rng(seed)
    arms = ["control"] + [f"t{k}" for k in range(1, len(shares))]
    arm = rng.choice(len(arms), size=n, p=np.asarray(shares) / sum(shares))
    activity = rng.lognormal(0.0, 0.8, n)
    ctr = rng.beta(1.0, 15.0, n)
    lift = arm * effect * (activity / activity.mean() if heterogeneous else 1.0)
    imps = 1 + rng.poisson(8 * activity)
    clicks = rng.binomial(imps, np.clip(ctr * (1 + lift), 0, 1))
    buy_p = 0.01 if heterogeneous else 0.1
    purchases = rng.binomial(clicks, np.where(arm > 0, min(1.0, buy_p * (1 + 10 * effect)), buy_p))
    revenue = purchases * rng.gamma(2.0, 20.0, n)
    pre_imps = 1 + rng.poisson(8 * activity)
    pre_clicks = rng.binomial(pre_imps, ctr)
    pre_rev = rng.binomial(pre_clicks, 0.1) * rng.gamma(2.0, 20.0, n)
    idx = pd.Index([f"u{k}" for k in range(n)], name="user_id")
    users = pd.DataFrame({"variant": np.asarray(arms)[arm],
                          "segment_id": rng.choice(["s1", "s2", "s3"], n),
                          "impressions": imps, "clicks": clicks, "purchases": purchases,
                          "revenue": revenue}, index=idx)
    pre = pd.DataFrame({"clicks": pre_clicks, "purchases": 0, "revenue": pre_rev}, index=idx)
    return users, pre


COUNTS: dict[str, int] = {"rows": 0, "significant": 0, "unbounded": 0}


def _disagreements(table: pd.DataFrame) -> list[str]:
    """Rows whose intervals and p-value disagree; counts rows, significant ones, unbounded ones.

    A relative interval may be NaN only when it is unbounded (Fieller: the control
    mean is not distinguishable from zero); the difference interval always exists.
    """
    bad: list[str] = []
    for _, r in table.iterrows():
        reject = r["p_value"] < ALPHA
        COUNTS["rows"] += 1
        COUNTS["significant"] += bool(reject)
        pairs = [("diff", r["diff_low"], r["diff_high"])]
        if np.isfinite(r["ci_low"]) and np.isfinite(r["ci_high"]):
            pairs.append(("lift", r["ci_low"], r["ci_high"]))
        else:
            COUNTS["unbounded"] += 1
        for name, lo, hi in pairs:
            if bool(lo > 0 or hi < 0) != bool(reject):
                bad.append(f"{r.get('metric', r.get('segment_id'))} {name} [{lo:.4g}, {hi:.4g}] "
                           f"p={r['p_value']:.4g}")
    return bad


@pytest.mark.parametrize("shares", [(0.5, 0.5), (0.1, 0.9), (0.3, 0.35, 0.35)])
def test_every_metric_interval_excludes_zero_exactly_when_p_below_alpha(shares: tuple) -> None:
    bad: list[str] = []
    before = dict(COUNTS)
    for seed in range(24):
        effect = (0.0, 0.04, 0.08, 0.15)[seed % 4]  # null, near the threshold, clear
        users, pre = _users(seed, effect, shares=shares)
        table = metric_table(users, alpha=ALPHA, pre_period=pre, n_bootstrap=0)
        assert set(table["metric"]) == {"ctr", "clicks_per_user", "cvr", "revenue_per_user",
                                        "clicks_per_user_cuped", "revenue_per_user_cuped"}
        bad += _disagreements(table) + _disagreements(segment_table(users, alpha=ALPHA))
    rows = COUNTS["rows"] - before["rows"]
    sig = COUNTS["significant"] - before["significant"]
    unbounded = COUNTS["unbounded"] - before["unbounded"]
    print(f"shares {shares}: {rows} rows, {sig} with p < {ALPHA}, {rows - sig} not, "
          f"{unbounded} with an unbounded relative interval")
    # Both sides of the threshold are exercised many times, and most rows have a relative CI.
    assert sig >= 40 and rows - sig >= 40, (sig, rows)
    assert unbounded <= 0.05 * rows
    assert not bad, bad


def test_small_control_mean_cuped_revenue_interval_agrees_with_p() -> None:
    """The notebook's failure: a huge, activity-dependent effect over a near-zero control mean."""
    users, pre = _users(7, 3.0, n=2000, heterogeneous=True)
    table = metric_table(users, alpha=ALPHA, pre_period=pre, n_bootstrap=0).set_index("metric")
    row = table.loc["revenue_per_user_cuped"]
    assert row["p_value"] < 1e-10
    assert 0 < row["ci_low"] < row["lift"] < row["ci_high"]
    assert row["diff_low"] > 0
    # The relative lift is over the raw control mean, the same as the unadjusted row's.
    assert row["control"] == pytest.approx(table.loc["revenue_per_user", "control"])
    assert 0 < row["variance_reduction"] < 1


def test_estimators_agree_with_textbook_values() -> None:
    rng = np.random.default_rng(4)
    yt, yc = rng.exponential(1.1, 800), rng.exponential(1.0, 1200)
    est = mean_lift(yt, yc)
    from scipy import stats

    welch = stats.ttest_ind(yt, yc, equal_var=False)
    assert est.p_value == pytest.approx(welch.pvalue, rel=1e-9)
    ci = welch.confidence_interval(0.95)
    assert (est.diff_low, est.diff_high) == pytest.approx((ci.low, ci.high), rel=1e-9)
    # A control mean indistinguishable from zero has no bounded relative interval.
    tiny = ratio_lift(np.r_[1.0, np.zeros(99)], np.ones(100), np.r_[0.0, 1.0, np.zeros(98)],
                      np.ones(100))
    assert np.isnan(tiny.ci_low) and np.isnan(tiny.ci_high) and np.isfinite(tiny.diff_low)
    # Degenerate arms: identical constants are not a difference, different constants are.
    same = proportion_lift(0, 50, 0, 50)
    assert same.p_value == 1.0 and np.isnan(same.lift)
    sure = proportion_lift(50, 50, 25, 50)
    assert sure.p_value < ALPHA and sure.ci_low > 0


def test_cuped_theta_minimises_the_variance_of_the_difference() -> None:
    users, pre = _users(11, 0.5, n=3000, shares=(0.1, 0.9), heterogeneous=True)
    t = (users["variant"] != "control").to_numpy()
    y, x = users["clicks"].to_numpy(float), pre["clicks"].to_numpy(float)
    est, theta, _ = cuped_lift(y[t], x[t], y[~t], x[~t])
    widths = {}
    for th in (theta, 0.8 * theta, 1.25 * theta):
        e, _, _ = cuped_lift(y[t], x[t], y[~t], x[~t], theta=th)
        widths[th] = e.diff_high - e.diff_low
    assert widths[theta] == min(widths.values())
    assert est.diff_high - est.diff_low == pytest.approx(widths[theta])
