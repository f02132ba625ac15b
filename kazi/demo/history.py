"""The demo's recent history replayed day by day, so that task documents carry real state histories.

Why: the supervisor reports (``kazi/supervision``) count task documents by the transitions in their
``state_history`` (generated, completed, completed on time, failed, in which month). A demo that writes a year of
reports at once and computes tasks once, at the end, has task documents whose whole history is one instant:
every report would look as if it was made that morning. The generated population already has CHWs of differing
diligence (:mod:`kazi.demo.population`: each makes ~55-100 % of a diligent CHW's visits, on time or late); what the
demo needs is the server having lived through their work.

How (the cheapest faithful way): the documents reported before the replay's first day are written at once;
then, for each local day of the replay (by default the three complete months before the demo's day, the
current month up to yesterday, and two weeks of lead-in), the service's clock is set to just after that local
midnight and :meth:`TaskService.advance_time` runs (Draft -> Ready, Ready -> Failed, as the running server's
background worker does at midnight), that day's documents are written and, with the clock at the end of the
day, :meth:`TaskService.process_changes` recomputes what they changed (Completed, new tasks). This is the
server's own code path, only with a clock that moves; the documents' histories therefore hold real Draft,
Ready, Completed and Failed transitions, stamped on the day they happened (a visit on the window's last day
is completed on time). The last day's documents and the final computation at the demo's "now" are the
caller's (:func:`kazi.cli.demo.load_demo`).

The split of the documents by local day is pure (:func:`split_by_day`), the replay itself wraps the service.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from kazi.engine.dates import make_local

if TYPE_CHECKING:
    from kazi.service.tasks import TaskService

#: complete months before the demo's month that the replay covers (the supervisor report's default range)
REPLAY_MONTHS = 3
#: days replayed before the first of those months, so that tasks already open then have a history too
LEAD_IN_DAYS = 14
#: minutes after local midnight at which the day's temporal update runs, and before the next midnight at
#: which the day's reports are computed
MIDNIGHT_MARGIN_MIN = 5


def replay_start(end_day: date, months: int = REPLAY_MONTHS, lead_in_days: int = LEAD_IN_DAYS) -> date:
    """The replay's first day: the first of the month ``months`` before ``end_day``'s, less the lead-in."""
    year, month = end_day.year, end_day.month - months
    while month < 1:
        year, month = year - 1, month + 12
    return date(year, month, 1) - timedelta(days=lead_in_days)


def day_bounds(day: date, tz: str) -> tuple[int, int]:
    """Epoch ms of ``day``'s local midnight and of the next one, in ``tz``."""
    nxt = day + timedelta(days=1)
    return (int(make_local(day.year, day.month - 1, day.day, tz=tz)),
            int(make_local(nxt.year, nxt.month - 1, nxt.day, tz=tz)))


@dataclass(frozen=True)
class DaySplit:
    """Documents as the replay writes them: those before its first day, one batch per replayed day, the rest."""

    before: list[dict[str, Any]]
    days: list[tuple[date, list[dict[str, Any]]]]
    after: list[dict[str, Any]]


def split_by_day(docs: Iterable[dict[str, Any]], first: date, end_day: date, tz: str) -> DaySplit:
    """Split documents by the local day of their ``reported_date`` (a document without one counts as old):
    before ``first``; each day from ``first`` to the day before ``end_day``; ``end_day`` and later.
    Each batch keeps the documents' order (contacts parents first, reports by time)."""
    start_ms, _ = day_bounds(first, tz)
    end_ms, _ = day_bounds(end_day, tz)
    days: list[tuple[date, list[dict[str, Any]]]] = []
    bounds: list[int] = []
    d = first
    while d < end_day:
        days.append((d, []))
        bounds.append(day_bounds(d, tz)[1])
        d += timedelta(days=1)
    before: list[dict[str, Any]] = []
    after: list[dict[str, Any]] = []
    for doc in docs:
        t = doc.get("reported_date")
        if not isinstance(t, int | float) or t < start_ms:
            before.append(doc)
        elif t >= end_ms:
            after.append(doc)
        else:
            days[_bisect(bounds, t)][1].append(doc)
    return DaySplit(before, days, after)


def _bisect(bounds: list[int], t: float) -> int:
    """The first index whose bound is above ``t``."""
    lo, hi = 0, len(bounds)
    while lo < hi:
        mid = (lo + hi) // 2
        if bounds[mid] <= t:
            lo = mid + 1
        else:
            hi = mid
    return lo


def replay(service: TaskService, days: list[tuple[date, list[dict[str, Any]]]], tz: str,
           write: Callable[[list[dict[str, Any]]], None]) -> int:
    """Live through ``days`` (see the module docstring) with the service's clock moved day by day; the clock
    is restored afterwards. Returns the user computations run. ``write`` stores one day's documents."""
    clock = service.clock
    runs = 0
    try:
        for day, batch in days:
            start_ms, next_ms = day_bounds(day, tz)
            morning = start_ms + MIDNIGHT_MARGIN_MIN * 60_000
            service.clock = lambda t=morning: t  # type: ignore[misc]
            service.advance_time()
            if batch:
                write(batch)
            evening = next_ms - MIDNIGHT_MARGIN_MIN * 60_000
            service.clock = lambda t=evening: t  # type: ignore[misc]
            runs += service.process_changes()
    finally:
        service.clock = clock
    return runs
