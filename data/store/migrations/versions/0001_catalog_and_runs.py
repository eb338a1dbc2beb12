"""Catalogue (items, styles), runs with per-stage state, and the published-run pointer.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from data.store.types import JSONType, UTCDateTime

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

STAGE = "status IN ('pending', 'running', 'done', 'failed')"
RUN = "status IN ('pending', 'running', 'done', 'failed', 'abandoned')"


def upgrade() -> None:
    op.create_table(
        "items",
        sa.Column("item_id", sa.String(255), primary_key=True),
        sa.Column("image_uri", sa.Text()),
        sa.Column("category", sa.String(255)),
        sa.Column("attributes", JSONType, nullable=False),
        sa.Column("image_hash", sa.String(128)),
        sa.Column("code", sa.LargeBinary()),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_items_image_hash", "items", ["image_hash"])
    op.create_table(
        "styles",
        sa.Column("style_id", sa.String(255), primary_key=True),
        sa.Column("name", sa.Text()),
        sa.Column("image_uri", sa.Text()),
        sa.Column("attributes", JSONType, nullable=False),
        sa.Column("image_hash", sa.String(128)),
        sa.Column("code", sa.LargeBinary()),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_styles_image_hash", "styles", ["image_hash"])
    op.create_table(
        "runs",
        sa.Column("run_id", sa.String(64), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("params", JSONType, nullable=False),
        sa.Column("metrics", JSONType, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime()),
        sa.Column("published_at", UTCDateTime()),
        sa.CheckConstraint(RUN, name="ck_runs_status"),
    )
    op.create_index("ix_runs_created_at", "runs", ["created_at"])
    op.create_table(
        "run_stages",
        sa.Column(
            "run_id",
            sa.String(64),
            sa.ForeignKey("runs.run_id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("stage", sa.String(64), primary_key=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("metrics", JSONType),
        sa.Column("error", sa.Text()),
        sa.Column("started_at", UTCDateTime()),
        sa.Column("finished_at", UTCDateTime()),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint(STAGE, name="ck_run_stages_status"),
    )
    op.create_table(
        "current_run",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column(
            "run_id",
            sa.String(64),
            sa.ForeignKey("runs.run_id", ondelete="RESTRICT"),
            nullable=False,
        ),
        sa.Column("published_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint("id = 1", name="ck_current_run_single_row"),
    )


def downgrade() -> None:
    for table in ("current_run", "run_stages", "runs", "styles", "items"):
        op.drop_table(table)
