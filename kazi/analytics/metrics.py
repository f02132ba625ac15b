"""The analysts' numbers, computed from valid interaction summaries (no I/O: the API reads, this counts).

A summary is read as sessions of events in time order. Within a session, a **visit** is a ``task:open`` and
the events after it, up to the next ``task:open``, ``task_list:open`` or ``task_list:leave`` or the end of
the session. Every per-task number is a number about visits:

* **opened**: visits; **completed**: visits with a ``task:complete``; **cancelled**: visits with a
  ``task:cancel`` and no ``task:complete``; **back-outs**: visits without a ``task:complete`` (the user opened
  the task and left it undone: cancelled ones included), so ``opened = completed + back_outs``;
* **time to open**: from the session's latest ``task_list:open`` before the visit to its ``task:open``;
  **time to complete**: from that same ``task_list:open`` to the visit's first ``task:complete`` (so it
  includes filling in the form). A visit with no ``task_list:open`` before it in its session (a session that
  began on the day before) has neither;
* **position**: the ``task:open``'s detail, the task's place in the list (0 = first);
* **scrolls before open**: ``task_list:scroll`` events since the previous ``task:open`` (or since the list
  was opened).

Per-session numbers (sessions, events, filter use, group use, dropped events) have no task type: rows grouped
by task type leave them empty. ``sessions_per_day`` is sessions per *user-day* (one user's activity on one
date, whatever the devices), so it reads the same at every grouping. The definitions are also in
``docs/interactions.md``, for analysts; the tests check them on summaries whose answers are worked out by
hand.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

#: what rows may be grouped by (any combination, in this order)
GROUPS: Final = ("day", "user", "device", "task_type")
Kind = Literal["str", "int", "float"]


@dataclass(frozen=True)
class Column:
    """A column of an analysts' table: its name, value type and meaning (for the JSON answer, CSV, Parquet
    and the docs)."""

    name: str
    kind: Kind
    description: str
    per_visit: bool = False  # a number about visits: kept when rows are grouped by task type

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "type": self.kind, "description": self.description}


KEY_COLUMNS: Final = (
    Column("day", "str", "the local date (YYYY-MM-DD) of the summaries"),
    Column("user", "str", "the username"),
    Column("device", "str", "the device's random id"),
    Column("task_type", "str", "the task's title key"),
)

METRIC_COLUMNS: Final = (
    Column("summaries", "int", "summaries counted (one per user, device and day)"),
    Column("user_days", "int", "distinct (user, day) pairs"),
    Column("sessions", "int", "Tasks tab sessions"),
    Column("sessions_per_day", "float", "sessions per user-day"),
    Column("events", "int", "events kept"),
    Column("dropped", "int", "events dropped by the 500-a-day cap"),
    Column("tasks_opened", "int", "visits: task:open events", per_visit=True),
    Column("tasks_completed", "int", "visits with a task:complete", per_visit=True),
    Column("tasks_cancelled", "int", "visits with a task:cancel and no task:complete", per_visit=True),
    Column("back_outs", "int", "visits without a task:complete (opened, then left undone)", per_visit=True),
    Column("completion_rate", "float", "tasks_completed / tasks_opened", per_visit=True),
    Column("open_ms_median", "float", "median ms from task_list:open to task:open", per_visit=True),
    Column("open_ms_mean", "float", "mean ms from task_list:open to task:open", per_visit=True),
    Column("complete_ms_median", "float", "median ms from task_list:open to task:complete", per_visit=True),
    Column("complete_ms_mean", "float", "mean ms from task_list:open to task:complete", per_visit=True),
    Column("position_median", "float", "median position of the opened task in the list (0 = first)",
           per_visit=True),
    Column("position_mean", "float", "mean position of the opened task in the list (0 = first)", per_visit=True),
    Column("scrolls_before_open_mean", "float", "mean task_list:scroll events before a task:open", per_visit=True),
    Column("filter_opens", "int", "task_filter:open events"),
    Column("filter_selects", "int", "task_filter:select events (a filter applied)"),
    Column("filter_clears", "int", "task_filter:clear events"),
    Column("filter_resets", "int", "task_filter:reset events"),
    Column("sessions_with_filter", "int", "sessions with at least one task_filter:select"),
    Column("group_shows", "int", "task_group:show events"),
    Column("group_selects", "int", "task_group:select events"),
)

EVENT_COLUMNS: Final = (
    Column("summary_id", "str", "the summary's _id"),
    Column("conflict", "int", "0: the first summary received under this id; n: the n-th conflicting one"),
    Column("day", "str", "the local date (YYYY-MM-DD)"),
    Column("user", "str", "the username"),
    Column("device", "str", "the device's random id"),
    Column("app_version", "str", "the web app's version"),
    Column("session", "str", "the session's random id"),
    Column("session_started_at", "int", "epoch ms when the session started"),
    Column("event_index", "int", "the event's position in its session (0 = first)"),
    Column("action", "str", "the event's action"),
    Column("ref", "str", "title key, form id or filter field id, by action"),
    Column("detail", "int", "count or position, by action"),
    Column("offset_ms", "int", "ms since the session started"),
    Column("time_ms", "int", "epoch ms of the event (session_started_at + offset_ms)"),
)


@dataclass(frozen=True)
class Visit:
    """A task opened from the list and what became of it (see the module docstring)."""

    task_type: str
    position: int
    scrolls_before: int
    open_ms: int | None
    complete_ms: int | None
    completed: bool
    cancelled: bool


@dataclass(frozen=True)
class Session:
    """One Tasks tab session's counts and visits."""

    events: int
    filter_opens: int
    filter_selects: int
    filter_clears: int
    filter_resets: int
    group_shows: int
    group_selects: int
    visits: tuple[Visit, ...]


@dataclass(frozen=True)
class Day:
    """One summary, read: a user's day on a device."""

    day: str
    user: str
    device: str
    dropped: int
    sessions: tuple[Session, ...]

    def key(self, group_by: Sequence[str], task_type: str = "") -> tuple[str, ...]:
        values = {"day": self.day, "user": self.user, "device": self.device, "task_type": task_type}
        return tuple(values[g] for g in group_by)


# --------------------------------------------------------------------------------------------------------
# reading summaries


def read_summary(summary: Mapping[str, Any]) -> Day:
    """A valid summary (:func:`kazi.analytics.summary.check_summary`) as sessions and visits."""
    meta = summary["metadata"]
    return Day(meta["date"], meta["user"], meta["deviceId"], int(summary.get("dropped", 0)),
               tuple(read_session(s["events"]) for s in summary["sessions"]))


@dataclass
class _Open:
    """A visit in progress."""

    task_type: str
    position: int
    at: int
    scrolls_before: int
    list_opened_at: int | None
    completed_at: int | None = None
    cancelled: bool = False

    def visit(self) -> Visit:
        base = self.list_opened_at
        return Visit(
            self.task_type, self.position, self.scrolls_before,
            open_ms=self.at - base if base is not None else None,
            complete_ms=self.completed_at - base if base is not None and self.completed_at is not None else None,
            completed=self.completed_at is not None,
            cancelled=self.cancelled and self.completed_at is None)


def read_session(events: Sequence[Mapping[str, Any]]) -> Session:
    """Walk one session's events (in time order) into its counts and visits."""
    counts: dict[str, int] = defaultdict(int)
    visits: list[Visit] = []
    current: _Open | None = None
    list_opened_at: int | None = None
    scrolls = 0

    def finish() -> None:
        nonlocal current
        if current is not None:
            visits.append(current.visit())
            current = None

    for event in events:
        action, at = event["action"], int(event["offset"])
        counts[action] += 1
        if action == "task_list:open":
            finish()
            list_opened_at, scrolls = at, 0
        elif action == "task_list:leave":
            finish()
        elif action == "task_list:scroll":
            scrolls += 1
        elif action == "task:open":
            finish()
            current = _Open(event["ref"], int(event["detail"]), at, scrolls, list_opened_at)
            scrolls = 0
        elif action == "task:complete" and current is not None and current.completed_at is None:
            current.completed_at = at
        elif action == "task:cancel" and current is not None:
            current.cancelled = True
    finish()
    return Session(len(events), counts["task_filter:open"], counts["task_filter:select"],
                   counts["task_filter:clear"], counts["task_filter:reset"], counts["task_group:show"],
                   counts["task_group:select"], tuple(visits))


def pick_versions(versions: Iterable[tuple[str, int, Mapping[str, Any]]]) -> list[Mapping[str, Any]]:
    """One summary per id, from ``(id, conflict number, summary)``: the version with the most events (ties:
    the first received). Conflicting versions of one user's day on one device describe the same day, so
    counting both would count it twice; the fullest is the one that lost the least."""
    best: dict[str, tuple[int, int, Mapping[str, Any]]] = {}
    for summary_id, conflict, summary in versions:
        events = sum(len(s["events"]) for s in summary["sessions"])
        kept = best.get(summary_id)
        if kept is None or (events, -conflict) > (kept[0], -kept[1]):
            best[summary_id] = (events, conflict, summary)
    return [v[2] for v in best.values()]


# --------------------------------------------------------------------------------------------------------
# counting


@dataclass
class _Group:
    days: list[Day] = field(default_factory=list)
    visits: list[Visit] = field(default_factory=list)


def columns_for(group_by: Sequence[str]) -> list[Column]:
    """The columns of a table grouped by ``group_by``."""
    return [c for c in KEY_COLUMNS if c.name in group_by] + list(METRIC_COLUMNS)


def metric_rows(days: Iterable[Day], group_by: Sequence[str] = ()) -> list[dict[str, Any]]:
    """One row per group (sorted by the group's key), every column of :func:`columns_for`. With no
    ``group_by``: one row, the totals (also when there is nothing to count)."""
    unknown = [g for g in group_by if g not in GROUPS]
    if unknown:
        raise ValueError(f"cannot group by {unknown}: choose among {GROUPS}")
    order = [g for g in GROUPS if g in group_by]
    by_type = "task_type" in order
    groups: dict[tuple[str, ...], _Group] = defaultdict(_Group)
    for day in days:
        if by_type:
            for session in day.sessions:
                for visit in session.visits:
                    groups[day.key(order, visit.task_type)].visits.append(visit)
        else:
            group = groups[day.key(order)]
            group.days.append(day)
            group.visits.extend(v for s in day.sessions for v in s.visits)
    if not order and not groups:
        groups[()] = _Group()
    return [{**dict(zip(order, key, strict=True)), **_metrics(groups[key], by_type)} for key in sorted(groups)]


def _metrics(group: _Group, by_type: bool) -> dict[str, Any]:
    visits = group.visits
    opened = len(visits)
    completed = sum(v.completed for v in visits)
    out: dict[str, Any] = {
        "tasks_opened": opened,
        "tasks_completed": completed,
        "tasks_cancelled": sum(v.cancelled for v in visits),
        "back_outs": opened - completed,
        "completion_rate": _round(completed / opened) if opened else None,
        "open_ms_median": _median([v.open_ms for v in visits]),
        "open_ms_mean": _mean([v.open_ms for v in visits]),
        "complete_ms_median": _median([v.complete_ms for v in visits]),
        "complete_ms_mean": _mean([v.complete_ms for v in visits]),
        "position_median": _median([v.position for v in visits]),
        "position_mean": _mean([v.position for v in visits]),
        "scrolls_before_open_mean": _mean([v.scrolls_before for v in visits]),
    }
    if by_type:
        return {c.name: out.get(c.name) for c in METRIC_COLUMNS}
    sessions = [s for d in group.days for s in d.sessions]
    user_days = len({(d.user, d.day) for d in group.days})
    out.update({
        "summaries": len(group.days),
        "user_days": user_days,
        "sessions": len(sessions),
        "sessions_per_day": _round(len(sessions) / user_days) if user_days else None,
        "events": sum(s.events for s in sessions),
        "dropped": sum(d.dropped for d in group.days),
        "filter_opens": sum(s.filter_opens for s in sessions),
        "filter_selects": sum(s.filter_selects for s in sessions),
        "filter_clears": sum(s.filter_clears for s in sessions),
        "filter_resets": sum(s.filter_resets for s in sessions),
        "sessions_with_filter": sum(1 for s in sessions if s.filter_selects),
        "group_shows": sum(s.group_shows for s in sessions),
        "group_selects": sum(s.group_selects for s in sessions),
    })
    return {c.name: out[c.name] for c in METRIC_COLUMNS}


def _round(value: float) -> float:
    return round(value, 3)


def _median(values: Sequence[int | None]) -> float | None:
    known = [v for v in values if v is not None]
    return _round(float(statistics.median(known))) if known else None


def _mean(values: Sequence[int | None]) -> float | None:
    known = [v for v in values if v is not None]
    return _round(statistics.fmean(known)) if known else None


# --------------------------------------------------------------------------------------------------------
# events, one row each (the export analysts take elsewhere)


def event_rows(summary: Mapping[str, Any], *, conflict: int = 0) -> Iterator[dict[str, Any]]:
    """Every event of a valid summary as a row of :data:`EVENT_COLUMNS`."""
    meta = summary["metadata"]
    for session in summary["sessions"]:
        started = int(session["startedAt"])
        for i, event in enumerate(session["events"]):
            offset = int(event["offset"])
            yield {"summary_id": summary["_id"], "conflict": conflict, "day": meta["date"], "user": meta["user"],
                   "device": meta["deviceId"], "app_version": meta["version"], "session": session["session"],
                   "session_started_at": started, "event_index": i, "action": event["action"],
                   "ref": event.get("ref"), "detail": event.get("detail"), "offset_ms": offset,
                   "time_ms": started + offset}
