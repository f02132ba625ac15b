"""The issue's story end to end over HTTP, on SQLite and PostgreSQL (tests/server/test_story.py plays it at
service level).

Partners In Health Malawi: an administrator sets Kazi up through the API (the demo program, the facility's
places and 150 clients, the accounts); the data clerk posts the 150 missed ART appointments of the register;
the site supervisor, an ONLINE user to whom CHT gives no tasks, opens her Tasks list (HTTP Basic) and finds
exactly one verification task per missed appointment, each gone as she posts its verification, its task
document Completed; the CHW of the same facility, without the permission, never sees one. A second test: an
offline CHW's ANC and PNC tasks appear from the pregnancy and delivery reports she posts.

Only the first administrator is made outside HTTP (`kazi users add admin` does that in a deployment). The
background worker's rounds are `service.process_changes()` calls between the actors' steps, so the test does
not depend on timing; each actor's own writes show in their next Tasks list by read-your-writes.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from test_story import CLIENTS, NOW_MS, TZ, VERIFY, day, facility, missed, ms, stub, verification

from kazi.demo import PROGRAM_DIR
from kazi.server.api import create_app
from kazi.service.tasks import TaskService
from kazi.store import Store

STAFF = 6  # facility(): district, health centre, CHW area, and the supervisor's, clerk's and CHW's persons
#: the accounts the administrator creates: username -> (roles, place, contact)
ACCOUNTS = {
    "sup": (["site_supervisor"], "hc", "sup"),
    "chw": (["chw"], "area", "chw"),
    "clerk": (["data_clerk"], "hc", "clerk"),
}


class Actor:
    """One user of the API, authenticated with HTTP Basic on every request."""

    def __init__(self, client: TestClient, username: str) -> None:
        self.client = client
        self.auth = (username, f"{username}-password")

    def post_docs(self, docs: list[dict[str, Any]] | dict[str, Any]) -> list[dict[str, Any]]:
        resp = self.client.post("/api/v1/docs", auth=self.auth, json=docs)
        assert resp.status_code == 200, resp.text
        return resp.json()["results"]  # type: ignore[no-any-return]

    def tasks(self, **params: Any) -> dict[str, Any]:
        resp = self.client.get("/api/v1/tasks", auth=self.auth, params={"limit": 1000, **params})
        assert resp.status_code == 200, resp.text
        return resp.json()  # type: ignore[no-any-return]

    def task(self, task_id: str) -> httpx.Response:
        return self.client.get(f"/api/v1/tasks/{task_id}", auth=self.auth)


@pytest.fixture
def api(store: Store) -> Iterator[tuple[TestClient, TaskService]]:
    """The API over the test's store, its clock frozen at the story's instant, and the first administrator."""
    store.users.create("admin", password="admin-password", roles=["admin"])
    service = TaskService(store, clock=lambda: NOW_MS)
    try:
        with TestClient(create_app(store=store, service=service)) as client:
            yield client, service
    finally:
        service.close()


def _program_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for p in sorted(PROGRAM_DIR.rglob("*")):
            if p.is_file():
                zf.write(p, p.relative_to(PROGRAM_DIR).as_posix())
    return buf.getvalue()


def _set_up(client: TestClient, service: TaskService, *accounts: str) -> Actor:
    """What the administrator does through the API: the program, the places and clients, the accounts."""
    admin = Actor(client, "admin")
    resp = client.post("/api/v1/program", auth=admin.auth, content=_program_zip(),
                       headers={"Content-Type": "application/zip"})
    assert resp.status_code == 200 and resp.json()["loaded"] is True, resp.text
    docs = facility()
    assert all(r["changed"] for r in admin.post_docs(docs[:STAFF]))  # the place hierarchy and the staff
    clients = admin.post_docs(docs[STAFF:])  # 150 households and their clients
    assert len(clients) == 2 * CLIENTS and all(r["changed"] for r in clients)
    for name in accounts:
        roles, place, contact = ACCOUNTS[name]
        resp = client.post("/api/v1/users", auth=admin.auth, json={
            "username": name, "password": f"{name}-password", "roles": roles, "facility_id": place,
            "contact_id": contact, "timezone": TZ})
        assert resp.status_code == 201, resp.text
    service.process_changes()  # the background worker's round: everyone computed
    return admin


def _report_of(task: dict[str, Any]) -> str:
    """The missed-appointment report a verification task is for (its emission id starts with it)."""
    return str(task["emission_id"]).split("~")[0]


def test_online_supervisor_verifies_every_missed_appointment_over_http(
        api: tuple[TestClient, TaskService]) -> None:
    client, service = api
    _set_up(client, service, "sup", "chw", "clerk")
    sup, chw, clerk = Actor(client, "sup"), Actor(client, "chw"), Actor(client, "clerk")
    assert client.get("/api/v1/me", auth=sup.auth).json()["offline"] is False  # CHT would give her no tasks
    assert client.get("/api/v1/me", auth=chw.auth).json()["offline"] is True
    assert sup.tasks()["total"] == 0

    # the register's missed appointments arrive
    reports = [missed(i) for i in range(CLIENTS)]
    assert all(r["changed"] for r in clerk.post_docs(reports))
    service.process_changes()

    page = sup.tasks()
    items = page["items"]
    assert page["total"] == len(items) == CLIENTS
    assert [t["emission"]["title"] for t in items] == [VERIFY] * CLIENTS
    assert sorted(_report_of(t) for t in items) == sorted(r["_id"] for r in reports)  # one each, none skipped
    for t in items:
        assert t["emission_id"] == t["emission"]["_id"] and t["emission_id"].startswith(f"{_report_of(t)}~")
        assert t["_id"].startswith("task~org.couchdb.user:sup~") and t["state"] == "Ready"
    task_of = {_report_of(t): t["_id"] for t in items}
    assert len(set(task_of.values())) == CLIENTS
    paged = [t["_id"] for offset in (0, 100) for t in sup.tasks(limit=100, offset=offset)["items"]]
    assert paged == [t["_id"] for t in items]  # two pages, the same list in the same order

    # the CHW of the same facility, without the permission, sees none, and cannot read hers
    assert VERIFY not in {t["emission"]["title"] for t in chw.tasks()["items"]}
    assert chw.task(task_of["missed0"]).status_code == 404

    # one verification at a time: each task leaves the list at once (read-your-writes) and is Completed
    left = set(task_of)
    for i in range(10):
        sup.post_docs(verification(i))
        left.discard(f"missed{i}")
        now = sup.tasks()
        assert now["total"] == len(left) and {_report_of(t) for t in now["items"]} == left
        done = sup.task(task_of[f"missed{i}"])
        assert done.status_code == 200 and done.json()["state"] == "Completed"
        assert [h["state"] for h in done.json()["stateHistory"]][-1] == "Completed"

    # the rest, in batches as a day's work would come
    rest = [verification(i) for i in range(10, CLIENTS)]
    for start in range(0, len(rest), 35):
        sup.post_docs(rest[start:start + 35])
    final = sup.tasks()
    assert (final["total"], final["items"], final["since"], final["removed"]) == (0, [], None, [])
    service.process_changes()  # the worker's round catches up with everyone else
    for report_id, task_id in task_of.items():
        doc = sup.task(task_id)
        assert doc.status_code == 200 and doc.json()["state"] == "Completed", report_id
    assert sup.tasks()["total"] == 0
    assert VERIFY not in {t["emission"]["title"] for t in chw.tasks()["items"]}
    errors = client.get("/api/v1/program/errors", auth=("admin", "admin-password"))
    assert errors.status_code == 200 and errors.json() == []


def test_offline_chw_gets_anc_and_pnc_tasks_over_http(api: tuple[TestClient, TaskService]) -> None:
    client, service = api
    _set_up(client, service, "chw")
    chw = Actor(client, "chw")
    assert chw.tasks()["total"] == 0

    chw.post_docs({"_id": "preg1", "type": "data_record", "form": "pregnancy", "reported_date": ms(-1),
                   "contact": stub("chw", "area", "hc", "district"),
                   "fields": {"patient_id": "C0001", "patient_uuid": "client1", "lmp_date": day(-84)}})
    anc = [t for t in chw.tasks()["items"] if t["emission"]["title"] == "task.anc.visit.title"]
    assert len(anc) == 1 and anc[0]["owner"] == "client1" and anc[0]["emission"]["dueDate"] == day(0)
    assert anc[0]["emission_id"].startswith("preg1~") and anc[0]["_id"].startswith("task~org.couchdb.user:chw~")
    assert chw.tasks(overdue="true")["total"] >= 1  # due today counts as overdue (reference 7.10)

    chw.post_docs({"_id": "deliv2", "type": "data_record", "form": "delivery", "reported_date": ms(-0.5),
                   "contact": stub("chw", "area", "hc", "district"),
                   "fields": {"patient_id": "C0002", "patient_uuid": "client2", "delivery_date": day(-1),
                              "delivery_place": "health_facility", "outcome": "healthy", "babies_alive": 1,
                              "mother_alive": "yes"}})
    titles = {t["emission"]["title"]: t for t in chw.tasks()["items"]}
    assert "task.anc.visit.title" in titles
    assert "task.pnc.home_visit.title" in titles
    pnc = titles["task.pnc.home_visit.title"]
    assert pnc["owner"] == "client2" and pnc["emission_id"].startswith("deliv2~")
    assert chw.task(pnc["_id"]).json()["state"] == "Ready"
    assert chw.tasks(place="hh2")["total"] == len([t for t in chw.tasks()["items"] if t["owner"] == "client2"])


def _apply(held: dict[str, dict[str, Any]], answer: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """What the web app does with an answer: a delta updates its copy, a whole list replaces it."""
    out = dict(held) if answer["since"] is not None else {}
    for task_id in answer["removed"]:
        out.pop(task_id, None)
    out.update({t["_id"]: t for t in answer["items"]})
    return out


def test_a_device_keeps_its_list_up_to_date_with_deltas(api: tuple[TestClient, TaskService]) -> None:
    """`GET /api/v1/tasks?since=SEQ`: only what changed after the `seq` of an earlier answer."""
    client, service = api
    _set_up(client, service, "sup", "clerk")
    sup, clerk = Actor(client, "sup"), Actor(client, "clerk")
    open_states = {"state": ["Ready", "Draft"]}
    clerk.post_docs([missed(i) for i in range(20)])
    service.process_changes()
    first = sup.tasks(**open_states)
    assert first["since"] is None and first["total"] == 20 and first["seq"] > 0
    held = _apply({}, first)

    nothing = sup.tasks(since=first["seq"], **open_states)
    assert (nothing["since"], nothing["seq"], nothing["total"], nothing["items"], nothing["removed"]) == (
        first["seq"], first["seq"], 0, [], [])

    # her verification: the task leaves the list, and the delta says so by id
    task_of = {_report_of(t): t["_id"] for t in first["items"]}
    sup.post_docs(verification(0))
    after_verify = sup.tasks(since=first["seq"], **open_states)
    assert after_verify["removed"] == [task_of["missed0"]] and after_verify["items"] == []
    assert after_verify["seq"] > first["seq"]
    held = _apply(held, after_verify)

    # a new missed appointment: the delta holds that one task, rendered as in the whole list
    clerk.post_docs(missed(20))
    service.process_changes()
    new = sup.tasks(since=after_verify["seq"], **open_states)
    assert new["total"] == 1 and [_report_of(t) for t in new["items"]] == ["missed20"] and new["removed"] == []
    whole = sup.tasks(**open_states)
    assert new["items"][0] == next(t for t in whole["items"] if _report_of(t) == "missed20")
    held = _apply(held, new)
    assert set(held) == {t["_id"] for t in whole["items"]} and len(held) == 20
    assert whole["seq"] == new["seq"]

    # a `since` this server never gave (a copy from another server): the whole list
    foreign = sup.tasks(since=whole["seq"] + 1000, **open_states)
    assert foreign["since"] is None and foreign["total"] == 20
    # filters that depend on more than the task document do not combine with a delta
    for params in ({"overdue": "true"}, {"type": VERIFY}, {"place": "hc"}):
        resp = client.get("/api/v1/tasks", auth=sup.auth, params={"since": 1, **params})
        assert resp.status_code == 422 and resp.json()["error"]["field"] == next(iter(params)), resp.text


def test_with_a_worker_a_read_waits_only_for_the_callers_own_writes(store: Store) -> None:
    """`others_to_worker` (what `kazi serve` sets): another user's report reaches the supervisor's list through
    the worker's round, while her own verification leaves it at once."""
    store.users.create("admin", password="admin-password", roles=["admin"])
    service = TaskService(store, clock=lambda: NOW_MS)
    try:
        with TestClient(create_app(store=store, service=service, others_to_worker=True)) as client:
            _set_up(client, service, "sup", "clerk")
            sup, clerk = Actor(client, "sup"), Actor(client, "clerk")
            clerk.post_docs([missed(i) for i in range(3)])
            assert sup.tasks()["total"] == 0  # the clerk's reports are the worker's to bring to her
            service.process_changes()
            tasks = sup.tasks()
            assert tasks["total"] == 3
            sup.post_docs(verification(0))
            assert {_report_of(t) for t in sup.tasks()["items"]} == {"missed1", "missed2"}  # her own: at once
            clerk.post_docs(missed(3))
            sup.post_docs(verification(1))  # her write brings what is pending for her too
            assert {_report_of(t) for t in sup.tasks()["items"]} == {"missed2", "missed3"}
    finally:
        service.close()
