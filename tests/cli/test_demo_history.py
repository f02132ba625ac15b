"""The demo's replayed history (kazi/demo/history.py): documents split by local day, and task documents
whose state histories hold the days things happened, on both backends.

Why: the supervisor reports count transitions by month; a demo whose task documents were all computed at one
instant would show a whole year's work in the current month and nothing before.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from kazi.demo.history import day_bounds, replay_start, split_by_day
from kazi.demo.load import load_demo
from kazi.demo.population import DEFAULT_TZ, generate
from kazi.engine.dates import local_date_str, make_local
from kazi.service.tasks import TaskService
from kazi.store import Store

TZ = DEFAULT_TZ
DAY = date(2025, 8, 1)
NOW = int(make_local(DAY.year, DAY.month - 1, DAY.day, 10, tz=TZ))


def test_the_replay_starts_two_weeks_before_the_reports_first_month() -> None:
    assert replay_start(date(2025, 8, 1)) == date(2025, 4, 17)  # 1 May less 14 days
    assert replay_start(date(2025, 2, 10)) == date(2024, 10, 18)  # 1 November of the year before
    assert replay_start(date(2025, 8, 31), months=1, lead_in_days=0) == date(2025, 7, 1)


def test_documents_split_by_local_day() -> None:
    first, end = date(2025, 7, 1), date(2025, 7, 4)
    start_ms, next_ms = day_bounds(first, TZ)
    assert next_ms - start_ms == 86_400_000 and local_date_str(start_ms, TZ) == "2025-07-01"
    end_ms, _ = day_bounds(end, TZ)
    docs: list[dict[str, Any]] = [
        {"_id": "old", "reported_date": start_ms - 1},
        {"_id": "no-date"},
        {"_id": "first-midnight", "reported_date": start_ms},
        {"_id": "first-last-ms", "reported_date": next_ms - 1},
        {"_id": "second", "reported_date": next_ms},
        {"_id": "third-late", "reported_date": end_ms - 1},
        {"_id": "end-day", "reported_date": end_ms},
    ]
    split = split_by_day(docs, first, end, TZ)
    assert [d["_id"] for d in split.before] == ["old", "no-date"]
    assert [(day.isoformat(), [d["_id"] for d in batch]) for day, batch in split.days] == [
        ("2025-07-01", ["first-midnight", "first-last-ms"]), ("2025-07-02", ["second"]),
        ("2025-07-03", ["third-late"])]
    assert [d["_id"] for d in split.after] == ["end-day"]


def _transition_days(docs: list[dict[str, Any]], state: str) -> set[str]:
    return {local_date_str(h["timestamp"], TZ) or "" for d in docs for h in d.get("stateHistory", [])
            if h["state"] == state}


def test_the_demo_chws_task_histories_span_the_replayed_months(store: Store) -> None:
    """Each replayed month has task documents that became Ready, Completed and Failed on many different days,
    and the CHW's account exists; without the replay, every transition is the one instant of "now"."""
    service = TaskService(store, clock=lambda: NOW)
    try:
        users = load_demo(store, service, generate(40, 1, DAY))
        chw = next(u for u in users if "chw" in u.roles)
        docs = store.task_docs(store.users.get(chw.username))
        assert docs and service.clock() == NOW  # the clock is the demo's again
        for state in ("Ready", "Completed", "Failed"):
            days = _transition_days(docs, state)
            for month in ("2025-05", "2025-06", "2025-07"):
                assert any(d.startswith(month) for d in days), (state, month)
        assert len(_transition_days(docs, "Ready") | _transition_days(docs, "Completed")
                   | _transition_days(docs, "Failed")) >= 20  # many days, not one instant
        # tasks completed during the replay are stamped on the day of their visit: most within their window
        # (the reports' "on time"), since most visits are made in time
        closes = [(local_date_str(d["stateHistory"][-1]["timestamp"], TZ) or "", d["emission"]["endDate"])
                for d in docs if d["state"] == "Completed"]
        replayed = [(done, end) for done, end in closes if done < "2025-08-01"]
        assert replayed and 2 * sum(1 for done, end in replayed if done <= end) > len(replayed)
    finally:
        service.close()


def test_without_the_replay_everything_happens_now(store: Store) -> None:
    service = TaskService(store, clock=lambda: NOW)
    try:
        users = load_demo(store, service, generate(40, 1, DAY), history=False)
        chw = next(u for u in users if "chw" in u.roles)
        docs = store.task_docs(store.users.get(chw.username))
        stamps = {h["timestamp"] for d in docs for h in d.get("stateHistory", [])}
        assert stamps == {NOW}
    finally:
        service.close()
