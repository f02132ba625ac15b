"""Errors of program code, stored so that an admin sees those of every process (``program_errors``, migration
0009).

Task code runs in the API process (read-your-writes), in the worker process and in its compute processes;
each kept its errors in memory, so ``GET /api/v1/program/errors`` on the API showed none of the worker's.
Every process now writes them here. One row per distinct error: the same definition failing for the same
contact (or report) with the same message in the same program version is one row whose ``count`` grows and
whose ``last_seen`` moves, so a callback failing for one contact in every round costs one row, not one per
round. The table is kept to ``max_rows`` rows: when it grows past them the least recently seen go.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import delete, func, select
from sqlalchemy.dialects import postgresql, sqlite

from kazi.store import db
from kazi.store.schema import program_errors
from kazi.store.store import Store

#: the longest message and stack kept (characters): a message may carry a program's own huge string
MAX_MESSAGE = 2000
MAX_STACK = 4000


@dataclass(frozen=True)
class ErrorEvent:
    """One error as a computation saw it (``count`` times, last at ``at``)."""

    program_version: int | None
    kind: str
    message: str
    definition_index: int | None = None
    definition_name: str | None = None
    contact_id: str | None = None
    report_id: str | None = None
    file: str | None = None
    callback: str | None = None
    stack: str | None = None
    user: str | None = None
    process: str | None = None
    count: int = 1
    at: int = 0

    def key(self) -> str:
        """What errors are aggregated by: program version, definition, contact or report, kind and message."""
        data = [self.program_version, self.definition_index, self.definition_name, self.contact_id,
                self.report_id, self.kind, self.message[:MAX_MESSAGE]]
        return hashlib.sha256(orjson.dumps(data)).hexdigest()


def record(store: Store, events: Sequence[ErrorEvent], *, max_rows: int) -> None:
    """Add ``events`` (one upsert per distinct key), then drop the least recently seen rows beyond
    ``max_rows``."""
    if not events:
        return
    rows: dict[str, dict[str, Any]] = {}
    for e in events:
        key = e.key()
        row = rows.get(key)
        if row is not None:
            row["count"] += e.count
            if e.at >= row["last_seen"]:
                row.update(last_seen=e.at, last_user=e.user, last_process=(e.process or "")[:16] or None,
                           stack=(e.stack or "")[:MAX_STACK] or None)
            continue
        rows[key] = {
            "key": key, "program_version": e.program_version, "definition_index": e.definition_index,
            "definition_name": e.definition_name, "contact_id": e.contact_id, "report_id": e.report_id,
            "kind": e.kind[:16], "message": e.message[:MAX_MESSAGE], "file": e.file, "callback": e.callback,
            "stack": (e.stack or "")[:MAX_STACK] or None, "last_user": e.user, "last_process": (e.process or "")[:16]
            or None, "count": e.count, "first_seen": e.at, "last_seen": e.at,
        }
    with db.writer(store.engine).begin() as conn:
        conn.execute(_upsert(conn.dialect.name), list(rows.values()))
        total = conn.scalar(select(func.count()).select_from(program_errors)) or 0
        if total > max_rows:
            oldest = (select(program_errors.c.id).order_by(program_errors.c.last_seen, program_errors.c.id)
                      .limit(total - max_rows))
            conn.execute(delete(program_errors).where(program_errors.c.id.in_(oldest.scalar_subquery())))


@functools.cache
def _upsert(dialect: str) -> postgresql.Insert | sqlite.Insert:
    stmt = postgresql.insert(program_errors) if dialect == "postgresql" else sqlite.insert(program_errors)
    t = program_errors.c
    return stmt.on_conflict_do_update(index_elements=["key"], set_={
        "count": t.count + stmt.excluded.count,
        "last_seen": func.max(t.last_seen, stmt.excluded.last_seen) if dialect == "sqlite"
        else func.greatest(t.last_seen, stmt.excluded.last_seen),
        "last_user": stmt.excluded.last_user, "last_process": stmt.excluded.last_process,
        "stack": stmt.excluded.stack, "file": stmt.excluded.file, "callback": stmt.excluded.callback,
    })


def recent(store: Store, limit: int = 200, offset: int = 0) -> list[dict[str, Any]]:
    """The stored errors, most recently seen first (``None`` fields left out)."""
    t = program_errors.c
    query = (select(program_errors).order_by(t.last_seen.desc(), t.id.desc())
             .limit(max(0, limit)).offset(max(0, offset)))
    with db.reader(store.engine).begin() as conn:
        rows = conn.execute(query).mappings().all()
    out = []
    for r in rows:
        item = {k: v for k, v in r.items() if v is not None and k not in ("id", "key")}
        definition = _definition(r["definition_index"], r["definition_name"])
        if definition is not None:
            item["definition"] = definition
        where = [r["file"] or "program code", *([definition] if definition else []),
                 *([r["callback"]] if r["callback"] else []),
                 *([f"contact {r['contact_id']}"] if r["contact_id"] else []),
                 *([f"report {r['report_id']}"] if r["report_id"] else [])]
        item["text"] = f"{', '.join(where)}: {r['kind']}: {r['message']}"
        out.append(item)
    return out


def clear(store: Store) -> int:
    """Remove every stored error (an admin's "seen them all"); returns how many there were."""
    with db.writer(store.engine).begin() as conn:
        return int(conn.execute(delete(program_errors)).rowcount or 0)


def _definition(index: int | None, name: str | None) -> str | None:
    if index is None and not name:
        return None
    label = f"definition {index}" if index is not None else "definition"
    return f'{label} ("{name}")' if name else label
