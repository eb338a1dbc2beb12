"""``stylerec nightly``, ``demo``, ``publish``, ``runs`` and ``gc``: the nightly job and its upkeep.

Everything heavy (the store, the stages, torch) is imported inside the commands, so
``stylerec --help`` and ``stylerec nightly --help`` answer at once.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pipelines.stages import STAGES as STAGE_NAMES

#: The demo's defaults: sized so that ``stylerec demo`` on a fresh clone (cold weights
#: cache included) finishes in about a minute on a 2-core machine, and still shows every
#: part: the world, training with its holdout table, K segments, renders, the report.
#: Measured in docs/benchmarks.md ("issue 16a").
DEMO_USERS = 2000
DEMO_ITEMS = 48
DEMO_SEGMENTS = 4
DEMO_MAX_SIDE = 384

_CONFIG_HELP = "path of the job's stylerec.toml (its [outputs] name the store and folders)"

#: Exit status of a nightly that found another one holding the run lock (EX_TEMPFAIL).
LOCKED_EXIT = 75


def register(sub: argparse._SubParsersAction) -> None:
    """Add the nightly-job commands."""
    p = sub.add_parser(
        "nightly",
        help="run (or resume) the nightly personalization job",
        description=(
            "Run the nightly job: ingest, embed, train, index, segment, render, publish, report. "
            "A rerun after a crash resumes the unfinished run at its first unfinished stage."
        ),
    )
    p.add_argument("--config", required=True, type=Path, help=_CONFIG_HELP)
    p.add_argument("--only", choices=STAGE_NAMES, help="run this one stage of the latest run")
    p.add_argument("--run", dest="run_id", help="work on this run id (default: resume or new)")
    p.add_argument("--new", action="store_true", help="start a new run even if one is unfinished")
    p.add_argument("--json", action="store_true",
                   help="print only the run summary as JSON on stdout (progress on stderr)")
    p.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                   help="if another nightly holds the store's run lock, wait this long for it "
                        "(default 0: exit at once with status 75, naming the holder)")
    p.set_defaults(func=_nightly)

    d = sub.add_parser(
        "demo",
        help="generate a demo shop and run the whole nightly job on it (SQLite)",
        description=(
            "Generate the seeded demo world (products, styles, shoppers, logs), write a config "
            "for it, run the full nightly job on the embedded SQLite store, and print the "
            "path of the report. The defaults take about a minute on two cores; larger "
            "worlds (--items, --segments, --max-side) take longer, mostly in rendering "
            "(items x segments renders)."
        ),
    )
    d.add_argument("--out", type=Path, default=Path("stylerec-demo"),
                   help="output folder (default %(default)s)")
    d.add_argument("--seed", type=int, default=0, help="world seed (default %(default)s)")
    d.add_argument("--users", type=int, default=DEMO_USERS,
                   help="number of shoppers in the world (default %(default)s)")
    d.add_argument("--items", type=int, default=DEMO_ITEMS,
                   help="number of products in the world; each is rendered once per segment "
                        "(default %(default)s)")
    d.add_argument("--segments", type=int, default=DEMO_SEGMENTS,
                   help="number of shopper segments K (default %(default)s)")
    d.add_argument("--max-side", type=int, default=DEMO_MAX_SIDE,
                   help="render size, long side in px (default %(default)s)")
    d.set_defaults(func=_demo)

    pub = sub.add_parser("publish", help="make a finished run the served one (rollback)")
    pub.add_argument("--config", required=True, type=Path, help=_CONFIG_HELP)
    pub.add_argument("--run", dest="run_id", required=True,
                     help="run id to serve (see 'stylerec runs')")
    pub.set_defaults(func=_publish)

    runs = sub.add_parser("runs", help="list runs with their status and stages")
    runs.add_argument("--config", required=True, type=Path, help=_CONFIG_HELP)
    runs.add_argument("--json", action="store_true",
                      help="print only a JSON list of runs on stdout")
    runs.set_defaults(func=_runs)

    gc = sub.add_parser("gc", help="delete renders that no kept run references")
    gc.add_argument("--config", required=True, type=Path, help=_CONFIG_HELP)
    gc.add_argument("--keep-runs", type=int, default=3,
                    help="newest runs whose renders stay (default %(default)s); the served "
                         "run's always stay")
    gc.add_argument("--dry-run", action="store_true",
                    help="only count the renders that would be deleted; delete nothing")
    gc.set_defaults(func=_gc)


def _summary_dict(summary: Any) -> dict[str, Any]:
    return {
        "run_id": summary.run_id,
        "ran": summary.ran,
        "skipped": summary.skipped,
        "seconds": summary.seconds,
        "report": str(summary.report_path) if summary.report_path else None,
        "rendered": summary.metrics.get("render", {}).get("rendered"),
        "reused": summary.metrics.get("render", {}).get("reused"),
    }


def _nightly(args: argparse.Namespace) -> int:
    from data.store import RunLockedError
    from pipelines.config import load_config
    from pipelines.runner import run_nightly

    cfg = load_config(args.config)
    if args.wait < 0:
        raise ValueError("--wait must be >= 0 seconds")
    try:
        summary = run_nightly(cfg, only=args.only, run_id=args.run_id, resume=not args.new,
                              wait_s=args.wait)
    except RunLockedError as exc:
        # Not a failure of this night: another one is running it.  75 = EX_TEMPFAIL.
        print(f"stylerec nightly: {exc}", file=sys.stderr)
        if args.json:
            print(json.dumps({"locked": True, "holder": exc.holder}))
        return LOCKED_EXIT
    info = _summary_dict(summary)
    if args.json:
        print(json.dumps(info))
    else:
        print(f"run {summary.run_id}: ran {', '.join(summary.ran) or 'nothing'} "
              f"in {summary.seconds:.1f}s")
        if summary.report_path:
            print(summary.report_path)
    return 0


def demo_config(world_dir: Path, segments: int, max_side: int) -> dict[str, Any]:
    """The nightly config for a generated demo world (paths relative to the world)."""
    # library.csv: the planted styles plus backdrop materials, with per-style scene strengths
    # (worlds generated before it existed have only styles.csv).
    library = "library.csv" if (world_dir / "library.csv").is_file() else "styles.csv"
    return {
        "inputs": {"events": ["events.parquet"], "events_format": "parquet",
                   "catalog": "items.csv", "styles": library, "image_root": "."},
        "model": {"factors": 32, "holdout_last": 2},
        "segments": {"k": segments, "n_blend": 2},
        "render": {"mode": "background", "max_side": max_side, "format": "webp", "quality": 90},
        "outputs": {"store_url": f"sqlite:///{(world_dir / 'stylerec.db').resolve()}",
                    "render_dir": "renders", "work_dir": "work", "report_dir": "report"},
        "executor": {"kind": "local"},
    }


def _demo(args: argparse.Namespace) -> int:
    import time

    from demo import WorldConfig, generate_world
    from pipelines.config import load_config, write_config
    from pipelines.runner import run_nightly

    out: Path = args.out
    if args.users < 1 or args.items < 1 or args.segments < 1:
        raise ValueError("--users, --items and --segments must be >= 1")
    if args.max_side < 16:
        raise ValueError(f"--max-side must be >= 16, got {args.max_side}")
    defaults = WorldConfig()
    # Keep the default world's events per shopper at any size (as `stylerec generate` does).
    events = max(args.users, defaults.target_events * args.users // defaults.n_users)
    world_cfg = WorldConfig(seed=args.seed, n_users=args.users, n_items=args.items,
                            target_events=events)
    t0 = time.perf_counter()
    if (out / "truth.json").is_file():
        _check_same_world(out, world_cfg)
        print(f"world: reusing the demo world in {out}", file=sys.stderr)
    else:
        print(f"world: generating {args.users} shoppers, {args.items} products and "
              f"{world_cfg.n_styles} styles in {out} ...", file=sys.stderr)
        world = generate_world(out, world_cfg)
        print(f"world: {len(world.events):,} events, {2 * args.items + world_cfg.n_styles} "
              f"images in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    cfg_path = out / "stylerec.toml"
    write_config(demo_config(out, args.segments, args.max_side), cfg_path)
    cfg = load_config(cfg_path)
    print(f"nightly job: {args.items} products x {args.segments} segments = "
          f"{args.items * args.segments} renders at {args.max_side} px", file=sys.stderr)
    summary = run_nightly(cfg)
    render = summary.metrics.get("render", {})
    print(f"run {summary.run_id}: {summary.seconds:.1f} s, rendered {render.get('rendered', 0)} "
          f"images, reused {render.get('reused', 0)}; demo total "
          f"{time.perf_counter() - t0:.1f} s", file=sys.stderr)
    if summary.report_path is None:
        print("the run finished without a report", file=sys.stderr)
        return 1
    # Echo the command as the user typed it (`.venv/bin/stylerec` from a fresh shell).
    prog = sys.argv[0] if Path(sys.argv[0]).name == "stylerec" else "stylerec"
    print(f"serve this run over HTTP: {prog} serve --config {cfg_path} (needs the serve "
          "extra: pip install -e '.[serve]'); the report (open it in a browser):",
          file=sys.stderr)
    print(summary.report_path.resolve())
    return 0


def _check_same_world(out: Path, wanted: Any) -> None:
    """Refuse to run on a folder that holds a demo world of other parameters.

    Reusing the world is what makes a second ``stylerec demo`` fast, but silently
    reusing a 60-product world when 200 were asked for would mislead.
    """
    try:
        have = json.loads((out / "truth.json").read_text(encoding="utf-8"))["config"]
    except (OSError, ValueError, KeyError) as exc:
        raise ValueError(f"{out} holds an unreadable demo world ({exc}); delete it or use "
                         "another --out") from None
    keys = {"seed": "--seed", "n_users": "--users", "n_items": "--items"}
    diff = [f"{flag} {have.get(k)} there, {getattr(wanted, k)} asked" for k, flag in keys.items()
            if have.get(k) != getattr(wanted, k)]
    if diff:
        raise ValueError(f"{out} holds a different demo world ({'; '.join(diff)}); "
                         "delete it or use another --out")


def _store_has_no_data(url: str) -> bool:
    """True for a SQLite store whose file does not exist yet: it holds no runs.

    Opening a Store creates the file and its schema; the read-only commands must not
    leave a fresh empty database behind (nor print migration lines) in a folder where
    nothing has run yet.
    """
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return False
    database = parsed.database or ""
    return database not in ("", ":memory:") and not Path(database).exists()


def _no_runs(cfg: Any) -> str:
    return (f"no runs yet in {cfg.store_url} (run 'stylerec nightly --config ...' or "
            "'stylerec demo' first)")


def _publish(args: argparse.Namespace) -> int:
    from data.store import Store
    from pipelines.config import load_config

    cfg = load_config(args.config)
    if _store_has_no_data(cfg.store_url):
        raise ValueError(f"{_no_runs(cfg)}; nothing to publish")
    with Store(cfg.store_url) as store:
        if store.get_run(args.run_id) is None:
            if not store.list_runs(limit=1):
                raise ValueError(f"{_no_runs(cfg)}; nothing to publish")
            raise ValueError(f"no run with id {args.run_id!r} (see 'stylerec runs')")
        before = store.current_run_id()
        store.publish(args.run_id)
    print(f"serving {args.run_id} (was {before})")
    return 0


def _runs(args: argparse.Namespace) -> int:
    from pipelines.config import load_config

    cfg = load_config(args.config)
    runs: list[dict[str, Any]] = []
    if not _store_has_no_data(cfg.store_url):
        from data.store import Store

        with Store(cfg.store_url) as store:
            runs = store.list_runs()
    if args.json:
        print(json.dumps([{k: r[k] for k in ("run_id", "status", "is_current")} | {
            "stages": {s: v["status"] for s, v in r["stages"].items()}} for r in runs]))
        return 0
    if not runs:
        print(_no_runs(cfg))
        return 0
    for r in runs:
        mark = "*" if r["is_current"] else " "
        stages = " ".join(f"{s}:{v['status']}" for s, v in r["stages"].items())
        print(f"{mark} {r['run_id']}  {r['status']:<9} {stages}")
    return 0


def _gc(args: argparse.Namespace) -> int:
    from pipelines.config import load_config

    if args.keep_runs < 1:
        raise ValueError("--keep-runs must be >= 1")
    cfg = load_config(args.config)
    if _store_has_no_data(cfg.store_url):
        print(f"{_no_runs(cfg)}; nothing to delete")
        return 0
    from data.store import Store
    from pipelines.cache import RenderCache

    cache = RenderCache(cfg.path(cfg.outputs.render_dir), cfg.render.format, cfg.render.quality)
    # Under the run lock: a running nightly links renders that gc would see as unreferenced.
    with Store(cfg.store_url) as store, store.run_lock():
        if not store.list_runs(limit=1):
            print(f"{_no_runs(cfg)}; nothing to delete")
            return 0
        refs = store.unreferenced_renders(args.keep_runs)
        if args.dry_run:
            print(f"{len(refs)} renders would be deleted")
            return 0
        # Index rows first: a crash in between leaves orphan files (harmless, swept next
        # time), never index rows pointing at missing files.
        store.delete_renders([r.key for r in refs])
        # A file shared by items with one image goes only when no row points at it any more.
        shared = store.uris_in_use(r.uri for r in refs)
        n_files = cache.delete_uris(r.uri for r in refs if r.uri not in shared)
    print(f"deleted {len(refs)} renders ({n_files} files)")
    return 0
