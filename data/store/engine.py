"""Engine construction: the URL rules and the per-backend settings the store relies on.

SQLite needs three things SQLAlchemy does not do by default:

* **WAL journal mode**, so readers (the ranking service) keep reading the last
  committed state while the nightly job writes and commits;
* a **busy timeout**, so a second writer waits for the lock instead of failing
  at once with "database is locked";
* **real transactions**: Python's ``sqlite3`` module opens transactions lazily
  and not for DDL.  Following SQLAlchemy's documented recipe we switch the
  driver to autocommit and emit ``BEGIN`` ourselves, so a migration or a bulk
  write is all-or-nothing.  Write transactions use ``BEGIN IMMEDIATE``: they
  take the write lock up front (waiting under the busy timeout) instead of
  failing half-way when a read lock cannot be upgraded.

Foreign keys are switched on so that deleting a run cascades to its rows.
PostgreSQL goes through psycopg 3 (``postgresql+psycopg://``) with pre-ping,
since the service keeps its engine for days.
"""

from __future__ import annotations

import os
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

from .types import json_dumps

DEFAULT_URL = "sqlite:///stylerec.db"
ENV_URL = "STYLEREC_DB_URL"
#: How long a SQLite writer waits for another writer's lock (milliseconds).
SQLITE_BUSY_TIMEOUT_MS = 30_000
#: Execution option that marks a connection as a writer (``BEGIN IMMEDIATE`` on SQLite).
WRITE_OPTION = "stylerec_write"


def resolve_url(url: str | None = None) -> str:
    """``url`` if given, else ``$STYLEREC_DB_URL``, else ``sqlite:///stylerec.db``.

    A bare ``postgresql://`` URL is rewritten to ``postgresql+psycopg://``:
    the project depends on psycopg 3 and SQLAlchemy would otherwise look for
    psycopg2, which is not installed.
    """
    url = url or os.environ.get(ENV_URL) or DEFAULT_URL
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
        return parsed.render_as_string(hide_password=False)
    return url


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url`` with the settings described in the module docstring."""
    backend = make_url(url).get_backend_name()
    if backend == "sqlite":
        engine = create_engine(url, json_serializer=json_dumps, **kwargs)
        _configure_sqlite(engine)
        return engine
    if backend == "postgresql":
        return create_engine(url, json_serializer=json_dumps, pool_pre_ping=True, **kwargs)
    raise ValueError(
        f"unsupported database URL {make_url(url)!r}: use sqlite:/// or postgresql+psycopg://"
    )


def _set_wal(cursor: Any) -> None:
    """``PRAGMA journal_mode=WAL``, retried while another process holds the file.

    Two processes opening a new database together (two nightlies started at
    once) race to switch it to WAL.  SQLite answers the loser "database is
    locked" at once, without calling the busy handler (the switch needs an
    exclusive lock and waiting could deadlock), so the loser retries here,
    within the busy timeout, until the other has finished; then the database is
    in WAL already and the pragma is a read.  ('memory' for ``:memory:``.)
    """
    import sqlite3
    import time

    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000.0
    pause = 0.005
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() + pause > deadline:
                raise
            time.sleep(pause)
            pause = min(2 * pause, 0.2)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Autocommit at the driver level; transactions are begun in _on_begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            # The busy timeout first: switching to WAL takes a lock too.
            cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_MS)}")
            _set_wal(cursor)
            cursor.execute("PRAGMA foreign_keys=ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        immediate = conn.get_execution_options().get(WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
