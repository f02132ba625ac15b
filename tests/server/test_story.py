"""The issue's story, at service level, on SQLite and PostgreSQL.

Partners In Health Malawi: missed ART appointments arrive from the register; the facility's site supervisor
(an ONLINE user, to whom CHT gives no tasks) must verify each one. Kazi computes her tasks on the server:
one Ready verification task per missed appointment, each gone once its verification is posted; the CHW of
the same facility, without the permission, never sees them. A second test: an offline CHW's ANC and PNC
tasks appear from pregnancy and delivery reports.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from kazi.demo import PROGRAM_DIR
from kazi.errors import ProgramError
from kazi.program.limits import ProgramLimits
from kazi.service.tasks import TaskService
from kazi.store import Store

TZ = "Africa/Blantyre"
NOW = datetime(2025, 7, 30, 10, 0, tzinfo=ZoneInfo(TZ))
NOW_MS = int(NOW.timestamp() * 1000)
VERIFY = "task.art.verify_missed_appointment.title"
CLIENTS = 150


def stub(*chain: str) -> dict[str, Any] | None:
    node: dict[str, Any] | None = None
    for cid in reversed(chain):
        node = {"_id": cid, **({"parent": node} if node else {})}
    return node


def day(offset: int) -> str:
    return (NOW + timedelta(days=offset)).strftime("%Y-%m-%d")


def ms(offset_days: float) -> int:
    return NOW_MS + int(offset_days * 86_400_000)


def facility() -> list[dict[str, Any]]:
    """District > health centre > one CHW area > a household per client; the staff's own person docs."""
    docs: list[dict[str, Any]] = [
        {"_id": "district", "type": "district_hospital", "name": "Neno", "reported_date": ms(-400)},
        {"_id": "hc", "type": "health_center", "name": "Lisungwi", "parent": stub("district"),
         "reported_date": ms(-400)},
        {"_id": "area", "type": "contact", "contact_type": "chw_area", "name": "Area 1",
         "parent": stub("hc", "district"), "reported_date": ms(-400)},
        {"_id": "sup", "type": "person", "name": "Supervisor", "parent": stub("hc", "district"),
         "reported_date": ms(-400)},
        {"_id": "clerk", "type": "person", "name": "Clerk", "parent": stub("hc", "district"),
         "reported_date": ms(-400)},
        {"_id": "chw", "type": "person", "name": "CHW", "parent": stub("area", "hc", "district"),
         "reported_date": ms(-400)},
    ]
    for i in range(CLIENTS):
        docs.append({"_id": f"hh{i}", "type": "clinic", "name": f"Household {i}",
                     "parent": stub("area", "hc", "district"), "reported_date": ms(-300)})
        docs.append({"_id": f"client{i}", "type": "person", "name": f"Client {i}", "patient_id": f"C{i:04d}",
                     "sex": "female", "date_of_birth": "1990-01-01",
                     "parent": stub(f"hh{i}", "area", "hc", "district"), "reported_date": ms(-300)})
    return docs


def missed(i: int) -> dict[str, Any]:
    return {"_id": f"missed{i}", "type": "data_record", "form": "missed_appointment", "reported_date": ms(-7),
            "contact": stub("clerk", "hc", "district"),
            "fields": {"patient_id": f"C{i:04d}", "patient_name": f"Client {i}", "art_number": f"ART-{i}",
                       "facility_id": "hc", "appointment_date": day(-10), "days_missed": 3}}


def verification(i: int) -> dict[str, Any]:
    return {"_id": f"verif{i}", "type": "data_record", "form": "appointment_verification",
            "reported_date": ms(-0.1), "contact": stub("sup", "hc", "district"),
            "fields": {"patient_id": f"C{i:04d}", "missed_appointment_id": f"missed{i}",
                       "source_report_id": f"missed{i}", "outcome": "returned_to_care"}}


@pytest.fixture
def service(store: Store) -> Iterator[TaskService]:
    store.write_docs(facility())
    svc = TaskService(store, clock=lambda: NOW_MS)
    svc.load_program(PROGRAM_DIR)
    try:
        yield svc
    finally:
        svc.close()


def titles(page_items: list[dict[str, Any]]) -> list[str]:
    return [d["emission"]["title"] for d in page_items]


def test_online_supervisor_verifies_every_missed_appointment(store: Store, service: TaskService) -> None:
    sup = store.users.create("sup", password="password1", roles=["site_supervisor"], facility_id="hc",
                             contact_id="sup", timezone=TZ)
    chw = store.users.create("chw", password="password1", roles=["chw"], facility_id="area", contact_id="chw",
                             timezone=TZ)
    service.process_changes()
    assert service.tasks(sup).total == 0

    store.write_docs([missed(i) for i in range(CLIENTS)])
    assert service.process_changes() > 0
    page = service.tasks(sup, limit=1000)
    assert page.total == CLIENTS
    assert titles(page.items) == [VERIFY] * CLIENTS
    # exactly one per report, each with its emission id and task doc id
    assert sorted(d["emission_id"].split("~")[0] for d in page.items) == sorted(f"missed{i}" for i in range(CLIENTS))
    assert all(d["_id"].startswith("task~org.couchdb.user:sup~") for d in page.items)
    assert VERIFY not in titles(service.tasks(chw, limit=1000).items)
    assert service.tasks(sup, task_types=[VERIFY], limit=10, offset=145).items.__len__() == 5
    assert service.tasks(sup, places=["hh3"]).total == 1
    assert service.tasks(sup, overdue=True).total == 0  # due in four days
    assert service.tasks(sup, overdue=False).total == CLIENTS

    store.write_docs([verification(i) for i in range(0, CLIENTS, 3)])
    service.process_changes()
    left = service.tasks(sup, limit=1000)
    assert left.total == CLIENTS - len(range(0, CLIENTS, 3))
    assert not {d["emission_id"].split("~")[0] for d in left.items} & {f"missed{i}" for i in range(0, CLIENTS, 3)}
    done = [d for d in store.task_docs(sup) if d["state"] == "Completed"]
    assert sorted(d["emission"]["_id"].split("~")[0] for d in done) == sorted(f"missed{i}"
                                                                             for i in range(0, CLIENTS, 3))
    assert VERIFY not in titles(service.tasks(chw, limit=1000).items)
    assert service.errors() == []


def test_offline_chw_gets_anc_and_pnc_tasks(store: Store, service: TaskService) -> None:
    chw = store.users.create("chw", password="password1", roles=["chw"], facility_id="area", contact_id="chw",
                             timezone=TZ)
    service.process_changes()
    assert service.tasks(chw).total == 0
    store.write_docs([
        {"_id": "preg1", "type": "data_record", "form": "pregnancy", "reported_date": ms(-1),
         "contact": stub("chw", "area", "hc", "district"),
         "fields": {"patient_id": "C0001", "patient_uuid": "client1", "lmp_date": day(-84)}},
        {"_id": "deliv2", "type": "data_record", "form": "delivery", "reported_date": ms(-0.5),
         "contact": stub("chw", "area", "hc", "district"),
         "fields": {"patient_id": "C0002", "patient_uuid": "client2", "delivery_date": day(-1),
                    "delivery_place": "health_facility", "outcome": "healthy", "babies_alive": 1,
                    "mother_alive": "yes"}},
    ])
    service.process_changes()
    page = service.tasks(chw)
    assert "task.anc.visit.title" in titles(page.items)
    assert "task.pnc.home_visit.title" in titles(page.items)
    anc = next(d for d in page.items if d["emission"]["title"] == "task.anc.visit.title")
    assert anc["owner"] == "client1" and anc["emission"]["dueDate"] == day(0)
    assert service.tasks(chw, overdue=True).total >= 1  # due today counts as overdue (reference 7.10)


def test_midnight_read_your_writes_and_program_errors(store: Store, tmp_path: Any) -> None:
    """A Draft task becomes Ready at the supervisor's local midnight (temporal update only, as CHT does
    between its weekly refreshes); refresh_user shows a write at once; a callback that throws for one
    contact is recorded and the others still get their tasks."""
    store.write_docs(facility())
    now = [NOW_MS]
    svc = TaskService(store, clock=lambda: now[0])
    svc.full_recompute_days = 7
    svc.load_program(PROGRAM_DIR)
    sup = store.users.create("sup", password="password1", roles=["site_supervisor"], facility_id="hc",
                             contact_id="sup", timezone=TZ)
    svc.process_changes()
    early = missed(1)
    early["fields"]["appointment_date"] = day(-6)  # due in 8 days, shown from tomorrow
    store.write_doc(early)
    svc.refresh_user(sup)  # no process_changes: read-your-writes
    assert [d["state"] for d in store.task_docs(sup)] == ["Draft"]
    assert svc.tasks(sup).total == 0
    now[0] = ms(0.6)  # 00:24 the next day in Blantyre
    assert svc.advance_time() == 1
    assert svc.tasks(sup).total == 1
    assert svc.advance_time() == 0  # once per local day
    svc.close()

    program = tmp_path / "boom"
    program.mkdir()
    (program / "tasks.js").write_text("""module.exports = [{
  name: 'visit', title: 'visit', appliesTo: 'contacts', appliesToType: ['person'],
  appliesIf: function (c) { if (c.contact.name === 'Client 7') { throw new Error('boom'); } return true; },
  resolvedIf: function () { return false; },
  events: [{ id: 'e', start: 1, end: 1, dueDate: function () { return Utils.now(); } }],
  actions: [{ form: 'visit' }],
}];
""")
    # the pre-flight over the stored population refuses it (client7 is in the sample: the whole facility)
    with pytest.raises(ProgramError, match="client7"):
        TaskService(store, clock=lambda: now[0]).load_program(program)
    # loaded without the pre-flight, client7's container fails: its tasks of the previous version are kept as
    # they were (its emissions are unknown, not none), every other person gets the new program's
    before = {d["_id"]: d for d in store.task_docs(sup) if d.get("owner") == "client7"}
    boom = TaskService(store, clock=lambda: now[0], limits=ProgramLimits(preflight_containers=0))
    boom.load_program(program)
    boom.process_changes()
    errors = boom.errors()
    assert len(errors) == 1 and errors[0]["contact_id"] == "client7" and "boom" in errors[0]["text"]
    assert errors[0]["count"] == 1 and errors[0]["last_process"] == "api"
    assert {d["_id"]: d for d in store.task_docs(sup) if d.get("owner") == "client7"} == before
    ready = sum(1 for d in before.values() if d["state"] == "Ready")
    assert boom.tasks(sup, limit=1000).total == len(facility()) - 3 - 1 - CLIENTS + ready  # + client7's own
    boom.close()
