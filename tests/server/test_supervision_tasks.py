"""Supervisor tasks driven by workers' performance (kazi.service.supervisor_tasks) in the task service, on
SQLite and PostgreSQL, with the hand-made history of supervision_history.py and its rule: completion rate
below 70 % over 30 days -> a task for the holders of ``can_supervise`` (the supervisors) about the worker.

Over 2026-10-16 .. 2026-11-15 (NOW), lucy completed none of the one task that came due (task 3 failed on
5 November): rate 0, a task. Mary had no task come due (rate null): none. John completed his: none."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from supervision_history import NOW, ms, program
from supervision_history import load as load_history

from kazi.service.tasks import TaskService
from kazi.store import Store


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def setup(store: Store, tmp_path: Path) -> Iterator[tuple[Store, TaskService, Clock]]:
    load_history(store)
    clock = Clock()
    service = TaskService(store, clock=clock)
    try:
        service.load_program(program(tmp_path / "program"))
        service.process_changes()
        yield store, service, clock
    finally:
        service.close()


def supervisor_docs(store: Store, user: str) -> list[dict[str, Any]]:
    return [d for d in store.task_docs(user) if "~supervisor:" in d["emission"]["_id"]]


def test_a_low_completion_rate_gives_the_supervisors_a_task_about_the_worker(
        setup: tuple[Store, TaskService, Clock]) -> None:
    store, service, clock = setup
    docs = supervisor_docs(store, "nurse")
    # cycles of 30 days from 1970-01-01: 2026-11-15 (day 20,772) lies in the one of days 20,760 .. 20,789
    assert [(d["emission"]["_id"], d["state"], d["owner"]) for d in docs] == [
        ("c-lucy~2026-11-03~supervisor:low_completion", "Ready", "c-lucy")]
    doc = docs[0]
    assert doc["emission"]["title"] == "task.sick_followup" and doc["emission"]["priority"] == 7
    assert (doc["emission"]["startDate"], doc["emission"]["endDate"]) == ("2026-11-03", "2026-12-02")
    action = doc["emission"]["actions"][0]
    assert action["form"] == "followup" and action["content"]["worker"] == "lucy"
    assert action["content"]["value"] == "0" and doc["emission"]["forId"] == "c-lucy"
    # the officer (d1) supervises lucy too; CHWs get none; the task is in the nurse's Tasks list
    assert [d["owner"] for d in supervisor_docs(store, "officer")] == ["c-lucy"]
    assert supervisor_docs(store, "mary") == [] and supervisor_docs(store, "lucy") == []
    nurse = store.users.get("nurse")
    assert [t["emission"]["_id"] for t in service.tasks(nurse).items] == ["c-lucy~2026-11-03~supervisor:low_completion"]

    # a later round that changes nothing leaves it as it is
    clock.now += 60_000
    service.recompute_all()
    assert [(d["_id"], d["state"]) for d in supervisor_docs(store, "nurse")] == [(doc["_id"], "Ready")]

    # the nurse submits the follow-up about lucy: the task resolves
    clock.now += 60_000
    store.write_docs([{"_id": "fu-1", "type": "data_record", "form": "followup", "reported_date": clock.now,
                       "fields": {"patient_uuid": "c-lucy"}, "contact": {"_id": "c-nurse"}}])
    service.refresh_user(nurse)
    done = supervisor_docs(store, "nurse")
    assert [(d["_id"], d["state"]) for d in done] == [(doc["_id"], "Completed")]
    assert service.tasks(nurse).items == []
    # the officer's own task resolves with the same follow-up (a report about lucy, after it appeared)
    service.process_changes()
    assert [d["state"] for d in supervisor_docs(store, "officer")] == ["Completed"]


def test_a_worker_who_improves_has_the_open_task_cancelled(setup: tuple[Store, TaskService, Clock]) -> None:
    store, service, clock = setup
    # lucy completes three tasks: 3 of 4 due, 75 % > 70 %
    store.write_task_docs([
        {"_id": f"task~org.couchdb.user:lucy~late-{i}~x~1", "type": "task", "user": "org.couchdb.user:lucy",
         "authoredOn": ms("2026-11-06T08:00"), "requester": "c-lucy", "owner": "c-lucy",
         "emission": {"_id": f"late-{i}~x~sick.followup", "dueDate": "2026-11-07", "endDate": "2026-11-08"},
         "state": "Completed", "stateHistory": [{"state": "Ready", "timestamp": ms("2026-11-06T08:00")},
                                                {"state": "Completed", "timestamp": ms("2026-11-07T08:00")}]}
        for i in range(3)])
    clock.now += 60_000
    service.recompute_all()
    assert [(d["state"], d.get("stateReason")) for d in supervisor_docs(store, "nurse")] == [("Cancelled", None)]


def test_a_task_not_followed_up_fails_when_its_cycle_ends(setup: tuple[Store, TaskService, Clock]) -> None:
    store, service, clock = setup
    clock.now = ms("2026-12-03T10:00")  # the cycle's window closed on 2026-12-02 (Blantyre)
    service.advance_time()
    states = {d["emission"]["_id"]: d["state"] for d in supervisor_docs(store, "nurse")}
    assert states["c-lucy~2026-11-03~supervisor:low_completion"] == "Failed"
    # the new cycle (from 2026-12-03) re-evaluates lucy over the last 30 days: still 0 %, a new task
    assert states.get("c-lucy~2026-12-03~supervisor:low_completion") == "Ready"
