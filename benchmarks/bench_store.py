"""Benchmark: write and read a million-user segment assignment with the store.

What it shows: ``Store.write_user_segments`` (one transaction; chunked
driver ``executemany`` on SQLite, ``COPY`` on PostgreSQL) and
``Store.read_user_segments`` against the usual peer, pandas ``DataFrame.to_sql``
(``chunksize=20_000``, pandas' default insert method) and ``pandas.read_sql``
into a table of the same shape (same columns, same primary key).  Each
write goes to a new run (as each night does, beside the runs kept before it) and each
operation runs ``--repeat`` times; the median is printed with the ratio
peer / stylerec (above 1: stylerec is faster).

Run (heavy: share the CPU politely)::

    flock /tmp/stylerec-cpu.lock /tmp/venv/bin/python benchmarks/bench_store.py --users 1000000

SQLite goes to a temporary file; PostgreSQL (``--pg-url``, default the test
server) to a temporary schema dropped afterwards.  ``--backends sqlite`` skips
PostgreSQL.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from data.store import Store

PEER_DDL = sa.MetaData()
PEER = sa.Table(
    "peer_user_segments",
    PEER_DDL,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("user_id", sa.String(255), primary_key=True),
    sa.Column("segment_id", sa.String(255), nullable=False),
)


def timed(fn: Callable[[], object], repeat: int) -> float:
    """Median wall time of ``fn`` over ``repeat`` runs."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench(url: str, users: int, repeat: int) -> dict[str, float]:
    """Median seconds for stylerec and pandas writes and reads at ``url``."""
    mapping = {f"user{i:08d}": f"seg{i % 64:02d}" for i in range(users)}
    frame = pd.DataFrame({"user_id": list(mapping), "segment_id": list(mapping.values())})
    with Store(url) as store:
        runs: list[str] = []

        def write() -> None:
            # Like the nightly job: every night writes a new run beside the kept ones.
            runs.append(store.create_run({"bench": "store"}))
            store.write_user_segments(runs[-1], mapping)

        out = {"stylerec write": timed(write, repeat)}
        run = runs[-1]
        out["stylerec read"] = timed(lambda: store.read_user_segments(run), repeat)
        assert len(store.read_user_segments(run)) == users

        PEER_DDL.create_all(store.engine)
        peer_runs = iter(range(repeat))

        def peer_write() -> None:
            # Same contract as the store: a new run's rows in one transaction.
            rows = frame.assign(run_id=f"peer-{next(peer_runs)}")
            with store.engine.begin() as conn:
                rows.to_sql(PEER.name, conn, if_exists="append", index=False, chunksize=20_000)

        out["pandas write"] = timed(peer_write, repeat)
        last = f"peer-{repeat - 1}"
        query = sa.select(PEER.c.user_id, PEER.c.segment_id).where(PEER.c.run_id == last)
        query = query.order_by(PEER.c.user_id)

        def peer_read() -> pd.DataFrame:
            with store.engine.connect() as conn:
                return pd.read_sql(query, conn)

        out["pandas read"] = timed(peer_read, repeat)
        assert len(peer_read()) == users
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--users", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--backends", default="sqlite,postgresql")
    ap.add_argument(
        "--pg-url",
        default=os.environ.get(
            "STYLEREC_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
        ),
    )
    args = ap.parse_args()
    print(f"users={args.users:,} repeat={args.repeat} load={os.getloadavg()[0]:.1f}")
    for backend in args.backends.split(","):
        if backend == "sqlite":
            with tempfile.TemporaryDirectory() as tmp:
                result = bench(f"sqlite:///{Path(tmp) / 'bench.db'}", args.users, args.repeat)
        else:
            schema = f"bench_{uuid.uuid4().hex[:8]}"
            admin = sa.create_engine(args.pg_url)
            with admin.begin() as conn:
                conn.execute(sa.schema.CreateSchema(schema))
            try:
                sep = "&" if "?" in args.pg_url else "?"
                url = f"{args.pg_url}{sep}options=-csearch_path%3D{schema}"
                result = bench(url, args.users, args.repeat)
            finally:
                with admin.begin() as conn:
                    conn.execute(sa.schema.DropSchema(schema, cascade=True))
                admin.dispose()
        for op in ("write", "read"):
            ours, peer = result[f"stylerec {op}"], result[f"pandas {op}"]
            print(
                f"{backend:10s} {op:5s}  stylerec {ours:6.2f} s   pandas {peer:6.2f} s   "
                f"ratio pandas/stylerec {peer / ours:4.1f}x"
            )


if __name__ == "__main__":
    main()
