"""``stylerec serve``: the HTTP ranking front over the published run (needs the serve extra).

For ranking services not written in Python: ``POST /rank``, ``POST /recommend``,
``GET /health`` (see :mod:`recsys.serving.http`).  FastAPI and uvicorn are
imported only when the command runs, so the rest of the CLI works without the
``serve`` extra and starts as fast as before.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``serve`` sub-command."""
    p = sub.add_parser(
        "serve",
        help="serve /rank, /recommend and /health over HTTP (pip install 'stylerec[serve]')",
        description=(
            "Load the published run from the store and answer POST /rank, POST /recommend and "
            "GET /health over HTTP. The store is --db, else the --config file's, else "
            "$STYLEREC_DB_URL, else sqlite:///stylerec.db. Needs the serve extra: "
            "pip install 'stylerec[serve]'."
        ),
    )
    p.add_argument("--db", help="store URL (SQLAlchemy), e.g. sqlite:///work/stylerec.db")
    p.add_argument("--config", type=Path, help="stylerec.toml whose store to serve from")
    p.add_argument("--run", default="current", help="run id to serve (default: the published one)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="TCP port to listen on (default 8000)")
    p.add_argument(
        "--refresh-interval", type=float, default=60.0, metavar="SECONDS",
        help="poll the store for a newly published run this often; 0 = never (default 60)",
    )
    p.add_argument("--render-root",
                   help="URL prefix for render URIs (e.g. https://cdn.example/renders); "
                        "default: paths relative to the run's render folder")
    p.add_argument("--image-root",
                   help="URL prefix for catalogue image URIs; default: paths relative to the "
                        "image root")
    p.add_argument("--max-body-bytes", type=int, default=1 << 20, metavar="N",
                   help="largest request body accepted; bigger ones get 413 (default 1 MiB)")
    p.add_argument(
        "--experiments", type=Path, metavar="FILE",
        help='JSON list of live experiments: [{"name", "variants": {arm: weight}, "salt", '
             '"holdout"}]; requests name them with "experiment"',
    )
    p.add_argument("--search-threads", type=int, default=1,
                   help="BLAS threads per query (default 1: requests run in parallel)")
    p.set_defaults(func=run)


def _experiments(path: Path | None) -> list[Any]:
    """Read the experiments file into ``Experiment`` objects; errors name the file and entry."""
    from recsys.experiments.assignment import Experiment

    if path is None:
        return []
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"experiments file not found: {path}") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(rows, list):
        raise ValueError(f"{path}: expected a JSON list of experiments")
    out = []
    for n, row in enumerate(rows):
        if not isinstance(row, dict) or not isinstance(row.get("name"), str):
            raise ValueError(f"{path}: entry {n} needs a string 'name'")
        unknown = set(row) - {"name", "variants", "salt", "holdout"}
        if unknown:
            raise ValueError(f"{path}: entry {n} ({row['name']}): unknown keys {sorted(unknown)}")
        exp = Experiment(row["name"], **{k: v for k, v in row.items() if k != "name"})
        exp.assign(["check"])  # validates variants and holdout now, not at the first request
        out.append(exp)
    return out


def _store_url(args: argparse.Namespace) -> str | None:
    if args.db:
        return str(args.db)
    if args.config is not None:
        from pipelines.config import load_config

        return load_config(args.config).store_url
    return None  # Store(None): $STYLEREC_DB_URL, else sqlite:///stylerec.db


def run(args: argparse.Namespace) -> int:
    """Load the run, build the app and serve it until interrupted."""
    try:
        import uvicorn

        from recsys.serving.http import create_app
    except ImportError as exc:
        print(f"stylerec serve: error: {exc.name or exc} is not installed; "
              "install the serve extra: pip install 'stylerec[serve]'", file=sys.stderr)
        return 2
    from recsys.serving import PersonalizationService
    from recsys.serving.service import set_search_threads

    if args.refresh_interval < 0:
        raise ValueError(f"--refresh-interval must be >= 0, got {args.refresh_interval}")
    if args.max_body_bytes < 1:
        raise ValueError(f"--max-body-bytes must be >= 1, got {args.max_body_bytes}")
    for name, root in (("--render-root", args.render_root), ("--image-root", args.image_root)):
        # Answers go to other machines: a server path would leak and mean nothing there.
        if root and "://" not in root and Path(root).is_absolute():
            raise ValueError(f"{name} must be a URL or a relative prefix, not a server path "
                             f"({root})")
    experiments = _experiments(args.experiments)
    set_search_threads(args.search_threads)
    service = PersonalizationService.from_store(
        _store_url(args), run=args.run, render_root=args.render_root,
        image_root=args.image_root, experiments=experiments, freeze_gc=True,
    )
    # A pinned run (--run ID) must stay pinned: only "current" follows publishes.
    interval = args.refresh_interval if args.run == "current" else 0.0
    app = create_app(service, refresh_interval_s=interval or None,
                     max_body_bytes=args.max_body_bytes)
    print(f"serving run {service.run_id} on http://{args.host}:{args.port}", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    return 0
