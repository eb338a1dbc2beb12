"""``stylerec ab``: analyse, simulate and size A/B tests of segment renders.

``ab analyze`` turns an exposure log (plus clicks and purchases) into the
user-level table an analyst reads, with plots; ``ab simulate`` writes such a
log from the demo world's planted click model, where the true lift is known;
``ab power`` answers "how many users do I need?" before a test starts.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pandas and recsys.experiments load inside the commands: `--help` stays fast
    import pandas as pd


def _read_log(path: Path) -> pd.DataFrame:
    """Read a Parquet or CSV log, naming the file in any error."""
    import pandas as pd

    if not path.exists():
        raise FileNotFoundError(f"log file not found: {path}")
    try:
        if path.suffix.lower() == ".csv":
            return pd.read_csv(path)
        return pd.read_parquet(path)
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read log {path}: {exc}") from exc


def _split(text: str) -> dict[str, float]:
    """Parse ``control=0.5,treatment=0.5``."""
    out: dict[str, float] = {}
    for part in text.split(","):
        name, _, weight = part.partition("=")
        if not name or not weight:
            raise argparse.ArgumentTypeError(f"expected NAME=WEIGHT pairs, got {part!r}")
        out[name.strip()] = float(weight)
    return out


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"must be in (0, 1), got {value}")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``ab analyze``, ``ab simulate`` and ``ab power``."""
    ab = subparsers.add_parser("ab", help="A/B tests: analyze logs, simulate tests, sample sizes")
    sub = ab.add_subparsers(dest="ab_command", metavar="ACTION")
    sub.required = True

    a = sub.add_parser("analyze", help="user-level analysis of one experiment",
                       description="Per-arm CTR, CVR, revenue per user, lifts with delta-method "
                                   "and bootstrap intervals, SRM check, per-segment breakdown.")
    a.add_argument("--logs", required=True, type=Path,
                   help="exposure log (Parquet/CSV); with an event_type column it may also hold "
                        "the clicks and purchases")
    a.add_argument("--events", type=Path, default=None,
                   help="separate click/purchase log when --logs holds exposures only")
    a.add_argument("--experiment", required=True, help="experiment name in the log")
    a.add_argument("--pre-events", type=Path, default=None,
                   help="event log covering the time before the test: per-user clicks and revenue "
                        "before the first exposure become CUPED covariates")
    a.add_argument("--control", default="control", help="name of the control arm")
    a.add_argument("--split", type=_split, default=None,
                   help="configured traffic split for the SRM check, e.g. control=0.2,treatment=0.8 "
                        "(default: equal shares)")
    a.add_argument("--alpha", type=_fraction, default=0.05, help="significance level")
    a.add_argument("--bootstrap", type=int, default=1000,
                   help="bootstrap resamples (0 to skip; default %(default)s)")
    a.add_argument("--json", action="store_true", help="print JSON instead of a table")
    a.add_argument("--plots", type=Path, default=None, metavar="DIR", help="write PNG plots here")
    a.set_defaults(func=run_analyze)

    s = sub.add_parser("simulate", help="simulate an experiment on the demo world",
                       description="Control shows original photos; treatment shows each user the "
                                   "render in their segment's style. Writes a combined log "
                                   "(views, clicks, purchases) and prints the true lift.")
    s.add_argument("--world", required=True, type=Path, help="demo world directory")
    s.add_argument("--out", required=True, type=Path, help="output Parquet log")
    s.add_argument("--aa", action="store_true", help="A/A test: both arms see originals")
    s.add_argument("--users", type=_positive, default=2000, help="users in the test")
    s.add_argument("--impressions", type=float, default=10.0, help="mean impressions per user")
    s.add_argument("--days", type=_positive, default=14, help="test duration in days")
    s.add_argument("--experiment", default="segment_renders", help="experiment name")
    s.add_argument("--salt", default="sim", help="assignment salt")
    s.add_argument("--segmenting", choices=("top_style", "kmeans"), default="top_style",
                   help="treatment segments: top_style (one per planted favourite shown style) or "
                        "kmeans (k-means on the planted tastes, each segment's best style)")
    s.add_argument("--seed", type=int, default=0, help="random seed")
    s.set_defaults(func=run_simulate)

    p = sub.add_parser("power", help="sample size for a CTR lift",
                       description="Impressions per arm from the two-proportion formula, and users "
                                   "per arm through the design effect 1 + (m - 1) * icc.")
    p.add_argument("--baseline-ctr", required=True, type=_fraction, help="control CTR, e.g. 0.05")
    p.add_argument("--lift", required=True, type=float, help="relative lift to detect, e.g. 0.05")
    p.add_argument("--alpha", type=_fraction, default=0.05, help="two-sided significance level")
    p.add_argument("--power", type=_fraction, default=0.8, help="target power")
    p.add_argument("--impressions-per-user", type=float, default=1.0,
                   help="mean impressions per user (default 1: users = impressions)")
    p.add_argument("--icc", type=float, default=0.0,
                   help="intra-user correlation of clicks (0 = independent impressions)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run_power)


def _fmt(x: float, pct: bool = False) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x * 100:+.2f}%" if pct else f"{x:.4g}"


def run_analyze(args: argparse.Namespace) -> int:
    """Print the analysis table (or JSON) and write plots."""
    from recsys.experiments import analyze, cumulative_lift, pre_period_metrics, user_table

    logs = _read_log(args.logs)
    events = _read_log(args.events) if args.events is not None else None
    pre = None
    if args.pre_events is not None:
        users = user_table(logs, args.experiment, events)
        pre = pre_period_metrics(_read_log(args.pre_events), users.index,
                                 before=users["first_exposure"].min())
    report = analyze(logs, args.experiment, events=events, control=args.control,
                     expected_split=args.split, alpha=args.alpha, pre_period=pre,
                     n_bootstrap=args.bootstrap)
    written: list[str] = []
    if args.plots is not None:
        from recsys.experiments.plots import (
            plot_cumulative,
            plot_lifts,
            plot_segments,
            save_figure,
        )

        written.append(str(save_figure(plot_lifts(report.table, args.experiment),
                                       args.plots / "lift_intervals.png")))
        written.append(str(save_figure(plot_segments(report.segments),
                                       args.plots / "segments_forest.png")))
        cum = cumulative_lift(logs, args.experiment, events, args.control, alpha=args.alpha)
        written.append(str(save_figure(plot_cumulative(cum), args.plots / "cumulative.png")))
    if args.json:
        out = report.to_dict()
        out["plots"] = written
        print(json.dumps(out, indent=2, default=str))
        return 0
    srm = report.srm
    print(f"experiment {report.experiment}: {len(report.users)} users "
          f"({', '.join(f'{k}={v}' for k, v in srm.observed.items())})")
    print(f"SRM check: chi2={srm.chi2:.3g} p={srm.p_value:.3g} "
          f"{'FLAGGED' if srm.flagged else 'ok'} (threshold p < {srm.threshold})")
    cols = ["metric", "variant", "control", "value", "lift", "ci_low", "ci_high", "p_value"]
    tab = report.table[cols].copy()
    for c in ("lift", "ci_low", "ci_high"):
        tab[c] = tab[c].map(lambda v: _fmt(v, pct=True))
    for c in ("control", "value", "p_value"):
        tab[c] = tab[c].map(_fmt)
    print(tab.to_string(index=False))
    for note in report.notes:
        print(f"note: {note}")
    for path in written:
        print(f"plot: {path}")
    return 0


def run_simulate(args: argparse.Namespace) -> int:
    """Simulate one experiment on the world and write its log."""
    import pandas as pd

    from demo import World
    from recsys.experiments import ABSimulator

    if not (args.world / "truth.npz").exists():
        raise FileNotFoundError(f"{args.world} is not a demo world (no truth.npz); "
                                "create one with 'stylerec generate'")
    world = World.load(args.world)
    sim = ABSimulator(world, segmenting=args.segmenting, seed=args.seed)
    start = None
    if world.events is not None and len(world.events):
        start = pd.to_datetime(world.events["timestamp"], utc=True).max().ceil("D")
    logs = sim.simulate_log(args.users, experiment=args.experiment, salt=args.salt,
                            mean_impressions=args.impressions, days=args.days, start=start,
                            aa=args.aa, seed=args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    logs.to_parquet(args.out, index=False)
    c, t = sim.true_ctr(args.impressions)
    lift = sim.true_lift(args.aa, args.impressions)
    print(f"wrote {len(logs)} rows to {args.out} "
          f"({int((logs['event_type'] == 'view').sum())} impressions)")
    if args.aa:
        print(f"A/A test: true CTR {c:.4f} in both arms, true lift 0")
    else:
        print(f"true CTR control {c:.4f}, treatment {t:.4f}, true lift {lift * 100:+.2f}%")
    return 0


def run_power(args: argparse.Namespace) -> int:
    """Print the sample size."""
    from recsys.experiments import plan_ctr_test

    plan = plan_ctr_test(args.baseline_ctr, args.lift, args.alpha, args.power,
                         args.impressions_per_user, args.icc)
    if args.json:
        print(json.dumps(plan.__dict__, indent=2))
        return 0
    print(f"to detect {args.lift * 100:+.2f}% relative lift on CTR {args.baseline_ctr} "
          f"(alpha={args.alpha}, power={args.power}, two-sided):")
    print(f"  impressions per arm: {plan.impressions_per_arm:,}")
    print(f"  users per arm:       {plan.users_per_arm:,} "
          f"({plan.impressions_per_user:g} impressions/user, icc={plan.icc:g})")
    if args.impressions_per_user > 1 and args.icc == 0:
        print("  warning: icc=0 treats a user's impressions as independent, which understates "
              "the users needed", file=sys.stderr)
    return 0
