"""Who may write what, where, through the HTTP API, on SQLite and PostgreSQL, with the demo program: a CHW
cannot move or delete her own area nor name another area's patient in a report, no one deletes a place that
still has contacts under it, and writing documents needs the program's `can_edit` whatever the caller's place
(a national gateway account writes nothing)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from test_story import stub

from kazi.demo import PROGRAM_DIR
from kazi.server.api import create_app
from kazi.service.tasks import TaskService
from kazi.store import Store

NOW = 1_753_869_600_000  # 2025-07-30T10:00:00+02:00
PASSWORD = "password1"


def _deployment() -> list[dict[str, Any]]:
    """A district with two health centres, each with one CHW area, a household and a client."""
    docs: list[dict[str, Any]] = [{"_id": "district", "type": "district_hospital", "name": "D"}]
    for hc in ("hc1", "hc2"):
        area = stub(f"{hc}-area", hc, "district")
        docs += [{"_id": hc, "type": "health_center", "name": hc, "parent": stub("district")},
                 {"_id": f"{hc}-area", "type": "contact", "contact_type": "chw_area", "name": "Area",
                  "parent": stub(hc, "district")},
                 {"_id": f"{hc}-chw", "type": "person", "name": "CHW", "parent": area},
                 {"_id": f"{hc}-hh", "type": "clinic", "name": "HH", "parent": area},
                 {"_id": f"{hc}-c", "type": "person", "name": "Client", "patient_id": f"{hc}-0",
                  "parent": stub(f"{hc}-hh", f"{hc}-area", hc, "district")}]
    return docs


def _report(doc_id: str, **fields: Any) -> dict[str, Any]:
    return {"_id": doc_id, "type": "data_record", "form": "home_visit", "reported_date": NOW,
            "contact": stub("hc1-chw", "hc1-area", "hc1", "district"), "fields": fields}


@pytest.fixture
def service(store: Store) -> Iterator[TaskService]:
    store.write_docs(_deployment())
    for name, roles, place, national in (("chw1", ["chw"], "hc1-area", False), ("chw2", ["chw"], "hc2-area", False),
                                         ("admin", ["admin"], None, False), ("gw", ["gateway"], None, True),
                                         ("viewer", ["viewer"], "hc1", False)):
        store.users.create(name, password=PASSWORD, roles=roles, facility_id=place, national=national,
                           contact_id="hc1-chw" if name == "chw1" else "hc2-chw" if name == "chw2" else None)
    with closing(TaskService(store, clock=lambda: NOW)) as svc:
        svc.load_program(PROGRAM_DIR)
        yield svc


@pytest.fixture
def client(store: Store, service: TaskService) -> Iterator[TestClient]:
    with TestClient(create_app(store=store, service=service)) as c:
        yield c


def _post(client: TestClient, user: str, json: Any, path: str = "/api/v1/docs") -> httpx.Response:
    return client.post(path, auth=(user, PASSWORD), json=json)


def _problems(resp: httpx.Response) -> list[tuple[Any, Any]]:
    assert resp.status_code == 422, resp.text
    return [(p.get("doc_id"), p.get("field")) for p in resp.json()["error"]["problems"]]


def test_a_chw_cannot_move_or_delete_her_own_area(store: Store, client: TestClient) -> None:
    area = store.get_doc("hc1-area")
    moved = {k: v for k, v in area.items() if k != "_rev"} | {"parent": stub("hc2", "district")}
    seq = store.last_seq()
    assert _problems(_post(client, "chw1", moved)) == [("hc1-area", "parent")]
    resp = _post(client, "chw1", {"_id": "hc1-area", "_deleted": True})
    assert ("hc1-area", "_deleted") in _problems(resp) and "own place" in resp.text
    assert store.last_seq() == seq
    # the other area's CHW still cannot read her household or client
    for doc_id in ("hc1-area", "hc1-c"):
        assert client.get(f"/api/v1/docs/{doc_id}", auth=("chw2", PASSWORD)).status_code == 404
    # moving a client to a new household of her own area is hers to do
    assert _post(client, "chw1", [{"_id": "hc1-hh2", "type": "clinic", "name": "HH2",
                                   "parent": stub("hc1-area", "hc1", "district")},
                                  {**store.get_doc("hc1-c"), "parent": stub("hc1-hh2", "hc1-area", "hc1", "district")}
                                  ]).status_code == 200


def test_no_one_deletes_a_place_with_contacts_under_it(store: Store, client: TestClient) -> None:
    def deletion(doc_id: str) -> dict[str, object]:
        return {"_id": doc_id, "_rev": store.get_doc(doc_id)["_rev"], "_deleted": True}

    for user in ("chw1", "admin"):
        resp = _post(client, user, deletion("hc1-hh"))
        assert _problems(resp) == [("hc1-hh", "_deleted")]
        assert "1 contact(s) are still under it" in resp.json()["error"]["problems"][0]["message"]
    assert _post(client, "chw1", [deletion("hc1-c"), deletion("hc1-hh")]).status_code == 200


@pytest.mark.parametrize("fields", [
    {"patient_id": "hc2-0", "patient_uuid": "hc1-c"},  # another area's patient first...
    {"patient_uuid": "hc1-c", "patient_id": "hc2-0"},  # ...or last
])
def test_a_report_cannot_name_another_areas_patient(store: Store, client: TestClient, fields: dict[str, Any]) -> None:
    resp = _post(client, "chw1", _report("r-x", **fields))
    assert _problems(resp) == [("r-x", "fields.patient_id")]
    assert store.get_docs(["r-x"]) == []
    # one naming her own client only, or a patient not stored (yet), is stored
    assert _post(client, "chw1", [_report("r-1", patient_id="hc1-0", patient_uuid="hc1-c"),
                                  _report("r-2", patient_id="not-synced-yet")]).status_code == 200


def test_writing_documents_needs_can_edit_whatever_the_place(store: Store, client: TestClient) -> None:
    doc = {"_id": "hc2-p9", "type": "person", "name": "New", "parent": stub("hc2-hh", "hc2-area", "hc2", "district")}
    for user in ("gw", "viewer"):  # a national gateway account; a role the program grants nothing
        resp = _post(client, user, doc)
        assert resp.status_code == 403, resp.text
        assert "can_edit" in resp.json()["error"]["message"]
        resp = _post(client, user, {"_id": "r-9", "form": "home_visit", "fields": {}}, "/api/v1/reports")
        assert resp.status_code == 403, resp.text
    assert store.get_docs(["hc2-p9"]) == []
    assert _post(client, "chw2", doc).status_code == 200  # the program grants can_edit to CHWs
    renamed = {**doc, "_rev": store.get_doc("hc2-p9")["_rev"], "name": "Renamed"}
    assert _post(client, "admin", renamed).status_code == 200  # admins hold every permission


def test_without_a_program_only_administrators_write(store: Store) -> None:
    store.write_docs(_deployment())
    store.users.create("chw1", password=PASSWORD, roles=["chw"], facility_id="hc1-area", contact_id="hc1-chw")
    store.users.create("admin", password=PASSWORD, roles=["admin"])
    doc = {"_id": "hc1-p9", "type": "person", "name": "New", "parent": stub("hc1-hh", "hc1-area", "hc1", "district")}
    with TestClient(create_app(store=store)) as client:
        resp = _post(client, "chw1", doc)
        assert resp.status_code == 409 and "only administrators" in resp.json()["error"]["message"]
        assert _post(client, "admin", doc).status_code == 200
