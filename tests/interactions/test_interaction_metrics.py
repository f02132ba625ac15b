"""The analysts' metrics (kazi.analytics.metrics) on hand-made summaries whose answers are worked out by hand
below, and the CSV and Parquet exports (kazi.analytics.export) read back."""

from __future__ import annotations

import csv
import io
from typing import Any

import pyarrow.parquet as pq
import pytest
from interaction_builders import (
    ALL,
    FORM,
    JOHN_31,
    MARY_30,
    MARY_31,
    NOW,
    OTHER_DEVICE,
    SICK,
    WELCOME,
    ev,
    local_ms,
    session,
    summary,
)

from kazi.analytics import export
from kazi.analytics import metrics as m
from kazi.analytics.summary import MAX_EVENTS, Vocabulary, check_summary

VOCAB = Vocabulary(frozenset({SICK, WELCOME}), frozenset({FORM}))

# The scenario (interaction_builders: MARY_30, MARY_31, JOHN_31, told there event by event), visit by visit:
#
# visit  day    user  type     position  scrolls  open_ms  complete_ms  outcome
#   1    30     mary  sick     3         2        4000     61000        completed
#   2    30     mary  welcome  0         0        64000    -            back-out
#   3    30     mary  sick     1         0        74000    -            cancelled (a back-out)
#   4    30     mary  sick     0         1        6000     30000        completed
#   5    31     mary  welcome  4         0        3000     -            back-out
#   6    31     john  sick     2         0        -        -            completed
SESSION_COLUMNS = ["summaries", "user_days", "sessions", "sessions_per_day", "events", "dropped", "filter_opens",
                   "filter_selects", "filter_clears", "filter_resets", "sessions_with_filter", "group_shows",
                   "group_selects"]


def days(*docs: dict[str, Any]) -> list[m.Day]:
    return [m.read_summary(d) for d in docs]


def test_the_hand_made_summaries_are_valid() -> None:
    for doc in ALL:
        assert check_summary(doc, VOCAB, now_ms=NOW)[1] == []


def test_visits_of_a_session() -> None:
    first, second = m.read_summary(MARY_30).sessions
    assert first.visits == (
        m.Visit(SICK, 3, 2, open_ms=4000, complete_ms=61000, completed=True, cancelled=False),
        m.Visit(WELCOME, 0, 0, open_ms=64000, complete_ms=None, completed=False, cancelled=False),
        m.Visit(SICK, 1, 0, open_ms=74000, complete_ms=None, completed=False, cancelled=True))
    assert second.visits == (m.Visit(SICK, 0, 1, open_ms=6000, complete_ms=30000, completed=True, cancelled=False),)
    assert (first.events, second.events) == (19, 7)
    (john,) = m.read_summary(JOHN_31).sessions
    assert john.visits == (m.Visit(SICK, 2, 0, open_ms=None, complete_ms=None, completed=True, cancelled=False),)


def test_totals() -> None:
    (total,) = m.metric_rows(days(*ALL))
    assert total == {
        "summaries": 3, "user_days": 3, "sessions": 4, "sessions_per_day": 1.333,  # 4 sessions / 3 user-days
        "events": 19 + 7 + 5 + 3, "dropped": 0,
        "tasks_opened": 6, "tasks_completed": 3, "tasks_cancelled": 1, "back_outs": 3, "completion_rate": 0.5,
        "open_ms_median": 6000.0,  # 3000 4000 [6000] 64000 74000
        "open_ms_mean": 30200.0,  # 151000 / 5
        "complete_ms_median": 45500.0, "complete_ms_mean": 45500.0,  # (61000 + 30000) / 2
        "position_median": 1.5,  # 0 0 [1 2] 3 4
        "position_mean": 1.667,  # 10 / 6
        "scrolls_before_open_mean": 0.5,  # (2 + 1) / 6
        "filter_opens": 2, "filter_selects": 2, "filter_clears": 1, "filter_resets": 1,
        "sessions_with_filter": 2, "group_shows": 1, "group_selects": 1,
    }


def test_by_day() -> None:
    rows = m.metric_rows(days(*ALL), ["day"])
    assert [r["day"] for r in rows] == ["2025-07-30", "2025-07-31"]
    d30, d31 = rows
    assert d30 == {
        "day": "2025-07-30", "summaries": 1, "user_days": 1, "sessions": 2, "sessions_per_day": 2.0, "events": 26,
        "dropped": 0, "tasks_opened": 4, "tasks_completed": 2, "tasks_cancelled": 1, "back_outs": 2,
        "completion_rate": 0.5,
        "open_ms_median": 35000.0, "open_ms_mean": 37000.0,  # 4000 6000 64000 74000
        "complete_ms_median": 45500.0, "complete_ms_mean": 45500.0,
        "position_median": 0.5, "position_mean": 1.0,  # 0 0 1 3
        "scrolls_before_open_mean": 0.75,  # 2 0 0 1
        "filter_opens": 1, "filter_selects": 1, "filter_clears": 0, "filter_resets": 1, "sessions_with_filter": 1,
        "group_shows": 1, "group_selects": 1,
    }
    assert d31 == {
        "day": "2025-07-31", "summaries": 2, "user_days": 2, "sessions": 2, "sessions_per_day": 1.0, "events": 8,
        "dropped": 0, "tasks_opened": 2, "tasks_completed": 1, "tasks_cancelled": 0, "back_outs": 1,
        "completion_rate": 0.5, "open_ms_median": 3000.0, "open_ms_mean": 3000.0,  # John's visit has none
        "complete_ms_median": None, "complete_ms_mean": None, "position_median": 3.0, "position_mean": 3.0,
        "scrolls_before_open_mean": 0.0, "filter_opens": 1, "filter_selects": 1, "filter_clears": 1,
        "filter_resets": 0, "sessions_with_filter": 1, "group_shows": 0, "group_selects": 0,
    }


def test_by_task_type_keeps_only_the_per_task_numbers() -> None:
    welcome, sick = m.metric_rows(days(*ALL), ["task_type"])
    assert welcome == {
        "task_type": WELCOME, **dict.fromkeys(SESSION_COLUMNS),
        "tasks_opened": 2, "tasks_completed": 0, "tasks_cancelled": 0, "back_outs": 2, "completion_rate": 0.0,
        "open_ms_median": 33500.0, "open_ms_mean": 33500.0,  # 3000 64000
        "complete_ms_median": None, "complete_ms_mean": None,
        "position_median": 2.0, "position_mean": 2.0, "scrolls_before_open_mean": 0.0,  # 0 4
    }
    assert sick == {
        "task_type": SICK, **dict.fromkeys(SESSION_COLUMNS),
        "tasks_opened": 4, "tasks_completed": 3, "tasks_cancelled": 1, "back_outs": 1, "completion_rate": 0.75,
        "open_ms_median": 6000.0, "open_ms_mean": 28000.0,  # 4000 6000 74000 (visit 6 has none)
        "complete_ms_median": 45500.0, "complete_ms_mean": 45500.0,
        "position_median": 1.5, "position_mean": 1.5, "scrolls_before_open_mean": 0.75,  # 3 1 0 2 / 2 0 1 0
    }


def test_by_user_and_device_and_in_any_order_of_grouping() -> None:
    rows = m.metric_rows(days(*ALL), ["user", "day"])
    assert [(r["day"], r["user"]) for r in rows] == [("2025-07-30", "mary"), ("2025-07-31", "john"),
                                                      ("2025-07-31", "mary")]
    assert [r["tasks_opened"] for r in rows] == [4, 1, 1]
    assert [r["sessions_per_day"] for r in rows] == [2.0, 1.0, 1.0]
    by_user = m.metric_rows(days(*ALL), ["user"])
    assert [(r["user"], r["user_days"], r["sessions"], r["sessions_per_day"]) for r in by_user] == [
        ("john", 1, 1, 1.0), ("mary", 2, 3, 1.5)]
    by_device = m.metric_rows(days(*ALL), ["device"])
    assert {r["device"]: r["tasks_completed"] for r in by_device} == {OTHER_DEVICE: 1,
                                                                      MARY_30["metadata"]["deviceId"]: 2}
    per_type_per_user = m.metric_rows(days(*ALL), ["task_type", "user"])
    assert [(r["user"], r["task_type"], r["tasks_opened"]) for r in per_type_per_user] == [
        ("john", SICK, 1), ("mary", WELCOME, 2), ("mary", SICK, 3)]  # task.person_welcome < task.sick_followup
    assert [c.name for c in m.columns_for(["task_type", "user"])][:2] == ["user", "task_type"]
    with pytest.raises(ValueError, match="cannot group by"):
        m.metric_rows([], ["place"])


def test_nothing_to_count_gives_zero_totals_and_no_rows() -> None:
    (total,) = m.metric_rows([])
    assert total["summaries"] == 0 and total["tasks_opened"] == 0 and total["open_ms_mean"] is None
    assert total["sessions_per_day"] is None and total["completion_rate"] is None
    assert m.metric_rows([], ["day"]) == []


def test_dropped_events_are_summed() -> None:
    events = [ev(0, "task_list:open")] + [ev(i, "task_list:scroll") for i in range(1, MAX_EVENTS)]
    capped = summary(session(9, local_ms("2025-07-31"), *events), user="ama", dropped=100)
    assert check_summary(capped, VOCAB, now_ms=NOW)[1] == []
    (total,) = m.metric_rows(days(capped, MARY_30))
    assert (total["events"], total["dropped"]) == (500 + 26, 100)


def test_of_conflicting_versions_the_fullest_is_counted() -> None:
    short = summary(session(3, local_ms("2025-07-31", 8), ev(0, "task_list:open")), user="mary", day="2025-07-31")
    same_size = summary(session(3, local_ms("2025-07-31", 8), ev(0, "task_list:open"), ev(5, "task_list:scroll"),
                                ev(6, "task_list:leave"), ev(7, "task_list:open"), ev(8, "task_list:leave")),
                        user="mary", day="2025-07-31")
    sid = MARY_31["_id"]
    assert m.pick_versions([(sid, 0, short), (sid, 1, MARY_31), (JOHN_31["_id"], 0, JOHN_31)]) == [MARY_31, JOHN_31]
    assert m.pick_versions([(sid, 0, MARY_31), (sid, 1, same_size)]) == [MARY_31]  # a tie: the first received


def test_event_rows() -> None:
    rows = list(m.event_rows(JOHN_31, conflict=1))
    started = local_ms("2025-07-30", 23, 50)
    assert rows[0] == {"summary_id": JOHN_31["_id"], "conflict": 1, "day": "2025-07-31", "user": "john",
                       "device": OTHER_DEVICE, "app_version": "1.0.0", "session": JOHN_31["sessions"][0]["session"],
                       "session_started_at": started, "event_index": 0, "action": "task:open", "ref": SICK,
                       "detail": 2, "offset_ms": 700_000, "time_ms": started + 700_000}
    assert [(r["action"], r["ref"], r["detail"]) for r in rows[1:]] == [("task:complete", None, None),
                                                                          ("task_list:leave", None, None)]
    assert [c.name for c in m.EVENT_COLUMNS] == list(rows[0])


# --------------------------------------------------------------------------------------------------------
# exports


@pytest.mark.parametrize("group_by", [[], ["day"], ["task_type"], ["day", "user", "device", "task_type"]])
def test_csv_and_parquet_round_trip(group_by: list[str]) -> None:
    rows = m.metric_rows(days(*ALL), group_by)
    columns = m.columns_for(group_by)
    table = pq.read_table(io.BytesIO(export.encode("parquet", columns, rows)))
    assert table.column_names == [c.name for c in columns]
    assert table.to_pylist() == rows  # types kept: ints, floats and nulls
    kinds = {"str": "string", "int": "int64", "float": "double"}
    assert [str(f.type) for f in table.schema] == [kinds[c.kind] for c in columns]
    assert table.schema.field("back_outs").metadata == {b"description": m.METRIC_COLUMNS[9].description.encode()}

    text = export.encode("csv", columns, rows).decode("utf-8")
    read = list(csv.DictReader(io.StringIO(text)))
    assert list(read[0]) == [c.name for c in columns]
    assert read == [{k: "" if v is None else str(v) for k, v in row.items()} for row in rows]


def test_exports_of_events_and_of_nothing() -> None:
    rows = [r for doc in ALL for r in m.event_rows(doc)]
    table = pq.read_table(io.BytesIO(export.encode("parquet", m.EVENT_COLUMNS, rows)))
    assert table.num_rows == 34 and table.to_pylist() == rows
    empty = pq.read_table(io.BytesIO(export.encode("parquet", m.EVENT_COLUMNS, [])))
    assert empty.num_rows == 0 and empty.column_names == [c.name for c in m.EVENT_COLUMNS]
    assert export.encode("csv", m.EVENT_COLUMNS, []).decode() == ",".join(c.name for c in m.EVENT_COLUMNS) + "\r\n"
    with pytest.raises(ValueError, match="unknown export format"):
        export.encode("xlsx", m.EVENT_COLUMNS, [])
