"""Programs in the store and the task service's memory: ``programs``, ``service_state``, ``task_users``.

Written out by hand rather than imported from ``kazi.store.schema``: a migration must keep creating the
schema of its own version after ``schema.py`` has moved on.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "programs",
        sa.Column("version", sa.Integer, nullable=False, autoincrement=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("files", sa.Text, nullable=False),
        sa.Column("settings_override", sa.Text),
        sa.Column("warnings", sa.Text, nullable=False),
        sa.Column("loaded_at", sa.BigInteger, nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.PrimaryKeyConstraint("version", name="pk_programs"),
    )
    op.create_index("ix_programs_active", "programs", ["active"])

    op.create_table(
        "service_state",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("value", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_service_state"),
    )

    op.create_table(
        "task_users",
        sa.Column("user_id", sa.Integer, nullable=False),
        sa.Column("program_version", sa.Integer, nullable=False),
        sa.Column("fingerprint", sa.String, nullable=False),
        sa.Column("local_day", sa.String(10), nullable=False),
        sa.Column("full_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("user_id", name="pk_task_users"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_task_users_user_id_users", ondelete="CASCADE"),
    )


def downgrade() -> None:
    for table in ("task_users", "service_state", "programs"):
        op.drop_table(table)
