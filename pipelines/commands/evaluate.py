"""``stylerec evaluate``: the style-preference model against the baselines on a temporal holdout.

This is the offline check anyone can run on a log before trusting the model
with traffic: it fits every model on the same split (:func:`recsys.holdout.run_holdout`)
and prints one row per model.  With ``--json`` stdout holds only one JSON object
``{model: {metric: value}}`` (the table and the counts go to stderr), so it can be
piped into ``jq`` or ``python -m json.tool``.  numpy, pandas and the models are
imported inside the functions so that ``stylerec --help`` stays instant.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

#: The models ``recsys.holdout.run_holdout`` knows (a test keeps the two equal);
#: spelled out here so that parsing the options does not import the models.
MODEL_NAMES: tuple[str, ...] = ("stylerec", "als", "bpr", "ease", "popularity", "content")


def add_log_arguments(p: argparse.ArgumentParser) -> None:
    """``--logs``/``--format``/``--item-codes``: shared with ``stylerec train``."""
    p.add_argument("--logs", required=True, metavar="FILE",
                   help="events file (.csv/.parquet) or a MovieLens ratings.csv")
    p.add_argument(
        "--format",
        dest="fmt",
        choices=("events", "movielens"),
        default="events",
        help="events: stylerec events schema (file type auto-detected); "
        "movielens: a MovieLens ratings.csv (every rating is a click)",
    )
    p.add_argument(
        "--item-codes",
        metavar="NPZ",
        help="style codes per item: an .npz with arrays item_ids and item_codes "
        "(the embed stage's codes.npz, or a demo world's truth.npz); when it also holds "
        "style_ids and style_codes, events shown in a style train the style projection",
    )


def load_item_codes(path: str | None) -> dict[str, np.ndarray] | None:
    """``{item_id: code}`` from an .npz holding ``item_ids`` and ``item_codes``."""
    import numpy as np

    if path is None:
        return None
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"item codes file not found: {p}")
    with np.load(p, allow_pickle=False) as z:
        missing = [k for k in ("item_ids", "item_codes") if k not in z.files]
        if missing:
            raise ValueError(f"{p}: missing array(s) {missing} (found {sorted(z.files)})")
        ids, codes = z["item_ids"], z["item_codes"]
    if codes.ndim != 2 or len(ids) != len(codes):
        raise ValueError(f"{p}: item_codes must be (len(item_ids), d), got {codes.shape}")
    return {str(i): codes[n] for n, i in enumerate(ids)}


def load_style_codes(path: str | None) -> dict[str, np.ndarray] | None:
    """``{style_id: code}`` from the same .npz when it also holds ``style_ids``/``style_codes``
    (a demo world's truth.npz, the embed stage's codes.npz); None otherwise."""
    import numpy as np

    if path is None:
        return None
    with np.load(Path(path), allow_pickle=False) as z:
        if "style_ids" not in z.files or "style_codes" not in z.files:
            return None
        ids, codes = z["style_ids"], z["style_codes"]
    if codes.ndim != 2 or len(ids) != len(codes):
        raise ValueError(f"{path}: style_codes must be (len(style_ids), d), got {codes.shape}")
    return {str(s): codes[n] for n, s in enumerate(ids)}


def load_log(path: str, fmt: str) -> pd.DataFrame:
    """Valid events of a log; quarantined rows are counted on stderr, never fatal."""
    from data.loading import load_events

    result = load_events(path, "movielens" if fmt == "movielens" else "auto")
    report = result.report
    if report.rows_quarantined:
        print(
            f"{path}: {report.rows_quarantined} of {report.rows_read} rows quarantined "
            f"{report.by_reason}",
            file=sys.stderr,
        )
    if result.events.empty:
        raise ValueError(f"{path}: no valid events")
    return result.events


def _models(value: str) -> list[str]:
    names = [m.strip() for m in value.split(",") if m.strip()]
    unknown = [m for m in names if m not in MODEL_NAMES]
    if not names or unknown:
        raise argparse.ArgumentTypeError(
            f"unknown model(s) {unknown or value!r}; choose from {','.join(MODEL_NAMES)}"
        )
    return names


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``evaluate`` sub-command."""
    p = subparsers.add_parser(
        "evaluate",
        help="compare the style-preference model with ALS, BPR, EASE, popularity, content",
        description=(
            "Hold out each user's last N positive events (--holdout last:N) or everything "
            "from a date on (--holdout time:YYYY-MM-DD), fit every model on the rest, and "
            "print NDCG, recall, MAP, hit rate, catalogue coverage and fit time per model. "
            "Test users unknown to train are ranked by popularity; held-out items unknown "
            "to train count as misses."
        ),
    )
    add_log_arguments(p)
    p.add_argument("--holdout", default="last:10", help="last:N or time:DATE (default last:10)")
    p.add_argument(
        "--models",
        type=_models,
        help=f"comma-separated subset of {','.join(MODEL_NAMES)} "
        "(default: all; content only with --item-codes)",
    )
    p.add_argument("--k", type=int, default=10, help="list length for the metrics (default 10)")
    p.add_argument("--seed", type=int, default=0, help="seed of every model and the bootstrap")
    p.add_argument("--bootstrap", type=int, default=200,
                   help="bootstrap resamples for the confidence intervals (default 200)")
    p.add_argument("--json", action="store_true",
                   help="print only JSON on stdout: {model: {metric: value}} (the table goes "
                        "to stderr)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Load, run the holdout, print the table (to stderr with ``--json``) and the JSON."""
    import pandas as pd

    from recsys.holdout import run_holdout

    if args.k < 1:
        raise ValueError(f"--k must be >= 1, got {args.k}")
    events = load_log(args.logs, args.fmt)
    result = run_holdout(
        events,
        args.holdout,
        item_codes=load_item_codes(args.item_codes),
        style_codes=load_style_codes(args.item_codes),
        models=args.models,
        k=args.k,
        seed=args.seed,
        n_bootstrap=args.bootstrap,
    )
    human = sys.stderr if args.json else sys.stdout
    print(
        f"holdout {result.holdout}: {result.n_test_users} test users "
        f"({result.n_cold_users} unknown to train, ranked by popularity), "
        f"{result.n_users} users x {result.n_items} items in train, "
        f"{result.n_unknown_test_items} held-out items unknown to train (misses)",
        file=human,
    )
    for name, reason in result.skipped.items():
        print(f"skipped {name}: {reason}", file=human)
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(result.table().round(4).to_string(), file=human)
    if args.json:
        print(json.dumps(result.to_dict()["models"], sort_keys=False))
    return 0
