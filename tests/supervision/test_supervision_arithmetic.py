"""The report's arithmetic (kazi.supervision.report) and the supervisor tasks' emissions
(kazi.supervision.tasks): pure, with values worked out by hand."""

from __future__ import annotations

from datetime import date

import pytest

from kazi.engine import taskdocs
from kazi.supervision import report as rep
from kazi.supervision.definitions import Indicator, SupervisorTask, parse_supervision
from kazi.supervision.tasks import Worker, cycle_start, emissions

DAY = 86_400_000


def test_quantiles_interpolate_linearly_like_numpys_default() -> None:
    values = [1.0, 2.0, 4.0, 10.0]
    # positions p * (n - 1): 0.75 -> 1 + 0.75, 1.5 -> 2 + 0.5 * 2, 2.25 -> 4 + 0.25 * 6
    assert rep.quantile(values, 0.25) == pytest.approx(1.75)
    assert rep.quantile(values, 0.5) == pytest.approx(3.0)
    assert rep.quantile(values, 0.75) == pytest.approx(5.5)
    assert rep.quantile([7.0], 0.25) == 7.0 and rep.quantile([], 0.5) is None


def test_ranking_best_first_ties_shared_nulls_last() -> None:
    ind = Indicator("x", "X", "tasks", True, states=("completed",))
    out = rep.comparison(ind, {"b": 3.0, "a": 5.0, "c": 3.0, "d": None, "e": 1.0})
    assert [(r["user"], r["rank"]) for r in out["ranking"]] == [("a", 1), ("b", 2), ("c", 2), ("e", 4), ("d", 5)]
    assert (out["median"], out["q1"], out["q3"]) == (3.0, 2.5, 3.5)
    worse = rep.comparison(Indicator("f", "F", "tasks", False, states=("failed",)), {"a": 5.0, "e": 1.0, "d": None})
    assert [r["user"] for r in worse["ranking"]] == ["e", "a", "d"]


def test_rates_and_team_values() -> None:
    sup, _ = parse_supervision({"supervision": {"indicators": [
        {"id": "done", "label": "d", "tasks": {"states": ["completed"]}},
        {"id": "due", "label": "u", "tasks": {"states": ["completed", "failed"]}},
        {"id": "rate", "label": "r", "rate": {"numerator": "done", "denominator": "due"}}]}}, "s.json")
    values = rep.values_of(sup, {"done": {"m": 1, "total": 3}, "due": {"m": 2, "total": 4}}, ["m", "n", "total"])
    assert values == {"done": {"m": 1, "n": 0, "total": 3}, "due": {"m": 2, "n": 0, "total": 4},
                      "rate": {"m": 0.5, "n": None, "total": 0.75}}


def test_months_are_the_callers_local_months() -> None:
    now = 1_794_736_800_000  # 2026-11-15 10:00 UTC
    start, end = rep.default_months(now, "Africa/Blantyre")
    assert (start, end) == (date(2026, 8, 1), date(2026, 11, 1))
    months = rep.periods(start, end, now, "Africa/Blantyre")
    assert [(p.key, p.partial) for p in months] == [("2026-08", False), ("2026-09", False), ("2026-10", False),
                                                    ("2026-11", True)]
    # local midnight of 1 August in Blantyre is 22:00 UTC the day before
    assert months[0].start_ms == 1_785_535_200_000 and months[0].end_ms == months[1].start_ms
    # on 1 January at 01:00 in Blantyre, UTC still says 31 December
    new_year = 1_798_758_000_000  # 2026-12-31 23:00 UTC
    assert rep.default_months(new_year, "Africa/Blantyre") == (date(2026, 10, 1), date(2027, 1, 1))
    assert rep.default_months(new_year, "UTC") == (date(2026, 9, 1), date(2026, 12, 1))
    with pytest.raises(ValueError):
        rep.periods(date(2025, 1, 1), date(2026, 6, 1), now, "UTC")
    with pytest.raises(ValueError):
        rep.parse_month("2026-1")


def test_on_time_is_judged_on_the_local_day() -> None:
    late_evening = 1_790_033_400_000  # 2026-09-21 23:30 UTC: the 22nd in Blantyre
    assert rep.completed_on_time(late_evening, "2026-09-21", "UTC")
    assert not rep.completed_on_time(late_evening, "2026-09-21", "Africa/Blantyre")
    assert not rep.completed_on_time(None, "2026-09-21", "UTC") and not rep.completed_on_time(1, None, "UTC")


RULE = SupervisorTask("low", "rate", None, 0.6, 30, "can_supervise", "title.low", "follow_up", 5, "high", "act")


def test_emissions_for_workers_past_the_threshold() -> None:
    now = 1_794_736_800_000  # 2026-11-15 10:00 UTC; the 30-day cycle began 2026-11-03
    assert cycle_start(date(2026, 11, 15), 30) == date(2026, 11, 3)
    workers = {"low": [Worker("mary", "c-mary", "Mary", {"rate": 0.5}), Worker("lucy", "c-lucy", None, {"rate": 0.6}),
                       Worker("john", "c-john", "John", {"rate": None})]}
    out = emissions([RULE], workers, {}, [], now_ms=now, tz="UTC")
    assert [e["_id"] for e in out] == ["c-mary~2026-11-03~supervisor:low"]
    e = out[0]
    assert (e["requester"], e["contact"], e["dueDate"], e["readyEnd"], e["resolved"], e["priority"],
            e["priorityLabel"]) == ("c-mary", {"_id": "c-mary", "name": "Mary"}, "2026-11-03", 29, False, 5, "high")
    assert e["actions"] == [{"type": "report", "form": "follow_up", "label": "act", "content": {
        "source": "task", "source_id": "c-mary", "worker": "mary", "indicator": "rate", "value": "0.5",
        "contact": "c-mary"}}]
    # through the engine's refresh: a Ready task document, its window the cycle
    doc = taskdocs.refresh(out, [], "org.couchdb.user:nurse", now, "UTC").writes[0]
    assert (doc["state"], doc["emission"]["startDate"], doc["emission"]["endDate"]) == \
        ("Ready", "2026-11-03", "2026-12-02")
    # a follow-up before the task appeared does not resolve it; one after it does
    before = {"c-mary": [("follow_up", doc["authoredOn"] - 1), ("other_form", now + 5)]}
    assert not emissions([RULE], workers, before, [doc], now_ms=now + 10, tz="UTC")[0]["resolved"]
    after = {"c-mary": [("follow_up", doc["authoredOn"] + 1)]}
    resolved = emissions([RULE], workers, after, [doc], now_ms=now + 10, tz="UTC")
    assert resolved[0]["resolved"]
    assert taskdocs.refresh(resolved, [doc], "org.couchdb.user:nurse", now + 10, "UTC").writes[0]["state"] == \
        "Completed"
