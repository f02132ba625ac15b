"""How rounds work off a backlog of changes."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from kazi.demo import PROGRAM_DIR
from kazi.demo.population import generate
from kazi.service import tasks as task_service
from kazi.service.tasks import TaskService
from kazi.store import Store
from kazi.store import tracking as tr

TZ = "Africa/Blantyre"
NOW = int(datetime(2025, 8, 1, 8, tzinfo=ZoneInfo(TZ)).timestamp() * 1000)


def test_a_round_of_full_recomputes_takes_the_whole_backlog(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """A first import (or a program change) recomputes everyone in full from the store as it is, so the round
    marks every change up to then as processed instead of leaving incremental rounds that would compute the
    same users again; with only some users in full, rounds still take at most CHANGES_PER_ROUND changes."""
    monkeypatch.setattr(task_service, "CHANGES_PER_ROUND", 10)
    monkeypatch.setattr(task_service, "CHANGES_PAGE", 4)
    pop = generate(6, 3, date(2025, 8, 1))
    store.write_docs([*pop.contacts, *pop.reports])
    assert store.last_seq() > 50
    for u in pop.users:
        store.users.create(u["username"], password="password1", roles=u["roles"], facility_id=u["facility_id"],
                           contact_id=u["contact_id"], timezone=TZ)
    service = TaskService(store, clock=lambda: NOW)
    service.load_program(PROGRAM_DIR)
    computed = service.process_changes()
    assert computed == len([u for u in pop.users if u["facility_id"]])
    assert tr.get_state(store, tr.PROCESSED_SEQ) == store.last_seq()
    assert service.process_changes() == 0

    # a backlog with no one due in full is worked off in bounded incremental rounds
    before = tr.get_state(store, tr.PROCESSED_SEQ)
    edited = [{**c, "notes": "edited"} for c in pop.contacts[:30]]
    store.write_docs(edited)
    assert service.process_changes() > 0
    assert tr.get_state(store, tr.PROCESSED_SEQ) == before + 10
    while service.process_changes():
        pass
    assert tr.get_state(store, tr.PROCESSED_SEQ) == store.last_seq()
    service.close()
