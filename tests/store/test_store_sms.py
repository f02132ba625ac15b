"""SMS in the store (kazi.store.sms, migration 0006) on SQLite and PostgreSQL: the phone key column, finding
senders and patients within a place, keeping a message with its documents in one transaction, once."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa

from kazi.store import Store, open_store
from kazi.store import db as store_db
from kazi.store import sms as stored
from kazi.store.schema import docs
from kazi.store.scope import EVERYTHING, Scope

PLACES = [
    {"_id": "hc", "type": "health_center", "name": "HC"},
    {"_id": "area-1", "type": "clinic", "name": "Area 1", "parent": {"_id": "hc"}},
    {"_id": "area-2", "type": "clinic", "name": "Area 2", "parent": {"_id": "hc"}},
]


def person(doc_id: str, area: str, **extra: Any) -> dict[str, Any]:
    return {"_id": doc_id, "type": "person", "name": doc_id, "parent": {"_id": area, "parent": {"_id": "hc"}},
            **extra}


def phone_column(store: Store, doc_id: str) -> str | None:
    with store.engine.begin() as conn:
        value: str | None = conn.scalar(sa.select(docs.c.phone).where(docs.c.id == doc_id))
        return value


def test_contacts_get_their_phone_key_on_every_write(store: Store) -> None:
    store.write_docs([*PLACES, person("ann", "area-1", phone="+265 888-100-001"),
                      {"_id": "r", "type": "data_record", "form": "x", "phone": "0888100001"}])
    assert phone_column(store, "ann") == "888100001"
    assert phone_column(store, "r") is None  # reports are never senders
    store.write_doc(person("ann", "area-1", phone="0999 200 002"))
    assert phone_column(store, "ann") == "999200002"
    assert stored.contacts_by_phone(store, "888100001", EVERYTHING) == []
    store.write_doc(person("ann", "area-1"))
    assert phone_column(store, "ann") is None


def test_senders_and_patients_are_found_within_a_place(store: Store) -> None:
    store.write_docs([*PLACES, person("ann", "area-1", phone="0888100001", patient_id="11111"),
                      person("bea", "area-2", phone="+265888100001", patient_id="22222")])
    found = stored.contacts_by_phone(store, "888100001", EVERYTHING)
    assert [c["_id"] for c in found] == ["ann", "bea"]  # oldest first
    assert [c["_id"] for c in stored.contacts_by_phone(store, "888100001", Scope(places=("area-2",)))] == ["bea"]
    assert stored.contacts_by_phone(store, "888100001", Scope()) == []
    assert stored.patient_by_id(store, "22222", "hc")["_id"] == "bea"  # type: ignore[index]
    assert stored.patient_by_id(store, "22222", "area-1") is None
    assert stored.patient_by_id(store, "33333", None) is None


def _record(store: Store, msg_id: str, decide: Callable[[str | None], stored.Outcome], *,
            needs_code: bool = False, rng: random.Random | None = None) -> tuple[stored.StoredMessage, Any]:
    ids = iter(f"reply-{msg_id}-{i}" for i in range(10))
    return stored.record(store, msg_id=msg_id, sender="+265888100001", text="P 12 Ann", received_at=1000,
                         sent_at=None, stored_at=2000, gateway="json", gateway_user="gw", reply_gateway="json",
                         reply_state="answered", decide=decide, needs_patient_id=needs_code,
                         rng=rng or random.Random(1), new_id=lambda: next(ids))


def test_a_message_its_documents_and_its_reply_are_one_write_made_once(store: Store) -> None:
    store.write_docs(PLACES)
    calls: list[str | None] = []

    def decide(code: str | None) -> stored.Outcome:
        calls.append(code)
        assert code is not None
        return stored.Outcome(stored.PROCESSED, f"registered {code}",
                              [person("new", "area-1", patient_id=code),
                               {"_id": "rep", "type": "data_record", "form": "P", "fields": {"patient_id": code}}],
                              form="P", report_id="rep", patient_id=code)

    message, written = _record(store, "m1", decide, needs_code=True)
    assert [w.id for w in written] == ["new", "rep"] and all(w.changed for w in written)
    code = calls[0]
    assert code is not None and len(code) == 5 and message.patient_id == code
    assert message.reply_text == f"registered {code}" and not message.replayed
    assert store.get_doc("new")["patient_id"] == code
    reply = stored.outgoing(store, message.reply_id or "")
    assert reply is not None and reply["to"] == "+265888100001" and reply["state"] == "answered"
    seq = store.last_seq()

    again, written = _record(store, "m1", decide, needs_code=True)
    assert again.replayed and written == [] and calls == [code] and store.last_seq() == seq
    assert again.to_dict() == message.to_dict()


def test_a_refused_batch_keeps_nothing_of_the_message(store: Store) -> None:
    store.write_docs(PLACES)

    def decide(_code: str | None) -> stored.Outcome:
        return stored.Outcome(stored.PROCESSED, "ok", [{"_id": "_bad"}])

    with pytest.raises(Exception, match="_id"):
        _record(store, "m1", decide)
    assert stored.find_message(store, "m1", "+265888100001") is None


def test_concurrent_deliveries_of_one_message_are_processed_once(store_url: str, store: Store) -> None:
    store.write_docs(PLACES)
    decided: list[int] = []
    lock = threading.Lock()
    results: list[stored.StoredMessage] = []

    def decide(_code: str | None) -> stored.Outcome:
        with lock:
            decided.append(1)
        return stored.Outcome(stored.PROCESSED, "ok", [{"_id": f"rep-{len(decided)}", "type": "data_record",
                                                        "form": "P"}], report_id="rep")

    def deliver() -> None:
        other = open_store(store_url)
        try:
            results.append(_record(other, "same", decide)[0])
        finally:
            other.close()

    threads = [threading.Thread(target=deliver) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(decided) == 1 and sorted(r.replayed for r in results) == [False, True, True, True]
    assert stored.list_messages(store, EVERYTHING, gateway_user=None, status=None, limit=10, offset=0)[0] == 1


def test_new_patient_ids_avoid_every_stored_subject(store: Store) -> None:
    store.write_docs(PLACES)
    rng = random.Random(3)
    first = random.Random(3).randrange(10_000, 100_000)
    store.write_doc(person("taken", "area-1", patient_id=str(first)))
    with store_db.writer(store.engine).begin() as conn:
        code = stored.new_patient_id(conn, rng)
    assert code != str(first) and len(code) == 5


def test_migration_0006_gives_existing_contacts_their_phone_key(empty_url: str) -> None:
    engine = store_db.create_store_engine(store_db.normalize_url(empty_url))
    try:
        store_db.migrate(engine, "0005")
        with store_db.writer(engine).begin() as conn:
            conn.execute(sa.text("INSERT INTO docs (id, rev, seq, kind, type, deleted, body) VALUES "
                                 "('ann', '1-a', 1, 'contact', 'person', false, '{\"phone\": \"+265 888 100 001\"}'),"
                                 "('bob', '1-b', 2, 'contact', 'person', false, '{\"name\": \"Bob\"}'),"
                                 "('rep', '1-c', 3, 'report', 'data_record', false, '{\"phone\": \"0888100001\"}')"))
        store_db.migrate(engine)
        with engine.begin() as conn:
            rows: dict[str, str | None] = dict(conn.execute(sa.text("SELECT id, phone FROM docs ORDER BY id")).all())
        assert rows == {"ann": "888100001", "bob": None, "rep": None}
    finally:
        engine.dispose()


def test_kazi_sms_messages_lists_what_was_kept(store_url: str, store: Store,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from kazi.cli.main import main

    store.write_docs(PLACES)
    _record(store, "m1", lambda _c: stored.Outcome(stored.ERROR, "P: weeks is missing", error="missing_field"))
    _record(store, "m2", lambda _c: stored.Outcome(stored.UNKNOWN_SENDER, "Your number is not registered"))
    capsys.readouterr()
    assert main(["sms", "messages", "--db", store_url, "--status", "error", "--format", "json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["total"] == 1 and [(m["id"], m["error"]) for m in listed["items"]] == [("m1", "missing_field")]
    assert main(["sms", "messages", "--db", store_url]) == 0
    out = capsys.readouterr().out
    assert out.startswith("2 message(s); newest first") and "unknown_sender" in out and "reply: P: weeks" in out
