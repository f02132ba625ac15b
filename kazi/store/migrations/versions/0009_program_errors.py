"""Errors of program code, from every process (API, worker, compute processes), for admins.

``program_errors``: one row per distinct error, aggregated by program version, definition, contact or report
and message (their hash is ``key``, unique), with how often and when it was first and last seen. The task
service keeps it to a bounded number of rows (the least recently seen are dropped).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "program_errors",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("program_version", sa.Integer),
        sa.Column("definition_index", sa.Integer),
        sa.Column("definition_name", sa.String),
        sa.Column("contact_id", sa.String),
        sa.Column("report_id", sa.String),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("file", sa.String),
        sa.Column("callback", sa.String),
        sa.Column("stack", sa.Text),
        sa.Column("last_user", sa.String),
        sa.Column("last_process", sa.String(16)),
        sa.Column("count", sa.BigInteger, nullable=False),
        sa.Column("first_seen", sa.BigInteger, nullable=False),
        sa.Column("last_seen", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_program_errors"),
        sa.UniqueConstraint("key", name="uq_program_errors_key"),
    )
    op.create_index("ix_program_errors_last_seen", "program_errors", ["last_seen"])


def downgrade() -> None:
    op.drop_index("ix_program_errors_last_seen", table_name="program_errors")
    op.drop_table("program_errors")
