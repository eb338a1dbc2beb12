"""What every repository of the store shares: the engine, transactions, upserts, run checks.

The :class:`~data.store.store.Store` facade owns one :class:`Database` and hands
it to one repository per concern (catalogue, runs, segments, renders,
quarantine).  A new concern is a new :class:`Repository` subclass in its own
module plus a line in the facade; nothing here needs to change.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, select
from sqlalchemy.dialects import postgresql, sqlite

from .engine import WRITE_OPTION
from .models import Run
from .rows import DEFAULT_CHUNK_SIZE


class Database:
    """An engine plus the two ways the store talks to it: one write transaction, one read.

    Each call checks out its own pooled connection, so one ``Database`` (and the
    ``Store`` around it) may be shared by threads.
    """

    def __init__(self, engine: Engine, chunk_size: int = DEFAULT_CHUNK_SIZE) -> None:
        self.engine = engine
        self.chunk_size = int(chunk_size)
        self._writer = engine.execution_options(**{WRITE_OPTION: True})

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """One write transaction (``BEGIN IMMEDIATE`` on SQLite): commit on success, else roll back."""
        with self._writer.begin() as conn:
            yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection for reads (no transaction is held open after the block)."""
        with self.engine.connect() as conn:
            yield conn

    @staticmethod
    def upsert(conn: Connection, table: Any) -> Any:
        """The dialect's ``INSERT`` that has ``on_conflict_do_update``/``do_nothing``."""
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        return dialect.insert(table)

    @staticmethod
    def require_run(conn: Connection, run_id: str, *, lock: bool = False) -> Any:
        """The run's row, or ``KeyError``; ``lock`` takes a row lock on PostgreSQL.

        Every per-run write checks its run first, so a typo in a run id is an
        error naming the run rather than orphan rows.
        """
        stmt = select(Run).where(Run.run_id == run_id)
        if lock:
            stmt = stmt.with_for_update()  # PostgreSQL; SQLite's writer lock already serialises
        row = conn.execute(stmt).first()
        if row is None:
            raise KeyError(f"no run {run_id!r} in the store")
        return row


class Repository:
    """One concern's reads and writes over a shared :class:`Database`."""

    def __init__(self, db: Database) -> None:
        self.db = db
