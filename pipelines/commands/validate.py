"""``stylerec validate``: check an event log and print its LoadReport, without loading anything else.

Operators run it on a new log source before wiring it into the nightly job,
and on a quarantine alarm to see what broke.  It exits 0 when every row is
valid and 1 when some rows were quarantined (like a linter), so scripts can
gate on it; unreadable input exits 2 with one line naming the file.
"""

from __future__ import annotations

import argparse
import json
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``validate`` sub-command."""
    p = subparsers.add_parser(
        "validate",
        help="validate an event log and report valid and quarantined rows",
        description=(
            "Read LOGFILE (CSV, Parquet, or a SQLAlchemy URL with --query), apply the row rules, "
            "and print valid rows and quarantined rows by reason. Exit status: 0 all rows valid, "
            "1 some rows quarantined, 2 unreadable input."
        ),
    )
    p.add_argument("logfile", metavar="LOGFILE", help="events file (.csv/.parquet) or SQL URL")
    p.add_argument(
        "--format",
        dest="fmt",
        choices=("events", "movielens"),
        default="events",
        help="events: stylerec events schema (file type auto-detected); "
        "movielens: a MovieLens ratings.csv (every rating is a click)",
    )
    p.add_argument(
        "--catalog",
        metavar="FILE",
        help="items file (item_id), MovieLens movies.csv or H&M articles.csv; "
        "events on other items are quarantined as unknown_item",
    )
    p.add_argument(
        "--quarantine", metavar="OUT", help="write quarantined rows to OUT.csv or OUT.parquet"
    )
    p.add_argument("--query", help="table name or SELECT, for a SQL URL LOGFILE")
    p.add_argument("--json", action="store_true",
                   help="print only the report as JSON on stdout")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Load and validate, print the report, optionally write the quarantine."""
    from data.loading import load_events, write_quarantine

    fmt = "movielens" if args.fmt == "movielens" else "auto"
    result = load_events(args.logfile, fmt, catalog=args.catalog, query=args.query)
    if args.quarantine:
        write_quarantine(result.quarantine, args.quarantine)
    if args.json:
        print(json.dumps(result.report.to_dict(), indent=2))
        if args.quarantine:
            print(f"quarantine written to {args.quarantine}", file=sys.stderr)
    else:
        print(result.report)
        if args.quarantine:
            print(f"quarantine written to {args.quarantine}")
    return 0 if result.report.rows_quarantined == 0 else 1
