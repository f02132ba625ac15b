"""Task interaction summaries (docs/interactions.md): ``interaction_summaries``, one row per summary version received.

Written out by hand rather than imported from ``kazi.store.schema``: a migration must keep creating the
schema of its own version after ``schema.py`` has moved on.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "interaction_summaries",
        sa.Column("seq", sa.Integer, nullable=False, autoincrement=True),
        sa.Column("id", sa.String, nullable=False),
        sa.Column("conflict", sa.Integer, nullable=False),
        sa.Column("username", sa.String, nullable=False),
        sa.Column("device_id", sa.String, nullable=False),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("app_version", sa.String, nullable=False),
        sa.Column("events", sa.Integer, nullable=False),
        sa.Column("dropped", sa.Integer, nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("received_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_interaction_summaries"),
    )
    op.create_index("ix_interaction_summaries_id_conflict", "interaction_summaries", ["id", "conflict"],
                    unique=True)
    op.create_index("ix_interaction_summaries_id_content_hash", "interaction_summaries", ["id", "content_hash"],
                    unique=True)
    op.create_index("ix_interaction_summaries_day_username", "interaction_summaries", ["day", "username"])
    op.create_index("ix_interaction_summaries_username_day", "interaction_summaries", ["username", "day"])


def downgrade() -> None:
    op.drop_table("interaction_summaries")
