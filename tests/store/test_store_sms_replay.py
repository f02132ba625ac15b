"""The replay key of an incoming SMS (kazi.store.sms) on SQLite and PostgreSQL: the gateway's message id and
the sender's *number*, so one message delivered as ``+265993...`` and again as ``0993...`` is processed once,
while another phone's message under the same id is its own."""

from __future__ import annotations

import random
from typing import Any

import pytest
import sqlalchemy as sa

from kazi.store import Store
from kazi.store import sms as stored
from kazi.store.schema import sms_messages
from kazi.store.scope import EVERYTHING

PLACES = [{"_id": "hc", "type": "health_center", "name": "HC"}]


def _record(store: Store, sender: str, country: str | None, decided: list[str]) -> stored.StoredMessage:
    def decide(_code: str | None) -> stored.Outcome:
        report = f"rep-{len(decided)}"
        decided.append(report)
        return stored.Outcome(stored.PROCESSED, "ok", [{"_id": report, "type": "data_record", "form": "P"}],
                              report_id=report)

    ids = iter(f"reply-{len(decided)}-{i}" for i in range(10))
    message, _ = stored.record(store, msg_id="m-1", sender=sender, text="P 12 Ann", received_at=1000, sent_at=None,
                               stored_at=2000, gateway="json", gateway_user="gw", reply_gateway="json",
                               reply_state="answered", decide=decide, needs_patient_id=False, rng=random.Random(1),
                               new_id=lambda: next(ids), country_code=country)
    return message


def _kept(store: Store) -> list[Any]:
    with store.engine.connect() as conn:
        return conn.execute(sa.select(sms_messages.c.id, sms_messages.c.sender).order_by(sms_messages.c.seq)).all()


@pytest.mark.parametrize("country", ["265", None])
@pytest.mark.parametrize(("first", "again"), [("+265993000001", "0993 000 001"), ("0993-000-001", "+265993000001"),
                                              ("00265993000001", "+265 993 000 001")])
def test_one_message_from_one_number_however_written_is_processed_once(store: Store, country: str | None,
                                                                       first: str, again: str) -> None:
    store.write_docs(PLACES)
    decided: list[str] = []
    kept = _record(store, first, country, decided)
    assert stored.find_message(store, "m-1", again, country) == stored.find_message(store, "m-1", first, country)
    replayed = _record(store, again, country, decided)
    assert replayed.replayed and replayed.to_dict() == kept.to_dict()  # the first outcome, as the gateway gave it
    assert decided == ["rep-0"] and _kept(store) == [("m-1", first)]
    assert [d["_id"] for d in store.docs_in_scope(EVERYTHING).reports] == ["rep-0"]


def test_the_same_id_from_another_number_is_another_message(store: Store) -> None:
    store.write_docs(PLACES)
    decided: list[str] = []
    _record(store, "+265993000001", "265", decided)
    other = _record(store, "+260993000001", "265", decided)  # same digits, another country's phone
    assert not other.replayed and decided == ["rep-0", "rep-1"]
    assert stored.find_message(store, "m-1", "+265993000002", "265") is None
    # sender names (not numbers) are compared as written
    _record(store, "MPESA", None, decided)
    assert not _record(store, "AIRTEL", None, decided).replayed
    assert _record(store, "MPESA", None, decided).replayed
    assert len(decided) == 4
