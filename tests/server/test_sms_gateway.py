"""Cases by SMS, from a gateway's HTTP call to the tasks on the CHW's list (docs/sms.md), on SQLite and PostgreSQL.

The demo program and a small demo population: the demo CHW texts from their own phone (written in local form
in the messages, international in the contacts, so the matching rule is exercised), a client of their area
texts for a visit. Both gateways are driven: the plain JSON endpoint (outcome and reply in the answer) and
medic-gateway's exchange (replies queued, returned until the gateway reports on them). Every check reads what
the store and the API really hold: the person, the report, the messages kept, the CHW's task list.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from itertools import count
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from kazi.demo.load import DemoUser, load_demo
from kazi.demo.population import DEFAULT_TZ, Population, generate
from kazi.engine.dates import make_local
from kazi.epoch import EARLIEST_MS, LATEST_MS
from kazi.server.api import create_app
from kazi.server.deps import MAX_OFFSET
from kazi.service.tasks import TaskService
from kazi.store import Store
from kazi.store import sms as stored
from kazi.store.schema import sms_messages
from kazi.store.scope import EVERYTHING

DAY = date(2025, 8, 1)
NOW = int(make_local(DAY.year, DAY.month - 1, DAY.day, 10, tz=DEFAULT_TZ))
HOUSEHOLDS = 40
ANC = "task.anc.visit.title"
PNC = "task.pnc.home_visit.title"
VISIT = "task.visit_request.home_visit.title"


@dataclass
class SmsDemo:
    client: TestClient
    store: Store
    service: TaskService
    users: dict[str, DemoUser]  # by first role
    chw_phone: str  # as stored on the CHW's contact
    chw_contact: dict[str, Any]
    client_contact: dict[str, Any]  # a person of the CHW's area with a phone and no account

    def auth(self, role: str) -> tuple[str, str]:
        return (self.users[role].username, self.users[role].password)

    def sms(self, *messages: tuple[str, str, str], at: int = NOW, role: str = "gateway") -> httpx.Response:
        """POST /api/v1/sms/messages with (id, from, text) messages received at ``at``."""
        body = {"messages": [{"id": i, "from": f, "text": t, "received_at": at} for i, f, t in messages]}
        resp: httpx.Response = self.client.post("/api/v1/sms/messages", json=body, auth=self.auth(role))
        return resp

    def one(self, msg_id: str, sender: str, text: str, at: int = NOW) -> dict[str, Any]:
        resp = self.sms((msg_id, sender, text), at=at)
        assert resp.status_code == 200, resp.text
        results = resp.json()["results"]
        assert len(results) == 1
        return results[0]  # type: ignore[no-any-return]

    def tasks(self, role: str) -> list[dict[str, Any]]:
        resp = self.client.get("/api/v1/tasks", params={"limit": 1000}, auth=self.auth(role))
        assert resp.status_code == 200, resp.text
        return resp.json()["items"]  # type: ignore[no-any-return]

    def tasks_for(self, role: str, contact_id: str) -> list[str]:
        return sorted(t["emission"]["title"] for t in self.tasks(role) if t["owner"] == contact_id)


def local_form(phone: str) -> str:
    """``+265 99x xxx xxx`` as people write it at home: ``0 99x-xxx-xxx``."""
    national = phone.removeprefix("+265")
    return f"0{national[:3]} {national[3:6]}-{national[6:]}"


def _client_of(population: Population, chw_contact: dict[str, Any], accounts: set[str]) -> dict[str, Any]:
    area = chw_contact["parent"]["_id"]
    for c in population.contacts:
        parent = c.get("parent") or {}
        if (c.get("type") == "person" and c.get("phone") and c["_id"] not in accounts
                and parent.get("parent", {}).get("_id") == area):
            return c
    raise AssertionError("no client with a phone in the CHW's area")


@pytest.fixture
def demo(store: Store) -> Iterator[SmsDemo]:
    service = TaskService(store, clock=lambda: NOW)
    population = generate(HOUSEHOLDS, 1, DAY)
    try:
        users = load_demo(store, service, population)
        by_role = {u.roles[0]: u for u in users}
        app = create_app(store=store, service=service)
        ids = count(1)
        app.state.kazi.sms_ids = (lambda: f"sms-id-{next(ids)}", random.Random(7))  # deterministic ids
        chw = store.users.get(by_role["chw"].username)
        chw_contact = store.get_doc(chw.contact_id or "")
        accounts = {u["contact_id"] for u in population.users}
        with TestClient(app) as client:
            yield SmsDemo(client, store, service, by_role, chw_contact["phone"], chw_contact,
                          _client_of(population, chw_contact, accounts))
    finally:
        service.close()


def test_a_pregnancy_registered_by_sms_becomes_the_chws_tasks(demo: SmsDemo) -> None:
    result = demo.one("m-1", local_form(demo.chw_phone), "  p   12   Mary  Chisomo Banda ")
    assert result["status"] == "processed" and result["error"] is None and not result["replayed"]
    patient_id = result["patient_id"]
    assert patient_id.isdigit() and len(patient_id) == 5
    assert result["reply"]["to"] == local_form(demo.chw_phone)
    assert patient_id in result["reply"]["text"] and "Mary Chisomo Banda" in result["reply"]["text"]
    assert "12 weeks" in result["reply"]["text"]

    report = demo.store.get_doc(result["report_id"])
    person_id = report["fields"]["patient_uuid"]
    person = demo.store.get_doc(person_id)
    # the person: a CHT contact under the CHW's place, with the new short code
    assert person["type"] == "person" and person["name"] == "Mary Chisomo Banda"
    assert person["patient_id"] == patient_id and person["created_by_doc"] == report["_id"]
    assert person["parent"] == demo.chw_contact["parent"]
    # the report: shaped as CHT's SMS reports
    assert report["type"] == "data_record" and report["form"] == "P"
    assert report["from"] == local_form(demo.chw_phone)
    assert report["contact"]["_id"] == demo.chw_contact["_id"]
    assert report["contact"]["parent"] == demo.chw_contact["parent"]
    assert report["fields"] == {"last_menstrual_period": 12, "patient_name": "Mary Chisomo Banda",
                                "patient_id": patient_id, "patient_uuid": person_id}
    assert report["sms_message"]["message"] == "  p   12   Mary  Chisomo Banda "
    assert report["reported_date"] == NOW

    # the CHW's list now has her first ANC contact (due at 12 weeks: today); her supervisor's does not
    assert demo.tasks_for("chw", person_id) == [ANC]
    assert demo.tasks_for("chw_supervisor", person_id) == []


def test_a_delivery_by_patient_id_turns_anc_into_pnc_tasks(demo: SmsDemo) -> None:
    sender = demo.chw_phone
    registered = demo.one("m-1", sender, "P 27 Grace Phiri", at=NOW - 3 * 24 * 3600 * 1000)
    person_id = demo.store.get_doc(registered["report_id"])["fields"]["patient_uuid"]
    assert demo.tasks_for("chw", person_id) == [ANC]

    result = demo.one("m-2", sender, f"d {registered['patient_id']} f 31/07/2025")
    assert result["status"] == "processed", result
    assert result["patient_id"] == registered["patient_id"]
    assert "Grace Phiri" in result["reply"]["text"]
    report = demo.store.get_doc(result["report_id"])
    assert report["form"] == "D"
    assert report["fields"] == {"patient_id": registered["patient_id"], "delivery_place": "health_facility",
                                "delivery_date": "2025-07-31", "patient_uuid": person_id}
    # delivered yesterday: the pregnancy's task is resolved, the postnatal visit of day 1 is due today
    assert demo.tasks_for("chw", person_id) == [PNC]


def test_a_clients_visit_request_becomes_a_task_for_their_chw(demo: SmsDemo) -> None:
    client = demo.client_contact
    result = demo.one("c-1", client["phone"], "VR my baby has a fever")
    assert result["status"] == "processed", result
    assert "visit you" in result["reply"]["text"]
    report = demo.store.get_doc(result["report_id"])
    assert report["form"] == "VR" and report["contact"]["_id"] == client["_id"]
    assert report["fields"] == {"reason": "my baby has a fever", "patient_id": client["patient_id"],
                                "patient_uuid": client["_id"]}
    tasks = [t for t in demo.tasks("chw") if t["owner"] == client["_id"] and t["emission"]["title"] == VISIT]
    assert len(tasks) == 1
    content = tasks[0]["emission"]["actions"][0]["content"]
    assert content["reason"] == "my baby has a fever" and content["source_report_id"] == report["_id"]


ERRORS = [
    # (sender: chw | client | stranger, text, error code, words the reply must hold)
    ("chw", "X 12 Mary", "unknown_form", ["X is not a form code", "P, D, VR"]),
    ("chw", "   ", "empty", ["empty", "P, D, VR"]),
    ("chw", "P", "missing_field", ["weeks is missing", "P <weeks> <name>"]),
    ("chw", "P twelve Mary Banda", "invalid_field", ["weeks 'twelve' is not a number from 0 to 42"]),
    ("chw", "P 50 Mary Banda", "invalid_field", ["a number from 0 to 42"]),
    ("chw", "D 99999 F", "unknown_patient", ["no patient with ID 99999"]),
    ("chw", "D {patient} Z", "invalid_field", ["'Z' is not one of F, H, R"]),
    ("chw", "D {patient} F 2025-02-30", "invalid_field", ["a date such as 2025-08-01"]),
    ("chw", "D {patient} F 2025-07-30 twins", "extra_text", ["'twins' is more than the form takes"]),
    ("chw", "VR please come", "not_allowed", ["VR reports cannot be sent from your number"]),
    ("client", "P 12 Mary Banda", "not_allowed", ["P reports cannot be sent"]),
    ("stranger", "P 12 Mary Banda", "unknown_sender", ["not registered"]),
]


def test_each_error_gets_a_reply_saying_what_to_fix_and_the_message_is_kept(demo: SmsDemo) -> None:
    patient = demo.client_contact["patient_id"]  # a patient of the CHW's area
    senders = {"chw": demo.chw_phone, "client": demo.client_contact["phone"], "stranger": "+265111222333"}
    before = demo.store.last_seq()
    expected: list[tuple[str, str, str | None, str]] = []
    for i, (who, text, code, words) in enumerate(ERRORS):
        written = text.format(patient=patient)
        result = demo.one(f"bad-{i}", senders[who], written)
        status = "unknown_sender" if code == "unknown_sender" else "error"
        assert result["status"] == status and result["report_id"] is None, (text, result)
        assert result["error"] == (None if code == "unknown_sender" else code), (text, result)
        for w in words:
            assert w in result["reply"]["text"], (text, result["reply"]["text"])
        assert result["reply"]["to"] == senders[who]
        expected.append((f"bad-{i}", written, result["error"], result["reply"]["text"]))
    assert demo.store.last_seq() == before  # nothing written: no person, no report
    # every message is kept with its outcome and reply, for review
    kept = demo.client.get("/api/v1/sms/messages", params={"status": "error", "limit": 100},
                           auth=demo.auth("gateway")).json()
    unknown = demo.client.get("/api/v1/sms/messages", params={"status": "unknown_sender"},
                              auth=demo.auth("gateway")).json()
    listed = [(m["id"], m["text"], m["error"], m["reply_text"]) for m in [*unknown["items"], *kept["items"]]]
    assert sorted(listed) == sorted(expected)
    assert kept["total"] == len(ERRORS) - 1 and unknown["total"] == 1


def test_error_replies_are_in_the_senders_language(demo: SmsDemo) -> None:
    demo.store.users.update(demo.users["chw"].username, locale="ny")
    result = demo.one("ny-1", demo.chw_phone, "P")
    assert result["reply"]["text"] == "P: masabata palibe. Tumizani: P <masabata> <dzina>"
    ok = demo.one("ny-2", demo.chw_phone, "P 8 Ruth Banda")
    assert ok["reply"]["text"].startswith("Zikomo ") and ok["patient_id"] in ok["reply"]["text"]


def test_replaying_a_batch_processes_it_once(demo: SmsDemo) -> None:
    batch = {"messages": [
        {"id": "g-1", "from": demo.chw_phone, "content": "P 20 Alinafe Mbewe", "sms_sent": NOW - 5000,
         "sms_received": NOW - 4000},
        {"id": "g-2", "from": demo.client_contact["phone"], "content": "VR", "sms_sent": NOW - 3000,
         "sms_received": NOW - 2000},
        {"id": "g-3", "from": demo.chw_phone, "content": "Q hello", "sms_sent": NOW, "sms_received": NOW},
    ], "updates": []}
    auth = demo.auth("gateway")
    assert demo.client.get("/api/sms", auth=auth).json() == {"medic-gateway": True}
    first = demo.client.post("/api/sms", json=batch, auth=auth)
    assert first.status_code == 200, first.text
    replies = first.json()["messages"]
    assert [r["to"] for r in replies] == [demo.chw_phone, demo.client_contact["phone"], demo.chw_phone]
    assert "registered" in replies[0]["content"] and "not a form code" in replies[2]["content"]
    seq = demo.store.last_seq()
    total, kept = stored.list_messages(demo.store, EVERYTHING, gateway_user=None, status=None,
                                       limit=10, offset=0)
    assert total == 3 and [m.status for m in reversed(kept)] == ["processed", "processed", "error"]

    # the same batch again (the gateway lost the answer): nothing new, and the same replies are still due
    again = demo.client.post("/api/v1/sms/gateway", json=batch, auth=auth)
    assert again.status_code == 200, again.text
    assert again.json()["messages"] == replies
    assert demo.store.last_seq() == seq
    assert stored.list_messages(demo.store, EVERYTHING, gateway_user=None, status=None,
                                limit=10, offset=0)[0] == 3
    women = [t for t in demo.tasks("chw") if t["emission"]["title"] == ANC
             and t["emission"]["contact"]["name"] == "Alinafe Mbewe"]
    assert len(women) == 1  # one person, one registration

    # the gateway reports on two replies: those are not handed out again; the third still is
    updates = {"messages": [], "updates": [{"id": replies[0]["id"], "status": "SENT"},
                                           {"id": replies[1]["id"], "status": "FAILED", "reason": "no credit"}]}
    after = demo.client.post("/api/sms", json=updates, auth=auth).json()["messages"]
    assert after == [replies[2]]
    assert stored.outgoing(demo.store, replies[0]["id"])["state"] == "sent"  # type: ignore[index]
    failed = stored.outgoing(demo.store, replies[1]["id"])
    assert failed is not None and failed["state"] == "failed" and failed["reason"] == "no credit"

    # the plain endpoint replays too: the first outcome, marked replayed
    plain = demo.one("p-1", demo.chw_phone, "P 10 Esther Phiri")
    again_plain = demo.one("p-1", demo.chw_phone, "P 10 Esther Phiri")
    assert again_plain == {**plain, "replayed": True}


def test_gateway_routes_need_the_gateway_permission(demo: SmsDemo) -> None:
    body = {"messages": [{"id": "x", "from": demo.chw_phone, "text": "P 12 Mary"}]}
    assert demo.client.post("/api/v1/sms/messages", json=body).status_code == 401
    for role in ("chw", "site_supervisor"):
        resp = demo.client.post("/api/v1/sms/messages", json=body, auth=demo.auth(role))
        assert resp.status_code == 403 and "can_access_gateway_api" in resp.json()["error"]["message"]
        assert demo.client.get("/api/sms", auth=demo.auth(role)).status_code == 403
        assert demo.client.get("/api/v1/sms/messages", auth=demo.auth(role)).status_code == 403
    # admins hold every permission
    assert demo.client.get("/api/sms", auth=demo.auth("admin")).status_code == 200


def test_a_gateway_placed_elsewhere_does_not_match_senders_outside_its_place(demo: SmsDemo) -> None:
    admin = demo.store.users.get(demo.users["admin"].username)
    other = next(c for c in demo.store.docs_in_scope(demo.store.scope_of(admin)).contacts
                 if c.get("type") == "clinic")  # a household: the CHW lives above it
    demo.store.users.update(demo.users["gateway"].username, national=False, facility_id=other["_id"])
    result = demo.one("o-1", demo.chw_phone, "P 12 Mary Banda")
    assert result["status"] == "unknown_sender"
    # what this gateway may review: its own unknown senders, not the messages of senders of other places
    listed = demo.client.get("/api/v1/sms/messages", auth=demo.auth("gateway")).json()
    assert [m["id"] for m in listed["items"]] == ["o-1"]


def test_malformed_requests_are_refused_whole(demo: SmsDemo) -> None:
    auth = demo.auth("gateway")
    bad = {"messages": [{"id": "ok", "from": demo.chw_phone, "text": "P 12 Mary"}, {"id": "", "text": 5}]}
    resp = demo.client.post("/api/v1/sms/messages", json=bad, auth=auth)
    assert resp.status_code == 422
    fields = [p["field"] for p in resp.json()["error"]["problems"]]
    assert fields == ["messages[1].id", "messages[1].from", "messages[1].text"]
    assert demo.store.last_seq() == demo.store.last_seq() and stored.find_message(demo.store, "ok",
                                                                                   demo.chw_phone) is None
    resp = demo.client.post("/api/sms", json={"messages": [], "updates": [{"id": "x", "status": "LOST"}]},
                            auth=auth)
    assert resp.status_code == 422 and resp.json()["error"]["field"] == "updates[0].status"


def test_a_time_outside_the_calendar_is_refused_and_paging_is_bounded(demo: SmsDemo) -> None:
    """`received_at` of 2**62 was stored and became the report's reported_date; an offset of 2**63 was a 500."""
    auth = demo.auth("gateway")
    seq = demo.store.last_seq()
    for bad in (2**62, -1, 0, LATEST_MS):
        body = {"messages": [{"id": "ok", "from": demo.chw_phone, "text": "P 12 Mary", "received_at": NOW},
                             {"id": "bad", "from": demo.chw_phone, "text": "P 12 Ruth", "received_at": bad}]}
        resp = demo.client.post("/api/v1/sms/messages", json=body, auth=auth)
        assert resp.status_code == 422, resp.text
        assert resp.json()["error"]["field"] == "messages[1].received_at"
        assert "between 2000-01-01 and 2099-12-31" in resp.json()["error"]["message"]
        medic = {"messages": [{"id": "m-bad", "from": demo.chw_phone, "content": "P 12 Ruth", "sms_received": bad}]}
        resp = demo.client.post("/api/sms", json=medic, auth=auth)
        assert resp.status_code == 422 and resp.json()["error"]["field"] == "messages[0].sms_received"
    assert demo.store.last_seq() == seq and stored.find_message(demo.store, "ok", demo.chw_phone) is None
    # the sending phone's clock is only kept for reference: a wrong one is dropped, the message processed
    medic = {"messages": [{"id": "m-ok", "from": demo.chw_phone, "content": "P 12 Ruth Banda", "sms_sent": 2**62,
                           "sms_received": EARLIEST_MS}]}
    assert demo.client.post("/api/sms", json=medic, auth=auth).status_code == 200
    kept = stored.find_message(demo.store, "m-ok", demo.chw_phone)
    assert kept is not None and kept.status == "processed" and kept.received_at == EARLIEST_MS
    with demo.store.engine.connect() as conn:
        assert conn.execute(select(sms_messages.c.sent_at).where(sms_messages.c.id == "m-ok")).scalar_one() is None
    for offset in (2**63, 2**64 + 1):
        resp = demo.client.get("/api/v1/sms/messages", params={"offset": offset}, auth=auth)
        assert resp.status_code == 422 and resp.json()["error"]["field"] == "query.offset"
    resp = demo.client.get("/api/v1/sms/messages", params={"offset": MAX_OFFSET}, auth=auth)
    assert resp.status_code == 200 and resp.json()["items"] == []


def test_one_message_id_from_one_number_however_written_is_processed_once(demo: SmsDemo) -> None:
    """The replay key is the gateway's id and the sender's number read with the program's country code, not
    the text of `from`: a gateway that writes the number another way on a retry does not register twice."""
    first = demo.one("n-1", demo.chw_phone, "P 12 Mary Banda")
    seq = demo.store.last_seq()
    again = demo.one("n-1", local_form(demo.chw_phone), "P 12 Mary Banda")
    assert first["status"] == "processed" and again == {**first, "replayed": True}
    assert demo.store.last_seq() == seq
    total, _ = stored.list_messages(demo.store, EVERYTHING, gateway_user=None, status=None, limit=10, offset=0)
    assert total == 1
    assert [p["name"] for p in demo.store.docs_in_scope(EVERYTHING).contacts].count("Mary Banda") == 1


def test_a_chw_cannot_take_another_users_phone_number(demo: SmsDemo) -> None:
    """Her contact given the supervisor's number (as written at home) is a 409 on `phone`; the supervisor's
    messages stay the supervisor's."""
    supervisor = demo.store.users.get(demo.users["chw_supervisor"].username)
    sup_contact = demo.store.get_doc(supervisor.contact_id or "")
    if not sup_contact.get("phone"):
        demo.store.write_doc({**sup_contact, "phone": "+265991234567"})
        sup_contact = demo.store.get_doc(sup_contact["_id"])
    mine = demo.chw_contact
    resp = demo.client.post("/api/v1/docs", json={**mine, "phone": local_form(sup_contact["phone"])},
                            auth=demo.auth("chw"))
    assert resp.status_code == 409, resp.text
    err = resp.json()["error"]
    assert err["field"] == "phone" and err["problems"][0]["doc_id"] == mine["_id"]
    assert demo.store.get_doc(mine["_id"]) == mine
    result = demo.one("s-1", sup_contact["phone"], "Q hello")
    assert result["status"] == "error"  # a supervisor's message, answered as hers (not a form code)
    kept = stored.find_message(demo.store, "s-1", sup_contact["phone"])
    assert kept is not None and kept.contact_id == sup_contact["_id"]


def test_an_update_status_that_is_no_string_is_a_422(demo: SmsDemo) -> None:
    """Found by the API fuzzer (tests/fuzz): `{"status": {}}` in a medic-gateway update was a 500."""
    for path in ("/api/sms", "/api/v1/sms/gateway"):
        resp = demo.client.post(path, json={"messages": [], "updates": [{"id": None, "status": {}}]},
                                auth=demo.auth("gateway"))
        assert resp.status_code == 422, resp.text
        assert [p["field"] for p in resp.json()["error"]["problems"]] == ["updates[0].id", "updates[0].status"]


def test_a_message_with_a_nul_or_a_lone_surrogate_is_refused_alone(demo: SmsDemo) -> None:
    """PostgreSQL cannot store NUL and SQLite cannot encode a lone surrogate: such a message failed the whole
    poll, on every retry, and held back the good messages after it. Now it alone is refused, and said so."""
    auth = demo.auth("gateway")
    good = {"id": "c-1", "from": demo.chw_phone, "content": "P 20 Alinafe Mbewe", "sms_sent": NOW,
            "sms_received": NOW}
    batch = {"messages": [good, {**good, "id": "c-2", "content": "P 12 Mary\x00 Banda"},
                          {**good, "id": "c-3\ud800"},
                          {**good, "id": "c-4", "from": demo.client_contact["phone"], "content": "VR"}],
             "updates": [{"id": "out-\x00", "status": "SENT"}]}
    body = json.dumps(batch)  # lone surrogates travel as JSON escapes
    first = demo.client.post("/api/sms", content=body, auth=auth, headers={"Content-Type": "application/json"})
    assert first.status_code == 200, first.text
    answer = first.json()
    assert [(r["index"], r["id"], r["field"]) for r in answer["refused"]] == [
        (1, "c-2", "messages[1].content"), (2, "c-3\ufffd", "messages[2].id"), (0, "out-\ufffd", "updates[0].id")]
    assert "NUL" in answer["refused"][0]["message"] and "lone surrogate" in answer["refused"][1]["message"]
    assert [r["to"] for r in answer["messages"]] == [demo.chw_phone, demo.client_contact["phone"]]
    total, kept = stored.list_messages(demo.store, EVERYTHING, gateway_user=None, status=None, limit=10, offset=0)
    assert total == 2 and sorted(m.id for m in kept) == ["c-1", "c-4"]
    # the gateway sends the batch again: the good ones are replayed, the bad ones refused again, nothing new
    seq = demo.store.last_seq()
    again = demo.client.post("/api/sms", content=body, auth=auth, headers={"Content-Type": "application/json"})
    assert again.status_code == 200 and again.json() == answer
    assert demo.store.last_seq() == seq

    # the plain endpoint: one result per message, in order, the bad one `refused`
    plain = {"messages": [{"id": "j-1", "from": demo.chw_phone, "text": "P 10 Esther Phiri"},
                          {"id": "j-2", "from": "+265\x00", "text": "P 11 Tiwonge Banda"},
                          {"id": "j-3", "from": demo.chw_phone, "text": "P 9 \udc00"}]}
    resp = demo.client.post("/api/v1/sms/messages", content=json.dumps(plain), auth=auth,
                            headers={"Content-Type": "application/json"})
    assert resp.status_code == 200, resp.text
    results = resp.json()["results"]
    assert [(r["id"], r["status"], r["error"]) for r in results] == [
        ("j-1", "processed", None), ("j-2", "refused", "invalid_text"), ("j-3", "refused", "invalid_text")]
    _, kept = stored.list_messages(demo.store, EVERYTHING, gateway_user=None, status=None, limit=10, offset=0)
    assert sorted(m.id for m in kept) == ["c-1", "c-4", "j-1"]
