"""An index on ``task_docs (user_id, seq)``: the newest task document of a user in one index probe.

Every ``GET /api/v1/tasks`` reads it (the key of the cached page, and the check that makes two processes
computing one user safe); without the index SQLite and PostgreSQL read all of a user's task documents, ~40,000
for a district-wide account at 50,000 households.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_index("ix_task_docs_user_id_seq", "task_docs", ["user_id", "seq"])


def downgrade() -> None:
    op.drop_index("ix_task_docs_user_id_seq", table_name="task_docs")
