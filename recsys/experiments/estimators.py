"""Lift estimators of an A/B test: one statistic gives the p-value and both intervals.

Every estimator here reduces a metric to the same three quantities:

* ``D``: the estimated *difference* treatment − control of the metric,
* ``M``: the estimated control mean (the denominator of the relative lift),
* their (co)variances ``V_D``, ``V_M``, ``C_DM``,

and :func:`difference_estimate` derives everything reported from them:

* the p-value of the test ``D / sqrt(V_D)`` (normal, or Student's t with Welch's
  degrees of freedom for per-user means);
* the interval of the difference, ``D ± q sqrt(V_D)`` with the same quantile ``q``;
* the interval of the relative lift ``L = D / M`` by **Fieller's theorem**: the set
  of ``L`` for which ``|D − L·M| / sqrt(Var(D − L·M)) ≤ q``.  At ``L = 0`` that is
  exactly the difference test, so the relative interval excludes 0 *exactly* when
  ``p < alpha``.

Why not the textbook delta-method interval ``L ± q·se(L)``: it is centred on the
ratio and symmetric, while the p-value tests the difference; the two disagree
near the boundary, and badly when the control mean is small and noisy.  The
CUPED revenue row of the demo notebook showed it: a relative interval of
[−1296 %, +7888 %] beside p = 2.3e−101, because the CUPED-adjusted control
mean (4.03, against a raw 1.95) carried the pre-period's noise and was not
distinguishable from zero, which the symmetric interval turned into a huge
spread while the difference test (correctly) found an enormous effect.  Fieller's
interval cannot disagree with the test; when ``M`` itself is not distinguishable
from zero (``M² ≤ q² V_M``) the relative interval is unbounded and reported as
NaN, while the difference and its interval stay valid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

_NAN = float("nan")


@dataclass(frozen=True)
class LiftEstimate:
    """Relative lift of a treatment over control, with its interval and p-value.

    ``ci_low``/``ci_high`` bound the relative lift (Fieller; NaN when unbounded),
    ``diff_low``/``diff_high`` the absolute difference ``diff``; both come from the
    test that gives ``p_value``, so each excludes 0 exactly when ``p_value < alpha``.
    ``se`` is the delta-method standard error of the lift, for reference.
    """

    control: float
    treatment: float
    lift: float
    se: float
    ci_low: float
    ci_high: float
    p_value: float
    test: str
    diff: float = _NAN
    diff_low: float = _NAN
    diff_high: float = _NAN


def _nan_estimate(test: str, control: float = _NAN, treatment: float = _NAN) -> LiftEstimate:
    return LiftEstimate(control, treatment, _NAN, _NAN, _NAN, _NAN, _NAN, test)


def _quantile(alpha: float, df: float) -> float:
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if math.isfinite(df):
        return float(stats.t.ppf(1.0 - alpha / 2.0, df))
    return float(stats.norm.ppf(1.0 - alpha / 2.0))


def _two_sided_p(stat: float, df: float) -> float:
    if math.isfinite(df):
        return float(2.0 * stats.t.sf(abs(stat), df))
    return float(2.0 * stats.norm.sf(abs(stat)))


def welch_df(v_t: float, n_t: int, v_c: float, n_c: int) -> float:
    """Welch–Satterthwaite degrees of freedom from the two arms' variances *of the mean*."""
    den = (v_t * v_t / (n_t - 1) if n_t > 1 else 0.0) + (v_c * v_c / (n_c - 1) if n_c > 1 else 0.0)
    return float((v_t + v_c) ** 2 / den) if den > 0 else math.inf


def fieller_interval(d: float, m: float, v_d: float, v_m: float, c_dm: float,
                     q: float) -> tuple[float, float]:
    """Fieller's interval for ``L = δ / μ`` from estimates ``d``, ``m`` (NaN if unbounded).

    Solves ``(d − L m)² ≤ q² (v_d − 2 L c_dm + L² v_m)``; the set is a bounded
    interval only when ``m`` is significantly different from zero (``m² > q² v_m``).
    """
    a = m * m - q * q * v_m
    if not a > 0:
        return _NAN, _NAN
    b = -2.0 * (d * m - q * q * c_dm)
    c = d * d - q * q * v_d
    disc = b * b - 4.0 * a * c
    # L = d/m is always inside (f(d/m) = -q² Var(d - L m) ≤ 0), so disc ≥ 0 up to rounding.
    root = math.sqrt(max(disc, 0.0))
    lo, hi = (-b - root) / (2.0 * a), (-b + root) / (2.0 * a)
    return float(lo), float(hi)


def difference_estimate(d: float, v_d: float, m: float, v_m: float, c_dm: float,
                        alpha: float, test: str, df: float = math.inf) -> LiftEstimate:
    """The p-value, difference interval and Fieller lift interval of one test statistic.

    ``d``: treatment − control; ``m``: control mean (> 0 for a relative lift);
    ``v_d``, ``v_m``, ``c_dm``: variance of ``d``, of ``m`` and their covariance;
    ``df``: Student-t degrees of freedom (``inf``: normal).
    """
    if not all(math.isfinite(v) for v in (d, v_d, m, v_m, c_dm)):
        return _nan_estimate(test, m, m + d if math.isfinite(d) else _NAN)
    q = _quantile(alpha, df)
    se_d = math.sqrt(max(v_d, 0.0))
    if se_d > 0:
        p = _two_sided_p(d / se_d, df)
    else:
        p = 1.0 if d == 0 else 0.0
    diff_low, diff_high = d - q * se_d, d + q * se_d
    if m > 0:
        lift = d / m
        se = math.sqrt(max(v_d - 2.0 * lift * c_dm + lift * lift * v_m, 0.0)) / m
        lo, hi = fieller_interval(d, m, v_d, v_m, c_dm, q)
    else:
        lift = se = lo = hi = _NAN
    return LiftEstimate(float(m), float(m + d), float(lift), float(se), lo, hi, float(p), test,
                        float(d), float(diff_low), float(diff_high))


def _ratio_var(num: np.ndarray, den: np.ndarray) -> tuple[float, float]:
    """Ratio of means ``R = mean(num)/mean(den)`` and its delta-method variance.

    ``Var(R) ≈ (s_xx - 2 R s_xy + R² s_yy) / (n · mean(den)²)`` where the ``s``
    are the user-level sample (co)variances.
    """
    n = num.shape[0]
    if n < 2:
        return _NAN, _NAN
    mx, my = num.mean(), den.mean()
    if my <= 0:
        return _NAN, _NAN
    r = mx / my
    dx, dy = num - mx, den - my
    sxx = (dx @ dx) / (n - 1)
    syy = (dy @ dy) / (n - 1)
    sxy = (dx @ dy) / (n - 1)
    var = (sxx - 2.0 * r * sxy + r * r * syy) / (n * my * my)
    return float(r), float(max(var, 0.0))


def ratio_lift(
    num_t: np.ndarray,
    den_t: np.ndarray,
    num_c: np.ndarray,
    den_c: np.ndarray,
    alpha: float = 0.05,
) -> LiftEstimate:
    """Lift of a ratio metric (e.g. CTR = clicks / impressions) from per-user arrays.

    The test is the z-test of the difference ``R_t − R_c`` with the delta-method
    variances ``V_t + V_c`` (more powerful than testing ``lift / se(lift)``, whose
    variance carries an extra ``(R_t / R_c)²`` on the control term); the relative
    interval is Fieller's for ``R_t / R_c − 1`` from the same variances.
    """
    r_t, v_t = _ratio_var(np.asarray(num_t, float), np.asarray(den_t, float))
    r_c, v_c = _ratio_var(np.asarray(num_c, float), np.asarray(den_c, float))
    if not (np.isfinite(v_t) and np.isfinite(v_c)):
        return _nan_estimate("delta-method z", r_c, r_t)
    return difference_estimate(r_t - r_c, v_t + v_c, r_c, v_c, -v_c, alpha, "delta-method z")


def mean_lift(y_t: np.ndarray, y_c: np.ndarray, alpha: float = 0.05) -> LiftEstimate:
    """Lift of a per-user mean (clicks or revenue per user): Welch's t, Fieller interval."""
    y_t = np.asarray(y_t, float)
    y_c = np.asarray(y_c, float)
    if y_t.size < 2 or y_c.size < 2:
        return _nan_estimate("welch t")
    m_t, m_c = float(y_t.mean()), float(y_c.mean())
    v_t = float(y_t.var(ddof=1)) / y_t.size
    v_c = float(y_c.var(ddof=1)) / y_c.size
    df = welch_df(v_t, y_t.size, v_c, y_c.size)
    return difference_estimate(m_t - m_c, v_t + v_c, m_c, v_c, -v_c, alpha, "welch t", df)


def proportion_lift(x_t: int, n_t: int, x_c: int, n_c: int, alpha: float = 0.05) -> LiftEstimate:
    """Lift of a proportion of users (e.g. users who bought): unpooled two-proportion z.

    Unpooled (Wald) rather than the pooled score test so that the p-value and the
    interval come from the same variance: the pooled variance only holds under H0,
    so an interval built from it would not be the test's inversion.
    """
    if min(n_t, n_c) < 1:
        return _nan_estimate("two-proportion z")
    p_t, p_c = x_t / n_t, x_c / n_c
    v_t, v_c = p_t * (1 - p_t) / n_t, p_c * (1 - p_c) / n_c
    return difference_estimate(p_t - p_c, v_t + v_c, p_c, v_c, -v_c, alpha, "two-proportion z")


def cuped_theta(y_t: np.ndarray, x_t: np.ndarray, y_c: np.ndarray, x_c: np.ndarray) -> float:
    """The CUPED coefficient that minimises the variance of the adjusted difference.

    ``Var(D) = Var_t(y − θx)/n_t + Var_c(y − θx)/n_c`` is smallest at
    ``θ = (C_t/n_t + C_c/n_c) / (S_t/n_t + S_c/n_c)`` (``C`` = within-arm
    cov(x, y), ``S`` = within-arm var(x)); with equal arms it is the pooled
    within-arm slope, with a 10/90 split it weights the *small* arm's slope, and
    it equals the regression with arm-specific slopes (Lin 2013) evaluated at the
    overall covariate mean.  A slope fitted on both arms pooled would instead be
    dominated by the large arm (and by the treatment effect, where the effect
    grows with pre-period activity), which inflates the variance of the other.
    """
    num = den = 0.0
    for y, x in ((y_t, x_t), (y_c, x_c)):
        n = x.size
        if n < 2:
            continue
        num += float(np.cov(x, y, ddof=1)[0, 1]) / n
        den += float(x.var(ddof=1)) / n
    return num / den if den > 0 else 0.0


def cuped_lift(y_t: np.ndarray, x_t: np.ndarray, y_c: np.ndarray, x_c: np.ndarray,
               alpha: float = 0.05, theta: float | None = None) -> tuple[LiftEstimate, float, float]:
    """CUPED lift of a per-user mean with pre-period covariate ``x``: (estimate, theta, reduction).

    ``D`` is the difference of the adjusted arm means ``mean(y − θx)``; the relative
    lift divides it by the *raw* control mean (its variance and covariance with
    ``D`` enter Fieller's interval), because the adjustment is a variance
    reduction for the difference: applied to a small control mean it adds the
    pre-period's noise to the denominator.  ``reduction`` is ``1 − Var(D_cuped) /
    Var(D_raw)``.  The test is Welch's t on the adjusted values.
    """
    y_t, x_t = np.asarray(y_t, float), np.asarray(x_t, float)
    y_c, x_c = np.asarray(y_c, float), np.asarray(x_c, float)
    n_t, n_c = y_t.size, y_c.size
    if n_t < 2 or n_c < 2:
        return _nan_estimate("welch t (CUPED)"), 0.0, 0.0
    if theta is None:
        theta = cuped_theta(y_t, x_t, y_c, x_c)
    a_t, a_c = y_t - theta * x_t, y_c - theta * x_c
    v_t, v_c = float(a_t.var(ddof=1)) / n_t, float(a_c.var(ddof=1)) / n_c
    m_c = float(y_c.mean())
    v_m = float(y_c.var(ddof=1)) / n_c
    c_dm = -float(np.cov(a_c, y_c, ddof=1)[0, 1]) / n_c
    est = difference_estimate(float(a_t.mean() - a_c.mean()), v_t + v_c, m_c, v_m, c_dm, alpha,
                              "welch t (CUPED)", welch_df(v_t, n_t, v_c, n_c))
    raw = float(y_t.var(ddof=1)) / n_t + v_m
    reduction = 1.0 - (v_t + v_c) / raw if raw > 0 else 0.0
    return est, float(theta), float(reduction)


def cuped_adjust(y: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, float]:
    """CUPED: ``y - theta (x - mean x)`` with ``theta = cov(x, y) / var(x)`` over all users.

    The one-sample form, for looking at adjusted values; the analysis table uses
    :func:`cuped_lift`, whose ``theta`` is the variance-optimal one for the
    difference of two arms.
    """
    y = np.asarray(y, float)
    x = np.asarray(x, float)
    if y.shape != x.shape:
        raise ValueError(f"CUPED: metric and covariate lengths differ ({y.shape} vs {x.shape})")
    vx = float(x.var(ddof=1)) if x.size > 1 else 0.0
    if vx <= 0:
        return y.copy(), 0.0
    theta = float(np.cov(x, y, ddof=1)[0, 1] / vx)
    return y - theta * (x - x.mean()), theta


def bootstrap_lift_ci(
    num_t: np.ndarray,
    den_t: np.ndarray,
    num_c: np.ndarray,
    den_c: np.ndarray,
    alpha: float = 0.05,
    n_resamples: int = 2000,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``ratio_t / ratio_c - 1``, resampling users.

    A check on the normal approximation of the reported interval, never the source
    of a p-value.  Users (not impressions) are resampled, each arm on its own, by
    handing ``scipy.stats.bootstrap`` the per-arm user *indices*: that keeps each
    user's numerator and denominator together.  For a per-user mean pass
    ``den = ones``.  Percentile rather than BCa because BCa's jackknife is
    quadratic in the number of users.
    """
    num_t, den_t = np.asarray(num_t, float), np.asarray(den_t, float)
    num_c, den_c = np.asarray(num_c, float), np.asarray(den_c, float)
    if min(num_t.size, num_c.size) < 2:
        return _NAN, _NAN

    def statistic(i_t: np.ndarray, i_c: np.ndarray, axis: int = -1) -> np.ndarray:
        r_t = num_t[i_t].sum(axis=axis) / den_t[i_t].sum(axis=axis)
        r_c = num_c[i_c].sum(axis=axis) / den_c[i_c].sum(axis=axis)
        with np.errstate(divide="ignore", invalid="ignore"):
            return r_t / r_c - 1.0

    batch = max(1, int(4_000_000 // max(num_t.size, num_c.size)))
    with np.errstate(divide="ignore", invalid="ignore"):
        res = stats.bootstrap(
            (np.arange(num_t.size), np.arange(num_c.size)),
            statistic,
            n_resamples=n_resamples,
            confidence_level=1.0 - alpha,
            method="percentile",
            vectorized=True,
            paired=False,
            batch=batch,
            rng=np.random.default_rng(seed),
        )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)
