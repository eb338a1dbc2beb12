"""``stylerec nightly``, ``demo``, ``publish``, ``runs`` and ``gc``: the nightly job and its upkeep."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pipelines.runner import STAGES as STAGE_NAMES


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
    p.add_argument("--config", required=True, type=Path, help="path of stylerec.toml")
    p.add_argument("--only", choices=STAGE_NAMES, help="run this one stage of the latest run")
    p.add_argument("--run", dest="run_id", help="work on this run id (default: resume or new)")
    p.add_argument("--new", action="store_true", help="start a new run even if one is unfinished")
    p.add_argument("--json", action="store_true", help="print the run summary as JSON (last line)")
    p.set_defaults(func=_nightly)

    d = sub.add_parser(
        "demo",
        help="generate a demo shop and run the whole nightly job on it (SQLite)",
        description=(
            "Generate the seeded demo world (products, styles, shoppers, logs), write a config "
            "for it, run the full nightly job on the embedded SQLite store, and print the "
            "path of the report."
        ),
    )
    d.add_argument("--out", type=Path, default=Path("stylerec-demo"), help="output folder")
    d.add_argument("--seed", type=int, default=0, help="world seed")
    d.add_argument("--users", type=int, default=2000)
    d.add_argument("--items", type=int, default=200)
    # 5, not 6: on a 2-core AMD EPYC (AVX2, no VNNI) 6 x 200 renders put a
    # fresh demo at ~4 min 53 s, too close to its 5-minute budget
    d.add_argument("--segments", type=int, default=5, help="number of shopper segments (K)")
    d.add_argument("--max-side", type=int, default=384, help="render size (long side, px)")
    d.set_defaults(func=_demo)

    pub = sub.add_parser("publish", help="make a finished run the served one (rollback)")
    pub.add_argument("--config", required=True, type=Path)
    pub.add_argument("--run", dest="run_id", required=True, help="run id to serve")
    pub.set_defaults(func=_publish)

    runs = sub.add_parser("runs", help="list runs with their status and stages")
    runs.add_argument("--config", required=True, type=Path)
    runs.add_argument("--json", action="store_true")
    runs.set_defaults(func=_runs)

    gc = sub.add_parser("gc", help="delete renders that no kept run references")
    gc.add_argument("--config", required=True, type=Path)
    gc.add_argument("--keep-runs", type=int, default=3, help="newest runs whose renders stay")
    gc.add_argument("--dry-run", action="store_true")
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
    from pipelines.config import load_config
    from pipelines.runner import run_nightly

    cfg = load_config(args.config)
    summary = run_nightly(cfg, only=args.only, run_id=args.run_id, resume=not args.new)
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
    from data.synthetic import WorldConfig, generate_world
    from pipelines.config import load_config, write_config
    from pipelines.runner import run_nightly

    out: Path = args.out
    if args.users < 1 or args.items < 1 or args.segments < 1:
        raise ValueError("--users, --items and --segments must be >= 1")
    defaults = WorldConfig()
    # Keep the default world's events per shopper at any size (as `stylerec generate` does).
    events = max(args.users, defaults.target_events * args.users // defaults.n_users)
    world_cfg = WorldConfig(seed=args.seed, n_users=args.users, n_items=args.items,
                            target_events=events)
    if not (out / "truth.npz").is_file():
        print(f"generating the demo world in {out} ...", file=sys.stderr)
        generate_world(out, world_cfg)
    cfg_path = out / "stylerec.toml"
    write_config(demo_config(out, args.segments, args.max_side), cfg_path)
    cfg = load_config(cfg_path)
    summary = run_nightly(cfg)
    print(f"run {summary.run_id}: {summary.seconds:.1f}s, rendered "
          f"{summary.metrics.get('render', {}).get('rendered', 0)} images", file=sys.stderr)
    if summary.report_path is None:
        print("the run finished without a report", file=sys.stderr)
        return 1
    print(summary.report_path.resolve())
    return 0


def _publish(args: argparse.Namespace) -> int:
    from data.store import Store
    from pipelines.config import load_config

    cfg = load_config(args.config)
    with Store(cfg.store_url) as store:
        if store.get_run(args.run_id) is None:
            raise ValueError(f"no run with id {args.run_id!r}")
        before = store.current_run_id()
        store.publish(args.run_id)
    print(f"serving {args.run_id} (was {before})")
    return 0


def _runs(args: argparse.Namespace) -> int:
    from data.store import Store
    from pipelines.config import load_config

    cfg = load_config(args.config)
    with Store(cfg.store_url) as store:
        runs = store.list_runs()
    if args.json:
        print(json.dumps([{k: r[k] for k in ("run_id", "status", "is_current")} | {
            "stages": {s: v["status"] for s, v in r["stages"].items()}} for r in runs]))
        return 0
    for r in runs:
        mark = "*" if r["is_current"] else " "
        stages = " ".join(f"{s}:{v['status']}" for s, v in r["stages"].items())
        print(f"{mark} {r['run_id']}  {r['status']:<9} {stages}")
    return 0


def _gc(args: argparse.Namespace) -> int:
    from data.store import Store
    from pipelines.cache import RenderCache
    from pipelines.config import load_config

    if args.keep_runs < 1:
        raise ValueError("--keep-runs must be >= 1")
    cfg = load_config(args.config)
    cache = RenderCache(cfg.path(cfg.outputs.render_dir), cfg.render.format, cfg.render.quality)
    with Store(cfg.store_url) as store:
        refs = store.unreferenced_renders(args.keep_runs)
        if args.dry_run:
            print(f"{len(refs)} renders would be deleted")
            return 0
        # Index rows first: a crash in between leaves orphan files (harmless, swept next
        # time), never index rows pointing at missing files.
        store.delete_renders([r.key for r in refs])
        n_files = cache.delete_uris(r.uri for r in refs)
    print(f"deleted {len(refs)} renders ({n_files} files)")
    return 0
