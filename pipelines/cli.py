"""The ``stylerec`` command line.

Each sub-command lives in its own module under :mod:`pipelines.commands` and
exposes ``register(subparsers)``.  Discovering them here (rather than listing
them by hand) lets each part of the project own its commands without every
change touching one shared file.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import pkgutil
import sys
from collections.abc import Sequence

from pipelines import commands


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every discovered sub-command."""
    parser = argparse.ArgumentParser(
        prog="stylerec",
        description=(
            "Personalized recommendations with product-preserving style rendering. "
            "Run 'stylerec COMMAND --help' for the options of one command."
        ),
    )
    parser.add_argument(
        "-v", "--verbose", action="count", default=0,
        help="more log output: -v every module's progress (training epochs included), "
             "-vv debug",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):  # shared helpers of the commands, imported when they run
            continue
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(sub)
    return parser


def configure_logging(verbose: int) -> None:
    """Quiet by default, more with each ``-v``.

    Default: warnings from everything, plus the ``stylerec.*`` loggers' INFO lines
    (one line per nightly stage with its time, a few counts from long loops for logs
    that are not a terminal; a terminal gets tqdm bars).  ``-v``: every module's INFO,
    per-epoch training lines included.  ``-vv``: DEBUG.  Alembic's migration lines
    ("Context impl SQLiteImpl", once per store opened) only with ``-vv``.
    """
    root_level = {0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG)
    logging.basicConfig(level=root_level,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger().setLevel(root_level)  # also when a handler existed (basicConfig no-op)
    logging.getLogger("stylerec").setLevel(min(root_level, logging.INFO))
    logging.getLogger("alembic").setLevel(logging.DEBUG if verbose >= 2 else logging.WARNING)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``stylerec`` console script; returns the exit status."""
    # OpenMP threads that wait by sleeping, not spinning: on a shared or busy machine
    # (more runnable threads than cores) spinning threads starve each other, and the
    # preference-model fit of `stylerec demo` took 123 s instead of 19 s at load 5.5 on
    # two cores (docs/benchmarks.md, issue 16a).  Read once when torch loads its OpenMP
    # runtime, which the commands import lazily, so setting it here is early enough;
    # an explicit OMP_WAIT_POLICY in the environment wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.verbose)
    try:
        status = args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (FileNotFoundError, ValueError, PermissionError) as exc:
        # User errors (bad paths, bad config, bad input) get one clear line, not a traceback.
        print(f"stylerec {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return int(status or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
