"""Whose documents a user's tasks come from: their place, for everyone. Administrators and national users read
the whole deployment, but their tasks are computed under their place only, and without a place they get none:
an admin account never makes a round (or its own GET /api/v1/tasks) compute the whole deployment. On SQLite and
PostgreSQL, with the demo program."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing
from typing import Any

import pytest
from fastapi.testclient import TestClient
from test_story import stub

from kazi.demo import PROGRAM_DIR
from kazi.server.api import create_app
from kazi.service.tasks import TaskService, task_scope
from kazi.store import EVERYTHING, NOTHING, Scope, Store, StoredUser, scope_of

NOW = 1_753_869_600_000  # 2025-07-30T10:00:00+02:00
DAY = 86_400_000
TZ = "Africa/Blantyre"
VERIFY = "task.art.verify_missed_appointment.title"


def _deployment() -> list[dict[str, Any]]:
    """A district with two health centres, each with a supervisor person and three clients."""
    docs: list[dict[str, Any]] = [{"_id": "district", "type": "district_hospital", "name": "D"}]
    for hc in ("hc1", "hc2"):
        docs += [{"_id": hc, "type": "health_center", "name": hc, "parent": stub("district")},
                 {"_id": f"{hc}-sup", "type": "person", "name": "Sup", "parent": stub(hc, "district")},
                 {"_id": f"{hc}-area", "type": "contact", "contact_type": "chw_area", "name": "Area",
                  "parent": stub(hc, "district")}]
        for i in range(3):
            docs += [{"_id": f"{hc}-hh{i}", "type": "clinic", "name": "HH",
                      "parent": stub(f"{hc}-area", hc, "district")},
                     {"_id": f"{hc}-c{i}", "type": "person", "name": f"Client {i}", "patient_id": f"{hc}-{i}",
                      "parent": stub(f"{hc}-hh{i}", f"{hc}-area", hc, "district")}]
    return docs


def _missed(hc: str, i: int) -> dict[str, Any]:
    return {"_id": f"missed-{hc}-{i}", "type": "data_record", "form": "missed_appointment",
            "reported_date": NOW - 7 * DAY, "contact": stub(f"{hc}-sup", hc, "district"),
            "fields": {"patient_id": f"{hc}-{i}", "facility_id": hc, "appointment_date": "2025-07-20",
                       "days_missed": 3}}


@pytest.fixture
def scopes_read(store: Store, monkeypatch: pytest.MonkeyPatch) -> list[Scope]:
    """Every scope the service reads documents for (a full recompute's and an incremental round's)."""
    seen: list[Scope] = []
    full, incremental = store.docs_in_scope, store.docs_for_subjects

    def docs_in_scope(user: Any) -> Any:
        seen.append(user if isinstance(user, Scope) else scope_of(user))
        return full(user)

    def docs_for_subjects(subjects: Any, *, user: Any = None) -> Any:
        seen.append(user if isinstance(user, Scope) else EVERYTHING if user is None else scope_of(user))
        return incremental(subjects, user=user)

    monkeypatch.setattr(store, "docs_in_scope", docs_in_scope)
    monkeypatch.setattr(store, "docs_for_subjects", docs_for_subjects)
    return seen


@pytest.fixture
def service(store: Store) -> Iterator[TaskService]:
    store.write_docs(_deployment())
    with closing(TaskService(store, clock=lambda: NOW)) as svc:
        svc.load_program(PROGRAM_DIR)
        yield svc


def _ready(service: TaskService, user: StoredUser) -> list[str]:
    return sorted(d["emission_id"].split("~")[0] for d in service.tasks(user, limit=1000).items)


def test_admins_and_national_users_get_the_tasks_of_their_place_only(
        store: Store, service: TaskService, scopes_read: list[Scope]) -> None:
    root = store.users.create("root", password="password1", roles=["admin"], timezone=TZ)
    nat = store.users.create("nat", password="password1", roles=["site_supervisor"], national=True, timezone=TZ)
    hc_admin = store.users.create("hcadmin", password="password1", roles=["admin"], facility_id="hc1",
                                  contact_id="hc1-sup", timezone=TZ)
    sup = store.users.create("sup", password="password1", roles=["site_supervisor"], facility_id="hc1",
                             contact_id="hc1-sup", timezone=TZ)
    assert scope_of(root) == scope_of(nat) == EVERYTHING  # they read everything...
    assert task_scope(root) == task_scope(nat) == NOTHING  # ...but have no place to get tasks from
    assert task_scope(hc_admin) == task_scope(sup) == Scope(places=("hc1",))

    service.process_changes()
    store.write_docs([_missed(hc, i) for hc in ("hc1", "hc2") for i in range(3)])
    service.process_changes()
    hc1 = [f"missed-hc1-{i}" for i in range(3)]
    assert _ready(service, sup) == hc1
    # an admin holds every permission, so the program's tasks fire for them: but only under their place
    assert _ready(service, hc_admin) == hc1
    assert _ready(service, root) == [] and _ready(service, nat) == []
    assert store.task_docs(root) == [] and store.task_docs(nat) == []
    assert EVERYTHING not in scopes_read  # no round read the whole deployment

    # the admin's own Tasks list computes nothing either, and reading documents is still everything
    scopes_read.clear()
    store.write_doc(_missed("hc2", 9))
    with TestClient(create_app(store=store, service=service)) as client:
        page = client.get("/api/v1/tasks", auth=("root", "password1")).json()
        assert page["total"] == 0
        assert client.get("/api/v1/docs/missed-hc2-9", auth=("root", "password1")).status_code == 200
    assert scopes_read == []

    # a national user given a place gets its tasks; an admin whose place is taken away loses theirs
    store.users.update("nat", facility_id="hc2", contact_id="hc2-sup")
    store.users.update("hcadmin", facility_id=None, contact_id=None)
    service.process_changes()
    assert _ready(service, store.users.get("nat")) == [f"missed-hc2-{i}" for i in (0, 1, 2, 9)]
    gone = store.users.get("hcadmin")
    assert _ready(service, gone) == []
    assert {d["state"] for d in store.task_docs(gone)} == {"Cancelled"}
    assert EVERYTHING not in scopes_read
