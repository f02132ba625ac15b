"""The report's arithmetic, I/O-free: periods in a zone, indicator values from counts, team values, quartiles
and rankings, and the CSV rows. :mod:`kazi.store.supervision` counts in SQL; this module turns counts into the
report the API serves (``docs/supervision.md`` defines every value).

Quartiles: linear interpolation between closest ranks (numpy's default, "type 7" of Hyndman and Fan): for the
sorted values ``v[0..n-1]`` the p-quantile is ``v[i] + (v[i+1] - v[i]) * f`` where ``i + f = p * (n - 1)``;
workers without a value (a rate without denominator) are left out. Chosen because it is what a spreadsheet's
QUARTILE.INC and numpy give a supervisor who checks the figures.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo

from kazi.supervision.definitions import Indicator, Supervision

#: the key of a value over the whole range, next to the period keys
TOTAL: Final = "total"
#: the most months a report may span (a year and the current month)
MAX_PERIODS: Final = 13
#: complete months before the current one in the default range
DEFAULT_MONTHS_BACK: Final = 3

#: counts[user][indicator id][period key or TOTAL] -> number
Counts = dict[str, dict[str, dict[str, float]]]


@dataclass(frozen=True)
class Period:
    """One month of the report: ``YYYY-MM``, its first and last local day, its bounds in epoch ms in the zone."""

    key: str
    start: date
    end: date
    start_ms: int
    end_ms: int  # exclusive: the next month's local midnight
    partial: bool  # the current month (not over yet)

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "start": self.start.isoformat(), "end": self.end.isoformat(),
                "partial": self.partial}


def month_key(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def parse_month(value: str) -> date:
    """``YYYY-MM`` -> the month's first day; ValueError otherwise."""
    if len(value) != 7 or value[4] != "-":
        raise ValueError(f"{value!r} is not a month YYYY-MM")
    return date(int(value[:4]), int(value[5:]), 1)


def _next_month(day: date) -> date:
    return date(day.year + (day.month == 12), day.month % 12 + 1, 1)


def local_midnight_ms(day: date, tz: str) -> int:
    """Epoch ms of the local midnight starting ``day`` in ``tz``."""
    return int(datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(tz)).timestamp() * 1000)


def local_date(ms: float, tz: str) -> date:
    return datetime.fromtimestamp(ms / 1000, UTC).astimezone(ZoneInfo(tz)).date()


def default_months(now_ms: float, tz: str) -> tuple[date, date]:
    """The default range: the last ``DEFAULT_MONTHS_BACK`` complete months and the current one (first days)."""
    current = local_date(now_ms, tz).replace(day=1)
    start = current
    for _ in range(DEFAULT_MONTHS_BACK):
        start = (start - timedelta(days=1)).replace(day=1)
    return start, current


def periods(start: date, end: date, now_ms: float, tz: str) -> list[Period]:
    """The months from ``start`` to ``end`` (first days, inclusive) with their bounds in ``tz``; a month is
    partial when ``now`` is inside it. ValueError when the range is reversed or longer than MAX_PERIODS."""
    if start > end:
        raise ValueError(f"start {month_key(start)} is after end {month_key(end)}")
    today = local_date(now_ms, tz)
    out: list[Period] = []
    month = start.replace(day=1)
    while month <= end:
        nxt = _next_month(month)
        out.append(Period(month_key(month), month, nxt - timedelta(days=1), local_midnight_ms(month, tz),
                          local_midnight_ms(nxt, tz), month <= today < nxt))
        if len(out) > MAX_PERIODS:
            raise ValueError(f"at most {MAX_PERIODS} months at once")
        month = nxt
    return out


def completed_on_time(closed_at_ms: float | None, end_date: object, tz: str) -> bool:
    """Completed before the task's window closed: the local day of completion is at most ``emission.endDate``
    (the window's last day, ``YYYY-MM-DD`` in the worker's zone)."""
    if closed_at_ms is None or not isinstance(end_date, str) or len(end_date) != 10:
        return False
    return local_date(closed_at_ms, tz).isoformat() <= end_date


def rate(numerator: float | None, denominator: float | None) -> float | None:
    """A fraction 0..1 (more than 1 only if the program's definition allows it); None without denominator."""
    if not denominator or numerator is None:
        return None
    return numerator / denominator


def values_of(supervision: Supervision, counts: Mapping[str, Mapping[str, float]], keys: Sequence[str]
              ) -> dict[str, dict[str, float | None]]:
    """Every indicator's value per key (period keys and TOTAL) from the count indicators' counts: counts
    absent are 0, rates divide them."""
    out: dict[str, dict[str, float | None]] = {}
    for ind in supervision.indicators:
        if not ind.is_rate:
            got = counts.get(ind.id, {})
            out[ind.id] = {k: float(got.get(k, 0)) for k in keys}
    for ind in supervision.indicators:
        if ind.is_rate:
            num = out.get(ind.numerator or "", {})
            den = out.get(ind.denominator or "", {})
            out[ind.id] = {k: rate(num.get(k), den.get(k)) for k in keys}
    return {ind.id: out[ind.id] for ind in supervision.indicators}


def add_counts(into: dict[str, dict[str, float]], more: Mapping[str, Mapping[str, float]]) -> None:
    for iid, by_key in more.items():
        target = into.setdefault(iid, {})
        for key, value in by_key.items():
            target[key] = target.get(key, 0) + value


def quantile(sorted_values: Sequence[float], p: float) -> float | None:
    """The p-quantile by linear interpolation (numpy's default); None for no values."""
    if not sorted_values:
        return None
    pos = p * (len(sorted_values) - 1)
    low = math.floor(pos)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (pos - low)


def comparison(indicator: Indicator, totals: Mapping[str, float | None]) -> dict[str, Any]:
    """Median, quartiles and the ranking of workers by their value over the whole range: best first
    (``higher_is_better``), ties sharing a rank (1, 2, 2, 4), workers without a value (null) last, ranked by
    their position; ties are listed by username, for a stable order."""
    known = sorted(v for v in totals.values() if v is not None)
    sign = -1 if indicator.higher_is_better else 1
    order = sorted(totals.items(), key=lambda kv: (kv[1] is None, sign * (kv[1] or 0), kv[0]))
    ranking: list[dict[str, Any]] = []
    previous: float | None = None
    rank = 0
    for position, (user, value) in enumerate(order, start=1):
        if value is None or value != previous:
            rank = position
        previous = value
        ranking.append({"user": user, "value": value, "rank": rank})
    return {"median": quantile(known, 0.5), "q1": quantile(known, 0.25), "q3": quantile(known, 0.75),
            "ranking": ranking}


@dataclass(frozen=True)
class WorkerInfo:
    user: str
    name: str
    place_id: str | None
    place_name: str | None


def build_report(supervision: Supervision, place: Mapping[str, Any], months: Sequence[Period],
                 workers: Sequence[WorkerInfo], counts: Counts) -> dict[str, Any]:
    """The report the API serves (the contract in docs/supervision.md) from the count indicators' counts per
    worker, month and TOTAL."""
    keys = [p.key for p in months] + [TOTAL]
    team_counts: dict[str, dict[str, float]] = {}
    worker_rows: list[dict[str, Any]] = []
    for w in workers:
        mine = counts.get(w.user, {})
        add_counts(team_counts, mine)
        worker_rows.append({"user": w.user, "name": w.name,
                            "place": {"_id": w.place_id, "name": w.place_name},
                            "values": values_of(supervision, mine, keys)})
    return {
        "place": dict(place),
        "periods": [p.to_dict() for p in months],
        "indicators": [i.to_dict() for i in supervision.indicators],
        "workers": worker_rows,
        "team": {"values": values_of(supervision, team_counts, keys)},
        "comparison": {i.id: comparison(i, {r["user"]: r["values"][i.id][TOTAL] for r in worker_rows})
                       for i in supervision.indicators},
    }


CSV_COLUMNS: Final = ("place_id", "worker", "worker_name", "indicator", "period", "value")
#: the ``worker`` column of the team's rows
TEAM: Final = "team"


def csv_rows(report: Mapping[str, Any]) -> Iterable[tuple[Any, ...]]:
    """One row per worker x indicator x period (and TOTAL), then the team's rows (worker ``team``)."""
    keys: list[str] = [p["key"] for p in report["periods"]] + [TOTAL]
    place_id = report["place"]["_id"]
    for w in report["workers"]:
        for ind in report["indicators"]:
            for key in keys:
                yield place_id, w["user"], w["name"], ind["id"], key, _csv_value(w["values"][ind["id"]][key])
    for ind in report["indicators"]:
        for key in keys:
            yield place_id, TEAM, TEAM, ind["id"], key, _csv_value(report["team"]["values"][ind["id"]][key])


def _csv_value(value: float | None) -> str:
    if value is None:
        return ""
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.6g}"
