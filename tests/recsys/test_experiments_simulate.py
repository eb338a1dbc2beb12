"""The A/B simulator on the demo world: A/A false positives, coverage, power, logged tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recsys.experiments import (
    ABSimulator,
    analyze,
    assign,
    cuped_adjust,
    ratio_unit_variance,
    sample_size_ratio_metric,
)

synthetic = pytest.importorskip("demo")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> object:
    """A small demo world without images (the simulator needs only the planted truth)."""
    cfg = synthetic.WorldConfig(seed=3, n_users=1000, n_items=120, target_events=20_000,
                                write_images=False)
    return synthetic.generate_world(tmp_path_factory.mktemp("abworld"), cfg)


def test_true_lift_matches_the_click_model(world: object) -> None:
    sim = ABSimulator(world)
    c, t = sim.true_ctr()
    # Users click renders in their top style much more: the planted lift is large.
    assert t > 2 * c
    # Brute force over every (user, item) pair with the world's own click model.
    n_u, n_i = sim.p_control.shape
    uu, ii = np.meshgrid(np.arange(n_u), np.arange(n_i), indexing="ij")
    pc = world.click_probability(uu, ii, -np.ones_like(uu))
    pt = world.click_probability(uu, ii, np.broadcast_to(sim.user_style[:, None], uu.shape))
    w = 1 + 9 * sim.activity  # expected impressions per user at 10 on average
    assert c == pytest.approx(np.average(pc @ sim.item_p, weights=w))
    assert t == pytest.approx(np.average(pt @ sim.item_p, weights=w))
    # Activity comes from the world's log: the heaviest viewer is the most active.
    views = world.events[world.events["event_type"] == "view"]["user_id"].value_counts()
    assert sim.user_ids[np.argmax(sim.activity)] == views.index[0]
    # Segment styles are never held-out styles (they never appear in the logs).
    held = set(world.truth["holdout_style_ids"].astype(str))
    assert not held & set(sim.style_ids[sim.user_style])
    assert ABSimulator(world, treatment_multiplier=1.05).true_lift() == pytest.approx(0.05)
    assert sim.true_lift(aa=True) == 0.0


def test_aa_false_positive_rate(world: object) -> None:
    res = ABSimulator(world).run_many(1000, 3000, aa=True, seed=11)
    fpr = res["rejected"].mean()
    assert 0.03 <= fpr <= 0.07, fpr
    assert res["lift"].mean() == pytest.approx(0.0, abs=0.01)


def test_ab_interval_coverage(world: object) -> None:
    res = ABSimulator(world).run_many(1000, 3000, seed=12)
    cover = res["covered"].mean()
    assert 0.92 <= cover <= 0.98, cover
    assert res["rejected"].all()  # a +300 % lift is never missed
    assert res["lift"].mean() == pytest.approx(res["true_lift"].iloc[0], rel=0.02)


def test_kmeans_segments(world: object) -> None:
    sim = ABSimulator(world, segmenting="kmeans", n_segments=5)
    assert len(set(sim.user_segment)) == 5
    assert sim.true_lift() > 0.5
    with pytest.raises(ValueError, match="segmenting"):
        ABSimulator(world, segmenting="nope")


def test_cuped_on_simulated_pre_period(world: object) -> None:
    sim = ABSimulator(world)
    s = sim.simulate_users(20_000, np.random.default_rng(0), 10, aa=True, pre_impressions=30)
    y_adj, theta = cuped_adjust(s.clicks, s.pre_clicks)
    assert theta > 0
    # Heavy clickers stay heavy: the pre-period explains part of the variance.
    assert np.var(y_adj) < 0.95 * np.var(s.clicks)


def test_simulated_log_is_analysable(world: object, tmp_path: Path) -> None:
    sim = ABSimulator(world)
    log = sim.simulate_log(800, experiment="exp1", salt="s", seed=4,
                           start=pd.Timestamp("2026-02-01", tz="UTC"))
    views = log[log["event_type"] == "view"]
    users = views.drop_duplicates("user_id")
    # The logged arms are the hash assignment (what serving would have done).
    assert (users["variant"].to_numpy() == assign(users["user_id"], "exp1", salt="s")).all()
    treated = views["variant"] == "treatment"
    assert views.loc[treated, "shown_image"].str.startswith("renders/").all()
    assert views.loc[~treated, "shown_image"].str.startswith("images/").all()
    assert set(log["event_type"]) >= {"view", "click", "purchase"}
    assert (log.loc[log["event_type"] == "purchase", "price"] > 0).all()
    log.to_parquet(tmp_path / "x.parquet")
    report = analyze(pd.read_parquet(tmp_path / "x.parquet"), "exp1", n_bootstrap=0)
    ctr = report.table.set_index("metric").loc["ctr"]
    assert ctr["ci_low"] <= sim.true_lift() <= ctr["ci_high"]
    assert not report.srm.flagged
    assert "revenue_per_user" in set(report.table["metric"])
    aa = analyze(sim.simulate_log(800, experiment="aa", aa=True, seed=5), "aa", n_bootstrap=0)
    assert aa.table.set_index("metric").loc["ctr", "p_value"] > 0.001


@pytest.mark.slow
def test_power_at_calculated_size_on_world(world: object) -> None:
    """+5 % planted on the world's click model, users per arm from a pilot's variance."""
    sim = ABSimulator(world, treatment_multiplier=1.05)
    pilot = sim.simulate_users(50_000, np.random.default_rng(1), 10, aa=True)
    r, var = ratio_unit_variance(pilot.clicks, pilot.impressions)
    n = sample_size_ratio_metric(r, 0.05, var)
    res = sim.run_many(1000, 2 * n, 10, seed=2)
    power = res["rejected"].mean()
    se = np.sqrt(0.8 * 0.2 / len(res))
    assert 0.8 - 3 * se <= power <= 0.9, (n, power)


def test_a_tie_in_planted_taste_goes_to_the_first_style_on_every_machine(world: object) -> None:
    """A user planted with equal taste for several styles has affinities equal up to the last
    bit, and which one won differed between machines (the A/B notebook's stored segment of
    u00053 flipped between s08 and s11).  The tie goes to the first style, whatever the last
    bit says."""
    import copy

    tied = copy.copy(world)
    tied.truth = dict(world.truth)
    affinity = np.array(world.truth["affinity"], float)
    shown = [i for i, s in enumerate(np.asarray(world.truth["style_ids"]).astype(str))
             if s not in set(np.asarray(world.truth.get("holdout_style_ids", [])).astype(str))]
    first, later = shown[0], shown[-1]
    affinity[0] = 0.0
    affinity[0, first] = 1.2178368211952020
    affinity[0, later] = np.nextafter(affinity[0, first], 2.0)  # one bit above
    tied.truth["affinity"] = affinity
    assert affinity[0].argmax() == later  # what argmax alone would pick
    assert ABSimulator(tied).user_style[0] == first
