"""Read-your-writes under a running round: per-user locks, the bounded wait, and the lock-free fast path."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from kazi.demo import PROGRAM_DIR
from kazi.demo.population import generate
from kazi.service import tasks as task_service
from kazi.service.tasks import TaskService
from kazi.store import Store, StoredUser

TZ = "Africa/Blantyre"
NOW = int(datetime(2025, 8, 1, 8, tzinfo=ZoneInfo(TZ)).timestamp() * 1000)


def _setup(store: Store) -> tuple[TaskService, dict[str, StoredUser], dict[str, Any]]:
    pop = generate(6, 3, date(2025, 8, 1))
    store.write_docs([*pop.contacts, *pop.reports])
    users = {}
    for u in pop.users:
        users[u["roles"][0]] = store.users.create(u["username"], password="password1", roles=u["roles"],
                                                  facility_id=u["facility_id"], contact_id=u["contact_id"],
                                                  timezone=TZ)
    service = TaskService(store, clock=lambda: NOW)
    service.load_program(PROGRAM_DIR)
    service.process_changes()
    client = next(c for c in pop.contacts if c.get("type") == "person" and c.get("patient_id") and not c.get("role"))
    return service, users, client


def _missed(supervisor: StoredUser, client: dict[str, Any], rid: str) -> dict[str, Any]:
    return {"_id": rid, "type": "data_record", "form": "missed_appointment", "reported_date": NOW - 3_600_000,
            "contact": {"_id": supervisor.contact_id},
            "fields": {"patient_id": client["patient_id"], "facility_id": supervisor.facility_id,
                       "appointment_date": "2025-07-22", "days_missed": 10}}


def _has_task_for(service: TaskService, user: StoredUser, report_id: str) -> bool:
    return any(str(t["emission_id"]).startswith(report_id) for t in service.tasks(user, limit=1000).items)


@contextlib.contextmanager
def _held_elsewhere(user_id: int) -> Iterator[None]:
    """Another thread (a round of the background worker) holds this user's lock for the duration."""
    held, release = threading.Event(), threading.Event()

    def busy_round() -> None:
        with task_service._USER_LOCKS(user_id):
            held.set()
            release.wait(30)

    t = threading.Thread(target=busy_round)
    t.start()
    try:
        assert held.wait(10)
        yield
    finally:
        release.set()
        t.join()


def test_refresh_does_not_wait_for_another_users_computation(store: Store) -> None:
    """A round busy with another user (their lock held) does not hold up the caller's read-your-writes."""
    service, users, client = _setup(store)
    supervisor, chw = users["site_supervisor"], users["chw"]
    with _held_elsewhere(chw.id):  # a round stuck computing the CHW
        store.write_docs([_missed(supervisor, client, "missed-while-busy")], user=supervisor)
        t0 = time.monotonic()
        service.refresh_user(supervisor)
        assert time.monotonic() - t0 < task_service.REFRESH_WAIT_S
        assert _has_task_for(service, supervisor, "missed-while-busy")
    service.close()


def test_refresh_waits_a_bounded_time_for_the_callers_own_computation(store: Store,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """When a round holds the caller's own lock past the wait, the call answers with what is stored and the
    round (here: the next process_changes) brings the task."""
    monkeypatch.setattr(task_service, "REFRESH_WAIT_S", 0.2)
    service, users, client = _setup(store)
    supervisor = users["site_supervisor"]
    with _held_elsewhere(supervisor.id):
        store.write_docs([_missed(supervisor, client, "missed-while-own-busy")], user=supervisor)
        t0 = time.monotonic()
        service.refresh_user(supervisor)
        waited = time.monotonic() - t0
        assert 0.15 < waited < 2.0
        assert not _has_task_for(service, supervisor, "missed-while-own-busy")
    service.process_changes()
    assert _has_task_for(service, supervisor, "missed-while-own-busy")
    service.close()


def test_refresh_with_nothing_pending_computes_nothing(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fast path: no pending change and the user current today means no lock and no computation; a
    pending change or a new local day takes the slow path."""
    service, users, client = _setup(store)
    supervisor = users["site_supervisor"]
    calls: list[str] = []
    real_incremental, real_full = TaskService._incremental, TaskService._full

    def spy_incremental(self: TaskService, *a: Any, **k: Any) -> int:
        calls.append("incremental")
        return real_incremental(self, *a, **k)

    def spy_full(self: TaskService, *a: Any, **k: Any) -> int:
        calls.append("full")
        return real_full(self, *a, **k)

    monkeypatch.setattr(TaskService, "_incremental", spy_incremental)
    monkeypatch.setattr(TaskService, "_full", spy_full)
    service.refresh_user(supervisor)
    assert calls == []
    store.write_docs([_missed(supervisor, client, "missed-fast-path")], user=supervisor)
    service.refresh_user(supervisor)
    assert calls == ["incremental"]
    assert _has_task_for(service, supervisor, "missed-fast-path")
    service.process_changes()  # the other users; the supervisor again (idempotent)
    calls.clear()
    service.refresh_user(supervisor)
    assert calls == []
    service.clock = lambda: NOW + 86_400_000  # the next local day: the midnight full recompute
    service.refresh_user(supervisor)
    assert calls == ["full"]
    service.close()


def test_pending_changes_are_computed_once_and_only_for_those_they_concern(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """Between two rounds, a write leaves changes pending for everyone's reads: the supervisor it concerns is
    computed once (their next read is free), and a user of another place is not computed at all."""
    service, users, client = _setup(store)
    supervisor = users["site_supervisor"]
    outsider = store.users.create("outsider", password="password1", roles=["chw"], facility_id=None, timezone=TZ)
    other_place = {"_id": "elsewhere", "type": "health_center", "name": "Elsewhere"}
    store.write_docs([other_place])
    store.users.update("outsider", facility_id="elsewhere")
    outsider = store.users.get("outsider")
    service.process_changes()
    calls: list[tuple[str, str]] = []
    real_incremental, real_full = TaskService._incremental, TaskService._full

    def spy_incremental(self: TaskService, loaded: Any, user: StoredUser, *a: Any, **k: Any) -> int:
        calls.append(("incremental", user.username))
        return real_incremental(self, loaded, user, *a, **k)

    def spy_full(self: TaskService, loaded: Any, user: StoredUser, *a: Any, **k: Any) -> int:
        calls.append(("full", user.username))
        return real_full(self, loaded, user, *a, **k)

    monkeypatch.setattr(TaskService, "_incremental", spy_incremental)
    monkeypatch.setattr(TaskService, "_full", spy_full)
    store.write_docs([_missed(supervisor, client, "missed-once")], user=supervisor)
    service.refresh_user(outsider)
    service.refresh_user(supervisor)
    service.refresh_user(supervisor)
    service.refresh_user(outsider)
    assert calls == [("incremental", supervisor.username)]
    assert _has_task_for(service, supervisor, "missed-once")
    store.write_docs([_missed(supervisor, client, "missed-twice")], user=supervisor)
    service.refresh_user(supervisor)
    assert calls == [("incremental", supervisor.username)] * 2
    assert _has_task_for(service, supervisor, "missed-twice")
    service.close()


def test_two_processes_computing_one_user_leave_one_task_per_emission(store: Store,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Another process (a second service) computes and stores the same user between this one's read and
    write: the write is refused, this computation runs again from what is stored, and the new emission has one
    task document, not two."""
    ticks = iter(range(NOW, NOW + 10_000_000, 1000))  # a running clock: each computation gets its own task ids

    def clock() -> int:
        return next(ticks)

    service, users, client = _setup(store)
    supervisor = users["site_supervisor"]
    service.clock = clock
    other = TaskService(store, clock=clock)  # "the worker process"
    real_compute = task_service.compute
    raced = {"done": False}

    def racing_compute(*args: Any, **kwargs: Any) -> Any:
        result = real_compute(*args, **kwargs)
        if not raced["done"]:
            raced["done"] = True
            other.process_changes()  # stores the supervisor's new task before this computation writes
        return result

    monkeypatch.setattr(task_service, "compute", racing_compute)
    store.write_docs([_missed(supervisor, client, "missed-raced")], user=supervisor)
    service.refresh_user(supervisor)
    assert raced["done"]
    docs = [d for d in store.task_docs(supervisor) if str(d.get("emission", {}).get("_id", "")).startswith(
        "missed-raced")]
    assert len(docs) == 1, [(d["_id"], d["state"]) for d in docs]
    assert docs[0]["state"] == "Ready"
    other.close()
    service.close()


def test_requests_arriving_together_at_a_fresh_server_build_the_program_once(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """A server just started has no program in memory: the first requests each asked for it at once, each built
    one (a V8 context apiece), and the contexts the race dropped crashed the process. One thread builds it."""
    first, _users, _client = _setup(store)
    first.close()
    fresh = TaskService(store, clock=lambda: NOW)  # another process's view of the same store
    built: list[int] = []
    materialize = task_service._materialize

    def counted(*args: Any, **kwargs: Any) -> Any:
        built.append(1)
        time.sleep(0.05)  # widen the window the race needs
        return materialize(*args, **kwargs)

    monkeypatch.setattr(task_service, "_materialize", counted)
    barrier = threading.Barrier(8)
    seen: list[Any] = []

    def ask() -> None:
        barrier.wait()
        seen.append(fresh.program())

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    try:
        assert len(built) == 1 and len(seen) == 8 and all(p is seen[0] for p in seen) and seen[0] is not None
    finally:
        fresh.close()
