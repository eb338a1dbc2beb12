"""Measure the A/B analysis' statistical properties on the demo world (the figures in docs/benchmarks.md).

Run: ``python benchmarks/ab_simulation.py [--world DIR] [--tests N]``.  Prints
the A/A false-positive rate, interval coverage of the true lift, empirical
power at the calculator's sample size (world click model and plain Bernoulli),
assignment speed for 1M users and simulated tests per second.  Each rate is
printed with its Monte Carlo standard error.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from demo import World, WorldConfig, generate_world
from recsys.experiments import (
    ABSimulator,
    assign,
    exact_power_proportions,
    proportion_lift,
    ratio_unit_variance,
    sample_size_proportions,
    sample_size_ratio_metric,
)


def _rate(x: np.ndarray) -> str:
    p = float(np.mean(x))
    return f"{p:.4f} ± {np.sqrt(p * (1 - p) / len(x)):.4f} (n={len(x)})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--world", type=Path, default=None, help="demo world dir (default: generate one)")
    ap.add_argument("--tests", type=int, default=2000, help="simulated tests per figure")
    ap.add_argument("--users", type=int, default=3000, help="users per A/A and A/B test")
    args = ap.parse_args()
    if args.world is None:
        tmp = Path(tempfile.mkdtemp())
        world = generate_world(tmp / "world", WorldConfig(write_images=False))
    else:
        world = World.load(args.world)

    ids = np.array([f"u{i:07d}" for i in range(1_000_000)])
    t0 = time.perf_counter()
    assign(ids, "exp", salt="s")
    print(f"assign 1M users: {time.perf_counter() - t0:.2f} s")

    sim = ABSimulator(world)
    print(f"true CTR control/treatment {sim.true_ctr()}, true lift {sim.true_lift():+.4f}")
    t0 = time.perf_counter()
    aa = sim.run_many(args.tests, args.users, aa=True, seed=101)
    dt = time.perf_counter() - t0
    print(f"A/A false-positive rate at alpha=0.05, {args.users} users: {_rate(aa['rejected'])} "
          f"({args.tests / dt:.0f} tests/s)")
    ab = sim.run_many(args.tests, args.users, seed=102)
    print(f"A/B 95% interval coverage of the true lift: {_rate(ab['covered'])}")

    n = sample_size_proportions(0.05, 0.05)
    rng = np.random.default_rng(103)
    k = 100_000
    xc, xt = rng.binomial(n, 0.05, k), rng.binomial(n, 0.0525, k)
    rej = np.array([proportion_lift(int(a), n, int(b), n).p_value < 0.05
                    for a, b in zip(xt, xc, strict=True)])
    print(f"Bernoulli power at n={n}/arm (CTR 0.05, +5%): {_rate(rej)}; "
          f"exact binomial sum {exact_power_proportions(n, 0.05, 0.05):.5f}")

    msim = ABSimulator(world, treatment_multiplier=1.05)
    pilot = msim.simulate_users(50_000, np.random.default_rng(104), 10, aa=True)
    r, var = ratio_unit_variance(pilot.clicks, pilot.impressions)
    nu = sample_size_ratio_metric(r, 0.05, var)
    t0 = time.perf_counter()
    pw = msim.run_many(min(args.tests, 1000), 2 * nu, seed=105)
    print(f"world power, +5% planted, pilot CTR {r:.4f}, {nu} users/arm: {_rate(pw['rejected'])} "
          f"({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
