"""Monthly counts of task-document events per user (``task_stats``, migration 0008): what keeps a district's
13-month supervision report fast.

Why it exists: a report counts, per worker and month, the task documents generated, completed (on time or
not), failed and cancelled. Counting them from ``task_docs`` reads every document of the range: a district's
13 months at 50,000 households are about 650,000 index entries, and the time grows with the history. This
table holds the same counts already summed per user, UTC month, task name and title key, so a report reads one
row per worker, month and task definition instead (tens of thousands instead of hundreds of thousands).

Why UTC months, when reports are in the caller's local months: a row must not depend on anyone's zone (a
supervisor's zone, or a worker's, may change; two supervisors in two zones read the same workers). A local
month starts within a day of the UTC month of the same name (offsets are at most 14 hours), so a local month
is the UTC month plus the events of the sliver between the local and the UTC start, minus those of the sliver
at its end. :func:`plan` works that out for any bounds; the slivers (a few hours each) are counted exactly from
``task_docs`` by the caller, so the result is exactly what counting ``task_docs`` alone gives. A test checks
that on random histories, bounds and zones, on both databases.

How it stays right: :meth:`kazi.store.Store.write_task_docs` is the only writer of ``task_docs``; in the same
transaction it subtracts what each document counted for before the write and adds what it counts for after
(:func:`deltas`), so a document that turns Completed moves from nowhere to ``completed`` of its closing month.
Task documents are never deleted. The counts are integers added and subtracted under the store's task write
lock, so they are never negative.

Pure helpers (:func:`utc_month_start`, :func:`contributions`, :func:`deltas`, :func:`plan`) and one write
(:func:`apply`), with no clock read.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, NamedTuple

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from kazi.store.schema import task_stats
from kazi.supervision.definitions import TASK_STATES

#: the count columns of ``task_stats``, in this order in every counts list: named as the indicators' states
STAT_COLUMNS: Final = TASK_STATES
GENERATED, COMPLETED, ON_TIME, FAILED, CANCELLED = (STAT_COLUMNS.index(c) for c in (
    "generated", "completed", "completed_on_time", "failed", "cancelled"))
_CLOSED: Final = {"Completed": COMPLETED, "Failed": FAILED, "Cancelled": CANCELLED}
_DAY_MS: Final = 86_400_000
#: how far a bound may lie from a UTC month start for the month's row to be used with a sliver: more than any
#: zone's offset (at most 14 hours), well under a month
MAX_SLIVER_MS: Final = _DAY_MS

#: (user_id, UTC month start in epoch ms, task name or "", title key or "")
Key = tuple[str, int, str, str]


class TaskEvents(NamedTuple):
    """What a task document counts for: its row's ``user_id``, ``authored_on``, ``closed_at``, ``state``,
    ``on_time``, ``task_name`` and ``title_key`` (a ``task_docs`` row has these attributes)."""

    user_id: str
    authored_on: int | None
    closed_at: int | None
    state: str | None
    on_time: bool | None
    task_name: str | None
    title_key: str | None


def utc_month_start(ms: int) -> int:
    """Epoch ms of the start (UTC) of the UTC month ``ms`` falls in."""
    return _month_of_day(ms // _DAY_MS)


@functools.lru_cache(maxsize=4096)
def _month_of_day(day_number: int) -> int:
    """The UTC month start of a UTC day (days since 1970-01-01): cached, as every write asks it for the
    same few days."""
    day = datetime.fromtimestamp(day_number * 86_400, UTC)
    return int(datetime(day.year, day.month, 1, tzinfo=UTC).timestamp() * 1000)


def _next_month_start(month_ms: int) -> int:
    day = datetime.fromtimestamp(month_ms / 1000, UTC)
    return int(datetime(day.year + (day.month == 12), day.month % 12 + 1, 1, tzinfo=UTC).timestamp() * 1000)


def contributions(row: TaskEvents) -> list[tuple[Key, int]]:
    """The ``(key, column index)`` pairs a task document adds 1 to: ``generated`` in the month of its
    ``authored_on``; its terminal state (and ``completed_on_time`` for an on-time completion) in the month of
    its ``closed_at``. Exactly what the report's exact count (:mod:`kazi.store.supervision`) counts."""
    name, title = row.task_name or "", row.title_key or ""
    out: list[tuple[Key, int]] = []
    if row.authored_on is not None:
        out.append(((row.user_id, utc_month_start(row.authored_on), name, title), GENERATED))
    closed = _CLOSED.get(row.state or "")
    if row.closed_at is not None and closed is not None:
        key = (row.user_id, utc_month_start(row.closed_at), name, title)
        out.append((key, closed))
        if closed == COMPLETED and row.on_time:
            out.append((key, ON_TIME))
    return out


def deltas(changes: Iterable[tuple[TaskEvents | None, TaskEvents]]) -> dict[Key, list[int]]:
    """The change of every count that ``(before, after)`` writes make (``before`` None: a new document); keys
    whose counts do not change are left out."""
    out: dict[Key, list[int]] = {}
    for before, after in changes:
        if before == after:
            continue
        for sign, row in ((-1, before), (1, after)):
            if row is None:
                continue
            for key, column in contributions(row):
                counts = out.get(key)
                if counts is None:
                    counts = out[key] = [0] * len(STAT_COLUMNS)
                counts[column] += sign
    return {k: v for k, v in out.items() if any(v)}


def apply(conn: Connection, changes: Mapping[Key, Sequence[int]]) -> None:
    """Add ``changes`` to ``task_stats`` (one upsert: a row is created at its first count)."""
    if not changes:
        return
    conn.execute(_upsert(conn.dialect.name), [{"user_id": k[0], "month": k[1], "task_name": k[2], "title_key": k[3],
                                              **dict(zip(STAT_COLUMNS, v, strict=True))}
                                             for k, v in changes.items()])


@functools.cache
def _upsert(dialect: str) -> postgresql.Insert | sqlite.Insert:
    """``INSERT ... ON CONFLICT (key) DO UPDATE SET n = n + excluded.n``, built once per dialect: building it at
    every write took about a tenth of the write's time."""
    stmt = postgresql.insert(task_stats) if dialect == "postgresql" else sqlite.insert(task_stats)
    return stmt.on_conflict_do_update(index_elements=["user_id", "month", "task_name", "title_key"],
                                      set_={c: task_stats.c[c] + stmt.excluded[c] for c in STAT_COLUMNS})


@dataclass
class Plan:
    """How to count each period ``[bounds[k], bounds[k+1])`` of a report.

    ``months``: ``(first, end, period)``: the ``task_stats`` rows of the UTC months starting in
    ``[first, end)`` count for ``period``. ``exact``: intervals ``[lo, hi)`` to count from ``task_docs``, each
    with the ``(period, sign)`` pairs its counts are added to (a sliver at a month's bound is added to one
    period and subtracted from its neighbour; a period that is not about whole months is one exact interval).
    """

    months: list[tuple[int, int, int]] = field(default_factory=list)
    exact: dict[tuple[int, int], list[tuple[int, int]]] = field(default_factory=dict)

    @property
    def month_range(self) -> tuple[int, int] | None:
        """The UTC month starts ``[first, end)`` the ``months`` entries cover together, or None."""
        if not self.months:
            return None
        return self.months[0][0], self.months[-1][1]

    def month_steps(self) -> list[tuple[int, int]]:
        """The ``months`` entries as steps for a SQL ``CASE``: ``(until, period)``, ascending: the row of a UTC
        month starting before ``until`` (and not before the previous step's) counts for ``period``; ``-1``
        marks a gap between entries (months of no period)."""
        steps: list[tuple[int, int]] = []
        for first, end, period in self.months:
            if steps and steps[-1][0] < first:
                steps.append((first, -1))
            steps.append((end, period))
        return steps

    def _add(self, lo: int, hi: int, period: int, sign: int) -> None:
        """Add ``sign`` x the events of ``[lo, hi)`` to ``period``, a reversed interval counting negatively."""
        if lo > hi:
            lo, hi, sign = hi, lo, -sign
        if lo < hi:
            self.exact.setdefault((lo, hi), []).append((period, sign))


def _nearest_month_start(ms: int) -> int | None:
    """The UTC month start within :data:`MAX_SLIVER_MS` of ``ms``, if any."""
    start = utc_month_start(ms)
    after = _next_month_start(start)
    near = start if ms - start <= after - ms else after
    return near if abs(ms - near) <= MAX_SLIVER_MS else None


def plan(bounds: Sequence[int]) -> Plan:
    """The plan for periods ``[bounds[k], bounds[k+1])`` (ascending epoch ms).

    A period whose both bounds lie within a day of a UTC month start (every local month, whatever the zone)
    is its whole UTC months plus the sliver between its start and the nearest UTC month start, minus the
    sliver at its end (each a signed interval: before or after the UTC start, by the zone's offset). Any other
    period (a 30-day window) is counted exactly, as it is short."""
    out = Plan()
    near = [_nearest_month_start(b) for b in bounds]
    for k in range(len(bounds) - 1):
        lo, hi, first, end = bounds[k], bounds[k + 1], near[k], near[k + 1]
        if first is not None and end is not None and first < end:
            out.months.append((first, end, k))
            out._add(lo, first, k, 1)  # events of the local month before its UTC month starts (or not in it)
            out._add(hi, end, k, -1)  # events of the UTC month after the local month ended (or missing)
        else:
            out._add(lo, hi, k, 1)
    return out


def events_of(values: Mapping[str, Any]) -> TaskEvents:
    """The :class:`TaskEvents` of a ``task_docs`` row's values (a mapping with the column names)."""
    return TaskEvents(values["user_id"], values["authored_on"], values["closed_at"], values["state"],
                      values["on_time"], values["task_name"], values["title_key"])
