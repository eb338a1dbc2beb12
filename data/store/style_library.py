"""Repository of the style libraries runs used: which library (by content digest) each run read.

Why its own module: the store facade (:class:`data.store.Store`) only forwards
to these functions, so the library's tables live with the code that writes
them.  A library is kept once per digest (nights that reuse one file add one
pointer row, not a copy); the pointer row also keeps the file's path and the
day the controls were evaluated for (campaign dates depend on it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, ForeignKey, Index, Integer, String, Text, delete, insert, select
from sqlalchemy.orm import Mapped, mapped_column

from .models import Base
from .repository import Repository
from .types import JSONType, UTCDateTime, utcnow


class StyleLibraryRow(Base):
    """One library's entries (as JSON records), stored once per content digest."""

    __tablename__ = "style_libraries"

    digest: Mapped[str] = mapped_column(String(128), primary_key=True)
    source: Mapped[str | None] = mapped_column(Text)
    entries: Mapped[list[Any]] = mapped_column(JSONType, nullable=False)
    n_styles: Mapped[int] = mapped_column(Integer, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)


class RunStyleLibrary(Base):
    """Which library a run used, where it was read from, and for which day."""

    __tablename__ = "run_style_libraries"

    run_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True
    )
    digest: Mapped[str] = mapped_column(
        String(128), ForeignKey("style_libraries.digest", ondelete="RESTRICT"), nullable=False
    )
    source: Mapped[str | None] = mapped_column(Text)
    day: Mapped[str | None] = mapped_column(String(10))


Index("ix_run_style_libraries_digest", RunStyleLibrary.digest)


def save(conn: Connection, run_id: str, digest: str, source: str | None,
         entries: Sequence[Mapping[str, Any]], day: str | None = None) -> None:
    """Record that ``run_id`` used the library ``digest`` (stored if new); replaces a rerun's row."""
    if not digest:
        raise ValueError("a style library needs its content digest to be stored")
    known = conn.execute(
        select(StyleLibraryRow.digest).where(StyleLibraryRow.digest == digest)).first()
    if known is None:
        conn.execute(insert(StyleLibraryRow), {
            "digest": digest, "source": source, "entries": [dict(e) for e in entries],
            "n_styles": len(entries), "created_at": utcnow()})
    conn.execute(delete(RunStyleLibrary).where(RunStyleLibrary.run_id == run_id))
    conn.execute(insert(RunStyleLibrary),
                 {"run_id": run_id, "digest": digest, "source": source, "day": day})


def for_run(conn: Connection, run_id: str) -> dict[str, Any] | None:
    """``{digest, source, day, entries}`` of the library ``run_id`` used (None: not recorded)."""
    row = conn.execute(
        select(RunStyleLibrary.digest, RunStyleLibrary.source, RunStyleLibrary.day,
               StyleLibraryRow.entries)
        .join(StyleLibraryRow, StyleLibraryRow.digest == RunStyleLibrary.digest)
        .where(RunStyleLibrary.run_id == run_id)
    ).first()
    if row is None:
        return None
    return {"digest": row.digest, "source": row.source, "day": row.day,
            "entries": list(row.entries)}


class StyleLibraryRepository(Repository):
    """The store's face of this module: one transaction per call, the run checked first."""

    def save_style_library(self, run_id: str, digest: str, source: str | None,
                           entries: Sequence[Mapping[str, Any]], day: str | None = None) -> None:
        """Record the style library ``run_id`` used (kept once per digest)."""
        with self.db.write() as conn:
            self.db.require_run(conn, run_id)
            save(conn, run_id, digest, source, entries, day)

    def style_library_for_run(self, run_id: str) -> dict[str, Any] | None:
        """``{digest, source, day, entries}`` of the library ``run_id`` used, or None."""
        with self.db.read() as conn:
            return for_run(conn, run_id)
