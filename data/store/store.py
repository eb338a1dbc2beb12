"""The :class:`Store`: every read and write the nightly job and the service make.

See ``data/store/__init__.py`` for the API overview.  Design rules kept here:

* every public write is **one transaction**: it commits whole or not at all,
  so a crash (or SIGKILL) mid-write leaves the previous data as it was;
* all SQL is built with SQLAlchemy constructs and bound parameters (PostgreSQL
  ``COPY`` takes identifiers through ``psycopg.sql.Identifier`` and streams the
  values as data), never by formatting values into SQL text;
* per-run tables (segments, conditions) are replaced as a whole by a rewrite
  of the same run, which makes a re-run stage idempotent;
* each call checks out its own pooled connection, so one ``Store`` may be
  shared by threads.
"""

from __future__ import annotations

import itertools
import logging
import math
import secrets
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from typing import Any, NamedTuple, Self

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine, delete, false, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from data.ids import id_problem

from . import style_library
from .engine import WRITE_OPTION, make_engine, resolve_url
from .lock import RunLock, RunLockedError, run_lock
from .models import (
    STAGE_STATUSES,
    Base,
    CurrentRun,
    Item,
    Quarantine,
    Render,
    Run,
    RunRender,
    RunStage,
    SegmentCondition,
    Style,
    UserSegment,
)
from .schema import current_revision, ensure_schema, head_revision
from .types import decode_vector, encode_vector, jsonable, utcnow

log = logging.getLogger(__name__)

#: Rows per executemany batch: bounds memory for streamed input (1M users).
DEFAULT_CHUNK_SIZE = 20_000
#: Keys per ``IN (...)`` list; well under SQLite's and PostgreSQL's parameter limits.
IN_CHUNK = 900


class RunNotReadyError(ValueError):
    """``publish`` was asked to publish a run whose stages are not all done."""


class RenderRef(NamedTuple):
    """A render that garbage collection may delete: its key and where its file is."""

    key: str
    uri: str


# --------------------------------------------------------------------------- input helpers


def _missing(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float) and math.isnan(value)


def _records(rows: Any, what: str) -> tuple[list[str], Iterator[dict[str, Any]]]:
    """Column names and a lazy iterator of row dicts from a DataFrame or an iterable of mappings.

    Lazy so that a bulk write streams: rows are converted and sent chunk by chunk.
    """
    if isinstance(rows, pd.DataFrame):
        cols = [str(c) for c in rows.columns]
        return cols, (
            dict(zip(cols, t, strict=True)) for t in rows.itertuples(index=False, name=None)
        )
    if isinstance(rows, Mapping) or isinstance(rows, str | bytes):
        raise TypeError(
            f"{what}: pass a DataFrame or an iterable of row mappings, not {type(rows).__name__}"
        )
    it = iter(rows)
    first = next(it, None)
    if first is None:
        return [], iter(())
    if not isinstance(first, Mapping):
        raise TypeError(
            f"{what} row 0: expected a mapping of column -> value, got {type(first).__name__}"
        )
    return list(first.keys()), itertools.chain([first], it)


def _check_columns(
    cols: Sequence[str], required: Sequence[str], optional: Sequence[str], what: str
) -> None:
    missing = [c for c in required if c not in cols]
    if missing:
        raise ValueError(f"{what}: missing required column(s) {missing}; got {list(cols)}")
    unknown = [c for c in cols if c not in required and c not in optional]
    if unknown:
        raise ValueError(f"{what}: unknown column(s) {unknown}; allowed: {[*required, *optional]}")


def _req_str(value: Any, where: str, column: str) -> str:
    if _missing(value) or (isinstance(value, str) and not value.strip()):
        raise ValueError(f"{where}: {column} is missing")
    return str(value)


def _opt_str(value: Any) -> str | None:
    return None if _missing(value) else str(value)


def _json_obj(value: Any, where: str, column: str) -> dict[str, Any]:
    if _missing(value):
        return {}
    if isinstance(value, str):
        import json

        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{where}: {column} is not valid JSON: {exc}") from exc
    if not isinstance(value, Mapping):
        raise ValueError(f"{where}: {column} must be a JSON object, got {type(value).__name__}")
    try:
        return jsonable(value)
    except TypeError as exc:
        raise ValueError(f"{where}: {column}: {exc}") from exc


#: Quarantined cells are cut to this many characters: a 30 MB id is evidence, not data.
QUARANTINE_CELL_CHARS = 1024


def _quarantine_cell(value: Any) -> Any:
    """A quarantine record's cell, fit for any JSON column: NUL shown as ``\\x00``, cut short."""
    if not isinstance(value, str):
        return value
    if len(value) > QUARANTINE_CELL_CHARS:
        value = f"{value[:QUARANTINE_CELL_CHARS]}... ({len(value)} characters)"
    return value.replace("\x00", "\\x00")


def _chunks(iterable: Iterable[Any], size: int) -> Iterator[list[Any]]:
    it = iter(iterable)
    while chunk := list(itertools.islice(it, size)):
        yield chunk


def _new_run_id(now: datetime) -> str:
    """Sortable by creation second, unique by a random suffix: ``20261122T153000-abc123``."""
    return f"{now.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(3)}"


def _derive_status(statuses: Sequence[str]) -> str:
    if not statuses:
        return "pending"
    if "failed" in statuses:
        return "failed"
    if all(s == "done" for s in statuses):
        return "done"
    if "running" in statuses or "done" in statuses:
        return "running"
    return "pending"


# --------------------------------------------------------------------------- the store


class Store:
    """Metadata, per-run assignments and the render index in one SQL database.

    ``Store(url)`` opens ``url`` (``None``: ``$STYLEREC_DB_URL`` or
    ``sqlite:///stylerec.db``) and brings its schema to the newest revision
    unless ``upgrade=False`` (then an old schema raises
    :class:`~data.store.schema.SchemaOutdatedError`).  A schema newer than the
    code always raises :class:`~data.store.schema.SchemaTooNewError`.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        upgrade: bool = True,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        **engine_kwargs: Any,
    ) -> None:
        self.url = resolve_url(url)
        self.chunk_size = int(chunk_size)
        self.engine: Engine = make_engine(self.url, **engine_kwargs)
        self._writer = self.engine.execution_options(**{WRITE_OPTION: True})
        try:
            ensure_schema(self.engine, upgrade=upgrade)
        except BaseException:
            self.engine.dispose()
            raise

    # ----------------------------------------------------------------- lifecycle

    def __repr__(self) -> str:
        return f"Store({self.engine.url.render_as_string(hide_password=True)!r})"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close pooled connections (the store can be reopened with a new ``Store``)."""
        self.engine.dispose()

    @property
    def backend(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self.engine.dialect.name

    def upgrade(self) -> str:
        """Migrate the schema to the newest revision (done on open); return the revision."""
        return ensure_schema(self.engine, upgrade=True)

    def schema_revision(self) -> str | None:
        """The schema revision recorded in the database (``head_revision()`` after open)."""
        with self.engine.connect() as conn:
            return current_revision(conn)

    @staticmethod
    def head_revision() -> str:
        """The newest schema revision this code knows."""
        return head_revision()

    def run_lock(self, wait_s: float = 0.0) -> AbstractContextManager[RunLock]:
        """Hold the store's run lock (one nightly at a time); see :mod:`data.store.lock`.

        Waits up to ``wait_s`` seconds, then raises :class:`RunLockedError`
        naming the holder (pid, host, run).
        """
        return run_lock(self.engine, wait_s)

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """One write transaction (``BEGIN IMMEDIATE`` on SQLite): commit on success, else roll back."""
        with self._writer.begin() as conn:
            yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            yield conn

    def _upsert_stmt(self, conn: Connection, table: Any) -> Any:
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        return dialect.insert(table)

    @staticmethod
    def _require_run(conn: Connection, run_id: str, *, lock: bool = False) -> Any:
        stmt = select(Run).where(Run.run_id == run_id)
        if lock:
            stmt = stmt.with_for_update()  # PostgreSQL; SQLite's writer lock already serialises
        row = conn.execute(stmt).first()
        if row is None:
            raise KeyError(f"no run {run_id!r} in the store")
        return row

    # ----------------------------------------------------------------- items and styles

    _CATALOG_OPTIONAL = {
        "items": ("image_uri", "category", "attributes", "image_hash", "code"),
        "styles": ("name", "image_uri", "attributes", "image_hash", "code"),
    }

    def upsert_items(self, rows: pd.DataFrame | Iterable[Mapping[str, Any]]) -> int:
        """Insert or update catalogue items in one transaction; return the number of rows.

        Columns: ``item_id`` (required), ``image_uri``, ``category``,
        ``attributes`` (dict or JSON text), ``image_hash``, ``code`` (float
        vector, JSON list or float32 bytes).  Only the columns given are
        updated on existing items, so codes can be added later without
        repeating the rest.  Later duplicates of an id win.
        """
        return self._upsert_catalog(Item.__table__, "item_id", "items", rows)

    def upsert_styles(self, rows: pd.DataFrame | Iterable[Mapping[str, Any]]) -> int:
        """Like :meth:`upsert_items` for the style library: ``style_id``, ``name``, ``image_uri``,
        ``attributes``, ``image_hash``, ``code``."""
        return self._upsert_catalog(Style.__table__, "style_id", "styles", rows)

    def _upsert_catalog(self, table: Any, key: str, what: str, rows: Any) -> int:
        optional = self._CATALOG_OPTIONAL[what]
        cols, records = _records(rows, what)
        if not cols:
            return 0
        _check_columns(cols, (key,), optional, what)
        present = [c for c in optional if c in cols]
        now = utcnow()

        def convert(i: int, rec: Mapping[str, Any]) -> dict[str, Any]:
            where = f"{what} row {i}"
            ident = _req_str(rec.get(key), where, key)
            problem = id_problem(ident)
            if problem is not None:
                # The id policy of data.ids: refused here too, with the row named, rather
                # than a driver error on PostgreSQL and silent acceptance on SQLite.
                raise ValueError(f"{where}: {key} breaks the id policy ({problem})")
            where = f"{what} row {i} ({key}={ident!r})"
            out: dict[str, Any] = {key: ident, "updated_at": now, "attributes": {}}
            for c in present:
                v = rec.get(c)
                if c == "attributes":
                    out[c] = _json_obj(v, where, c)
                elif c == "code":
                    out[c] = encode_vector(v, what=f"{where}: code")
                else:
                    out[c] = _opt_str(v)
            return out

        n = 0
        with self._write() as conn:
            stmt = self._upsert_stmt(conn, table)
            stmt = stmt.on_conflict_do_update(
                index_elements=[key],
                set_={c: stmt.excluded[c] for c in (*present, "updated_at")},
            )
            converted = (convert(i, r) for i, r in enumerate(records))
            for chunk in _chunks(converted, self.chunk_size):
                # Dedupe inside a batch: a multi-row upsert may not touch a row twice.
                batch = list({r[key]: r for r in chunk}.values())
                conn.execute(stmt, batch)
                n += len(chunk)
        log.info("upserted %d %s", n, what)
        return n

    def get_items(self, item_ids: Iterable[str] | None = None) -> pd.DataFrame:
        """Items as a DataFrame; ``code`` holds float32 arrays (or ``None``), ``attributes`` dicts."""
        return self._get_catalog(Item, "item_id", ("image_uri", "category"), item_ids)

    def get_styles(self, style_ids: Iterable[str] | None = None) -> pd.DataFrame:
        """Styles as a DataFrame, like :meth:`get_items`."""
        return self._get_catalog(Style, "style_id", ("name", "image_uri"), style_ids)

    def _get_catalog(
        self, model: Any, key: str, text_cols: Sequence[str], ids: Iterable[str] | None
    ) -> pd.DataFrame:
        cols = [key, *text_cols, "attributes", "image_hash", "code", "updated_at"]
        columns = [getattr(model, c) for c in cols]
        rows: list[Any] = []
        with self._read() as conn:
            if ids is None:
                rows = conn.execute(select(*columns).order_by(getattr(model, key))).all()
            else:
                for chunk in _chunks(dict.fromkeys(map(str, ids)), IN_CHUNK):
                    stmt = select(*columns).where(getattr(model, key).in_(chunk))
                    rows.extend(conn.execute(stmt).all())
                rows.sort(key=lambda r: r[0])
        df = pd.DataFrame([tuple(r) for r in rows], columns=cols)
        df["code"] = [decode_vector(b) for b in df["code"]]
        return df

    def item_codes(self, item_ids: Iterable[str] | None = None) -> tuple[list[str], np.ndarray]:
        """``(ids, codes[N, D])`` for items that have a style code, ordered by id."""
        return self._codes(self.get_items(item_ids), "item_id")

    def style_codes(self, style_ids: Iterable[str] | None = None) -> tuple[list[str], np.ndarray]:
        """``(ids, codes[N, D])`` for styles that have a style code, ordered by id."""
        return self._codes(self.get_styles(style_ids), "style_id")

    @staticmethod
    def _codes(df: pd.DataFrame, key: str) -> tuple[list[str], np.ndarray]:
        have = df[df["code"].map(lambda c: c is not None)]
        if have.empty:
            return [], np.zeros((0, 0), dtype=np.float32)
        dims = {len(c) for c in have["code"]}
        if len(dims) != 1:
            raise ValueError(f"stored {key} codes have mixed dimensions {sorted(dims)}")
        return list(have[key]), np.stack(list(have["code"])).astype(np.float32, copy=False)

    # ----------------------------------------------------------------- runs

    def create_run(
        self, params: Mapping[str, Any] | None = None, stages: Sequence[str] = ()
    ) -> str:
        """Record a new run with its parameters and planned stages (all ``pending``); return its id.

        Planning the stages up front is what lets :meth:`publish` tell a
        finished run from one that merely has no failures yet.
        """
        now = utcnow()
        run_id = _new_run_id(now)
        if len(set(stages)) != len(stages):
            raise ValueError(f"duplicate stage names in {list(stages)}")
        with self._write() as conn:
            conn.execute(
                insert(Run),
                {
                    "run_id": run_id,
                    "status": "pending",
                    "params": jsonable(dict(params or {})),
                    "metrics": {},
                    "created_at": now,
                    "updated_at": now,
                },
            )
            if stages:
                conn.execute(
                    insert(RunStage),
                    [
                        {
                            "run_id": run_id,
                            "stage": s,
                            "position": i,
                            "status": "pending",
                            "updated_at": now,
                        }
                        for i, s in enumerate(stages)
                    ],
                )
        log.info("created run %s with stages %s", run_id, list(stages))
        return run_id

    def set_stage(
        self,
        run_id: str,
        stage: str,
        status: str,
        metrics: Mapping[str, Any] | None = None,
        error: str | None = None,
    ) -> None:
        """Set one stage's status (adding the stage if new) and re-derive the run's status.

        ``running`` stamps ``started_at``; ``done``/``failed`` stamp
        ``finished_at``.  ``metrics`` replaces the stage's metrics when given.
        The run is ``failed`` if any stage failed, ``done`` when all are done,
        ``running`` once any stage started, else ``pending``.
        """
        if status not in STAGE_STATUSES:
            raise ValueError(f"stage status {status!r} is not one of {STAGE_STATUSES}")
        now = utcnow()
        with self._write() as conn:
            self._require_run(conn, run_id, lock=True)
            key = (RunStage.run_id == run_id) & (RunStage.stage == stage)
            exists = conn.execute(select(RunStage.position).where(key)).first()
            values: dict[str, Any] = {
                "status": status,
                "updated_at": now,
                "error": error if status == "failed" else None,
                "finished_at": now if status in ("done", "failed") else None,
            }
            if status == "running":
                values["started_at"] = now
            if metrics is not None:
                values["metrics"] = jsonable(dict(metrics))
            if exists is None:
                pos = conn.execute(
                    select(func.coalesce(func.max(RunStage.position) + 1, 0)).where(
                        RunStage.run_id == run_id
                    )
                ).scalar_one()
                conn.execute(
                    insert(RunStage), {"run_id": run_id, "stage": stage, "position": pos, **values}
                )
            else:
                conn.execute(update(RunStage).where(key).values(**values))
            statuses = list(
                conn.execute(select(RunStage.status).where(RunStage.run_id == run_id)).scalars()
            )
            run_status = _derive_status(statuses)
            conn.execute(
                update(Run)
                .where(Run.run_id == run_id)
                .values(
                    status=run_status,
                    updated_at=now,
                    finished_at=now if run_status == "done" else None,
                )
            )

    def set_run_metrics(self, run_id: str, metrics: Mapping[str, Any]) -> None:
        """Merge ``metrics`` into the run's aggregate metrics (later keys win)."""
        with self._write() as conn:
            run = self._require_run(conn, run_id, lock=True)
            merged = {**(run.metrics or {}), **jsonable(dict(metrics))}
            conn.execute(
                update(Run).where(Run.run_id == run_id).values(metrics=merged, updated_at=utcnow())
            )

    def update_run_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        """Merge ``params`` into the run's parameters (later keys win)."""
        with self._write() as conn:
            run = self._require_run(conn, run_id, lock=True)
            merged = {**(run.params or {}), **jsonable(dict(params))}
            conn.execute(
                update(Run).where(Run.run_id == run_id).values(params=merged, updated_at=utcnow())
            )

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        """A run as a dict, or ``None`` if there is no such run.

        Keys: ``run_id, status, params, metrics, created_at, updated_at,
        finished_at, published_at, is_current`` and ``stages`` (name -> dict
        of ``status, metrics, error, started_at, finished_at``, in plan order).
        """
        with self._read() as conn:
            runs = self._runs(conn, select(Run).where(Run.run_id == run_id))
        return runs[0] if runs else None

    def list_runs(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Runs, newest first, in the shape of :meth:`get_run`."""
        stmt = select(Run).order_by(Run.created_at.desc(), Run.run_id.desc())
        if limit is not None:
            stmt = stmt.limit(int(limit))
        with self._read() as conn:
            return self._runs(conn, stmt)

    def _runs(self, conn: Connection, stmt: Any) -> list[dict[str, Any]]:
        rows = conn.execute(stmt).mappings().all()
        if not rows:
            return []
        current = conn.execute(select(CurrentRun.run_id).where(CurrentRun.id == 1)).scalar()
        ids = [r["run_id"] for r in rows]
        stages: dict[str, dict[str, Any]] = {i: {} for i in ids}
        for chunk in _chunks(ids, IN_CHUNK):
            q = (
                select(RunStage)
                .where(RunStage.run_id.in_(chunk))
                .order_by(RunStage.run_id, RunStage.position)
            )
            for s in conn.execute(q).mappings():
                stages[s["run_id"]][s["stage"]] = {
                    k: s[k] for k in ("status", "metrics", "error", "started_at", "finished_at")
                }
        return [
            {
                **{k: r[k] for k in r},
                "is_current": r["run_id"] == current,
                "stages": stages[r["run_id"]],
            }
            for r in rows
        ]

    def latest_unfinished_run(self) -> dict[str, Any] | None:
        """The newest run that is neither done nor abandoned (the one to resume), or ``None``.

        Returned in the shape of :meth:`get_run` so the caller can check that
        its ``params`` match before resuming it.
        """
        stmt = (
            select(Run)
            .where(Run.status.not_in(("done", "abandoned")))
            .order_by(Run.created_at.desc(), Run.run_id.desc())
            .limit(1)
        )
        with self._read() as conn:
            runs = self._runs(conn, stmt)
        return runs[0] if runs else None

    def abandon_run(self, run_id: str) -> None:
        """Mark an unfinished run as never to be resumed (its rows stay until deleted)."""
        with self._write() as conn:
            run = self._require_run(conn, run_id, lock=True)
            if run.status == "done":
                raise ValueError(f"run {run_id!r} is done; only unfinished runs can be abandoned")
            conn.execute(
                update(Run)
                .where(Run.run_id == run_id)
                .values(status="abandoned", updated_at=utcnow())
            )

    def publish(
        self, run_id: str, *, force: bool = False, unfinished_ok: Iterable[str] = ()
    ) -> None:
        """Make ``run_id`` the current run, atomically; ``publish(older_id)`` is the rollback.

        One transaction updates the single-row ``current_run`` pointer, so
        readers see the old run or the new one, never half of each.  A run
        whose recorded stages are not all ``done`` is refused unless ``force``;
        ``unfinished_ok`` names stages that may still be pending or running
        (never failed): the stage that calls ``publish`` and those after it,
        such as the report.
        """
        ok = set(unfinished_ok)
        now = utcnow()
        with self._write() as conn:
            run = self._require_run(conn, run_id, lock=True)
            if not force:
                stages = conn.execute(
                    select(RunStage.stage, RunStage.status)
                    .where(RunStage.run_id == run_id)
                    .order_by(RunStage.position)
                ).all()
                blocking = {
                    s: st
                    for s, st in stages
                    if st != "done" and not (s in ok and st in ("pending", "running"))
                }
                if not stages or blocking or run.status == "abandoned":
                    raise RunNotReadyError(
                        f"run {run_id!r} is {run.status}; stages not done: "
                        f"{blocking or 'no stages recorded'}. Finish it or publish(force=True)."
                    )
            stmt = self._upsert_stmt(conn, CurrentRun.__table__)
            stmt = stmt.values(id=1, run_id=run_id, published_at=now).on_conflict_do_update(
                index_elements=["id"], set_={"run_id": run_id, "published_at": now}
            )
            conn.execute(stmt)
            conn.execute(update(Run).where(Run.run_id == run_id).values(published_at=now))
        log.info("published run %s", run_id)

    def current_run_id(self) -> str | None:
        """The published run's id, or ``None`` before the first publish."""
        with self._read() as conn:
            return conn.execute(select(CurrentRun.run_id).where(CurrentRun.id == 1)).scalar()

    def delete_run(self, run_id: str) -> None:
        """Delete a run and its segments, conditions, links and quarantine rows (not the current run).

        Renders themselves stay: other runs may use them; see :meth:`unreferenced_renders`.
        """
        with self._write() as conn:
            self._require_run(conn, run_id, lock=True)
            if conn.execute(select(CurrentRun.run_id).where(CurrentRun.id == 1)).scalar() == run_id:
                raise ValueError(f"run {run_id!r} is the published run; publish another one first")
            for model in (UserSegment, SegmentCondition, RunRender, Quarantine, RunStage):
                conn.execute(delete(model).where(model.run_id == run_id))
            conn.execute(delete(Run).where(Run.run_id == run_id))

    # ----------------------------------------------------------------- user segments

    def write_user_segments(
        self,
        run_id: str,
        assignments: Mapping[Any, Any] | pd.DataFrame | pd.Series | Iterable[tuple[Any, Any]],
    ) -> int:
        """Replace the run's user -> segment assignment in one transaction; return the row count.

        ``assignments``: a mapping, a Series (index = user), a DataFrame with
        ``user_id`` and ``segment_id``, or an iterable of pairs (streamed, so
        a generator over millions of users needs no list).  PostgreSQL gets
        ``COPY`` (about ten times faster than batched INSERT); SQLite gets
        chunked ``executemany``.  If anything fails the run keeps its
        previous assignment.
        """
        rows = self._segment_rows(run_id, assignments)
        n = 0
        with self._write() as conn:
            self._require_run(conn, run_id, lock=True)
            conn.execute(delete(UserSegment).where(UserSegment.run_id == run_id))
            try:
                if conn.dialect.name == "postgresql":
                    n = self._copy_rows(
                        conn,
                        UserSegment.__table__.name,
                        ("run_id", "user_id", "segment_id"),
                        rows,
                        self.chunk_size,
                    )
                else:
                    # Plain tuples through the driver's executemany: the SQL is
                    # SQLAlchemy's compiled INSERT with ``?`` placeholders.
                    sql = str(insert(UserSegment.__table__).compile(dialect=conn.dialect))
                    for chunk in _chunks(rows, self.chunk_size):
                        conn.exec_driver_sql(sql, chunk)
                        n += len(chunk)
            except IntegrityError as exc:
                raise ValueError(
                    f"user_segments for run {run_id!r}: a user_id appears more than once"
                ) from exc
        log.info("wrote %d user segments for run %s", n, run_id)
        return n

    @staticmethod
    def _segment_rows(run_id: str, assignments: Any) -> Iterator[tuple[str, str, str]]:
        """``(run_id, user_id, segment_id)`` tuples, validated.

        In-memory inputs are checked column-wise with pandas (a million users
        in well under a second); other iterables are checked row by row as
        they stream.  Errors name the row and the user.
        """
        if isinstance(assignments, pd.DataFrame):
            cols = [str(c) for c in assignments.columns]
            _check_columns(cols, ("user_id", "segment_id"), (), "user_segments")
            users = assignments["user_id"].reset_index(drop=True)
            segments = assignments["segment_id"].reset_index(drop=True)
        elif isinstance(assignments, pd.Series):
            users = pd.Series(assignments.index, dtype=object)
            segments = pd.Series(assignments.to_numpy(), dtype=object)
        elif isinstance(assignments, Mapping):
            users = pd.Series(list(assignments.keys()), dtype=object)
            segments = pd.Series(list(assignments.values()), dtype=object)
        else:
            return Store._stream_segment_rows(run_id, assignments)

        def missing(col: pd.Series) -> np.ndarray:
            return np.flatnonzero(
                col.isna().to_numpy() | (col.astype(str).str.strip() == "").to_numpy()
            )

        if (bad := missing(users)).size:
            raise ValueError(f"user_segments row {bad[0]}: user_id is missing")
        if (bad := missing(segments)).size:
            i = bad[0]
            raise ValueError(f"user_segments row {i} (user {users[i]!r}): segment_id is missing")
        user_str = users.astype(str)
        dup = user_str.duplicated()
        if dup.any():
            raise ValueError(
                f"user_segments: user_id {user_str[dup].iloc[0]!r} appears more than once"
            )
        return zip(
            itertools.repeat(run_id), user_str.tolist(), segments.astype(str).tolist(), strict=False
        )

    @staticmethod
    def _stream_segment_rows(run_id: str, pairs: Iterable[Any]) -> Iterator[tuple[str, str, str]]:
        for i, pair in enumerate(pairs):
            try:
                user, segment = pair
            except (TypeError, ValueError) as exc:
                raise ValueError(
                    f"user_segments row {i}: expected (user_id, segment_id), got {pair!r}"
                ) from exc
            where = f"user_segments row {i}"
            yield (
                run_id,
                _req_str(user, where, "user_id"),
                _req_str(segment, f"{where} (user {user!r})", "segment_id"),
            )

    @staticmethod
    def _copy_rows(
        conn: Connection,
        table: str,
        columns: Sequence[str],
        rows: Iterable[Sequence[str]],
        chunk_size: int = DEFAULT_CHUNK_SIZE,
    ) -> int:
        """Stream ``rows`` of strings into ``table`` with PostgreSQL ``COPY ... FROM STDIN``.

        Runs inside the caller's transaction; values travel as data, never as
        SQL.  A chunk whose values hold none of COPY's special characters
        (tab, newline, carriage return, backslash) goes as one joined text
        block, three times faster than psycopg's per-row ``write_row``, which
        escapes and is used for any chunk that needs it.
        """
        import psycopg
        from psycopg import sql

        copy_sql = sql.SQL("COPY {} ({}) FROM STDIN").format(
            sql.Identifier(table), sql.SQL(", ").join(sql.Identifier(c) for c in columns)
        )
        driver = conn.connection.driver_connection
        tabs_per_row = len(columns) - 1
        n = 0
        try:
            with driver.cursor() as cur, cur.copy(copy_sql) as copy:  # type: ignore[union-attr]
                for chunk in _chunks(rows, chunk_size):
                    block = "\n".join(map("\t".join, chunk)) + "\n"
                    plain = (
                        "\\" not in block
                        and "\r" not in block
                        and block.count("\t") == tabs_per_row * len(chunk)
                        and block.count("\n") == len(chunk)
                    )
                    if plain:
                        copy.write(block)
                    else:
                        for row in chunk:
                            copy.write_row(row)
                    n += len(chunk)
        except psycopg.errors.UniqueViolation as exc:
            raise IntegrityError(str(copy_sql.as_string(driver)), None, exc) from exc
        return n

    def read_user_segments(self, run_id: str) -> pd.DataFrame:
        """The run's assignment as a DataFrame ``user_id, segment_id`` ordered by user.

        Fetched as plain driver tuples (SQLAlchemy's compiled, parameterized
        SELECT run on the DBAPI cursor): building a million ``Row`` objects
        was two thirds of the time.  Measured on PostgreSQL this also beat
        ``COPY ... TO STDOUT`` parsed as CSV.
        """
        stmt = (
            select(UserSegment.user_id, UserSegment.segment_id)
            .where(UserSegment.run_id == run_id)
            .order_by(UserSegment.user_id)
        )
        with self._read() as conn:
            rows = conn.exec_driver_sql(*self._compiled(conn, stmt)).cursor.fetchall()
        return pd.DataFrame.from_records(rows, columns=["user_id", "segment_id"])

    @staticmethod
    def _compiled(conn: Connection, stmt: Any) -> tuple[str, Any]:
        """SQL text with placeholders and its bound values, for driver-level execution."""
        compiled = stmt.compile(dialect=conn.dialect)
        params = compiled.construct_params()
        if compiled.positional:
            return compiled.string, tuple(params[k] for k in compiled.positiontup)
        return compiled.string, params

    # ----------------------------------------------------------------- segment conditions

    def write_segment_conditions(
        self, run_id: str, rows: pd.DataFrame | Iterable[Mapping[str, Any]]
    ) -> int:
        """Replace the run's segment conditions in one transaction; return the row count.

        Columns: ``segment_id``, ``condition_hash``, ``style_ids`` (list),
        ``weights`` (list, same length, finite), optional ``code`` (float
        vector) and ``n_users``.
        """
        required = ("segment_id", "condition_hash", "style_ids", "weights")
        cols, records = _records(rows, "segment_conditions")

        def convert(i: int, rec: Mapping[str, Any]) -> dict[str, Any]:
            where = f"segment_conditions row {i}"
            seg = _req_str(rec.get("segment_id"), where, "segment_id")
            where = f"segment_conditions row {i} (segment_id={seg!r})"
            style_ids = [str(s) for s in list(rec["style_ids"])]
            weights = [float(w) for w in list(rec["weights"])]
            if len(style_ids) != len(weights):
                raise ValueError(f"{where}: {len(style_ids)} style_ids but {len(weights)} weights")
            if not all(math.isfinite(w) for w in weights):
                raise ValueError(f"{where}: weights must be finite, got {weights}")
            n_users = rec.get("n_users")
            return {
                "run_id": run_id,
                "segment_id": seg,
                "condition_hash": _req_str(rec.get("condition_hash"), where, "condition_hash"),
                "style_ids": style_ids,
                "weights": weights,
                "code": encode_vector(rec.get("code"), what=f"{where}: code"),
                "n_users": None if _missing(n_users) else int(n_users),
            }

        n = 0
        with self._write() as conn:
            self._require_run(conn, run_id, lock=True)
            conn.execute(delete(SegmentCondition).where(SegmentCondition.run_id == run_id))
            if cols:
                _check_columns(cols, required, ("code", "n_users"), "segment_conditions")
                converted = (convert(i, r) for i, r in enumerate(records))
                try:
                    for chunk in _chunks(converted, self.chunk_size):
                        conn.execute(insert(SegmentCondition), chunk)
                        n += len(chunk)
                except IntegrityError as exc:
                    raise ValueError(
                        f"segment_conditions for run {run_id!r}: a segment_id appears more than once"
                    ) from exc
        return n

    def save_style_library(self, run_id: str, digest: str, source: str | None,
                           entries: Sequence[Mapping[str, Any]], day: str | None = None) -> None:
        """Record the style library ``run_id`` used (kept once per digest; see ``style_library``)."""
        with self._write() as conn:
            self._require_run(conn, run_id)
            style_library.save(conn, run_id, digest, source, entries, day)

    def style_library_for_run(self, run_id: str) -> dict[str, Any] | None:
        """``{digest, source, day, entries}`` of the library ``run_id`` used, or None."""
        with self._read() as conn:
            return style_library.for_run(conn, run_id)

    def read_segment_conditions(self, run_id: str) -> pd.DataFrame:
        """The run's conditions: ``segment_id, condition_hash, style_ids, weights, code, n_users``."""
        cols = ["segment_id", "condition_hash", "style_ids", "weights", "code", "n_users"]
        stmt = (
            select(*(getattr(SegmentCondition, c) for c in cols))
            .where(SegmentCondition.run_id == run_id)
            .order_by(SegmentCondition.segment_id)
        )
        with self._read() as conn:
            rows = conn.execute(stmt).all()
        df = pd.DataFrame([tuple(r) for r in rows], columns=cols)
        df["code"] = [decode_vector(b) for b in df["code"]]
        df["n_users"] = df["n_users"].astype("Int64")
        return df

    # ----------------------------------------------------------------- renders

    def add_render(
        self,
        key: str,
        item_id: str,
        condition_hash: str,
        uri: str,
        run_id: str,
        params: Mapping[str, Any] | None = None,
    ) -> bool:
        """Record one render and link it to ``run_id``; idempotent on ``key``.

        Returns ``True`` when the render is new, ``False`` when the key was
        already known (the existing row is kept, and linked to the run).
        """
        return (
            self.add_renders(
                run_id,
                [
                    {
                        "key": key,
                        "item_id": item_id,
                        "condition_hash": condition_hash,
                        "uri": uri,
                        "params": params,
                    }
                ],
            )
            == 1
        )

    def add_renders(self, run_id: str, rows: pd.DataFrame | Iterable[Mapping[str, Any]]) -> int:
        """Record renders (``key, item_id, condition_hash, uri``, optional ``params``) and link
        them all to ``run_id``, in one transaction; return how many keys were new."""
        cols, records = _records(rows, "renders")
        if not cols:
            return 0
        _check_columns(cols, ("key", "item_id", "condition_hash", "uri"), ("params",), "renders")
        now = utcnow()

        def convert(i: int, rec: Mapping[str, Any]) -> dict[str, Any]:
            where = f"renders row {i}"
            key = _req_str(rec.get("key"), where, "key")
            where = f"renders row {i} (key={key!r})"
            return {
                "key": key,
                "item_id": _req_str(rec.get("item_id"), where, "item_id"),
                "condition_hash": _req_str(rec.get("condition_hash"), where, "condition_hash"),
                "uri": _req_str(rec.get("uri"), where, "uri"),
                "params": _json_obj(rec.get("params"), where, "params"),
                "created_by_run": run_id,
                "created_at": now,
            }

        new = 0
        with self._write() as conn:
            self._require_run(conn, run_id)
            for chunk in _chunks((convert(i, r) for i, r in enumerate(records)), IN_CHUNK):
                by_key = {r["key"]: r for r in chunk}
                known = set(
                    conn.execute(select(Render.key).where(Render.key.in_(list(by_key)))).scalars()
                )
                fresh = [r for k, r in by_key.items() if k not in known]
                if fresh:
                    stmt = self._upsert_stmt(conn, Render.__table__).on_conflict_do_nothing(
                        index_elements=["key"]
                    )
                    conn.execute(stmt, fresh)
                    new += len(fresh)
                self._link(conn, run_id, list(by_key))
        return new

    def _link(self, conn: Connection, run_id: str, keys: Sequence[str]) -> None:
        if keys:
            stmt = self._upsert_stmt(conn, RunRender.__table__).on_conflict_do_nothing(
                index_elements=["run_id", "key"]
            )
            conn.execute(stmt, [{"run_id": run_id, "key": k} for k in keys])

    def link_renders(self, run_id: str, keys: Iterable[str]) -> set[str]:
        """Mark existing renders (cache hits) as used by ``run_id`` so gc keeps them.

        Returns the keys that are *not* in the store (deleted by a gc since the
        caller looked them up): those must be rendered again.
        """
        missing: set[str] = set()
        with self._write() as conn:
            self._require_run(conn, run_id)
            for chunk in _chunks(dict.fromkeys(map(str, keys)), IN_CHUNK):
                known = set(conn.execute(select(Render.key).where(Render.key.in_(chunk))).scalars())
                missing.update(k for k in chunk if k not in known)
                self._link(conn, run_id, [k for k in chunk if k in known])
        return missing

    def has_renders(self, keys: Iterable[str]) -> set[str]:
        """The subset of ``keys`` already rendered (the render cache lookup)."""
        found: set[str] = set()
        with self._read() as conn:
            for chunk in _chunks(dict.fromkeys(map(str, keys)), IN_CHUNK):
                found.update(
                    conn.execute(select(Render.key).where(Render.key.in_(chunk))).scalars()
                )
        return found

    def renders_for_run(self, run_id: str) -> pd.DataFrame:
        """Renders the run uses: ``key, item_id, condition_hash, uri, params, created_by_run, created_at``."""
        cols = ["key", "item_id", "condition_hash", "uri", "params", "created_by_run", "created_at"]
        stmt = (
            select(*(getattr(Render, c) for c in cols))
            .join(RunRender, RunRender.key == Render.key)
            .where(RunRender.run_id == run_id)
            .order_by(Render.key)
        )
        with self._read() as conn:
            rows = conn.execute(stmt).all()
        return pd.DataFrame([tuple(r) for r in rows], columns=cols)

    def unreferenced_renders(self, keep_runs: int) -> list[RenderRef]:
        """Renders no kept run uses: the gc candidates, as ``(key, uri)``.

        Kept runs are the ``keep_runs`` newest runs plus the published one
        (always, even if older: rollback must keep working).
        """
        if keep_runs < 0:
            raise ValueError(f"keep_runs must be >= 0, got {keep_runs}")
        with self._read() as conn:
            newest = (
                select(Run.run_id)
                .order_by(Run.created_at.desc(), Run.run_id.desc())
                .limit(keep_runs)
            )
            kept = set(conn.execute(newest).scalars())
            current = conn.execute(select(CurrentRun.run_id).where(CurrentRun.id == 1)).scalar()
            if current is not None:
                kept.add(current)
            used = select(RunRender.key).where(RunRender.key == Render.key)
            if kept:
                used = used.where(RunRender.run_id.in_(sorted(kept)))
            else:
                used = used.where(false())
            stmt = select(Render.key, Render.uri).where(~used.exists()).order_by(Render.key)
            return [RenderRef(k, u) for k, u in conn.execute(stmt).all()]

    def uris_in_use(self, uris: Iterable[str]) -> set[str]:
        """The subset of ``uris`` that some render row still points at.

        Items sharing one image share one file under several keys; gc deletes
        a file only when no remaining row names it.
        """
        found: set[str] = set()
        with self._read() as conn:
            for chunk in _chunks(dict.fromkeys(map(str, uris)), IN_CHUNK):
                found.update(conn.execute(select(Render.uri).where(Render.uri.in_(chunk))).scalars())
        return found

    def delete_renders(self, keys: Iterable[str]) -> int:
        """Delete render rows and their run links (files are the caller's); return rows deleted."""
        n = 0
        with self._write() as conn:
            for chunk in _chunks(dict.fromkeys(map(str, keys)), IN_CHUNK):
                conn.execute(delete(RunRender).where(RunRender.key.in_(chunk)))
                n += conn.execute(delete(Render).where(Render.key.in_(chunk))).rowcount
        return n

    # ----------------------------------------------------------------- quarantine

    def add_quarantine(self, run_id: str | None, source: str, rows: pd.DataFrame) -> int:
        """Store rejected input rows: a ``reason`` column plus the row's other columns as JSON.

        ``run_id`` may be ``None`` for loads outside a run.  One transaction;
        returns the number of rows stored.
        """
        if "reason" not in rows.columns:
            raise ValueError(
                f"quarantine rows from {source!r} need a 'reason' column; got {list(rows.columns)}"
            )
        if rows.empty:
            return 0
        import json

        reasons = rows["reason"]
        bad = reasons.isna() | (reasons.astype(str).str.strip() == "")
        if bad.any():
            raise ValueError(
                f"quarantine rows from {source!r}: row {int(np.flatnonzero(bad)[0])} has no reason"
            )
        others = rows.drop(columns="reason").reset_index(drop=True)
        # pandas' own JSON writer handles NaN, timestamps and numpy types in one pass.
        # PostgreSQL's jsonb refuses the \u0000 escape, and a quarantined row is often
        # quarantined *because* it holds a NUL: keep it visible as the text "\x00".
        records = [
            {k: _quarantine_cell(v) for k, v in rec.items()}
            for rec in json.loads(
                others.to_json(orient="records", date_format="iso", default_handler=str)
            )
        ]
        now = utcnow()
        n = 0
        with self._write() as conn:
            if run_id is not None:
                self._require_run(conn, run_id)
            payload = (
                {
                    "run_id": run_id,
                    "source": str(source)[:255],
                    "reason": str(r)[:255],
                    "record": rec,
                    "created_at": now,
                }
                for r, rec in zip(reasons, records, strict=True)
            )
            for chunk in _chunks(payload, self.chunk_size):
                conn.execute(insert(Quarantine), chunk)
                n += len(chunk)
        return n

    def _quarantine_filter(self, run_id: str | None, source: str | None) -> Any:
        cond = Quarantine.run_id.is_(None) if run_id is None else Quarantine.run_id == run_id
        if source is not None:
            cond = cond & (Quarantine.source == source)
        return cond

    def quarantine_counts(self, run_id: str | None, source: str | None = None) -> dict[str, int]:
        """``reason -> count`` of quarantined rows for the run (and source, if given)."""
        stmt = (
            select(Quarantine.reason, func.count())
            .where(self._quarantine_filter(run_id, source))
            .group_by(Quarantine.reason)
            .order_by(Quarantine.reason)
        )
        with self._read() as conn:
            return {r: int(c) for r, c in conn.execute(stmt).all()}

    def read_quarantine(self, run_id: str | None, source: str | None = None) -> pd.DataFrame:
        """Quarantined rows: ``source, reason, record`` (dict), ``created_at``, in insertion order."""
        cols = ["source", "reason", "record", "created_at"]
        stmt = (
            select(*(getattr(Quarantine, c) for c in cols))
            .where(self._quarantine_filter(run_id, source))
            .order_by(Quarantine.id)
        )
        with self._read() as conn:
            rows = conn.execute(stmt).all()
        return pd.DataFrame([tuple(r) for r in rows], columns=cols)


__all__ = ["Base", "RenderRef", "RunLock", "RunLockedError", "RunNotReadyError", "Store"]
