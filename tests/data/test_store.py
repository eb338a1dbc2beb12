"""Store tests, each run on SQLite and on PostgreSQL (the ``db_url`` fixture).

What they pin down: schema versioning (upgrade keeps data, newer schemas are
refused, models match migrations), all-or-nothing bulk writes (an exception
and a SIGKILL mid-transaction both leave zero rows of that write and the
previous data intact), readers that keep working while a writer holds a
transaction open and commits, and the run / render / quarantine semantics
the nightly job and the service rely on.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from data.store import (
    RenderRef,
    RunNotReadyError,
    SchemaOutdatedError,
    SchemaTooNewError,
    Store,
    ensure_schema,
    head_revision,
    resolve_url,
)
from data.store.engine import make_engine
from data.store.models import Base, Item, Run

STAGES = ("load", "train", "render")


@pytest.fixture
def store(db_url: str):
    with Store(db_url) as s:
        yield s


def _done_run(store: Store, params: dict | None = None) -> str:
    run = store.create_run(params or {}, stages=STAGES)
    for stage in STAGES:
        store.set_stage(run, stage, "done")
    return run


# --------------------------------------------------------------------------- schema


def test_open_creates_schema_at_head_and_reopens(db_url: str) -> None:
    with Store(db_url) as s:
        assert s.schema_revision() == head_revision()
        tables = set(sa.inspect(s.engine).get_table_names())
    expected = {
        "items", "styles", "runs", "run_stages", "current_run", "user_segments",
        "segment_conditions", "renders", "run_renders", "quarantine", "alembic_version",
    }  # fmt: skip
    assert expected <= tables
    with Store(db_url, upgrade=False) as again:  # at head: no upgrade needed
        assert again.schema_revision() == head_revision()


def test_models_match_migrations(store: Store) -> None:
    with store.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(ctx, Base.metadata)
    assert diff == []


def test_upgrade_from_old_revision_keeps_data(db_url: str) -> None:
    engine = make_engine(db_url)
    assert ensure_schema(engine, target="0001") == "0001"
    now = pd.Timestamp.now(tz="UTC").to_pydatetime()
    with engine.begin() as conn:
        conn.execute(
            sa.insert(Item),
            {"item_id": "i1", "category": "shirt", "attributes": {"c": 1}, "updated_at": now},
        )
        conn.execute(
            sa.insert(Run),
            {"run_id": "r-old", "status": "done", "params": {"k": 2}, "metrics": {},
             "created_at": now, "updated_at": now},
        )  # fmt: skip
        assert "user_segments" not in sa.inspect(conn).get_table_names()
    engine.dispose()
    with pytest.raises(SchemaOutdatedError, match="0001"):
        Store(db_url, upgrade=False)
    with Store(db_url) as s:
        assert s.schema_revision() == head_revision() != "0001"
        items = s.get_items()
        assert items.loc[0, "item_id"] == "i1" and items.loc[0, "attributes"] == {"c": 1}
        assert s.get_run("r-old")["params"] == {"k": 2}
        assert s.write_user_segments("r-old", {"u": "s"}) == 1  # a table from 0002


def test_refuses_schema_newer_than_code(db_url: str) -> None:
    with Store(db_url) as s, s.engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = :v"), {"v": "9999"})
    with pytest.raises(SchemaTooNewError, match="9999.*newer stylerec"):
        Store(db_url)


def test_resolve_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STYLEREC_DB_URL", raising=False)
    assert resolve_url(None) == "sqlite:///stylerec.db"
    monkeypatch.setenv("STYLEREC_DB_URL", "postgresql://u:pw@h:5433/db")
    assert resolve_url(None) == "postgresql+psycopg://u:pw@h:5433/db"
    assert resolve_url("sqlite:///x.db") == "sqlite:///x.db"


def test_sqlite_connection_settings(tmp_path: Path) -> None:
    with Store(f"sqlite:///{tmp_path / 's.db'}") as s, s.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 1000


# --------------------------------------------------------------------------- catalogue


def _open_new_store(url: str, barrier: object, out: object) -> None:
    try:
        barrier.wait()  # type: ignore[attr-defined]
        with Store(url):
            pass
        out.put("ok")  # type: ignore[attr-defined]
    except Exception as exc:  # noqa: BLE001 - report any failure to the parent
        out.put(f"{type(exc).__name__}: {exc}"[:200])  # type: ignore[attr-defined]


def test_two_processes_opening_a_new_sqlite_store_together_both_succeed(tmp_path: Path) -> None:
    """Two nightlies started at once open the same new SQLite file together.  The loser
    of the race to switch it to WAL was told "database is locked" at once (SQLite does
    not call the busy handler there): about half of such pairs failed, and CI saw a
    nightly die with it.  Twelve pairs, released together from a barrier, must all open."""
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    failures = []
    for i in range(12):
        url = f"sqlite:///{tmp_path / f'race{i}.db'}"
        barrier, out = ctx.Barrier(2), ctx.Queue()
        procs = [ctx.Process(target=_open_new_store, args=(url, barrier, out)) for _ in range(2)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(60)
        failures += [r for r in (out.get(timeout=5) for _ in procs) if r != "ok"]
    assert not failures, failures


def test_items_roundtrip_and_partial_upsert(store: Store) -> None:
    rng = np.random.default_rng(0)
    codes = rng.normal(size=(3, 100)).astype(np.float32)
    tricky = "x'); DROP TABLE items; --"
    df = pd.DataFrame(
        {
            "item_id": ["a", "b", tricky],
            "image_uri": ["a.jpg", None, "c.jpg"],
            "category": ["shirt", np.nan, "shoe"],
            "attributes": [{"colour": "red", "n": np.int64(3)}, None, '{"x": 1}'],
            "image_hash": ["h1", "h2", "h3"],
            "code": [codes[0], codes[1].tolist(), codes[2].tobytes()],
        }
    )
    assert store.upsert_items(df) == 3
    got = store.get_items().set_index("item_id")
    assert list(got.index) == sorted(["a", "b", tricky])
    assert got.loc["a", "attributes"] == {"colour": "red", "n": 3}
    assert got.loc["b", "attributes"] == {} and pd.isna(got.loc["b", "category"])
    assert got.loc[tricky, "attributes"] == {"x": 1}
    for i, key in enumerate(["a", "b", tricky]):
        np.testing.assert_array_equal(got.loc[key, "code"], codes[i])
    # Only the given columns change; a later duplicate in the same call wins.
    store.upsert_items([{"item_id": "a", "code": [1.0, 2.0]}, {"item_id": "a", "code": [3.0, 4.0]}])
    a = store.get_items(["a"]).iloc[0]
    assert a["category"] == "shirt" and a["image_hash"] == "h1"
    np.testing.assert_array_equal(a["code"], [3.0, 4.0])
    ids, mat = store.item_codes(["b", tricky])
    assert ids == ["b", tricky] and mat.shape == (2, 100) and mat.dtype == np.float32


def test_bad_item_row_is_named_and_nothing_is_written(db_url: str) -> None:
    with Store(db_url, chunk_size=2) as store:
        store.upsert_items([{"item_id": "keep", "category": "old"}])
        rows = [{"item_id": f"i{i}", "category": "new", "code": [0.5] * 4} for i in range(6)]
        rows.append({"item_id": "bad", "category": "new", "code": [[1.0, 2.0]]})  # 2-D
        rows.append({"item_id": "keep", "category": "new", "code": None})
        with pytest.raises(ValueError, match=r"items row 6 \(item_id='bad'\).*1-D"):
            store.upsert_items(rows)  # three chunks were sent before the bad row
        got = store.get_items()
        assert list(got["item_id"]) == ["keep"] and got.loc[0, "category"] == "old"
        with pytest.raises(ValueError, match="unknown column"):
            store.upsert_items([{"item_id": "x", "colour": "red"}])
        with pytest.raises(ValueError, match="row 0: item_id is missing"):
            store.upsert_items(pd.DataFrame({"item_id": [None]}))


def test_styles_roundtrip(store: Store) -> None:
    store.upsert_styles(
        pd.DataFrame({"style_id": ["s2", "s1"], "name": ["Waves", "Stars"], "code": [[1, 0], [0, 1]]})
    )
    ids, mat = store.style_codes()
    assert ids == ["s1", "s2"]
    np.testing.assert_array_equal(mat, [[0, 1], [1, 0]])
    assert list(store.get_styles()["name"]) == ["Stars", "Waves"]


# --------------------------------------------------------------------------- runs


def test_run_lifecycle_and_resume(store: Store) -> None:
    assert store.get_run("nope") is None and store.latest_unfinished_run() is None
    run = store.create_run({"seed": np.int64(7), "lr": np.float32(0.5), "bad": float("nan")}, stages=STAGES)
    assert len(run) == len("20261122T153000-abc123") and run[8] == "T"
    rec = store.get_run(run)
    assert rec["status"] == "pending" and list(rec["stages"]) == list(STAGES)
    assert rec["params"] == {"seed": 7, "lr": 0.5, "bad": None}
    assert rec["created_at"].tzinfo is not None

    store.set_stage(run, "load", "running")
    assert store.get_run(run)["status"] == "running"
    store.set_stage(run, "load", "done", metrics={"rows": np.int64(10)})
    store.set_stage(run, "train", "failed", error="boom")
    rec = store.get_run(run)
    assert rec["status"] == "failed"
    assert rec["stages"]["load"]["metrics"] == {"rows": 10}
    assert rec["stages"]["train"]["error"] == "boom" and rec["stages"]["train"]["finished_at"]
    assert store.latest_unfinished_run()["run_id"] == run  # resumable

    store.set_stage(run, "train", "done")
    store.set_stage(run, "render", "done")
    store.set_stage(run, "extra", "done")  # a stage not planned is appended
    rec = store.get_run(run)
    assert rec["status"] == "done" and rec["finished_at"] is not None
    assert list(rec["stages"]) == [*STAGES, "extra"]
    assert store.latest_unfinished_run() is None

    store.set_run_metrics(run, {"a": 1})
    store.set_run_metrics(run, {"b": 2})
    store.update_run_params(run, {"previous_run_id": None})
    rec = store.get_run(run)
    assert rec["metrics"] == {"a": 1, "b": 2} and rec["params"]["previous_run_id"] is None

    with pytest.raises(ValueError, match="stage status"):
        store.set_stage(run, "load", "finished")
    with pytest.raises(KeyError, match="no run"):
        store.set_stage("missing", "load", "done")


def test_list_runs_abandon_and_delete(store: Store) -> None:
    old = _done_run(store)
    new = store.create_run({}, stages=STAGES)
    assert [r["run_id"] for r in store.list_runs()] == [new, old]
    assert [r["run_id"] for r in store.list_runs(limit=1)] == [new]
    assert store.latest_unfinished_run()["run_id"] == new
    store.abandon_run(new)
    assert store.latest_unfinished_run() is None
    with pytest.raises(ValueError, match="done"):
        store.abandon_run(old)
    store.write_user_segments(new, {"u1": "s1"})
    store.add_quarantine(new, "events", pd.DataFrame({"reason": ["bad"], "x": [1]}))
    store.delete_run(new)
    assert store.get_run(new) is None
    assert store.read_user_segments(new).empty and store.quarantine_counts(new) == {}


def test_publish_is_refused_until_done_and_rollback_works(store: Store) -> None:
    assert store.current_run_id() is None
    first = _done_run(store)
    second = store.create_run({}, stages=STAGES)
    store.set_stage(second, "load", "done")
    with pytest.raises(RunNotReadyError, match="train"):
        store.publish(second)
    with pytest.raises(RunNotReadyError, match="no stages"):
        store.publish(store.create_run({}))
    with pytest.raises(KeyError):
        store.publish("missing")
    store.publish(first)
    assert store.current_run_id() == first and store.get_run(first)["published_at"]
    # The publishing stage itself (and later ones) may be unfinished, but never failed.
    third = store.create_run({}, stages=STAGES)
    store.set_stage(third, "load", "done")
    store.set_stage(third, "train", "running")
    store.publish(third, unfinished_ok=("train", "render"))
    assert store.current_run_id() == third
    store.set_stage(third, "train", "failed")
    with pytest.raises(RunNotReadyError, match="failed"):
        store.publish(third, unfinished_ok=("train", "render"))
    store.publish(second, force=True)
    assert store.current_run_id() == second
    assert store.get_run(second)["is_current"] and not store.get_run(first)["is_current"]
    store.publish(first)  # rollback
    assert store.current_run_id() == first
    with pytest.raises(ValueError, match="published run"):
        store.delete_run(first)


# --------------------------------------------------------------------------- user segments


def test_user_segments_roundtrip_and_rewrite(store: Store) -> None:
    run = store.create_run({})
    mapping = {f"u{i:03d}": f"s{i % 4}" for i in range(300)}
    assert store.write_user_segments(run, mapping) == 300
    df = store.read_user_segments(run)
    assert list(df.columns) == ["user_id", "segment_id"]
    assert dict(zip(df.user_id, df.segment_id, strict=True)) == mapping
    # A rewrite replaces the run's assignment (re-running a stage is idempotent).
    series = pd.Series({"u1": 3, "u2": 4})
    assert store.write_user_segments(run, series) == 2
    assert store.read_user_segments(run).values.tolist() == [["u1", "3"], ["u2", "4"]]
    frame = pd.DataFrame({"user_id": ["a", "a"], "segment_id": ["1", "2"]})
    with pytest.raises(ValueError, match="'a' appears more than once"):
        store.write_user_segments(run, frame)
    with pytest.raises(ValueError, match="appears more than once"):
        store.write_user_segments(run, [("x", "1"), ("x", "2")])
    with pytest.raises(ValueError, match=r"row 1 \(user 'y'\): segment_id is missing"):
        store.write_user_segments(run, [("x", "1"), ("y", None)])
    assert len(store.read_user_segments(run)) == 2  # failed rewrites left it alone
    with pytest.raises(KeyError, match="no run"):
        store.write_user_segments("missing", {"u": "s"})


def test_user_segments_with_special_characters(store: Store) -> None:
    # Tabs, newlines, backslashes and quotes take PostgreSQL's escaping COPY path
    # on the way in and CSV quoting on the way out.
    run = store.create_run({})
    odd = {"tab\tuser": "s,1", "new\nline": 'quote"d', "back\\slash": "\\N", "cr\rx": "''"}
    assert store.write_user_segments(run, odd) == 4
    df = store.read_user_segments(run)
    assert dict(zip(df.user_id, df.segment_id, strict=True)) == odd


def test_exception_mid_bulk_write_leaves_no_partial_rows(db_url: str) -> None:
    with Store(db_url, chunk_size=50) as store:
        other = store.create_run({})
        run = store.create_run({})
        store.write_user_segments(other, {"o1": "s"})
        store.write_user_segments(run, {"old1": "s0", "old2": "s0"})

        def pairs():
            for i in range(10_000):
                if i == 400:  # eight chunks already sent inside the transaction
                    raise RuntimeError("source died")
                yield f"new{i}", "s1"

        with pytest.raises(RuntimeError, match="source died"):
            store.write_user_segments(run, pairs())
        assert store.read_user_segments(run).values.tolist() == [["old1", "s0"], ["old2", "s0"]]
        assert store.read_user_segments(other).values.tolist() == [["o1", "s"]]


KILL_SCRIPT = textwrap.dedent(
    """
    import itertools, sys, time
    from pathlib import Path
    from data.store import Store

    url, run_id, marker = sys.argv[1:4]
    store = Store(url, chunk_size=1000)

    def pairs():
        for i in itertools.count():
            if i == 5000:  # five chunks are in the open transaction
                Path(marker).write_text("mid-transaction")
                time.sleep(600)
            yield f"new{i}", "s9"

    store.write_user_segments(run_id, pairs())
    """
)


def _writer_is_mid_transaction(store: Store) -> bool:
    """Independent evidence that the killed writer really held an open write transaction."""
    if store.backend == "sqlite":
        raw = store.engine.raw_connection()
        try:
            raw.driver_connection.execute("PRAGMA busy_timeout=0")
            try:
                raw.driver_connection.execute("BEGIN IMMEDIATE")
            except Exception as exc:  # noqa: BLE001 - sqlite3.OperationalError
                return "locked" in str(exc)
            raw.driver_connection.execute("ROLLBACK")
            return False
        finally:
            raw.invalidate()  # do not return a connection with busy_timeout=0 to the pool
    with store.engine.connect() as conn:
        q = sa.text(
            "SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
            "AND query LIKE :copy AND state <> 'idle'"
        )
        return conn.execute(q, {"copy": "COPY%user_segments%"}).scalar() >= 1


def test_sigkill_mid_transaction_leaves_no_partial_rows(db_url: str, tmp_path: Path) -> None:
    with Store(db_url) as store:
        keep = store.create_run({})
        run = store.create_run({})
        store.write_user_segments(keep, {f"k{i}": "s0" for i in range(100)})
        store.write_user_segments(run, {"old": "s0"})
        marker = tmp_path / "marker"
        proc = subprocess.Popen(
            [sys.executable, "-c", KILL_SCRIPT, db_url, run, str(marker)],
            stderr=subprocess.PIPE,
        )
        try:
            deadline = time.monotonic() + 60
            while not marker.exists():
                assert proc.poll() is None, proc.stderr.read().decode()
                assert time.monotonic() < deadline, "writer never reached the middle of its write"
                time.sleep(0.05)
            assert _writer_is_mid_transaction(store)
            # Meanwhile a reader still sees the committed state.
            assert store.read_user_segments(run).values.tolist() == [["old", "s0"]]
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stderr.close()
        assert proc.returncode == -signal.SIGKILL
        assert store.read_user_segments(run).values.tolist() == [["old", "s0"]]
        assert len(store.read_user_segments(keep)) == 100
        # The dead writer's lock is gone: a new write goes through.
        assert store.write_user_segments(run, {"after": "s1"}) == 1


# --------------------------------------------------------------------------- concurrency


def test_reader_keeps_working_while_writer_holds_transaction_and_commits(db_url: str) -> None:
    writer, reader = Store(db_url, chunk_size=100), Store(db_url)
    try:
        run = _done_run(writer)
        writer.write_user_segments(run, {f"u{i}": "old" for i in range(1000)})
        writer.publish(run)
        in_txn, release = threading.Event(), threading.Event()
        errors: list[BaseException] = []

        def pairs():
            for i in range(1000):
                if i == 500:
                    in_txn.set()
                    release.wait(30)
                yield f"u{i}", "new"

        def write() -> None:
            try:
                writer.write_user_segments(run, pairs())
            except BaseException as exc:  # noqa: BLE001 - reported by the main thread
                errors.append(exc)

        thread = threading.Thread(target=write)
        thread.start()
        try:
            assert in_txn.wait(30)
            t0 = time.monotonic()
            seen = reader.read_user_segments(run)
            assert reader.current_run_id() == run
            assert time.monotonic() - t0 < 5, "reader was blocked by the writer"
            assert len(seen) == 1000 and set(seen.segment_id) == {"old"}
        finally:
            release.set()
            thread.join(30)
        assert not errors
        after = reader.read_user_segments(run)
        assert len(after) == 1000 and set(after.segment_id) == {"new"}
    finally:
        writer.close()
        reader.close()


def test_reads_see_whole_commits_while_writer_commits_repeatedly(db_url: str) -> None:
    writer, reader = Store(db_url), Store(db_url)
    try:
        run = writer.create_run({})
        writer.write_user_segments(run, {f"u{i}": "0" for i in range(500)})
        done = threading.Event()
        errors: list[BaseException] = []

        def write() -> None:
            try:
                for version in range(1, 16):
                    writer.write_user_segments(run, {f"u{i}": str(version) for i in range(500)})
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)
            finally:
                done.set()

        thread = threading.Thread(target=write)
        thread.start()
        versions = []
        while not done.is_set():
            df = reader.read_user_segments(run)
            assert len(df) == 500
            assert df.segment_id.nunique() == 1, "a read saw half of a commit"
            versions.append(int(df.segment_id.iloc[0]))
        thread.join(30)
        assert not errors
        assert versions == sorted(versions) and len(versions) >= 2
        assert set(reader.read_user_segments(run).segment_id) == {"15"}
    finally:
        writer.close()
        reader.close()


# --------------------------------------------------------------------------- conditions, renders


def test_segment_conditions_roundtrip(store: Store) -> None:
    run = store.create_run({})
    code = np.linspace(-1, 1, 100, dtype=np.float32)
    rows = [
        {"segment_id": "s1", "condition_hash": "c1", "style_ids": ["a", "b"],
         "weights": [0.25, 0.75], "code": code, "n_users": 10},
        {"segment_id": "s0", "condition_hash": "c0", "style_ids": ["a"], "weights": [1.0]},
    ]  # fmt: skip
    assert store.write_segment_conditions(run, rows) == 2
    df = store.read_segment_conditions(run)
    assert list(df.segment_id) == ["s0", "s1"]
    assert df.loc[1, "style_ids"] == ["a", "b"] and df.loc[1, "weights"] == [0.25, 0.75]
    np.testing.assert_array_equal(df.loc[1, "code"], code)
    assert df.loc[0, "code"] is None and pd.isna(df.loc[0, "n_users"]) and df.loc[1, "n_users"] == 10
    bad = [{"segment_id": "s2", "condition_hash": "c", "style_ids": ["a"], "weights": [0.5, 0.5]}]
    with pytest.raises(ValueError, match=r"s2.*1 style_ids but 2 weights"):
        store.write_segment_conditions(run, bad)
    assert len(store.read_segment_conditions(run)) == 2


def test_render_index_links_and_gc(store: Store) -> None:
    r1 = _done_run(store)
    assert store.add_render("k1", "i1", "c1", "renders/k1.webp", r1, params={"size": 256})
    assert not store.add_render("k1", "i1", "c1", "other.webp", r1)  # idempotent on key
    store.add_renders(r1, [{"key": "k2", "item_id": "i2", "condition_hash": "c1", "uri": "k2.webp"}])
    assert store.has_renders(["k1", "k2", "k3"]) == {"k1", "k2"}
    df = store.renders_for_run(r1)
    assert list(df.key) == ["k1", "k2"] and df.loc[0, "uri"] == "renders/k1.webp"
    assert df.loc[0, "params"] == {"size": 256}

    r2 = _done_run(store)
    assert store.link_renders(r2, ["k2", "gone"]) == {"gone"}  # cache hit + a vanished key
    store.add_render("k3", "i3", "c2", "k3.webp", r2)
    store.publish(r1)
    r3 = _done_run(store)
    store.add_render("k4", "i4", "c3", "k4.webp", r3)

    # Keep the newest run (r3) and the published one (r1): only r2's own k3 goes.
    assert store.unreferenced_renders(keep_runs=1) == [RenderRef("k3", "k3.webp")]
    assert store.unreferenced_renders(keep_runs=3) == []
    assert {r.key for r in store.unreferenced_renders(keep_runs=0)} == {"k3", "k4"}
    assert store.delete_renders(["k3", "nope"]) == 1
    assert store.has_renders(["k3"]) == set() and list(store.renders_for_run(r2).key) == ["k2"]


def test_quarantine_counts_and_records(store: Store) -> None:
    run = store.create_run({})
    rows = pd.DataFrame(
        {
            "user_id": ["u1", None, "u3"],
            "ts": pd.to_datetime(["2026-01-01", "2026-01-02", None]),
            "value": [1.5, np.nan, 3.0],
            "reason": ["unknown_item", "missing_user", "unknown_item"],
        }
    )
    assert store.add_quarantine(run, "events", rows) == 3
    store.add_quarantine(run, "images", pd.DataFrame({"reason": ["unreadable"], "path": ["a.jpg"]}))
    store.add_quarantine(None, "catalog", pd.DataFrame({"reason": ["dup"], "item_id": ["x"]}))
    assert store.quarantine_counts(run) == {"missing_user": 1, "unknown_item": 2, "unreadable": 1}
    assert store.quarantine_counts(run, source="events") == {"missing_user": 1, "unknown_item": 2}
    assert store.quarantine_counts(None) == {"dup": 1}
    rec = store.read_quarantine(run, source="events")
    assert rec.loc[1, "record"] == {"user_id": None, "ts": "2026-01-02T00:00:00.000", "value": None}
    with pytest.raises(ValueError, match="'reason' column"):
        store.add_quarantine(run, "events", pd.DataFrame({"x": [1]}))
    with pytest.raises(ValueError, match="row 0 has no reason"):
        store.add_quarantine(run, "events", pd.DataFrame({"reason": [None]}))
