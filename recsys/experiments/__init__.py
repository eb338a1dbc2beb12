"""A/B testing: deterministic assignment, exposure logging, user-level analysis, power, simulation.

See :mod:`recsys.experiments.analysis` for why everything is analysed per user.
"""

from recsys.experiments.analysis import (
    SRM_THRESHOLD,
    ABReport,
    LiftEstimate,
    SRMResult,
    analyze,
    bootstrap_lift_ci,
    cumulative_lift,
    cuped_adjust,
    mean_lift,
    metric_table,
    pre_period_metrics,
    proportion_lift,
    ratio_lift,
    segment_table,
    srm_check,
    user_table,
)
from recsys.experiments.assignment import (
    EXPOSURE_COLUMNS,
    EXPOSURE_SCHEMA,
    HOLDOUT,
    Experiment,
    ExposureLogger,
    assign,
    exposures_frame,
    hash_unit,
)
from recsys.experiments.power import (
    PowerPlan,
    exact_power_proportions,
    plan_ctr_test,
    power_proportions,
    ratio_unit_variance,
    sample_size_proportions,
    sample_size_ratio_metric,
)
from recsys.experiments.simulate import ABSimulator, SimulatedUsers

__all__ = [
    "ABReport", "ABSimulator", "EXPOSURE_COLUMNS", "EXPOSURE_SCHEMA", "Experiment",
    "ExposureLogger", "HOLDOUT", "LiftEstimate", "PowerPlan", "SRMResult", "SRM_THRESHOLD",
    "SimulatedUsers", "analyze", "assign", "bootstrap_lift_ci", "cumulative_lift", "cuped_adjust",
    "exact_power_proportions", "exposures_frame", "hash_unit", "mean_lift", "metric_table",
    "plan_ctr_test", "power_proportions", "pre_period_metrics", "proportion_lift", "ratio_lift",
    "ratio_unit_variance", "sample_size_proportions", "sample_size_ratio_metric", "segment_table",
    "srm_check", "user_table",
]
