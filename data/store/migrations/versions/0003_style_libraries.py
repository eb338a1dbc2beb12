"""The style library each run used (issue 15: described styles, controls).

A library is stored once per content digest (many nights reuse one file) and
each run points at the one it read, so a night's renders, pins and blocks can
be explained later from the library as it was, not as it is now.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from data.store.types import JSONType, UTCDateTime

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "style_libraries",
        sa.Column("digest", sa.String(128), primary_key=True),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("entries", JSONType, nullable=False),
        sa.Column("n_styles", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "run_style_libraries",
        sa.Column("run_id", sa.String(64), sa.ForeignKey("runs.run_id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("digest", sa.String(128),
                  sa.ForeignKey("style_libraries.digest", ondelete="RESTRICT"), nullable=False),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("day", sa.String(10), nullable=True),
    )
    op.create_index("ix_run_style_libraries_digest", "run_style_libraries", ["digest"])


def downgrade() -> None:
    op.drop_index("ix_run_style_libraries_digest", table_name="run_style_libraries")
    op.drop_table("run_style_libraries")
    op.drop_table("style_libraries")
