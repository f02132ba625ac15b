"""Supervision reports (docs/supervision.md): the columns task documents are counted by, and their indexes.

* ``task_docs.task_name``: the task definition's name, from ``emission._id`` (``<subject>~<event>~<name>``,
  ``-<i>`` of a scheduled task dropped);
* ``task_docs.title_key``: ``emission.title`` when it is a string (categories may group tasks by title key);
* ``task_docs.closed_at``: when the document reached its terminal state (the last ``stateHistory`` entry's
  timestamp when the state is Completed, Failed or Cancelled);
* ``task_docs.on_time``: Completed on or before ``emission.endDate`` in the user's zone (UTC without one);
* indexes ``ix_task_docs_closed (user_id, closed_at, state, on_time, task_name, title_key)`` and
  ``ix_task_docs_generated (user_id, authored_on, task_name, title_key)``: a report reads a range of one
  worker's documents by the instant of the event it counts, from the index alone (covering: reading the rows
  themselves made a health centre's 13-month report five times slower on SQLite).

Existing rows get theirs here, in batches. The helpers are frozen copies of what
:mod:`kazi.store.store` computes at each write: a migration must not change when that code does.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None

_BATCH = 1000
_TERMINAL = ("Completed", "Failed", "Cancelled")


def _columns(body: Any, tz: str) -> dict[str, Any]:
    out: dict[str, Any] = {"task_name": None, "title_key": None, "closed_at": None, "on_time": None}
    if not isinstance(body, dict):
        return out
    emission: dict[str, Any] = body["emission"] if isinstance(body.get("emission"), dict) else {}
    eid = emission.get("_id")
    if isinstance(eid, str):
        parts = eid.split("~")
        if len(parts) >= 3 and parts[-1]:
            out["task_name"] = re.sub(r"-\d+$", "", parts[-1]) or None
    if isinstance(emission.get("title"), str):
        out["title_key"] = emission["title"]
    history = body.get("stateHistory")
    state = body.get("state")
    if state in _TERMINAL and isinstance(history, list) and history and isinstance(history[-1], dict):
        ts = history[-1].get("timestamp")
        if isinstance(ts, (int, float)) and not isinstance(ts, bool):
            out["closed_at"] = int(ts)
    if state == "Completed":
        end = emission.get("endDate")
        ok = False
        if out["closed_at"] is not None and isinstance(end, str) and len(end) == 10:
            day = datetime.fromtimestamp(out["closed_at"] / 1000, UTC).astimezone(ZoneInfo(tz)).date()
            ok = day.isoformat() <= end
        out["on_time"] = ok
    return out


def upgrade() -> None:
    op.add_column("task_docs", sa.Column("task_name", sa.String))
    op.add_column("task_docs", sa.Column("title_key", sa.String))
    op.add_column("task_docs", sa.Column("closed_at", sa.BigInteger))
    op.add_column("task_docs", sa.Column("on_time", sa.Boolean))
    conn = op.get_bind()
    users = sa.table("users", sa.column("username", sa.String), sa.column("timezone", sa.String))
    zones = {f"org.couchdb.user:{r.username}": r.timezone for r in conn.execute(sa.select(users))}
    task_docs = sa.table("task_docs", sa.column("id", sa.String), sa.column("user_id", sa.String),
                         sa.column("body", sa.Text), sa.column("task_name", sa.String),
                         sa.column("title_key", sa.String), sa.column("closed_at", sa.BigInteger),
                         sa.column("on_time", sa.Boolean))
    last = ""
    while True:
        rows = conn.execute(sa.select(task_docs.c.id, task_docs.c.user_id, task_docs.c.body)
                            .where(task_docs.c.id > last).order_by(task_docs.c.id).limit(_BATCH)).all()
        if not rows:
            break
        last = rows[-1].id
        updates = []
        for row in rows:
            try:
                tz = zones.get(row.user_id) or "UTC"
                ZoneInfo(tz)
            except (KeyError, ValueError):
                tz = "UTC"
            values = _columns(json.loads(row.body), tz)
            if any(v is not None for v in values.values()):
                updates.append({"b_id": row.id, **{f"b_{k}": v for k, v in values.items()}})
        if updates:
            conn.execute(sa.update(task_docs).where(task_docs.c.id == sa.bindparam("b_id"))
                         .values(task_name=sa.bindparam("b_task_name"), title_key=sa.bindparam("b_title_key"),
                                 closed_at=sa.bindparam("b_closed_at"), on_time=sa.bindparam("b_on_time")),
                         updates)
    op.create_index("ix_task_docs_closed", "task_docs",
                    ["user_id", "closed_at", "state", "on_time", "task_name", "title_key"])
    op.create_index("ix_task_docs_generated", "task_docs", ["user_id", "authored_on", "task_name", "title_key"])


def downgrade() -> None:
    op.drop_index("ix_task_docs_generated", table_name="task_docs")
    op.drop_index("ix_task_docs_closed", table_name="task_docs")
    for column in ("on_time", "closed_at", "title_key", "task_name"):
        op.drop_column("task_docs", column)
