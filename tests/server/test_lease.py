"""Several server processes on one store run one background worker between them: the store's worker lease
(kazi.store.lease) lets one worker compute while the others stand by, and a standby takes over when the
holder stops. On SQLite and PostgreSQL (each worker has its own store connection, as another process would)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import date, datetime
from zoneinfo import ZoneInfo

from kazi.demo import PROGRAM_DIR
from kazi.demo.population import generate
from kazi.service.tasks import TaskService
from kazi.service.worker import BackgroundWorker
from kazi.store import Store
from kazi.store import tracking as tr
from kazi.store.lease import open_lease

TZ = "Africa/Blantyre"
NOW = int(datetime(2025, 8, 1, 8, tzinfo=ZoneInfo(TZ)).timestamp() * 1000)


def _wait(condition: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_lease_has_one_holder_at_a_time(store: Store, make_store: Callable[[], Store]) -> None:
    first, second = open_lease(store), open_lease(make_store())
    assert first.try_acquire()
    assert first.try_acquire()  # holding it: asking again is cheap and true
    assert not second.try_acquire()
    other_name = open_lease(store, "something-else")
    assert other_name.try_acquire()  # leases of other names are independent
    first.release()
    assert second.try_acquire()
    assert not first.try_acquire()
    second.release()
    second.release()  # harmless when not held
    other_name.release()


def test_two_workers_on_one_store_compute_one_at_a_time(store: Store) -> None:
    pop = generate(6, 3, date(2025, 8, 1))
    store.write_docs([*pop.contacts, *pop.reports])
    for u in pop.users:
        store.users.create(u["username"], password="password1", roles=u["roles"], facility_id=u["facility_id"],
                           contact_id=u["contact_id"], timezone=TZ)
    service = TaskService(store, clock=lambda: NOW)
    service.load_program(PROGRAM_DIR)
    workers = [BackgroundWorker(service, interval_s=0.02), BackgroundWorker(service, interval_s=0.02)]
    for w in workers:
        w.start()
    try:
        _wait(lambda: all(w.rounds + w.standby_rounds >= 5 for w in workers))
        holders = [w for w in workers if w.rounds]
        assert len(holders) == 1, [(w.rounds, w.standby_rounds) for w in workers]
        holder, standby = holders[0], next(w for w in workers if w is not holders[0])
        assert holder.holding and not standby.holding and standby.standby_rounds >= 5
        _wait(lambda: tr.get_state(store, tr.PROCESSED_SEQ) == store.last_seq())
        assert len(tr.task_user_states(store)) == len(pop.users)

        # the holder stops (a server shut down): the standby takes the lease and follows new writes
        holder.stop()
        _wait(lambda: standby.rounds > 0)
        assert standby.holding and standby.last_error is None
        store.write_doc({**pop.contacts[-1], "name": "renamed"})
        _wait(lambda: tr.get_state(store, tr.PROCESSED_SEQ) == store.last_seq())
    finally:
        for w in workers:
            w.stop()
        service.close()
    after = open_lease(store)
    assert after.try_acquire()  # the last one gave it up on stop
    after.release()  # (a lease left held would block the next test on the shared PostgreSQL database)


def test_only_the_holder_does_maintenance_at_most_once_per_period(store: Store) -> None:
    service = TaskService(store, clock=lambda: NOW)
    calls: list[str] = []
    hourly = BackgroundWorker(service, interval_s=0.01, maintenance=lambda: calls.append("hourly"))
    often = BackgroundWorker(service, interval_s=0.01, maintenance=lambda: calls.append("often"),
                             maintenance_every_s=0.0)
    hourly.start()
    try:
        _wait(lambda: hourly.rounds >= 5)
        assert calls == ["hourly"]  # once in its first round, not again within the hour
        often.start()  # stands by while `hourly` holds the lease: no maintenance
        _wait(lambda: often.standby_rounds >= 5)
        assert calls == ["hourly"]
        hourly.stop()
        _wait(lambda: often.rounds >= 3)
        assert calls.count("often") >= 3 and often.maintenance_runs == calls.count("often")
    finally:
        hourly.stop()
        often.stop()
        service.close()
