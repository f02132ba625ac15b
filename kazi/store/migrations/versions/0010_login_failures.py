"""Failed password checks are counted in the store: ``login_failures`` (key, failures, last failure, blocked
until), one row per account and per client address with recent failures, and ``login_attempts`` (attempt, key,
started at), the checks in flight, each counted as pending until it ends or lapses (a process killed in the
middle of a check leaves its row behind, which must not count as a failure).

Kept in the database rather than in each API process's memory so that several API processes throttle the same
guesses together and a restart does not hand an attacker a fresh allowance (:mod:`kazi.service.auth`).

Written out by hand rather than imported from ``kazi.store.schema``: a migration must keep creating the
schema of its own version after ``schema.py`` has moved on.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "login_failures",
        sa.Column("key", sa.String(80), nullable=False),
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("last_failure_at", sa.BigInteger, nullable=False),
        sa.Column("blocked_until", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_login_failures"),
    )
    op.create_table(
        "login_attempts",
        sa.Column("attempt", sa.String(32), nullable=False),
        sa.Column("key", sa.String(80), nullable=False),
        sa.Column("started_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("key", "attempt", name="pk_login_attempts"),
    )


def downgrade() -> None:
    op.drop_table("login_attempts")
    op.drop_table("login_failures")
