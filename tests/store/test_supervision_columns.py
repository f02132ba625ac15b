"""The task-document columns supervision reports count by (migration 0007), on SQLite and PostgreSQL: the
store's write path fills them, and the migration fills them alike for rows written before it existed."""

from __future__ import annotations

from typing import Any

from migrating import down_and_up
from sqlalchemy import select

from kazi.store import Store
from kazi.store.schema import task_docs

DAY = 86_400_000
T0 = 1_790_000_000_000  # 2026-09-21 14:13 UTC


def doc(n: int, state: str, *, closed: int | None, end: str | None, eid: str, title: Any = "task.t",
        user: str = "mary") -> dict[str, Any]:
    history = [{"state": "Ready", "timestamp": T0}]
    if closed is not None:
        history.append({"state": state, "timestamp": closed})
    emission: dict[str, Any] = {"_id": eid, "title": title, "dueDate": "2026-09-21"}
    if end is not None:
        emission["endDate"] = end
    return {"_id": f"task~{n}", "type": "task", "user": f"org.couchdb.user:{user}", "authoredOn": T0,
            "emission": emission, "state": state, "stateHistory": history}


DOCS = [
    doc(1, "Completed", closed=T0 + DAY, end="2026-09-22", eid="r1~e~anc.visit"),  # on time
    doc(2, "Completed", closed=T0 + 3 * DAY, end="2026-09-22", eid="r2~e~anc.visit"),  # late
    # 2026-09-22 23:30 UTC is the 23rd in Blantyre (UTC+2), the 22nd in UTC: late for mary, on time for john
    doc(3, "Completed", closed=T0 + DAY + 33_420_000, end="2026-09-22", eid="r3~e~pnc.visit-2"),
    doc(4, "Completed", closed=T0 + DAY + 33_420_000, end="2026-09-22", eid="r3~e~pnc.visit-2", user="john"),
    doc(5, "Failed", closed=T0 + 5 * DAY, end="2026-09-22", eid="c1~e~newborn.check", title={"en": "x"}),
    doc(6, "Ready", closed=None, end="2026-09-30", eid="c1~e~newborn.check"),
    doc(7, "Cancelled", closed=T0 + 2 * DAY, end=None, eid="bad-id"),
]
EXPECTED = {
    "task~1": ("anc.visit", "task.t", T0 + DAY, True),
    "task~2": ("anc.visit", "task.t", T0 + 3 * DAY, False),
    "task~3": ("pnc.visit", "task.t", T0 + DAY + 33_420_000, False),
    "task~4": ("pnc.visit", "task.t", T0 + DAY + 33_420_000, True),
    "task~5": ("newborn.check", None, T0 + 5 * DAY, None),
    "task~6": ("newborn.check", "task.t", None, None),
    "task~7": (None, "task.t", T0 + 2 * DAY, None),
}


def columns(store: Store) -> dict[str, tuple[Any, ...]]:
    with store.engine.connect() as conn:
        rows = conn.execute(select(task_docs.c.id, task_docs.c.task_name, task_docs.c.title_key,
                                   task_docs.c.closed_at, task_docs.c.on_time))
        return {r.id: (r.task_name, r.title_key, r.closed_at, r.on_time) for r in rows}


def test_the_write_path_and_the_migration_fill_the_same_columns(store: Store) -> None:
    store.users.create("mary", password="mary-password", roles=["chw"], timezone="Africa/Blantyre")
    store.users.create("john", password="john-password", roles=["chw"])
    store.write_task_docs(DOCS)
    assert columns(store) == EXPECTED
    # a doc completed later is rewritten with its new columns
    reopened = dict(DOCS[5], state="Completed", stateHistory=[*DOCS[5]["stateHistory"],
                                                             {"state": "Completed", "timestamp": T0 + 2 * DAY}])
    store.write_task_docs([reopened])
    assert columns(store)["task~6"] == ("newborn.check", "task.t", T0 + 2 * DAY, True)

    # back to 0006 (the columns dropped) and up again: migration 0007 computes them from the bodies
    down_and_up(store, "0006")
    assert columns(store) == {**EXPECTED, "task~6": ("newborn.check", "task.t", T0 + 2 * DAY, True)}
