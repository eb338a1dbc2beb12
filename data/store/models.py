"""SQLAlchemy 2 models of the store: the tables the nightly job and the service share.

The schema is owned by the Alembic migrations in ``data/store/migrations``;
these models must describe the same tables (a test compares them).  Why the
tables look the way they do:

* **runs / run_stages**: one row per nightly run and one per (run, stage), so
  a crashed run can be resumed by skipping stages already ``done``.  Stages are
  rows, not columns, because the pipeline owns the list of stages.
* **current_run**: a single-row pointer (``id`` is always 1).  Publishing is
  one UPDATE of that row inside one transaction, so a reader sees either the
  old run or the new one, never a mixture.
* **user_segments / segment_conditions** are keyed by run: a new night writes
  new rows and never touches the published ones, which is what makes publish
  and rollback cheap pointer moves.
* **renders / run_renders**: renders are content-addressed (``key``) and shared
  across runs; ``run_renders`` says which runs use which renders so that
  garbage collection can delete what no kept run references.
* **quarantine**: rejected input rows with the reason, counted in the report.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from data.ids import MAX_ID_LENGTH

from .types import BigIntId, JSONType, UTCDateTime

#: Stage and run states.  ``abandoned`` is a run-only state: never resumed.
STAGE_STATUSES = ("pending", "running", "done", "failed")
RUN_STATUSES = (*STAGE_STATUSES, "abandoned")

ID = String(MAX_ID_LENGTH)  # external ids (users, items, styles, segments): data.ids policy
HASH = String(128)  # hex digests (sha256 is 64, room for longer ones)


def _in(column: str, values: tuple[str, ...]) -> str:
    # Constant DDL text built from module constants, never from input.
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    """Declarative base; ``type_annotation_map`` keeps column types uniform."""

    type_annotation_map = {
        dict[str, Any]: JSONType,
        list[Any]: JSONType,
        datetime: UTCDateTime(),
        bytes: LargeBinary(),
    }


class Item(Base):
    """A catalogue product: image, category, attributes and its style code."""

    __tablename__ = "items"

    item_id: Mapped[str] = mapped_column(ID, primary_key=True)
    image_uri: Mapped[str | None] = mapped_column(Text)
    category: Mapped[str | None] = mapped_column(ID)
    attributes: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False)
    image_hash: Mapped[str | None] = mapped_column(HASH, index=True)
    code: Mapped[bytes | None] = mapped_column(LargeBinary)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)


class Style(Base):
    """A library style (an artwork) and its style code."""

    __tablename__ = "styles"

    style_id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str | None] = mapped_column(Text)
    image_uri: Mapped[str | None] = mapped_column(Text)
    attributes: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False)
    image_hash: Mapped[str | None] = mapped_column(HASH, index=True)
    code: Mapped[bytes | None] = mapped_column(LargeBinary)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)


class Run(Base):
    """One nightly run: parameters, aggregate metrics, derived status, timestamps."""

    __tablename__ = "runs"
    __table_args__ = (CheckConstraint(_in("status", RUN_STATUSES), name="ck_runs_status"),)

    run_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    params: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


Index("ix_runs_created_at", Run.created_at)


class RunStage(Base):
    """The state of one stage of one run (what makes a run resumable)."""

    __tablename__ = "run_stages"
    __table_args__ = (CheckConstraint(_in("status", STAGE_STATUSES), name="ck_run_stages_status"),)

    run_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True
    )
    stage: Mapped[str] = mapped_column(String(64), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)


class CurrentRun(Base):
    """The single-row pointer to the published run (``id`` is always 1)."""

    __tablename__ = "current_run"
    __table_args__ = (CheckConstraint("id = 1", name="ck_current_run_single_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    run_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("runs.run_id", ondelete="RESTRICT"), nullable=False
    )
    published_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)


class UserSegment(Base):
    """Which segment each user belongs to in a run."""

    __tablename__ = "user_segments"

    # No foreign key on purpose: checked row by row, it made a million-user
    # COPY six times slower.  Store.write_user_segments checks the run under a
    # row lock and Store.delete_run deletes these rows explicitly.
    run_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(ID, primary_key=True)
    segment_id: Mapped[str] = mapped_column(ID, nullable=False)


class SegmentCondition(Base):
    """A segment's rendering condition: blended styles, weights and the blended code."""

    __tablename__ = "segment_conditions"

    run_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True
    )
    segment_id: Mapped[str] = mapped_column(ID, primary_key=True)
    condition_hash: Mapped[str] = mapped_column(HASH, nullable=False, index=True)
    style_ids: Mapped[list[Any]] = mapped_column(JSONType, nullable=False)
    weights: Mapped[list[Any]] = mapped_column(JSONType, nullable=False)
    code: Mapped[bytes | None] = mapped_column(LargeBinary)
    n_users: Mapped[int | None] = mapped_column(Integer)


class Render(Base):
    """A rendered image, content-addressed by ``key`` and shared between runs."""

    __tablename__ = "renders"

    key: Mapped[str] = mapped_column(HASH, primary_key=True)
    item_id: Mapped[str] = mapped_column(ID, nullable=False)
    condition_hash: Mapped[str] = mapped_column(HASH, nullable=False)
    uri: Mapped[str] = mapped_column(Text, nullable=False)
    params: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False)
    created_by_run: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)


Index("ix_renders_item_condition", Render.item_id, Render.condition_hash)


class RunRender(Base):
    """Which renders a run uses (its own and cache hits from earlier runs)."""

    __tablename__ = "run_renders"

    run_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(
        HASH, ForeignKey("renders.key", ondelete="CASCADE"), primary_key=True
    )


Index("ix_run_renders_key", RunRender.key)


class Quarantine(Base):
    """An input row rejected by validation, with its reason and the row itself as JSON."""

    __tablename__ = "quarantine"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    run_id: Mapped[str | None] = mapped_column(
        String(64), ForeignKey("runs.run_id", ondelete="CASCADE")
    )
    source: Mapped[str] = mapped_column(String(255), nullable=False)
    reason: Mapped[str] = mapped_column(String(255), nullable=False)
    record: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)


Index("ix_quarantine_run_reason", Quarantine.run_id, Quarantine.reason)
