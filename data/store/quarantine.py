"""Quarantined input rows in SQL: each keeps its reason and the row itself as JSON.

A quarantined row is evidence for whoever fixes the producer, so it is kept
as read, but made fit for any JSON column: PostgreSQL's jsonb refuses the
``\\u0000`` escape (and a row is often quarantined *because* it holds a NUL),
and a 30 MB cell is cut to :data:`QUARANTINE_CELL_CHARS`.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import func, insert, select

from .models import Quarantine
from .repository import Repository
from .rows import chunks
from .types import utcnow

#: Quarantined cells are cut to this many characters: a 30 MB id is evidence, not data.
QUARANTINE_CELL_CHARS = 1024


def quarantine_cell(value: Any) -> Any:
    """A quarantine record's cell, fit for any JSON column: NUL shown as ``\\x00``, cut short."""
    if not isinstance(value, str):
        return value
    if len(value) > QUARANTINE_CELL_CHARS:
        value = f"{value[:QUARANTINE_CELL_CHARS]}... ({len(value)} characters)"
    return value.replace("\x00", "\\x00")


class QuarantineRepository(Repository):
    """Store, count and read quarantined rows per run (or outside any run) and source."""

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
        reasons = rows["reason"]
        bad = reasons.isna() | (reasons.astype(str).str.strip() == "")
        if bad.any():
            raise ValueError(
                f"quarantine rows from {source!r}: row {int(np.flatnonzero(bad)[0])} has no reason"
            )
        others = rows.drop(columns="reason").reset_index(drop=True)
        # pandas' own JSON writer handles NaN, timestamps and numpy types in one pass.
        recs = [
            {k: quarantine_cell(v) for k, v in rec.items()}
            for rec in json.loads(
                others.to_json(orient="records", date_format="iso", default_handler=str)
            )
        ]
        now = utcnow()
        n = 0
        with self.db.write() as conn:
            if run_id is not None:
                self.db.require_run(conn, run_id)
            payload = (
                {
                    "run_id": run_id,
                    "source": str(source)[:255],
                    "reason": str(r)[:255],
                    "record": rec,
                    "created_at": now,
                }
                for r, rec in zip(reasons, recs, strict=True)
            )
            for chunk in chunks(payload, self.db.chunk_size):
                conn.execute(insert(Quarantine), chunk)
                n += len(chunk)
        return n

    def quarantine_counts(self, run_id: str | None, source: str | None = None) -> dict[str, int]:
        """``reason -> count`` of quarantined rows for the run (and source, if given)."""
        stmt = (
            select(Quarantine.reason, func.count())
            .where(_filter(run_id, source))
            .group_by(Quarantine.reason)
            .order_by(Quarantine.reason)
        )
        with self.db.read() as conn:
            return {r: int(c) for r, c in conn.execute(stmt).all()}

    def read_quarantine(self, run_id: str | None, source: str | None = None) -> pd.DataFrame:
        """Quarantined rows: ``source, reason, record`` (dict), ``created_at``, in insertion order."""
        cols = ["source", "reason", "record", "created_at"]
        stmt = (
            select(*(getattr(Quarantine, c) for c in cols))
            .where(_filter(run_id, source))
            .order_by(Quarantine.id)
        )
        with self.db.read() as conn:
            rows = conn.execute(stmt).all()
        return pd.DataFrame([tuple(r) for r in rows], columns=cols)


def _filter(run_id: str | None, source: str | None) -> Any:
    cond = Quarantine.run_id.is_(None) if run_id is None else Quarantine.run_id == run_id
    if source is not None:
        cond = cond & (Quarantine.source == source)
    return cond
