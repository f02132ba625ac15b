"""Local-time arithmetic with JavaScript (V8) semantics, for an IANA zone passed in.

CHT computes every task date in the *device's* local time with JavaScript ``Date``.  Kazi serves
users in many zones from one process, so the zone is always an argument here and never the
machine's.  Instants are epoch milliseconds (``float`` so that ``NaN`` can stand for JavaScript's
Invalid Date, exactly as ``Date.prototype.getTime`` does).

Local -> UTC conversion follows V8/ICU (``UCAL_TZ_LOCAL_FORMER`` for both skipped and repeated wall
times), which is also what :mod:`zoneinfo` does with ``fold=0``: a wall time inside a spring-forward
gap is read with the offset in force *before* the gap, an ambiguous one takes the earlier instant.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

MS_IN_DAY = 86_400_000
_EPOCH_DATE = date(1970, 1, 1)
# ECMAScript time values are limited to +-8.64e15 ms.
_MAX_TIME = 8.64e15
# Transitions are scanned in this range; outside it the nearest known offset applies.
_SCAN_FROM = datetime(1890, 1, 1, tzinfo=UTC)
_SCAN_TO = datetime(2101, 1, 1, tzinfo=UTC)


@lru_cache(maxsize=64)
def zone(tz: str) -> ZoneInfo:
    """The zone for an IANA name; raises ``ZoneInfoNotFoundError`` (a ``KeyError``) if unknown."""
    return ZoneInfo(tz)


def _offset_at(z: ZoneInfo, t_s: float) -> int:
    """UTC offset in whole seconds at UTC instant ``t_s`` (seconds)."""
    off = datetime.fromtimestamp(t_s, UTC).astimezone(z).utcoffset()
    assert off is not None
    return int(off.total_seconds())


@lru_cache(maxsize=64)
def transitions(tz: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Offset changes of ``tz`` as ``(instants_ms, offsets_ms)``.

    ``offsets_ms[0]`` is the offset before the first transition; ``offsets_ms[i + 1]`` holds from
    ``instants_ms[i]`` on.  Found by a daily scan refined by bisection to the second; computed once
    per zone and shared with the JavaScript ``Date`` shim so both languages agree to the millisecond.
    """
    z = zone(tz)
    start = _SCAN_FROM.timestamp()
    end = _SCAN_TO.timestamp()
    step = 86_400.0
    instants: list[int] = []
    offsets: list[int] = [_offset_at(z, start) * 1000]
    t = start
    prev = offsets[0] // 1000
    while t < end:
        nxt = t + step
        off = _offset_at(z, nxt)
        if off != prev:
            lo, hi = t, nxt  # offset(lo) == prev, offset(hi) == off
            while hi - lo > 1:
                mid = math.floor((lo + hi) / 2)
                if _offset_at(z, mid) == prev:
                    lo = mid
                else:
                    hi = mid
            mid_off = _offset_at(z, hi)
            instants.append(int(hi) * 1000)
            offsets.append(mid_off * 1000)
            prev = mid_off
            # Two changes within one day are possible in old data; rescan from the change.
            t = hi
            continue
        t = nxt
    return tuple(instants), tuple(offsets)


def offset_ms(t_ms: float, tz: str) -> int:
    """UTC offset (ms) in force at the UTC instant ``t_ms``."""
    instants, offsets = transitions(tz)
    return offsets[bisect_right(instants, t_ms)]


def _local_keys(tz: str) -> tuple[tuple[float, ...], tuple[int, ...]]:
    return _local_keys_cached(tz)


@lru_cache(maxsize=64)
def _local_keys_cached(tz: str) -> tuple[tuple[float, ...], tuple[int, ...]]:
    # Wall-clock thresholds: a wall time w uses offsets[i + 1] iff w >= T_i + max(before, after).
    instants, offsets = transitions(tz)
    keys = tuple(t + max(offsets[i], offsets[i + 1]) for i, t in enumerate(instants))
    return keys, offsets


def wall_to_utc_ms(wall_ms: float, tz: str) -> float:
    """Interpret ``wall_ms`` (a local wall time written as if it were UTC) in ``tz``."""
    if math.isnan(wall_ms):
        return math.nan
    keys, offsets = _local_keys(tz)
    return wall_ms - offsets[bisect_right(keys, wall_ms)]


def time_clip(t: float) -> float:
    """ECMAScript TimeClip: NaN outside +-8.64e15, integral milliseconds otherwise."""
    if math.isnan(t) or math.isinf(t) or abs(t) > _MAX_TIME:
        return math.nan
    return float(math.trunc(t)) + 0.0


def make_day(year: float, month: float, day: float) -> float:
    """ECMAScript MakeDay: days since the epoch, with month/day overflow normalised."""
    if any(math.isnan(x) or math.isinf(x) for x in (year, month, day)):
        return math.nan
    y = math.trunc(year) + math.floor(math.trunc(month) / 12)
    m = math.trunc(month) % 12
    if not -271_821 <= y <= 275_760:
        return math.nan
    try:
        first = _days_from_civil(int(y), int(m) + 1, 1)
    except (OverflowError, ValueError):
        return math.nan
    return first + math.trunc(day) - 1


def _days_from_civil(y: int, m: int, d: int) -> int:
    # Howard Hinnant's algorithm: proleptic Gregorian, any year (datetime is limited to 1..9999).
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146_097 + doe - 719_468


def civil_from_days(z: int) -> tuple[int, int, int]:
    """(year, month 1-12, day) of day number ``z`` since the epoch (proleptic Gregorian)."""
    z += 719_468
    era = (z if z >= 0 else z - 146_096) // 146_097
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + (3 if mp < 10 else -9)
    return y + (m <= 2), m, d


def local_fields(t_ms: float, tz: str) -> tuple[int, int, int, int, int, int, int, int]:
    """(year, month0, day, hours, minutes, seconds, ms, weekday) of ``t_ms`` in ``tz``."""
    wall = int(t_ms) + offset_ms(t_ms, tz)
    days, rem = divmod(wall, MS_IN_DAY)
    y, m, d = civil_from_days(days)
    weekday = (days + 4) % 7  # 1970-01-01 was a Thursday
    return y, m - 1, d, rem // 3_600_000, rem // 60_000 % 60, rem // 1000 % 60, rem % 1000, weekday


def make_local(
    year: float, month0: float, day: float = 1, hours: float = 0, minutes: float = 0,
    seconds: float = 0, ms: float = 0, *, tz: str,
) -> float:
    """``new Date(year, month0, day, ...)`` in ``tz`` (overflowing fields normalise as in JS)."""
    d = make_day(year, month0, day)
    if math.isnan(d) or any(math.isnan(x) or math.isinf(x) for x in (hours, minutes, seconds, ms)):
        return math.nan
    wall = d * MS_IN_DAY + (
        math.trunc(hours) * 3_600_000 + math.trunc(minutes) * 60_000 + math.trunc(seconds) * 1000
        + math.trunc(ms)
    )
    return time_clip(wall_to_utc_ms(wall, tz))


def local_midnight(t_ms: float, tz: str) -> float:
    """Start of the local day containing ``t_ms`` (``setHours(0, 0, 0, 0)``)."""
    if math.isnan(t_ms):
        return math.nan
    y, m0, d, *_ = local_fields(t_ms, tz)
    return make_local(y, m0, d, tz=tz)


def add_days_local(t_ms: float, days: float, tz: str) -> float:
    """``setDate(getDate() + days)``: calendar days, wall time kept, fractions truncated."""
    if math.isnan(t_ms) or math.isnan(days):
        return math.nan
    y, m0, d, hh, mi, ss, ms, _ = local_fields(t_ms, tz)
    return make_local(y, m0, d + math.trunc(days), hh, mi, ss, ms, tz=tz)


def local_date_str(t_ms: float | None, tz: str) -> str | None:
    """Local ``YYYY-MM-DD`` of an instant; ``None`` for an invalid one."""
    if t_ms is None or math.isnan(t_ms):
        return None
    y, m0, d, *_ = local_fields(t_ms, tz)
    return format_ymd(y, m0 + 1, d)


def format_ymd(y: int, m: int, d: int) -> str:
    """``YYYY-MM-DD`` as moment formats it (4-digit year, sign for negative years)."""
    if 0 <= y <= 9999:
        return f"{y:04d}-{m:02d}-{d:02d}"
    return f"{'-' if y < 0 else '+'}{abs(y):06d}-{m:02d}-{d:02d}"


def parse_ymd(s: str) -> date | None:
    """``YYYY-MM-DD`` -> date (None if malformed)."""
    try:
        return date.fromisoformat(s)
    except (TypeError, ValueError):
        return None


def shift_ymd(s: str, days: int) -> str:
    """Calendar-day shift of a ``YYYY-MM-DD`` string."""
    d = date.fromisoformat(s)
    return (d + timedelta(days=days)).isoformat()


def ymd_midnight_ms(s: str, tz: str) -> float:
    """Local midnight (epoch ms) of the calendar day ``YYYY-MM-DD`` in ``tz``."""
    d = date.fromisoformat(s)
    return make_local(d.year, d.month - 1, d.day, tz=tz)


def epoch_day(d: date) -> int:
    """Days since 1970-01-01."""
    return (d - _EPOCH_DATE).days
