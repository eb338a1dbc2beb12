"""Power and sample-size calculations for CTR-style experiments.

Two questions an analyst asks before starting a test: "how many users do I
need to detect a +x % lift?" and "with the users I have, what lift could I
detect?".  The answers below use the normal approximation of the same tests
that :mod:`recsys.experiments.analysis` runs, so planning and analysis agree:

* :func:`sample_size_proportions` / :func:`power_proportions`: two independent
  Bernoulli samples (two-proportion z-test, pooled variance under H0 and
  unpooled under H1, as in Fleiss, Levin & Paik).  Right when every unit has
  one trial, e.g. "did the user click at all".
  :func:`exact_power_proportions` checks the approximation against exact
  binomial sampling.
* :func:`sample_size_ratio_metric`: CTR as a user-level ratio metric with the
  per-user variance estimated from a pilot or pre-period log by
  :func:`ratio_unit_variance` (the delta-method variance used in the analysis).
  Users see many impressions and differ in taste, so the impression-level
  Bernoulli formula would badly undercount the users needed; the design-effect
  shortcut ``1 + (m - 1) * icc`` is offered for when no log is at hand.

Quantiles come from ``scipy.stats.norm``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats


def _check(baseline: float, relative_lift: float, alpha: float, power: float) -> None:
    if not 0.0 < baseline < 1.0:
        raise ValueError(f"baseline rate must be in (0, 1), got {baseline}")
    if relative_lift == 0.0 or not math.isfinite(relative_lift):
        raise ValueError(f"relative lift must be a non-zero number, got {relative_lift}")
    if not 0.0 < baseline * (1.0 + relative_lift) < 1.0:
        raise ValueError(
            f"baseline {baseline} with lift {relative_lift:+.1%} leaves (0, 1): no such rate"
        )
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if not 0.0 < power < 1.0:
        raise ValueError(f"power must be in (0, 1), got {power}")


def sample_size_proportions(
    baseline: float, relative_lift: float, alpha: float = 0.05, power: float = 0.8
) -> int:
    """Units per arm for a two-sided two-proportion z-test (equal arms).

    ``n = (z_{1-α/2} sqrt(2 p̄ q̄) + z_{power} sqrt(p1 q1 + p2 q2))² / (p2 - p1)²``.
    """
    _check(baseline, relative_lift, alpha, power)
    p1 = baseline
    p2 = baseline * (1.0 + relative_lift)
    pbar = (p1 + p2) / 2.0
    za = stats.norm.ppf(1.0 - alpha / 2.0)
    zb = stats.norm.ppf(power)
    num = za * math.sqrt(2.0 * pbar * (1.0 - pbar)) + zb * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))
    return int(math.ceil(num**2 / (p2 - p1) ** 2))


def power_proportions(
    n_per_arm: float, baseline: float, relative_lift: float, alpha: float = 0.05
) -> float:
    """Power of the two-sided two-proportion z-test with ``n_per_arm`` units per arm."""
    _check(baseline, relative_lift, alpha, 0.5)
    p1 = baseline
    p2 = baseline * (1.0 + relative_lift)
    pbar = (p1 + p2) / 2.0
    se0 = math.sqrt(2.0 * pbar * (1 - pbar) / n_per_arm)
    se1 = math.sqrt((p1 * (1 - p1) + p2 * (1 - p2)) / n_per_arm)
    za = stats.norm.ppf(1.0 - alpha / 2.0)
    d = abs(p2 - p1)
    return float(stats.norm.cdf((d - za * se0) / se1) + stats.norm.cdf((-d - za * se0) / se1))


def exact_power_proportions(
    n_per_arm: int, baseline: float, relative_lift: float, alpha: float = 0.05
) -> float:
    """Power of the pooled two-proportion z-test under exact binomial sampling.

    :func:`power_proportions` is the normal approximation the calculator inverts;
    this sums the rejection probability over the joint binomial distribution of
    the two arms' counts instead (every count within 9 standard deviations of its
    mean), so "the calculator's ``n`` reaches the asked power" can be checked to
    four decimals without a Monte Carlo error bar.  Cost grows with the square of
    the counts' spread: fine up to a few million units per arm.
    """
    _check(baseline, relative_lift, alpha, 0.5)
    n = int(n_per_arm)
    if n < 1:
        raise ValueError(f"units per arm must be >= 1, got {n_per_arm}")
    p1 = baseline
    p2 = baseline * (1.0 + relative_lift)

    def support(p: float) -> np.ndarray:
        mean, sd = n * p, math.sqrt(n * p * (1.0 - p))
        return np.arange(max(0, math.floor(mean - 9 * sd)), min(n, math.ceil(mean + 9 * sd)) + 1)

    xc, xt = support(p1), support(p2)
    pooled = (xc[:, None] + xt[None, :]) / (2.0 * n)
    se = np.sqrt(pooled * (1.0 - pooled) * 2.0 / n)
    diff = (xt[None, :] - xc[:, None]) / n
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(se > 0, diff / np.where(se > 0, se, 1.0), 0.0)
    reject = np.abs(z) >= stats.norm.ppf(1.0 - alpha / 2.0)
    return float(stats.binom.pmf(xc, n, p1) @ reject @ stats.binom.pmf(xt, n, p2))


def ratio_unit_variance(clicks: np.ndarray, impressions: np.ndarray) -> tuple[float, float]:
    """Baseline CTR and per-user variance of the linearised CTR from a pilot log.

    Returns ``(R, σ²)`` with ``R = Σ clicks / Σ impressions`` and
    ``σ² = Var(clicks - R · impressions) / mean(impressions)²``, so that the
    delta-method variance of an arm's CTR over ``n`` users is ``σ² / n``.
    """
    x = np.asarray(clicks, float)
    y = np.asarray(impressions, float)
    if x.shape != y.shape or x.size < 2:
        raise ValueError("need per-user clicks and impressions of equal length (>= 2 users)")
    if y.sum() <= 0:
        raise ValueError("pilot log has no impressions")
    r = x.sum() / y.sum()
    lin = x - r * y
    return float(r), float(lin.var(ddof=1) / y.mean() ** 2)


def sample_size_ratio_metric(
    baseline_ctr: float,
    relative_lift: float,
    unit_variance: float,
    alpha: float = 0.05,
    power: float = 0.8,
) -> int:
    """Users per arm to detect ``relative_lift`` on a user-level ratio metric (CTR).

    ``unit_variance`` is σ² from :func:`ratio_unit_variance`.  Under the
    alternative the treatment's variance is taken as ``(1 + lift)² σ²`` (every
    click count scaled by the lift), which is the larger of the two plausible
    scalings and so errs towards enough users.  The delta-method z-test on the
    difference then needs ``n = (z_{1-α/2} + z_{power})² (σ_c² + σ_t²) / δ²``.
    """
    _check(baseline_ctr, relative_lift, alpha, power)
    if not unit_variance > 0:
        raise ValueError(f"unit variance must be > 0, got {unit_variance}")
    delta = baseline_ctr * relative_lift
    za = stats.norm.ppf(1.0 - alpha / 2.0)
    zb = stats.norm.ppf(power)
    var = unit_variance * (1.0 + (1.0 + relative_lift) ** 2)
    return int(math.ceil((za + zb) ** 2 * var / delta**2))


@dataclass(frozen=True)
class PowerPlan:
    """A sample-size answer with the assumptions it rests on (for the CLI and notebooks)."""

    baseline_ctr: float
    relative_lift: float
    alpha: float
    power: float
    impressions_per_arm: int
    impressions_per_user: float
    icc: float
    users_per_arm: int


def plan_ctr_test(
    baseline_ctr: float,
    relative_lift: float,
    alpha: float = 0.05,
    power: float = 0.8,
    impressions_per_user: float = 1.0,
    icc: float = 0.0,
) -> PowerPlan:
    """Sample size without a pilot log: impressions from the Bernoulli formula, users via the design effect.

    With ``m`` impressions per user and intra-user correlation ``icc`` the
    variance of a clustered mean is inflated by ``1 + (m - 1) icc``; users per
    arm = impressions × that factor / m.  ``icc = 0`` (impressions independent)
    is optimistic; estimate it, or better use :func:`sample_size_ratio_metric`
    with a pilot log.
    """
    if impressions_per_user < 1:
        raise ValueError(f"impressions per user must be >= 1, got {impressions_per_user}")
    if not 0.0 <= icc <= 1.0:
        raise ValueError(f"icc must be in [0, 1], got {icc}")
    n_imp = sample_size_proportions(baseline_ctr, relative_lift, alpha, power)
    deff = 1.0 + (impressions_per_user - 1.0) * icc
    users = int(math.ceil(n_imp * deff / impressions_per_user))
    return PowerPlan(baseline_ctr, relative_lift, alpha, power, n_imp, impressions_per_user, icc, users)
