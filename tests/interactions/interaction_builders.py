"""Hand-made interaction summaries for the tests (docs/interactions.md, "The summary"): written from the
documented format, not with Kazi's own code, so the tests check the format as an app builder reads it."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

#: the test program's (tests/server/program) title keys and form
SICK = "task.sick_followup"
WELCOME = "task.person_welcome"
FORM = "followup"
DEVICE = "0f8e2c4a-6b1d-4e0f-9a3c-5d7e8f901234"
OTHER_DEVICE = "7a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
BLANTYRE = timezone(timedelta(hours=2))
#: the tests' clock: 2025-08-01 10:00 in Blantyre
NOW = int(datetime(2025, 8, 1, 10, tzinfo=BLANTYRE).timestamp() * 1000)


def session_id(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


def local_ms(day: str, hour: int = 8, minute: int = 0) -> int:
    """Epoch ms of a local time in Blantyre (UTC+2)."""
    y, m, d = (int(x) for x in day.split("-"))
    return int(datetime(y, m, d, hour, minute, tzinfo=BLANTYRE).timestamp() * 1000)


def ev(offset: int, action: str, ref: str | None = None, detail: int | None = None) -> dict[str, Any]:
    """One event; ``ref`` and ``detail`` only when given."""
    event: dict[str, Any] = {"action": action}
    if ref is not None:
        event["ref"] = ref
    if detail is not None:
        event["detail"] = detail
    event["offset"] = offset
    return event


def session(n: int, started_at: int, *events: dict[str, Any]) -> dict[str, Any]:
    return {"session": session_id(n), "startedAt": started_at, "events": list(events)}


def summary(*sessions: dict[str, Any], user: str = "mary", day: str = "2025-07-31", device: str = DEVICE,
            dropped: int = 0, version: str = "1.0.0") -> dict[str, Any]:
    return {"_id": f"interaction-{day}-{user}-{device}", "type": "interaction-log",
            "metadata": {"user": user, "deviceId": device, "date": day, "version": version},
            "sessions": list(sessions), "dropped": dropped}


def simple(user: str = "mary", day: str = "2025-07-31", n: int = 1, device: str = DEVICE) -> dict[str, Any]:
    """A short valid summary: the list opened, a follow-up opened first in the list and completed."""
    return summary(session(n, local_ms(day), ev(0, "task_list:open"), ev(400, "task_list:loaded", detail=3),
                           ev(5000, "task:open", SICK, 0), ev(7000, "task:form_open", FORM),
                           ev(60000, "task:form_save"), ev(61000, "task:complete"), ev(65000, "task_list:leave")),
                   user=user, day=day, device=device)


# The scenario the metrics are worked out by hand for (tests/interactions/test_interaction_metrics.py).
# Mary, 30 July, two sessions.
#   session 1: opens the list, scrolls twice, opens a follow-up at position 3 after 4 s (visit 1), completes it
#   at 61 s; from the group she opens a welcome visit at position 0 (visit 2) and backs out; filters by type;
#   opens a follow-up at position 1 (visit 3), opens its form and cancels it; leaves.
#   session 2: opens the list, scrolls once, opens a follow-up at position 0 after 6 s (visit 4), completes it
#   at 30 s; resets the filters; leaves.
MARY_30 = summary(
    session(1, local_ms("2025-07-30", 8),
            ev(0, "task_list:open"), ev(500, "task_list:loaded", detail=5),
            ev(1000, "task_list:scroll"), ev(3000, "task_list:scroll"),
            ev(4000, "task:open", SICK, 3), ev(5000, "task:form_open", FORM), ev(60000, "task:form_save"),
            ev(61000, "task:complete"), ev(62000, "task_group:show", detail=2),
            ev(63000, "task_group:select", WELCOME), ev(64000, "task:open", WELCOME, 0), ev(70000, "task:back"),
            ev(71000, "task_filter:open"), ev(72000, "task_filter:select", "task_type", 1),
            ev(73000, "task_filter:close"), ev(74000, "task:open", SICK, 1), ev(75000, "task:form_open", FORM),
            ev(80000, "task:cancel"), ev(90000, "task_list:leave")),
    session(2, local_ms("2025-07-30", 9),
            ev(0, "task_list:open"), ev(2000, "task_list:scroll"), ev(6000, "task:open", SICK, 0),
            ev(7000, "task:form_open", FORM), ev(30000, "task:complete"), ev(31000, "task_filter:reset"),
            ev(32000, "task_list:leave")),
    user="mary", day="2025-07-30")
# Mary, 31 July: filters by place, clears it, opens a welcome visit at position 4 after 3 s (visit 5); the
# session ends there (the app was closed).
MARY_31 = summary(
    session(3, local_ms("2025-07-31", 8),
            ev(0, "task_list:open"), ev(1000, "task_filter:open"), ev(2000, "task_filter:select", "place", 2),
            ev(2500, "task_filter:clear", "place"), ev(3000, "task:open", WELCOME, 4)),
    user="mary", day="2025-07-31")
# John, 31 July, another device: a session that began on the 30th (its task_list:open is in the 30th's
# summary) opens a follow-up at position 2 (visit 6) and completes it: no time from the list for it.
JOHN_31 = summary(
    session(4, local_ms("2025-07-30", 23, 50),
            ev(700_000, "task:open", SICK, 2), ev(701_000, "task:complete"), ev(702_000, "task_list:leave")),
    user="john", day="2025-07-31", device=OTHER_DEVICE)
ALL = [MARY_30, MARY_31, JOHN_31]
