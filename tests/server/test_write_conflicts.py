"""`POST /api/v1/docs` against what is stored, on SQLite and PostgreSQL: an update must carry the current `_rev`
(a stale or missing one is a 409 naming each document with its `current_rev`, and nothing of the batch is
stored), the same content again is a harmless retry, and a contact may not take another user's phone number
(409 on `phone`)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from kazi.server.api import create_app
from kazi.service.tasks import TaskService
from kazi.store import Store

PROGRAM = Path(__file__).resolve().parent / "program"  # default_country_code 265
NOW = 1_754_036_400_000
ALICE_PHONE = "+265888100001"


def person(doc_id: str, area: str, **extra: Any) -> dict[str, Any]:
    return {"_id": doc_id, "type": "person", "name": doc_id, "reported_date": NOW,
            "parent": {"_id": area, "parent": {"_id": "hc"}}, **extra}


@pytest.fixture
def client(store: Store) -> Iterator[TestClient]:
    store.write_docs([{"_id": "hc", "type": "health_center", "name": "HC"},
                      {"_id": "area-1", "type": "clinic", "name": "Area 1", "parent": {"_id": "hc"}},
                      {"_id": "area-2", "type": "clinic", "name": "Area 2", "parent": {"_id": "hc"}},
                      person("chw-a", "area-1", phone=ALICE_PHONE), person("chw-b", "area-2", phone="+265999200002"),
                      person("ann", "area-1", patient_id="11111"), person("bea", "area-2")])
    for name, area, contact in (("alice", "area-1", "chw-a"), ("bob", "area-2", "chw-b")):
        store.users.create(name, password=f"{name}-password", roles=["chw"], facility_id=area, contact_id=contact)
    store.users.create("admin", password="admin-password", roles=["admin"])
    with closing(TaskService(store, clock=lambda: NOW)) as service:
        service.load_program(PROGRAM)
        with TestClient(create_app(store=store, service=service)) as c:
            yield c


def post(client: TestClient, user: str, body: Any) -> httpx.Response:
    return client.post("/api/v1/docs", json=body, auth=(user, f"{user}-password"))


def get(client: TestClient, user: str, doc_id: str) -> dict[str, Any]:
    resp = client.get(f"/api/v1/docs/{doc_id}", auth=(user, f"{user}-password"))
    assert resp.status_code == 200, resp.text
    return resp.json()  # type: ignore[no-any-return]


def conflict(resp: httpx.Response) -> dict[str, Any]:
    assert resp.status_code == 409, resp.text
    body = resp.json()
    assert set(body) == {"error"} and body["error"]["status"] == 409
    assert "nothing of this batch was stored" in body["error"]["message"]
    return body["error"]  # type: ignore[no-any-return]


def test_a_stale_write_is_a_409_naming_the_document_and_its_current_rev(client: TestClient) -> None:
    read = get(client, "alice", "ann")
    # a copy read before, without her patient_id: written back, it would silently lose it
    old = {k: v for k, v in read.items() if k not in ("patient_id", "_rev")}
    err = conflict(post(client, "alice", old))
    assert err["field"] == "_rev"
    assert err["problems"] == [{"message": err["problems"][0]["message"], "index": 0, "doc_id": "ann",
                                "field": "_rev", "current_rev": read["_rev"]}]
    assert get(client, "alice", "ann") == read

    edited = post(client, "alice", {**read, "name": "Ann Banda"})
    assert edited.status_code == 200, edited.text
    [result] = edited.json()["results"]
    assert result["changed"] and result["rev"].startswith("2-")
    err = conflict(post(client, "alice", {**old, "_rev": read["_rev"]}))  # now stale
    assert err["problems"][0]["current_rev"] == result["rev"] and "stale _rev" in err["problems"][0]["message"]
    assert get(client, "alice", "ann")["patient_id"] == "11111"


def test_a_batch_with_one_stale_document_stores_nothing(client: TestClient) -> None:
    ann, chw = get(client, "alice", "ann"), get(client, "alice", "chw-a")
    batch = [person("new-1", "area-1"), {**ann, "name": "Ann B"}, {**chw, "name": "Alice", "_rev": "1-0"}]
    err = conflict(post(client, "alice", batch))
    assert [(p["index"], p["doc_id"], p["current_rev"]) for p in err["problems"]] == [(2, "chw-a", chw["_rev"])]
    assert client.get("/api/v1/docs/new-1", auth=("alice", "alice-password")).status_code == 404
    assert get(client, "alice", "ann") == ann


def test_retrying_a_write_whose_answer_was_lost_answers_the_current_rev(client: TestClient) -> None:
    ann = get(client, "alice", "ann")
    update = {**ann, "name": "Ann B"}
    first = post(client, "alice", update).json()["results"][0]
    again = post(client, "alice", update)  # its _rev is stale now, but its content is what is stored
    assert again.status_code == 200 and again.json()["results"] == [{**first, "changed": False}]


def test_new_deleted_and_recreated_ids(client: TestClient) -> None:
    err = conflict(post(client, "alice", {**person("new-1", "area-1"), "_rev": "1-abc"}))
    assert "current_rev" not in err["problems"][0]
    created = post(client, "alice", person("new-1", "area-1")).json()["results"][0]
    conflict(post(client, "alice", {"_id": "new-1", "_deleted": True}))
    deleted = post(client, "alice", {"_id": "new-1", "_deleted": True, "_rev": created["rev"]})
    assert deleted.status_code == 200, deleted.text
    again = post(client, "alice", person("new-1", "area-1", name="Again"))
    assert again.status_code == 200 and again.json()["results"][0]["rev"].startswith("3-")


def test_another_users_phone_cannot_be_given_to_a_contact(client: TestClient) -> None:
    bob_contact = get(client, "bob", "chw-b")
    err = conflict(post(client, "bob", {**bob_contact, "phone": "0888 100 001"}))  # alice's, as written at home
    assert err["field"] == "phone" and err["problems"][0]["doc_id"] == "chw-b"
    assert "chw-a" not in err["message"] + err["problems"][0]["message"]  # not bob's to see
    assert get(client, "bob", "chw-b") == bob_contact
    err = conflict(post(client, "admin", person("twin", "area-2", phone="+265 888-100-001")))
    assert "'chw-a'" in err["problems"][0]["message"]
    # a number nobody's account holds is free
    ok = post(client, "bob", {**bob_contact, "phone": "0999 200 003"})
    assert ok.status_code == 200, ok.text


def test_the_openapi_documents_the_409(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert "409" in spec["paths"]["/api/v1/docs"]["post"]["responses"]
