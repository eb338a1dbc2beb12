"""User-level A/B analysis: tests, intervals, SRM, CUPED, log handling."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from recsys.experiments import (
    analyze,
    bootstrap_lift_ci,
    cumulative_lift,
    cuped_adjust,
    mean_lift,
    proportion_lift,
    ratio_lift,
    srm_check,
    user_table,
)


def test_srm_flags_506_494_of_a_million_but_not_5005_4995() -> None:
    bad = srm_check({"control": 506_000, "treatment": 494_000}, {"control": 0.5, "treatment": 0.5})
    assert bad.flagged and bad.p_value < 1e-30
    ok = srm_check({"control": 500_500, "treatment": 499_500}, {"control": 0.5, "treatment": 0.5})
    assert not ok.flagged and ok.p_value == pytest.approx(0.3173, abs=1e-3)  # chi2 = 1 on 1 df
    # An arm that received nobody is the most blatant mismatch.
    assert srm_check({"control": 1000}, {"control": 0.5, "treatment": 0.5}).flagged
    # Unequal configured splits are honoured.
    assert not srm_check({"control": 200_300, "treatment": 799_700},
                         {"control": 0.2, "treatment": 0.8}).flagged
    with pytest.raises(ValueError, match="not in the expected split"):
        srm_check({"control": 1, "x": 2}, {"control": 0.5, "treatment": 0.5})


def _clustered(rng: np.random.Generator, n: int, ctr: float = 0.05, conc: float = 2.0
               ) -> tuple[np.ndarray, np.ndarray]:
    """Users with Beta-distributed personal CTRs and Poisson impression counts."""
    p = rng.beta(ctr * conc, (1 - ctr) * conc, size=n)
    imps = 1 + rng.poisson(15, size=n)
    return rng.binomial(imps, p), imps


def test_user_level_delta_method_controls_false_positives_where_impression_level_does_not() -> None:
    rng = np.random.default_rng(3)
    delta_rej = naive_rej = 0
    n_tests = 400
    for _ in range(n_tests):
        ct, it = _clustered(rng, 1500)
        cc, ic = _clustered(rng, 1500)
        delta_rej += ratio_lift(ct, it, cc, ic).p_value < 0.05
        # The textbook impression-level test, treating every impression as independent.
        naive_rej += proportion_lift(int(ct.sum()), int(it.sum()), int(cc.sum()), int(ic.sum())).p_value < 0.05
    assert 0.025 <= delta_rej / n_tests <= 0.08
    assert naive_rej / n_tests > 0.2  # heavy clustering: the naive test is badly anti-conservative


def test_delta_interval_agrees_with_bootstrap() -> None:
    rng = np.random.default_rng(0)
    ct, it = _clustered(rng, 3000, 0.055)
    cc, ic = _clustered(rng, 3000, 0.05)
    est = ratio_lift(ct, it, cc, ic)
    lo, hi = bootstrap_lift_ci(ct, it, cc, ic, n_resamples=1000, seed=1)
    assert est.ci_low < est.lift < est.ci_high
    assert lo < est.lift < hi
    assert (hi - lo) == pytest.approx(est.ci_high - est.ci_low, rel=0.15)
    assert est.lift == pytest.approx((ct.sum() / it.sum()) / (cc.sum() / ic.sum()) - 1)


def test_welch_and_two_proportion_match_scipy() -> None:
    rng = np.random.default_rng(1)
    yt = rng.exponential(1.1, 800)
    yc = rng.exponential(1.0, 1200)
    assert mean_lift(yt, yc).p_value == pytest.approx(stats.ttest_ind(yt, yc, equal_var=False).pvalue)
    est = proportion_lift(130, 1000, 100, 1000)
    # Unpooled (Wald) z, the test whose inversion is the reported interval; the pooled
    # chi-square gives nearly the same p here (0.0355 vs 0.0353).
    z = (0.13 - 0.10) / np.sqrt(0.13 * 0.87 / 1000 + 0.10 * 0.90 / 1000)
    assert est.p_value == pytest.approx(2 * stats.norm.sf(z))
    chi2 = stats.chi2_contingency([[130, 870], [100, 900]], correction=False)
    assert est.p_value == pytest.approx(chi2.pvalue, rel=0.02)
    assert est.lift == pytest.approx(0.3)


def test_cuped_reduces_variance_without_bias() -> None:
    rng = np.random.default_rng(2)
    raw_lifts, cuped_lifts = [], []
    for _ in range(200):
        x = rng.gamma(2.0, 1.0, 2000)  # pre-period activity
        treated = rng.random(2000) < 0.5
        y = x + rng.normal(0, 0.7, 2000) + 0.1 * treated
        y_adj, theta = cuped_adjust(y, x)
        assert 0.8 < theta < 1.2
        raw_lifts.append(y[treated].mean() - y[~treated].mean())
        cuped_lifts.append(y_adj[treated].mean() - y_adj[~treated].mean())
    assert np.var(cuped_lifts) < 0.3 * np.var(raw_lifts)
    assert np.mean(cuped_lifts) == pytest.approx(0.1, abs=0.01)
    # A constant covariate carries no information: no adjustment.
    y_same, theta0 = cuped_adjust(np.arange(5.0), np.ones(5))
    assert theta0 == 0.0 and (y_same == np.arange(5.0)).all()


def _ts(minutes: float) -> pd.Timestamp:
    return pd.Timestamp("2026-02-01", tz="UTC") + pd.Timedelta(minutes=minutes)


def _log() -> pd.DataFrame:
    rows = [
        # user, item, event, minute, experiment, variant, segment, price
        ("a", "i1", "click", 0, "e", "control", "s1", 9.0),  # before first exposure: not counted
        ("a", "i1", "view", 1, "e", "control", "s1", None),
        ("a", "i2", "view", 2, "e", "control", "s1", None),
        ("a", "i1", "click", 3, "e", "control", "s1", None),
        ("b", "i1", "view", 1, "e", "treatment", "s1", None),
        ("b", "i1", "click", 2, "e", "treatment", "s1", None),
        ("b", "i1", "purchase", 3, "e", "treatment", "s1", 20.0),
        ("b", "i3", "click", 4, "other", "x", None, None),  # another experiment's click
        ("c", "i1", "view", 1, "e", "control", "s2", None),
        ("c", "i1", "view", 2, "e", "treatment", "s2", None),  # seen in both arms: dropped
        ("d", "i2", "view", 1, "e", "holdout", "s2", None),  # holdout: not analysed
        ("f", "i2", "view", 5, "e", "treatment", "s2", None),
        ("f", "i2", "view", 6, "e", "treatment", "s2", None),
        ("f", "i2", "purchase", 7, "e", "treatment", "s2", 5.0),
        ("f", "i2", "purchase", 8, "e", "treatment", "s2", 7.5),
    ]
    df = pd.DataFrame(rows, columns=["user_id", "item_id", "event_type", "m", "experiment",
                                     "variant", "segment_id", "price"])
    df["timestamp"] = df["m"].map(_ts)
    return df.drop(columns="m")


def test_user_table_attribution_rules() -> None:
    users = user_table(_log(), "e")
    assert sorted(users.index) == ["a", "b", "f"]
    assert users.attrs["mixed_users"] == 1
    a, b, f = users.loc["a"], users.loc["b"], users.loc["f"]
    assert (a["impressions"], a["clicks"], a["purchases"]) == (2, 1, 0)
    assert (b["impressions"], b["clicks"], b["purchases"], b["revenue"]) == (1, 1, 1, 20.0)
    assert (f["purchases"], f["revenue"]) == (2, 12.5)
    assert a["segment_id"] == "s1"


def test_user_table_with_separate_events_and_errors() -> None:
    log = _log()
    views = log[log["event_type"] == "view"].drop(columns="event_type")
    outcomes = log[log["event_type"] != "view"]
    users = user_table(views, "e", events=outcomes)
    assert users.loc["a", "clicks"] == 1 and users.loc["b", "purchases"] == 1
    with pytest.raises(ValueError, match="separate events log"):
        user_table(views, "e")
    with pytest.raises(ValueError, match="no exposures for experiment 'nope'"):
        user_table(log, "nope")
    with pytest.raises(ValueError, match="lacks column 'variant'"):
        user_table(log.drop(columns="variant"), "e")


def _synthetic_log(seed: int, n_users: int = 3000, lift: float = 0.2, split: float = 0.5) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    uid = np.array([f"u{k}" for k in range(n_users)])
    treated = rng.random(n_users) < split
    seg = np.where(rng.random(n_users) < 0.5, "s1", "s2")
    base = rng.beta(1.0, 12.0, n_users)
    imps = 1 + rng.poisson(6, n_users)
    owner = np.repeat(np.arange(n_users), imps)
    p = base[owner] * np.where(treated[owner] & (seg[owner] == "s1"), 1 + 2 * lift, 1.0)
    clicked = rng.random(owner.size) < p
    t = _ts(0) + pd.to_timedelta(rng.uniform(0, 7 * 1440, owner.size), unit="min")
    views = pd.DataFrame({"user_id": uid[owner], "item_id": "i", "experiment": "e",
                          "variant": np.where(treated[owner], "treatment", "control"),
                          "segment_id": seg[owner], "timestamp": t, "event_type": "view"})
    clicks = views[clicked].assign(event_type="click", timestamp=lambda d: d["timestamp"] + pd.Timedelta(seconds=5))
    return pd.concat([views, clicks], ignore_index=True)


def test_analyze_end_to_end_segments_and_json() -> None:
    report = analyze(_synthetic_log(0), "e", n_bootstrap=200)
    ctr = report.table.set_index("metric").loc["ctr"]
    assert ctr["ci_low"] > 0 and ctr["p_value"] < 0.05
    assert "revenue_per_user" not in set(report.table["metric"])  # no prices in this log
    seg = report.segments.set_index("segment_id")
    # The planted effect lives in segment s1 only.
    assert seg.loc["s1", "ci_low"] > 0 and seg.loc["s2", "ci_low"] < 0 < seg.loc["s2", "ci_high"]
    assert not report.srm.flagged and report.notes == []
    text = json.dumps(report.to_dict())
    assert '"metric": "ctr"' in text


def test_analyze_warns_on_srm() -> None:
    report = analyze(_synthetic_log(1, split=0.56), "e", n_bootstrap=0)
    assert report.srm.flagged
    assert any("SAMPLE RATIO MISMATCH" in n for n in report.notes)
    assert report.table["boot_low"].isna().all()


def test_cumulative_lift_ends_at_full_estimate() -> None:
    log = _synthetic_log(2, n_users=1500)
    cum = cumulative_lift(log, "e")
    assert cum["users"].is_monotonic_increasing and len(cum) >= 7
    widths = (cum["ci_high"] - cum["ci_low"]).to_numpy()
    assert widths[-1] < widths[0]  # more data, narrower interval
    full = analyze(log, "e", n_bootstrap=0).table.set_index("metric").loc["ctr", "lift"]
    assert cum["lift"].iloc[-1] == pytest.approx(full)
