"""Users get a locale (the web app's language): ``users.locale``, nullable (= the program's default locale).

Written out by hand rather than imported from ``kazi.store.schema``: a migration must keep creating the
schema of its own version after ``schema.py`` has moved on.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.add_column("users", sa.Column("locale", sa.String, nullable=True))


def downgrade() -> None:
    # plain ALTER TABLE ... DROP COLUMN (SQLite 3.35+): a batch-mode copy of `users` would cascade-delete the
    # users' tokens and task state through their foreign keys
    op.drop_column("users", "locale")
