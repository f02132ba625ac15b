"""The range of times Kazi accepts from clients: document ``reported_date``, SMS ``received_at`` and the dates
analysts ask for.

Why a fixed range rather than "anything a 64-bit integer holds": a time far outside the calendar breaks
whoever reads it later, long after the write was accepted (JavaScript's ``Date`` is invalid beyond
8.64e15 ms, Python's ``datetime`` stops at year 9999, a month bucket or ``date - timedelta`` overflows), so
one bad document would fail every supervision report or task computation that meets it. Why not a range
around the server's clock: an offline phone sends its reports days or weeks late, a phone whose clock is
wrong by a year still holds real visits, and a server whose clock is frozen (replays, demos, tests) must
accept what was written on other days; refusing those would lose health data for nothing.

Every real CHT document fits between 2000-01-01 (before CHT existed; a phone whose clock was reset to 1970
is refused, with a message that says why) and 2100-01-01 (exclusive).
"""

from __future__ import annotations

import math
from datetime import date
from typing import Final

#: the first accepted instant, 2000-01-01T00:00:00Z, in epoch milliseconds
EARLIEST_MS: Final = 946_684_800_000
#: the first instant refused after the range, 2100-01-01T00:00:00Z, in epoch milliseconds
LATEST_MS: Final = 4_102_444_800_000
#: the same range as calendar dates (both included), for the date parameters of queries
EARLIEST_DATE: Final = date(2000, 1, 1)
LATEST_DATE: Final = date(2099, 12, 31)

RANGE_TEXT: Final = "between 2000-01-01 and 2099-12-31 (epoch ms 946684800000 to 4102444799999)"


def in_range(ms: int | float) -> bool:
    """Whether an epoch-ms number is a time Kazi accepts (finite, within :data:`RANGE_TEXT`)."""
    return (not isinstance(ms, float) or math.isfinite(ms)) and EARLIEST_MS <= ms < LATEST_MS


def out_of_range(value: object) -> str | None:
    """Why ``value``, when it is a number, is not an accepted time (``None``: accepted, or not a number).

    Non-numbers are left to the caller: CHT documents sometimes hold no ``reported_date`` or a string one,
    and the store keeps those as they are."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if in_range(value):
        return None
    shown = value if not isinstance(value, float) or not math.isfinite(value) else int(value)
    return f"{shown} is not a time Kazi accepts: epoch milliseconds {RANGE_TEXT}"

