"""Benchmark: load a large Parquet event log with stylerec's streaming, validating loader.

What it shows: ``data.load_events`` reads a 10M-row log in bounded batches,
validates every row (ids, event types, timestamps, prices, duplicates across
the whole log) and returns a typed frame, with peak memory under 2 GB.  The
peer is plain ``pandas.read_parquet`` of the same file: no validation, no
normalisation, whole file at once.  Each loader runs in its own subprocess so
that peak RSS (``ru_maxrss``) belongs to that loader alone.

Run (heavy: share the CPU politely)::

    flock /tmp/stylerec-cpu.lock .venv/bin/python benchmarks/bench_load.py --rows 10000000

The log is generated with pyarrow into a temporary folder (deleted afterwards
unless ``--keep``): string user/item ids (1M users, 200k items), the four
event types as plain strings, UTC timestamps over 90 days, a price on
purchases only.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LIMIT_MB = 2048
MODES = ("stylerec", "stylerec-category", "pandas.read_parquet")


def generate(path: Path, rows: int, seed: int = 0, chunk: int = 1_000_000) -> None:
    """Write a synthetic events log with ``rows`` rows, ``chunk`` rows per row group."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    start = np.datetime64("2024-01-01T00:00:00", "s").astype(np.int64)
    types = pa.array(["view", "click", "add_to_cart", "purchase"])
    writer = None
    try:
        for offset in range(0, rows, chunk):
            n = min(chunk, rows - offset)
            users = pc.binary_join_element_wise(
                "u", pa.array(rng.integers(0, 1_000_000, n)).cast(pa.string()), ""
            )
            items = pc.binary_join_element_wise(
                "i", pa.array(rng.integers(0, 200_000, n)).cast(pa.string()), ""
            )
            kind = rng.choice(4, n, p=[0.7, 0.2, 0.07, 0.03])
            seconds = start + rng.integers(0, 90 * 86400, n)
            price = np.round(rng.uniform(5, 200, n), 2)
            table = pa.table(
                {
                    "user_id": users,
                    "item_id": items,
                    "event_type": types.take(pa.array(kind)),
                    "timestamp": pa.array(seconds * 1_000_000, type=pa.timestamp("us", tz="UTC")),
                    "price": pa.array(price, mask=kind != 3),
                }
            )
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema)
            writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()


def _peak_rss_mb() -> float:
    # Linux reports ru_maxrss in KiB.  Caveat: Linux carries the parent's high-water mark
    # into a forked child, so the parent must stay small (it generates the log in its own
    # subprocess and imports nothing heavy) for the child's figure to be the loader's own.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _rss_now_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def child(mode: str, path: str, batch_rows: int) -> None:
    """Load ``path`` with one loader and print one JSON line of measurements."""
    import pandas as pd

    from data.loading import load_events

    base_mb = _rss_now_mb()  # interpreter + pandas/pyarrow imports
    t0 = time.perf_counter()
    if mode == "pandas.read_parquet":
        frame = pd.read_parquet(path)
        quarantined = 0
    else:
        id_dtype = "category" if mode == "stylerec-category" else "string"
        result = load_events(path, "parquet", batch_rows=batch_rows, id_dtype=id_dtype)
        frame, quarantined = result.events, result.report.rows_quarantined
    seconds = time.perf_counter() - t0
    print(
        json.dumps(
            {
                "mode": mode,
                "rows": len(frame),
                "quarantined": quarantined,
                "seconds": seconds,
                "rows_per_s": len(frame) / seconds,
                "peak_rss_mb": _peak_rss_mb(),
                "import_rss_mb": base_mb,
                "frame_mb": frame.memory_usage(deep=True).sum() / 2**20,
                "dtypes": {c: str(t) for c, t in frame.dtypes.items()},
            }
        )
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--batch-rows", type=int, default=250_000)
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    parser.add_argument("--keep", action="store_true", help="keep the generated log")
    parser.add_argument("--child", nargs=2, metavar=("MODE", "PATH"), help=argparse.SUPPRESS)
    parser.add_argument("--generate", metavar="PATH", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.batch_rows)
        return 0
    if args.generate:
        generate(Path(args.generate), args.rows)
        return 0

    tmp = Path(tempfile.mkdtemp(prefix="stylerec-bench-load-"))
    path = tmp / "events.parquet"
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, __file__, "--generate", str(path), "--rows", str(args.rows)], check=True
    )
    print(
        f"generated {args.rows:,} rows in {time.perf_counter() - t0:.1f}s: {path} "
        f"({path.stat().st_size / 2**20:.0f} MiB)",
        flush=True,
    )
    results = {}
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    for mode in args.modes:
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--child",
                mode,
                str(path),
                "--batch-rows",
                str(args.batch_rows),
            ],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        if out.returncode != 0:
            print(f"{mode}: failed\n{out.stderr[-2000:]}", file=sys.stderr)
            return 1
        results[mode] = json.loads(out.stdout.strip().splitlines()[-1])
        r = results[mode]
        print(
            f"{mode:<22} rows {r['rows']:>11,}  {r['seconds']:7.1f}s  "
            f"{r['rows_per_s']:>11,.0f} rows/s  peak RSS {r['peak_rss_mb']:7.0f} MiB  "
            f"(imports {r['import_rss_mb']:.0f} MiB, frame {r['frame_mb']:.0f} MiB)",
            flush=True,
        )
    if not args.keep:
        path.unlink()
        tmp.rmdir()
    print(f"launcher peak RSS {_peak_rss_mb():.0f} MiB (inherited by each child's ru_maxrss)")
    peer = results.get("pandas.read_parquet")
    ok = True
    for mode in ("stylerec", "stylerec-category"):
        r = results.get(mode)
        if r is None:
            continue
        within = r["peak_rss_mb"] < LIMIT_MB and r["rows"] == args.rows
        ok &= within
        line = f"{mode}: peak RSS {r['peak_rss_mb']:.0f} MiB < {LIMIT_MB} MiB: {within}"
        if peer:
            line += (
                f"; vs pandas.read_parquet: speed x{r['rows_per_s'] / peer['rows_per_s']:.2f}, "
                f"peak RSS x{r['peak_rss_mb'] / peer['peak_rss_mb']:.2f}, "
                f"frame x{r['frame_mb'] / peer['frame_mb']:.2f}"
            )
        print(line)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
