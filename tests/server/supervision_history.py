"""A hand-made history for the supervision tests (docs/supervision.md): places, workers, task documents whose state
histories span months, and reports, with every indicator value worked out by hand below.

Places: district d1 > hc-north (mary and lucy, CHWs; nurse, a supervisor in Africa/Blantyre, UTC+2) and
hc-south (john, a CHW); officer is a supervisor at d1 (UTC); admin has no place; old (disabled) and newbie
(no task document) are at hc-north and are no health workers. ``NOW`` is 2026-11-15 10:00 UTC, so the default
range is 2026-08 .. 2026-11 (November partial).

The tests program is tests/server/program (task names ``sick.followup`` and ``person.welcome``) with the
settings :data:`SUPERVISION` and ``can_view_supervisor_reports`` / ``can_supervise`` granted to ``supervisor``.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kazi.store import Store

PROGRAM = Path(__file__).resolve().parent / "program"
BLANTYRE = "Africa/Blantyre"


def ms(iso: str) -> int:
    """Epoch ms of a UTC ``YYYY-MM-DDTHH:MM``."""
    return int(datetime.fromisoformat(iso).replace(tzinfo=UTC).timestamp() * 1000)


NOW = ms("2026-11-15T10:00")

SUPERVISION: dict[str, Any] = {
    "categories": {"sick": {"label": "Sick", "tasks": ["sick.followup"]},
                   "welcome": {"titles": ["task.person_welcome"]}},
    "indicators": [
        {"id": "done", "label": "Tasks completed", "tasks": {"states": ["completed"]}},
        {"id": "sick_done", "label": "Sick follow-ups completed",
         "tasks": {"category": "sick", "states": ["completed"]}},
        {"id": "welcome_done", "label": "Welcome visits", "tasks": {"category": "welcome", "states": ["completed"]}},
        {"id": "made", "label": "Tasks generated", "tasks": {"states": ["generated"]}},
        {"id": "due", "label": "Tasks due", "tasks": {"states": ["completed", "failed"]}},
        {"id": "on_time", "label": "On time", "tasks": {"states": ["completed_on_time"]}},
        {"id": "failed", "label": "Failed", "tasks": {"states": ["failed"]}, "higher_is_better": False},
        {"id": "cancelled", "label": "Cancelled", "tasks": {"states": ["cancelled"]}},
        {"id": "visits", "label": "Home visits", "reports": {"forms": ["visit"]}},
        {"id": "completion", "label": "Completion rate", "rate": {"numerator": "done", "denominator": "due"}},
        {"id": "on_time_rate", "label": "On-time rate", "rate": {"numerator": "on_time", "denominator": "done"}},
    ],
    "supervisor_tasks": [
        {"id": "low_completion", "indicator": "completion", "below": 0.7, "window_days": 30,
         "permission": "can_supervise", "title": "task.sick_followup", "form": "followup", "priority": 7},
    ],
}


def program(dest: Path, supervision: dict[str, Any] | None = None) -> Path:
    """The tests program with the supervision settings and permissions."""
    shutil.copytree(PROGRAM, dest)
    settings = json.loads((dest / "app_settings.json").read_text())
    settings["permissions"].update({"can_view_supervisor_reports": ["supervisor"], "can_supervise": ["supervisor"]})
    settings["supervision"] = SUPERVISION if supervision is None else supervision
    (dest / "app_settings.json").write_text(json.dumps(settings))
    return dest


def _stub(*chain: str) -> dict[str, Any] | None:
    node: dict[str, Any] | None = None
    for cid in reversed(chain):
        node = {"_id": cid, **({"parent": node} if node else {})}
    return node


PLACES: list[dict[str, Any]] = [
    {"_id": "d1", "type": "district_hospital", "name": "District"},
    {"_id": "hc-north", "type": "health_center", "name": "North", "parent": _stub("d1")},
    {"_id": "hc-south", "type": "health_center", "name": "South", "parent": _stub("d1")},
    {"_id": "c-mary", "type": "person", "name": "Mary Banda", "parent": _stub("hc-north", "d1")},
    {"_id": "c-lucy", "type": "person", "name": "Lucy Phiri", "parent": _stub("hc-north", "d1")},
    {"_id": "c-john", "type": "person", "name": "John Zulu", "parent": _stub("hc-south", "d1")},
    {"_id": "c-old", "type": "person", "name": "Old Timer", "parent": _stub("hc-north", "d1")},
]
# username -> (role, place, contact, zone)
ACCOUNTS: dict[str, tuple[str, str | None, str | None, str | None]] = {
    "mary": ("chw", "hc-north", "c-mary", BLANTYRE),
    "lucy": ("chw", "hc-north", "c-lucy", BLANTYRE),
    "john": ("chw", "hc-south", "c-john", None),
    "old": ("chw", "hc-north", "c-old", None),
    "newbie": ("chw", "hc-north", None, None),
    "nurse": ("supervisor", "hc-north", None, BLANTYRE),
    "officer": ("supervisor", "d1", None, None),
    "admin": ("admin", None, None, None),
}


def task(user: str, n: int, name: str, state: str, authored: str, closed: str | None = None, *,
         due: str, end: str) -> dict[str, Any]:
    """A task document of ``user``: Ready at ``authored``, then ``state`` at ``closed`` (UTC ISO minutes)."""
    contact = ACCOUNTS[user][2] or user
    title = {"sick.followup": "task.sick_followup", "person.welcome": "task.person_welcome"}[name]
    history = [{"state": "Ready", "timestamp": ms(authored)}]
    if closed is not None:
        history.append({"state": state, "timestamp": ms(closed)})
    eid = f"report-{user}-{n}~followup~{name}"
    return {"_id": f"task~org.couchdb.user:{user}~{eid}~{ms(authored)}", "type": "task", "authoredOn": ms(authored),
            "user": f"org.couchdb.user:{user}", "requester": contact, "owner": contact,
            "emission": {"_id": eid, "title": title, "dueDate": due, "startDate": due, "endDate": end,
                         "forId": contact},
            "state": state, "stateHistory": history}


TASKS: list[dict[str, Any]] = [
    # mary
    task("mary", 1, "sick.followup", "Completed", "2026-08-05T08:00", "2026-08-06T09:00",
         due="2026-08-06", end="2026-08-07"),
    task("mary", 2, "sick.followup", "Completed", "2026-08-10T08:00", "2026-08-20T09:00",
         due="2026-08-11", end="2026-08-12"),
    # completed 2026-08-31 23:30 UTC = 2026-09-01 01:30 in Blantyre: August in UTC, September for the nurse
    task("mary", 3, "person.welcome", "Completed", "2026-08-30T12:00", "2026-08-31T23:30", due="2026-08-31",
         end="2026-09-01"),
    task("mary", 4, "sick.followup", "Failed", "2026-09-10T08:00", "2026-09-20T00:00",
         due="2026-09-12", end="2026-09-19"),
    task("mary", 5, "sick.followup", "Ready", "2026-10-01T12:00", due="2026-10-05", end="2026-12-01"),  # overdue
    task("mary", 6, "person.welcome", "Cancelled", "2026-11-02T08:00", "2026-11-03T08:00", due="2026-11-04",
         end="2026-11-05"),
    task("mary", 7, "sick.followup", "Completed", "2026-06-01T08:00", "2026-06-02T08:00", due="2026-06-02",
         end="2026-06-03"),  # before the range
    task("mary", 8, "sick.followup", "Ready", "2026-11-10T08:00", due="2026-11-20", end="2026-11-22"),  # not overdue
    # lucy
    task("lucy", 1, "sick.followup", "Completed", "2026-10-03T08:00", "2026-10-04T08:00",
         due="2026-10-05", end="2026-10-06"),
    task("lucy", 2, "sick.followup", "Completed", "2026-10-05T08:00", "2026-10-06T08:00",
         due="2026-10-07", end="2026-10-08"),
    task("lucy", 3, "person.welcome", "Failed", "2026-11-01T08:00", "2026-11-05T00:00",
         due="2026-11-02", end="2026-11-04"),
    # john (hc-south)
    task("john", 1, "sick.followup", "Completed", "2026-10-20T08:00", "2026-10-21T08:00",
         due="2026-10-21", end="2026-10-22"),
    # old (disabled): never a health worker
    task("old", 1, "sick.followup", "Completed", "2026-10-20T08:00", "2026-10-21T08:00",
         due="2026-10-21", end="2026-10-22"),
]


# a form without tasks: reports that start tasks would add task documents to the service tests' computations
def report(rid: str, form: str, by: str, when: str, **extra: Any) -> dict[str, Any]:
    return {"_id": rid, "type": "data_record", "form": form, "reported_date": ms(when),
            "contact": _stub(by, "hc-north", "d1"), "fields": {"patient_id": "none"}, **extra}


REPORTS: list[dict[str, Any]] = [
    report("s1", "visit", "c-mary", "2026-08-12T10:00"),
    report("s2", "visit", "c-mary", "2026-08-31T23:30"),  # September in Blantyre
    report("s3", "visit", "c-mary", "2026-10-12T10:00"),
    report("s4", "visit", "c-lucy", "2026-11-02T10:00"),
    report("s5", "visit", "c-lucy", "2026-11-03T10:00", _deleted=True),  # a deletion: not stored
    report("n1", "note", "c-lucy", "2026-11-03T10:00"),  # another form
    report("s6", "visit", "c-mary", "2026-07-31T10:00"),  # before the range
]


def load(store: Store) -> None:
    """Write the history (documents, accounts, task documents through the store's write path)."""
    store.write_docs(PLACES)
    store.write_docs([r for r in REPORTS if not r.get("_deleted")])
    for name, (role, place, contact, zone) in ACCOUNTS.items():
        store.users.create(name, password=f"{name}-password", roles=[role], facility_id=place, contact_id=contact,
                           timezone=zone)
    store.users.disable("old")
    store.write_task_docs(TASKS)
