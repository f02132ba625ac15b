"""Unit tests for kazi.engine.taskdocs: CHT's rules-engine task documents, states, refresh round and sort."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from kazi.engine.dates import make_local
from kazi.engine.taskdocs import (
    CANCELLED,
    COMPLETED,
    DRAFT,
    FAILED,
    READY,
    Window,
    calculate_state,
    display_window,
    is_terminal,
    is_timely,
    minify,
    refresh,
    sort_for_tasks_tab,
    task_doc_id,
    update_temporal_states,
)

ZONES = ["Africa/Nairobi", "America/New_York", "Pacific/Auckland"]
USER = "org.couchdb.user:u"


def at(tz: str, y: int, m: int, d: int, hh: int = 0, mi: int = 0, ss: int = 0, ms: int = 0) -> int:
    """Epoch ms of a local wall time (month 1-12)."""
    return int(make_local(y, m - 1, d, hh, mi, ss, ms, tz=tz))


def em(
    eid: str = "r1~e~t",
    due: int | None = None,
    *,
    start: Any = 0,
    end: Any = 0,
    resolved: bool = False,
    deleted: bool = False,
    requester: str | None = "p1",
    contact: dict[str, Any] | None = None,
    title: str = "task.t",
    **extra: Any,
) -> dict[str, Any]:
    """An internal emission (docs/architecture.md) with a due instant ``due``."""
    out: dict[str, Any] = {
        "_id": eid,
        "requester": requester,
        "contact": {"_id": "p1", "name": "Pat"} if contact is None else contact,
        "title": title,
        "icon": "icon-t",
        "dueDate": None,
        "dueDateMs": due,
        "readyStart": start,
        "readyEnd": end,
        "resolved": resolved,
        "deleted": deleted,
        "actions": [
            {
                "type": "report",
                "form": "f",
                "label": "Follow up",
                "content": {"source": "task", "source_id": "r1", "contact": "p1"},
            }
        ],
        "_k_resolved_raw": resolved,
    }
    out.update(extra)
    return out


def stored(start: Any, end: Any, due: Any = None, **extra: Any) -> dict[str, Any]:
    """A stored (minified) emission with its display window."""
    return {
        "_id": "x",
        "deleted": False,
        "resolved": False,
        "dueDate": due or start,
        "startDate": start,
        "endDate": end,
        **extra,
    }


# ------------------------------------------------------------------------------------------------
# display window


@pytest.mark.parametrize("tz", ZONES)
def test_window_is_due_minus_start_plus_end_local_days(tz: str) -> None:
    w = display_window(em(due=at(tz, 2024, 6, 18, 15), start=3, end=2), tz)
    assert w == Window("2024-06-18", "2024-06-15", "2024-06-20")


@pytest.mark.parametrize(
    ("tz", "due", "start", "end", "expected"),
    [
        # New York springs forward on 2025-03-09: calendar days, not 24 h steps.
        ("America/New_York", (2025, 3, 10, 0, 0), 1, 0, ("2025-03-10", "2025-03-09", "2025-03-10")),
        ("America/New_York", (2025, 3, 8, 0, 0), 0, 1, ("2025-03-08", "2025-03-08", "2025-03-09")),
        ("America/New_York", (2025, 11, 2, 23, 30), 0, 1, ("2025-11-02", "2025-11-02", "2025-11-03")),
        # Auckland: DST ends 2025-04-06, starts 2025-09-28.
        ("Pacific/Auckland", (2025, 4, 7, 0, 0), 2, 0, ("2025-04-07", "2025-04-05", "2025-04-07")),
        ("Pacific/Auckland", (2025, 9, 27, 0, 0), 0, 2, ("2025-09-27", "2025-09-27", "2025-09-29")),
        ("Africa/Nairobi", (2025, 12, 31, 23, 59), 0, 1, ("2025-12-31", "2025-12-31", "2026-01-01")),
        # Sao Paulo skipped 00:00-01:00 on 2018-11-04: setDate lands in the gap, the date stays.
        ("America/Sao_Paulo", (2018, 11, 5, 0, 0), 1, 0, ("2018-11-05", "2018-11-04", "2018-11-05")),
        # Apia skipped 2011-12-30 entirely: moment's setDate(30) shows 12-31 (a string shift would say 12-30).
        ("Pacific/Apia", (2011, 12, 31, 10, 0), 1, 0, ("2011-12-31", "2011-12-31", "2011-12-31")),
    ],
)
def test_window_across_dst_and_gaps(
    tz: str, due: tuple[int, ...], start: int, end: int, expected: tuple[str, str, str]
) -> None:
    assert display_window(em(due=at(tz, *due), start=start, end=end), tz) == Window(*expected)


@pytest.mark.parametrize(
    ("days", "shift"),
    [(1.5, 2), (2.5, 3), (0.4, 0), (0.5, 1), ("3", 3), (None, 0), (float("nan"), 0), ("x", 0)],
)
def test_window_rounds_fractional_days_half_away_from_zero(days: Any, shift: int) -> None:
    tz = "Africa/Nairobi"
    w = display_window(em(due=at(tz, 2025, 1, 10), start=days, end=days), tz)
    assert w is not None
    assert w.start == f"2025-01-{10 - shift:02d}"
    assert w.end == f"2025-01-{10 + shift:02d}"


def test_window_negative_days_round_half_away_from_zero() -> None:
    tz = "Africa/Nairobi"
    assert display_window(em(due=at(tz, 2025, 1, 10), start=0, end=-1.5), tz) == Window(
        "2025-01-10", "2025-01-10", "2025-01-08"
    )


def test_window_invalid_due_date_is_none() -> None:
    assert display_window(em(due=None), "Africa/Nairobi") is None
    assert display_window(em(due=float("nan")), "Africa/Nairobi") is None  # type: ignore[arg-type]


def test_window_of_stored_emission_is_reused_as_is() -> None:
    # No zone arithmetic: the strings stored in the doc are the window, whatever the zone.
    e = stored("2025-01-01", "2025-01-05", due="2025-01-03", dueDateMs=0, readyStart=9)
    assert display_window(e, "Pacific/Auckland") == Window("2025-01-03", "2025-01-01", "2025-01-05")


# ------------------------------------------------------------------------------------------------
# calculateState


@pytest.mark.parametrize("tz", ZONES)
@pytest.mark.parametrize("hh_mm", [(0, 0), (10, 0), (23, 59)])
@pytest.mark.parametrize(
    ("due_day", "start", "end", "state"),
    [
        (18, 3, 0, READY),  # start 06-15 = today
        (19, 3, 0, DRAFT),  # start 06-16 > today
        (14, 0, 1, READY),  # end 06-15 = today
        (13, 0, 1, FAILED),  # end 06-14 < today
        (15, 0, 0, READY),  # zero-length window today
    ],
)
def test_state_boundaries(
    tz: str, hh_mm: tuple[int, int], due_day: int, start: int, end: int, state: str
) -> None:
    ts = at(tz, 2024, 6, 15, *hh_mm)
    assert calculate_state(em(due=at(tz, 2024, 6, due_day, 9), start=start, end=end), ts, tz) == state


@pytest.mark.parametrize("tz", ZONES)
def test_state_flips_exactly_at_local_midnight(tz: str) -> None:
    e = em(due=at(tz, 2024, 6, 16, 12), start=0, end=0)
    midnight = at(tz, 2024, 6, 16)
    assert calculate_state(e, midnight - 1, tz) == DRAFT
    assert calculate_state(e, midnight, tz) == READY
    next_midnight = at(tz, 2024, 6, 17)
    assert calculate_state(e, next_midnight - 1, tz) == READY
    assert calculate_state(e, next_midnight, tz) == FAILED


def test_state_across_new_york_dst() -> None:
    tz = "America/New_York"
    # Window 2025-03-09 (23-hour day) .. 2025-03-10.
    e = em(due=at(tz, 2025, 3, 10), start=1, end=0)
    assert calculate_state(e, at(tz, 2025, 3, 8, 23, 59, 59, 999), tz) == DRAFT
    assert calculate_state(e, at(tz, 2025, 3, 9), tz) == READY
    assert calculate_state(e, at(tz, 2025, 3, 10, 23, 59), tz) == READY
    assert calculate_state(e, at(tz, 2025, 3, 11), tz) == FAILED


def test_state_order_of_rules() -> None:
    tz = "Africa/Nairobi"
    ts = at(tz, 2024, 6, 15, 10)
    future = at(tz, 2025, 1, 1)
    assert calculate_state(None, ts, tz) is None
    assert calculate_state({}, ts, tz) is None
    # resolved wins over deleted, and over the window (even a future task is Completed).
    assert calculate_state(em(due=future, resolved=True, deleted=True), ts, tz) == COMPLETED
    assert calculate_state(em(due=None, resolved=True), ts, tz) == COMPLETED
    assert calculate_state(em(due=future, deleted=True), ts, tz) == CANCELLED
    assert calculate_state(em(due=None, deleted=True), ts, tz) == CANCELLED
    # no date -> invalid
    assert calculate_state(em(due=None), ts, tz) is None
    # start after end -> invalid
    assert calculate_state(em(due=ts, start=0, end=-1), ts, tz) is None


def test_state_of_stored_emission_uses_raw_resolved_truthiness() -> None:
    tz = "Africa/Nairobi"
    ts = at(tz, 2024, 6, 15, 10)
    base = stored("2024-06-15", "2024-06-16")
    falsy: tuple[Any, ...] = (None, False, 0, "", float("nan"))
    truthy: tuple[Any, ...] = (1, "x", [], {}, True, 1718000000000)  # JavaScript: [] and {} are truthy
    for raw in falsy:
        assert calculate_state({**base, "resolved": raw}, ts, tz) == READY
    for raw in truthy:
        assert calculate_state({**base, "resolved": raw}, ts, tz) == COMPLETED
    assert calculate_state({**base, "deleted": []}, ts, tz) == CANCELLED
    assert calculate_state({**base, "dueDate": None}, ts, tz) is None  # neither date nor dueDate
    assert calculate_state(stored("2024-06-17", "2024-06-16"), ts, tz) is None
    assert calculate_state(stored("2024-06-16", None), ts, tz) is None  # malformed stored window


def test_terminal_states() -> None:
    assert [s for s in (READY, DRAFT, COMPLETED, FAILED, CANCELLED, None, "x") if is_terminal(s)] == [
        COMPLETED,
        FAILED,
        CANCELLED,
    ]


# ------------------------------------------------------------------------------------------------
# timeliness: 60 days past, 180 days future


def _window_em(tz: str, start: tuple[int, int, int], end: tuple[int, int, int]) -> dict[str, Any]:
    return stored(f"{start[0]}-{start[1]:02d}-{start[2]:02d}", f"{end[0]}-{end[1]:02d}-{end[2]:02d}")


@pytest.mark.parametrize("tz", ZONES)
def test_timely_vectors_mid_morning(tz: str) -> None:
    ts = at(tz, 2024, 6, 15, 10)
    day = (2024, 6, 15)
    assert not is_timely(_window_em(tz, (2024, 4, 1), (2024, 4, 16)), ts, tz)
    assert is_timely(_window_em(tz, (2024, 4, 1), (2024, 4, 17)), ts, tz)
    assert is_timely(_window_em(tz, (2024, 12, 12), (2024, 12, 20)), ts, tz)
    assert not is_timely(_window_em(tz, (2024, 12, 13), (2024, 12, 20)), ts, tz)
    assert is_timely(_window_em(tz, day, day), ts, tz)


@pytest.mark.parametrize("tz", ZONES)
def test_timely_vectors_from_computed_windows(tz: str) -> None:
    ts = at(tz, 2024, 6, 15, 10)
    assert not is_timely(em(due=at(tz, 2024, 4, 14, 18), end=2), ts, tz)  # ends 04-16
    assert is_timely(em(due=at(tz, 2024, 4, 14, 18), end=3), ts, tz)  # ends 04-17
    assert is_timely(em(due=at(tz, 2024, 12, 14, 8), start=2), ts, tz)  # starts 12-12
    assert not is_timely(em(due=at(tz, 2024, 12, 14, 8), start=1), ts, tz)  # starts 12-13
    assert not is_timely(em(due=None), ts, tz)


@pytest.mark.parametrize("tz", ZONES)
def test_timely_at_midnight_limits_are_exclusive(tz: str) -> None:
    ts = at(tz, 2024, 6, 15)
    assert not is_timely(_window_em(tz, (2024, 4, 1), (2024, 4, 16)), ts, tz)  # earliest == end midnight
    assert is_timely(_window_em(tz, (2024, 4, 1), (2024, 4, 17)), ts, tz)
    assert not is_timely(_window_em(tz, (2024, 12, 12), (2024, 12, 20)), ts, tz)  # latest == start midnight
    assert is_timely(_window_em(tz, (2024, 12, 11), (2024, 12, 20)), ts, tz)


def test_timely_days_are_local_calendar_days_across_dst() -> None:
    # New York, 00:30 the day after spring-forward: 60 calendar days back is 2025-01-09 00:30 EST, while
    # 60 x 24 h would be 2025-01-08 23:30 EST, before the 01-09 midnight.
    tz = "America/New_York"
    ts = at(tz, 2025, 3, 10, 0, 30)
    assert not is_timely(_window_em(tz, (2025, 1, 1), (2025, 1, 9)), ts, tz)
    assert is_timely(_window_em(tz, (2025, 1, 1), (2025, 1, 10)), ts, tz)
    # Auckland, 23:30 on 2025-04-05 (NZDT); +180 calendar days = 2025-10-02 23:30 NZDT.
    tz = "Pacific/Auckland"
    ts = at(tz, 2025, 4, 5, 23, 30)
    assert is_timely(_window_em(tz, (2025, 10, 2), (2025, 10, 9)), ts, tz)
    assert not is_timely(_window_em(tz, (2025, 10, 3), (2025, 10, 9)), ts, tz)


def test_timely_unparsable_stored_dates() -> None:
    tz = "Africa/Nairobi"
    ts = at(tz, 2024, 6, 15)
    assert not is_timely(stored("2024-06-15", "nope"), ts, tz)
    assert not is_timely(stored(None, None), ts, tz)


# ------------------------------------------------------------------------------------------------
# minified emission and doc ids


def test_minify_keeps_only_stored_members() -> None:
    tz = "Africa/Nairobi"
    e = em(
        due=at(tz, 2025, 1, 10, 9),
        start=2,
        end=3,
        priority=5,
        priorityLabel="high",
        _k_other="x",
        resolved=True,
    )
    e["_k_resolved_raw"] = 1736400000000
    e["actions"] = [
        {"type": "report", "form": "a", "label": "A", "content": {"source": "task"}},
        {"type": "report", "form": "b", "label": "B", "content": {"contact": "p1", "x": 1}},
        {"type": "contact", "label": "C", "content": {"contact": "p2"}},
        {"type": "report", "form": "d", "label": "D"},
    ]
    before = copy.deepcopy(e)
    m = minify(e, tz)
    assert m == {
        "_id": "r1~e~t",
        "title": "task.t",
        "icon": "icon-t",
        "deleted": False,
        "resolved": 1736400000000,
        "priority": 5,
        "priorityLabel": "high",
        "contact": {"name": "Pat"},
        "dueDate": "2025-01-10",
        "startDate": "2025-01-08",
        "endDate": "2025-01-13",
        "forId": "p1",
        "actions": [
            {"type": "report", "form": "a", "label": "A", "content": {"source": "task"}},
            {"type": "report", "form": "b", "label": "B", "content": {"x": 1}},
            {"type": "contact", "label": "C", "content": {}},
            {"type": "report", "form": "d", "label": "D"},
        ],
    }
    assert e == before  # input untouched


def test_minify_contact_variants_and_absent_members() -> None:
    tz = "Africa/Nairobi"
    headless = em(due=at(tz, 2025, 1, 10), contact={"_id": "77777"})
    assert minify(headless, tz)["contact"] == {}
    labelled = em(due=at(tz, 2025, 1, 10), contact={"name": "Ward 3"})
    assert minify(labelled, tz)["contact"] == {"name": "Ward 3"}
    none = em(due=at(tz, 2025, 1, 10), contact=None)
    none["contact"] = None
    none["actions"] = [{"type": "report", "form": "f", "label": "L", "content": {"source": "task"}}]
    m = minify(none, tz)
    assert "contact" not in m and "forId" not in m
    # resolvedIf returned undefined: no `resolved` at all; raw null kept as null.
    undefined = em(due=at(tz, 2025, 1, 10))
    del undefined["_k_resolved_raw"]
    del undefined["icon"]
    m = minify(undefined, tz)
    assert "resolved" not in m and "icon" not in m
    assert minify({**undefined, "_k_resolved_raw": None}, tz)["resolved"] is None
    assert not any(k.startswith("_k_") for k in m)
    assert not {"requester", "dueDateMs", "readyStart", "readyEnd"} & set(m)


def test_task_doc_id() -> None:
    assert (
        task_doc_id("org.couchdb.user:u", "r~e~n", 1718434800000)
        == "task~org.couchdb.user:u~r~e~n~1718434800000"
    )
    assert task_doc_id("org.couchdb.user:u", "r~e~n", 1718434800000.0).endswith("~1718434800000")
    with pytest.raises(ValueError):
        task_doc_id("u", "r", 1.5)


# ------------------------------------------------------------------------------------------------
# the refresh round (refreshRulesEmissions) and the emission -> doc rules

NAIROBI = "Africa/Nairobi"
T1 = at(NAIROBI, 2025, 5, 5, 12)
T2 = at(NAIROBI, 2025, 5, 6, 12)
DUE = at(NAIROBI, 2025, 5, 6)  # window 05-04 .. 05-09 with start 2 / end 3


def _round(emissions: list[dict[str, Any]], docs: list[dict[str, Any]], ts: int, tz: str = NAIROBI) -> Any:
    frozen = copy.deepcopy(docs)
    result = refresh(emissions, docs, USER, ts, tz)
    assert docs == frozen, "input docs must not be mutated"
    return result


def _one(result_docs: list[dict[str, Any]], eid: str = "r1~e~t") -> list[dict[str, Any]]:
    return [d for d in result_docs if d["emission"]["_id"] == eid]


def test_new_doc_shape() -> None:
    result = _round([em(due=DUE, start=2, end=3)], [], T1)
    assert result.writes == result.docs
    (doc,) = result.docs
    assert doc == {
        "_id": f"task~{USER}~r1~e~t~{T1}",
        "type": "task",
        "authoredOn": T1,
        "state": READY,
        "stateHistory": [{"state": READY, "timestamp": T1}],
        "user": USER,
        "requester": "p1",
        "owner": "p1",
        "emission": minify(em(due=DUE, start=2, end=3), NAIROBI),
    }


def test_new_doc_for_deleted_or_invalid_emission_is_not_written() -> None:
    for e in (em(due=DUE, deleted=True), em(due=DUE, end=-5)):
        result = _round([e], [], T1)
        assert result.writes == [] and result.docs == []


def test_ready_doc_then_resolved_same_doc_history_appended() -> None:
    first = _round([em(due=DUE, start=2, end=3)], [], T1).docs
    result = _round([em(due=DUE, start=2, end=3, resolved=True)], first, T2)
    (doc,) = result.writes
    assert doc["_id"] == first[0]["_id"]
    assert doc["state"] == COMPLETED
    assert doc["stateHistory"] == [{"state": READY, "timestamp": T1}, {"state": COMPLETED, "timestamp": T2}]
    assert doc["emission"]["resolved"] is True
    assert result.docs == [doc]


def test_completed_doc_then_unresolved_creates_new_ready_doc() -> None:
    first = _round([em(due=DUE, start=2, end=3, resolved=True)], [], T1).docs
    assert first[0]["state"] == COMPLETED
    result = _round([em(due=DUE, start=2, end=3)], first, T2)
    (new,) = result.writes
    assert new["_id"] == f"task~{USER}~r1~e~t~{T2}" and new["state"] == READY and new["authoredOn"] == T2
    assert result.docs == [first[0], new]  # the Completed doc stays as it was


def test_completed_doc_still_resolved_is_not_rewritten() -> None:
    first = _round([em(due=DUE, start=2, end=3, resolved=True)], [], T1).docs
    changed = em(due=DUE, start=2, end=3, resolved=True, title="task.renamed")
    result = _round([changed], first, T2)
    assert result.writes == [] and result.docs == first


def test_failed_doc_then_resolved_creates_new_completed_doc() -> None:
    late = at(NAIROBI, 2025, 5, 20, 12)
    first = _round([em(due=DUE, start=2, end=3)], [], late).docs
    assert first[0]["state"] == FAILED
    result = _round([em(due=DUE, start=2, end=3, resolved=True)], first, late + 1000)
    (new,) = result.writes
    assert new["state"] == COMPLETED and new["_id"].endswith(f"~{late + 1000}")
    assert first[0] in result.docs


def test_completed_doc_reopened_after_window_creates_new_failed_doc() -> None:
    first = _round([em(due=DUE, start=2, end=3, resolved=True)], [], T1).docs
    late = at(NAIROBI, 2025, 5, 20, 12)
    result = _round([em(due=DUE, start=2, end=3)], first, late)
    (new,) = result.writes
    assert new["state"] == FAILED and new["stateHistory"] == [{"state": FAILED, "timestamp": late}]


def test_cancelled_doc_then_undeleted_creates_new_ready_doc() -> None:
    first = _round([em(due=DUE, start=2, end=3)], [], T1).docs
    cancelled = _round([em(due=DUE, start=2, end=3, deleted=True)], first, T1 + 1).docs
    assert cancelled[0]["state"] == CANCELLED and "stateReason" not in cancelled[0]
    result = _round([em(due=DUE, start=2, end=3)], cancelled, T2)
    assert [d["state"] for d in result.docs] == [CANCELLED, READY]


def test_open_doc_unchanged_is_not_written_changed_is_rewritten() -> None:
    first = _round([em(due=DUE, start=2, end=3)], [], T1).docs
    assert _round([em(due=DUE, start=2, end=3)], first, T2).writes == []
    result = _round([em(due=DUE, start=2, end=3, title="task.other")], first, T2)
    (doc,) = result.writes
    assert doc["_id"] == first[0]["_id"] and doc["emission"]["title"] == "task.other"
    assert doc["stateHistory"] == first[0]["stateHistory"]  # same state: no new entry


def test_open_doc_json_change_distinguishes_false_from_zero() -> None:
    # resolvedIf's raw value went from false to 0: JSON changed although Python says False == 0.
    first = _round([em(due=DUE, start=2, end=3)], [], T1).docs
    e = em(due=DUE, start=2, end=3)
    e["_k_resolved_raw"] = 0
    (doc,) = _round([e], first, T2).writes
    assert doc["emission"]["resolved"] == 0 and doc["emission"]["resolved"] is not False
    # and 1 vs 1.0 is the same JSON number in JavaScript: no write.
    e1 = em(due=DUE, start=2, end=3, priority=1)
    docs = _round([e1], [], T1).docs
    assert _round([{**e1, "priority": 1.0}], docs, T2).writes == []


def test_open_doc_reused_back_to_draft_when_emission_moves_to_next_period() -> None:
    first = _round([em(due=DUE, start=2, end=3)], [], T1).docs
    next_period = at(NAIROBI, 2025, 8, 6)
    (doc,) = _round([em(due=next_period, start=2, end=3)], first, T2).writes
    assert doc["_id"] == first[0]["_id"] and doc["state"] == DRAFT
    assert [h["state"] for h in doc["stateHistory"]] == [READY, DRAFT]


def test_open_doc_with_invalid_emission_is_cancelled_invalid() -> None:
    first = _round([em(due=DUE, start=2, end=3)], [], T1).docs
    (doc,) = _round([em(due=DUE, start=0, end=-1)], first, T2).writes
    assert doc["state"] == CANCELLED and doc["stateReason"] == "invalid"


def test_contact_label_doc_keeps_the_subject_as_owner() -> None:
    # Kazi's deliberate fix of CHT bug #7677 (CHT leaves `owner` undefined, hiding the task from the
    # contact's profile): the subject contact stays the owner.
    e = em(due=DUE, start=2, end=3, contact={"name": "Lbl"})
    (doc,) = _round([e], [], T1).docs
    assert doc["owner"] == "p1"
    assert doc["requester"] == "p1"
    assert doc["emission"]["contact"] == {"name": "Lbl"}
    assert doc["emission"]["forId"] == "p1"
    # relabelling an existing doc keeps the same owner, so nothing but the emission changes
    plain = _round([em(due=DUE, start=2, end=3)], [], T1).docs
    (relabelled,) = _round([e], plain, T2).writes
    assert relabelled["owner"] == "p1"



def test_no_container_contact_gives_no_requester_nor_owner() -> None:
    e = em(due=DUE, start=2, end=3, requester=None, contact=None)
    e["contact"] = None
    (doc,) = _round([e], [], T1).docs
    assert "requester" not in doc and "owner" not in doc and "contact" not in doc["emission"]


def test_vanished_emission_cancels_open_docs_only() -> None:
    docs = _round(
        [em("a~e~t", due=DUE, start=2, end=3), em("b~e~t", due=DUE, start=2, end=3, resolved=True)], [], T1
    ).docs
    result = _round([], docs, T2)
    (cancelled,) = result.writes
    assert cancelled["emission"]["_id"] == "a~e~t"
    assert cancelled["state"] == CANCELLED and "stateReason" not in cancelled
    assert cancelled["stateHistory"][-1] == {"state": CANCELLED, "timestamp": T2}
    assert [d["state"] for d in result.docs] == [CANCELLED, COMPLETED]


def test_untimely_emission_cancels_its_open_doc() -> None:
    docs = _round([em(due=DUE, start=2, end=3)], [], T1).docs
    much_later = at(NAIROBI, 2025, 7, 20, 12)  # more than 60 days after the end
    (doc,) = _round([em(due=DUE, start=2, end=3)], docs, much_later).writes
    assert doc["state"] == CANCELLED and "stateReason" not in doc


def test_untimely_emissions_get_no_doc() -> None:
    far = at(NAIROBI, 2026, 1, 1)
    assert _round([em(due=far)], [], T1).docs == []


def _doc(state: str, authored: int, eid: str = "r1~e~t", **extra: Any) -> dict[str, Any]:
    e = minify(em(eid, due=DUE, start=2, end=3), NAIROBI)
    return {
        "_id": task_doc_id(USER, eid, authored),
        "type": "task",
        "authoredOn": authored,
        "state": state,
        "stateHistory": [{"state": state, "timestamp": authored}],
        "user": USER,
        "requester": "p1",
        "owner": "p1",
        "emission": e,
        **extra,
    }


def test_duplicates_most_recent_wins_the_other_is_cancelled_duplicate() -> None:
    old, new = _doc(READY, T1 - 5000), _doc(READY, T1 - 1000)
    for order in ([old, new], [new, old]):
        result = _round([em(due=DUE, start=2, end=3)], order, T1)
        (dup,) = result.writes
        assert dup["_id"] == old["_id"] and dup["state"] == CANCELLED and dup["stateReason"] == "duplicate"


def test_duplicates_more_ready_wins_over_more_recent() -> None:
    ready, draft = _doc(READY, T1 - 5000), _doc(DRAFT, T1 - 1000)
    result = _round([em(due=DUE, start=2, end=3)], [draft, ready], T1)
    (dup,) = result.writes
    assert dup["_id"] == draft["_id"] and dup["stateReason"] == "duplicate"


def test_terminal_duplicates_are_left_alone_and_completed_beats_failed() -> None:
    completed, failed = _doc(COMPLETED, T1 - 5000), _doc(FAILED, T1 - 1000)
    result = _round([em(due=DUE, start=2, end=3, resolved=True)], [failed, completed], T1)
    assert result.writes == []  # winner Completed, same state: not rewritten; Failed dup is terminal


def test_duplicate_of_vanished_emission_is_cancelled_once_without_reason() -> None:
    # Step 6 (vanished emission) runs before step 7 (dedup): the duplicate is terminal by then.
    a, b = _doc(READY, T1 - 5000), _doc(READY, T1 - 1000)
    result = _round([], [a, b], T1)
    assert len(result.writes) == 2
    assert all(d["state"] == CANCELLED and "stateReason" not in d for d in result.writes)


def test_clock_rewind_future_doc_ignored_then_cancelled_by_temporal_update() -> None:
    future = _doc(READY, T2)  # authored after this round
    result = _round([em(due=DUE, start=2, end=3)], [future], T1)
    (new,) = result.writes
    assert new["_id"] == task_doc_id(USER, "r1~e~t", T1) and new["state"] == READY
    assert result.docs == [future, new]
    temporal = update_temporal_states(result.docs, T1, NAIROBI)
    (cancelled,) = temporal.writes
    assert cancelled["_id"] == future["_id"] and cancelled["state"] == CANCELLED
    assert [d["_id"] for d in temporal.ready] == [new["_id"]]


def test_future_doc_with_vanished_emission_is_cancelled_by_the_round() -> None:
    future = _doc(READY, T2)
    (doc,) = _round([], [future], T1).writes
    assert doc["state"] == CANCELLED


@pytest.mark.parametrize(
    ("first", "second", "kept"),
    [
        ({"start": 0}, {"start": 0, "title": "task.second"}, "task.t"),  # equal: the first stays
        ({"start": 0, "due_days": 3}, {"start": 5, "title": "task.second"}, "task.second"),  # Draft < Ready
        ({"deleted": True}, {"start": 5, "title": "task.second"}, "task.second"),  # Cancelled < Ready
        ({"start": 0}, {"deleted": True, "title": "task.second"}, "task.t"),
        ({"end": -9}, {"deleted": True, "title": "task.second"}, "task.t"),  # invalid == Cancelled
    ],
)
def test_emission_disambiguation(first: dict[str, Any], second: dict[str, Any], kept: str) -> None:
    def make(spec: dict[str, Any]) -> dict[str, Any]:
        spec = dict(spec)
        due = at(NAIROBI, 2025, 5, 5 + spec.pop("due_days", 0))
        return em(due=due, **spec)

    result = refresh([make(first), make(second)], [], USER, T1, NAIROBI)
    if result.docs:
        (doc,) = result.docs
        assert doc["emission"]["title"] == kept
    else:
        assert kept == "task.t" and first.get("end") == -9


def test_writes_order_updated_then_cancelled_then_duplicates() -> None:
    dup_old, dup_new = _doc(READY, T1 - 5000, "d~e~t"), _doc(READY, T1 - 1000, "d~e~t")
    vanished = _doc(READY, T1 - 1000, "v~e~t")
    result = _round(
        [em("n~e~t", due=DUE, start=2, end=3), em("d~e~t", due=DUE, start=2, end=3)],
        [dup_old, vanished, dup_new],
        T1,
    )
    assert [(d["emission"]["_id"], d["state"], d.get("stateReason")) for d in result.writes] == [
        ("n~e~t", READY, None),
        ("v~e~t", CANCELLED, None),
        ("d~e~t", CANCELLED, "duplicate"),
    ]


@pytest.mark.parametrize("tz", ZONES)
def test_incremental_refresh_equals_full_refresh(tz: str) -> None:
    t1 = at(tz, 2025, 3, 8, 12)
    t2 = at(tz, 2025, 3, 10, 12)

    def emissions(ts_index: int) -> list[dict[str, Any]]:
        out = []
        for p in ("p1", "p2", "p3"):
            for k in range(4):
                due = at(tz, 2025, 3, 7 + k)
                out.append(
                    em(
                        f"{p}-r{k}~e~t",
                        due=due,
                        start=1,
                        end=k,
                        requester=p,
                        contact={"_id": p},
                        resolved=(k + ts_index) % 3 == 0,
                        deleted=p == "p3" and ts_index == 1 and k == 2,
                    )
                )
        return out[: 12 - ts_index]  # one emission vanishes in the second round

    docs = refresh(emissions(0), [], USER, t1, tz).docs
    full = refresh(emissions(1), docs, USER, t2, tz)
    by_id = {d["_id"]: d for d in full.docs}
    pieces: dict[str, dict[str, Any]] = {}
    for p in ("p1", "p2", "p3"):
        part = refresh(
            [e for e in emissions(1) if e["requester"] == p],
            [d for d in docs if d["requester"] == p],
            USER,
            t2,
            tz,
        )
        pieces.update({d["_id"]: d for d in part.docs})
    assert pieces == by_id
    assert json.dumps(pieces, sort_keys=True) == json.dumps(by_id, sort_keys=True)


# ------------------------------------------------------------------------------------------------
# temporal updates (updateTemporalStates)


@pytest.mark.parametrize("tz", ZONES)
def test_temporal_draft_to_ready_to_failed_at_local_midnights(tz: str) -> None:
    doc = {
        "_id": "task~u~x~1",
        "type": "task",
        "authoredOn": 1,
        "state": DRAFT,
        "stateHistory": [{"state": DRAFT, "timestamp": 1}],
        "emission": stored("2025-04-06", "2025-04-06"),
    }
    before = copy.deepcopy(doc)
    day = at(tz, 2025, 4, 6)
    assert update_temporal_states([doc], day - 1, tz).writes == []
    ready = update_temporal_states([doc], day, tz)
    (w,) = ready.writes
    assert w["state"] == READY and w["stateHistory"][-1] == {"state": READY, "timestamp": day}
    assert ready.ready == [w] and ready.docs == [w]
    failed_at = at(tz, 2025, 4, 7)
    assert update_temporal_states(ready.docs, failed_at - 1, tz).writes == []
    (f,) = update_temporal_states(ready.docs, failed_at, tz).writes
    assert f["state"] == FAILED and [h["state"] for h in f["stateHistory"]] == [DRAFT, READY, FAILED]
    assert doc == before


def test_temporal_leaves_terminal_docs_and_cancels_invalid_and_future() -> None:
    tz = NAIROBI
    now = at(tz, 2025, 5, 5, 12)
    terminal = {
        "_id": "t",
        "state": FAILED,
        "authoredOn": now + 10,
        "stateHistory": [],
        "emission": stored("2025-05-05", "2025-05-05"),
    }
    invalid = {"_id": "i", "state": READY, "authoredOn": 1, "stateHistory": [], "emission": stored("a", None)}
    future = {
        "_id": "f",
        "state": READY,
        "authoredOn": now + 1,
        "stateHistory": [],
        "emission": stored("2025-05-05", "2025-05-05"),
    }
    resolved = {
        "_id": "r",
        "state": READY,
        "authoredOn": 1,
        "stateHistory": [],
        "emission": stored("2025-05-05", "2025-05-05", resolved=17),
    }
    result = update_temporal_states([terminal, invalid, future, resolved], now, tz)
    assert [(d["_id"], d["state"], d.get("stateReason")) for d in result.writes] == [
        ("i", CANCELLED, "invalid"),
        ("f", CANCELLED, None),
        ("r", COMPLETED, None),
    ]
    assert result.docs[0] is terminal
    assert result.ready == []


# ------------------------------------------------------------------------------------------------
# sorting (orderByDueDateAndPriority)


def test_sort_priority_then_due_date_stable() -> None:
    items: list[dict[str, Any]] = [
        {"n": 1, "dueDate": "2025-01-03"},
        {"n": 2, "dueDate": "2025-01-01", "priority": "high"},  # invalid priority
        {"n": 3, "dueDate": "2025-01-05", "priority": 0},
        {"n": 4, "dueDate": "2025-01-02", "priority": 10},
        {"n": 5, "dueDate": "2025-01-01", "priority": 10},
        {"n": 6, "dueDate": None, "priority": 10},
        {"n": 7, "dueDate": "2025-01-01", "priority": -1},
        {"n": 8, "dueDate": "bad"},
        {"n": 9, "dueDate": "2025-01-03"},
        {"n": 10, "dueDate": "2025-01-04", "priority": True},  # a boolean is not a number
        {"n": 11, "dueDate": "2025-01-04", "priority": 2.5},
    ]
    assert [i["n"] for i in sort_for_tasks_tab(items)] == [5, 4, 6, 11, 3, 2, 7, 1, 9, 10, 8]


def test_sort_accepts_docs_and_numeric_dates() -> None:
    tz = NAIROBI
    docs = [
        {"_id": "a", "emission": {"dueDate": "2025-01-02"}},
        {"_id": "b", "emission": {"dueDate": at(tz, 2025, 1, 1, 12)}},
        {"_id": "c", "emission": {"dueDate": "2025-01-01", "priority": 1}},
        {"_id": "d", "emission": {"dueDate": "2025-01-01"}},
    ]
    assert [d["_id"] for d in sort_for_tasks_tab(docs, tz)] == ["c", "d", "b", "a"]


def test_temporal_invalid_state_always_counts_as_a_change() -> None:
    # CHT's `false` never equals a stored state, not even a missing one.
    doc = {"_id": "n", "authoredOn": 1, "stateHistory": [], "emission": {"_id": "x"}}
    (w,) = update_temporal_states([doc], T1, NAIROBI).writes
    assert (w["state"], w["stateReason"], w["stateHistory"]) == (
        CANCELLED,
        "invalid",
        [{"state": CANCELLED, "timestamp": T1}],
    )


def test_timestamps_are_whole_milliseconds() -> None:
    doc = _round([em(due=DUE, start=2, end=3)], [], T1).docs[0]
    (w,) = update_temporal_states([doc], float(at(NAIROBI, 2025, 5, 20)), NAIROBI).writes
    assert type(w["stateHistory"][-1]["timestamp"]) is int
    with pytest.raises(ValueError):
        refresh([], [], USER, T1 + 0.5, NAIROBI)


def test_a_doc_passed_twice_is_not_its_own_duplicate() -> None:
    doc = _doc(READY, T1 - 1000)
    for twice in ([doc, doc], [doc, copy.deepcopy(doc)]):
        result = _round([em(due=DUE, start=2, end=3)], twice, T1)
        assert result.writes == [] and result.docs == [doc]
