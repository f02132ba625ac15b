"""Supervision reports that stay fast over a district's year (docs/supervision.md).

* ``task_stats``: the task documents' events summed per user, UTC month (its start in epoch ms), task name
  and title key (``""`` for none): ``generated`` (by ``authored_on``), ``completed``, ``completed_on_time``,
  ``failed``, ``cancelled`` (by ``closed_at`` and the terminal state). Filled here from the columns of
  migration 0007; every task-document write keeps it up to date afterwards (:mod:`kazi.store.task_stats`).
* ``ix_docs_submitted (contact_id, form, reported_date, kind, deleted)``: a worker's reports by form and month
  counted from the index alone (through ``ix_docs_contact_id`` the database read every report's row).

The month arithmetic below is a frozen copy of :mod:`kazi.store.task_stats`: a migration must not change when
that code does.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | None = None
depends_on: str | None = None

_BATCH = 5000
_COLUMNS = ("generated", "completed", "completed_on_time", "failed", "cancelled")
_CLOSED = {"Completed": 1, "Failed": 3, "Cancelled": 4}


def _month(ms: int) -> int:
    day = datetime.fromtimestamp(ms / 1000, UTC)
    return int(datetime(day.year, day.month, 1, tzinfo=UTC).timestamp() * 1000)


def upgrade() -> None:
    op.create_table(
        "task_stats",
        sa.Column("user_id", sa.String, nullable=False),
        sa.Column("month", sa.BigInteger, nullable=False),
        sa.Column("task_name", sa.String, nullable=False),
        sa.Column("title_key", sa.String, nullable=False),
        *[sa.Column(c, sa.Integer, nullable=False) for c in _COLUMNS],
        sa.PrimaryKeyConstraint("user_id", "month", "task_name", "title_key", name="pk_task_stats"),
    )
    op.create_index("ix_docs_submitted", "docs", ["contact_id", "form", "reported_date", "kind", "deleted"])
    conn = op.get_bind()
    task_docs = sa.table("task_docs", *[sa.column(c) for c in (
        "id", "user_id", "authored_on", "closed_at", "state", "on_time", "task_name", "title_key")])
    totals: dict[tuple[str, int, str, str], list[int]] = {}
    last = ""
    while True:
        rows = conn.execute(sa.select(task_docs).where(task_docs.c.id > last)
                            .order_by(task_docs.c.id).limit(_BATCH)).all()
        if not rows:
            break
        last = rows[-1].id
        for r in rows:
            name, title = r.task_name or "", r.title_key or ""
            if r.authored_on is not None:
                totals.setdefault((r.user_id, _month(r.authored_on), name, title), [0] * 5)[0] += 1
            closed = _CLOSED.get(r.state or "")
            if r.closed_at is not None and closed is not None:
                counts = totals.setdefault((r.user_id, _month(r.closed_at), name, title), [0] * 5)
                counts[closed] += 1
                if closed == 1 and r.on_time:
                    counts[2] += 1
    stats = sa.table("task_stats", *[sa.column(c) for c in ("user_id", "month", "task_name", "title_key",
                                                            *_COLUMNS)])
    rows_out = [{"user_id": k[0], "month": k[1], "task_name": k[2], "title_key": k[3],
                 **dict(zip(_COLUMNS, v, strict=True))} for k, v in totals.items()]
    for start in range(0, len(rows_out), _BATCH):
        conn.execute(sa.insert(stats), rows_out[start:start + _BATCH])


def downgrade() -> None:
    op.drop_index("ix_docs_submitted", table_name="docs")
    op.drop_table("task_stats")
