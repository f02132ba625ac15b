"""The interaction summary a device sends once a day is over: its format, its identity and its validation.

One summary per user, device and local day (``docs/interactions.md`` is the reference for app builders)::

    {"_id": "interaction-2025-08-01-mary-0f8e...", "type": "interaction-log",
     "metadata": {"user": "mary", "deviceId": "0f8e...", "date": "2025-08-01", "version": "1.0.3"},
     "sessions": [{"session": "5b1e...", "startedAt": 1754035200000,
                   "events": [{"action": "task_list:open", "offset": 0},
                              {"action": "task:open", "ref": "task.anc.visit.title", "detail": 2, "offset": 4100}]}],
     "dropped": 0}

It follows CHT 5.2's ``interaction-log`` document (medic/cht-core#10786) and differs where the server needs
it to: events carry their ``offset`` from the session's start instead of an absolute timestamp, and the
summary says how many events the 500-a-day cap ``dropped``.

Why the validation is this strict: a summary is the one thing a phone sends that is not a health record, and
it must never become one. Every key is known, every string is an identifier of a known kind (a UUID, a
username, a version, one of the program's title keys or form ids, one of the Tasks tab's filter fields) and
every ``detail`` a bounded count or position, so there is nowhere a name, a note or a form answer could hide.
Anything else is refused, each problem with its JSON path, so a tracker bug is found at once rather than
polluting the analysts' numbers. The module does no I/O: callers pass the program's vocabulary and the clock.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import Enum
from types import MappingProxyType
from typing import Any, Final

import orjson

from kazi.store.users import USERNAME_PATTERN

SUMMARY_TYPE: Final = "interaction-log"
ID_PREFIX: Final = "interaction-"
#: events kept per user, device and local day (CHT's MAX_EVENTS_PER_DAY); the rest are only counted
MAX_EVENTS: Final = 500
#: the largest ``dropped`` believed: a day of a stuck scroll listener, not an overflow
MAX_DROPPED: Final = 10_000_000
#: the largest count or position a ``detail`` may hold
MAX_DETAIL: Final = 1_000_000
#: how far after its session's start an event may come (a Tasks tab left open for a week)
MAX_OFFSET_MS: Final = 7 * 24 * 3600 * 1000
MAX_REF_LENGTH: Final = 200
MAX_USERNAME_LENGTH: Final = 100
#: the Tasks tab's filters, as `task_filter:select` / `task_filter:clear` name them
FILTER_FIELDS: Final = ("overdue", "task_type", "place", "search")
#: UTC offsets of the earliest and latest zones (UTC+14, UTC-12): a local day D lies within
#: [D 00:00 UTC - 14 h, D+1 00:00 UTC + 12 h) whatever the device's zone
_EARLIEST_ZONE: Final = timedelta(hours=14)
_LATEST_ZONE: Final = timedelta(hours=12)

_UUID: Final = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
#: "unknown", a hex build hash (the web app's), or a release number such as 1.4.2, 2.0.0-beta.1, 1.4.2+17
_VERSION: Final = re.compile(r"unknown|[0-9a-f]{8,64}|\d{1,9}(\.\d{1,9}){0,3}([-+][0-9A-Za-z.]{1,32})?")
_DATE: Final = re.compile(r"\d{4}-\d{2}-\d{2}")
_TOP_KEYS: Final = ("_id", "type", "metadata", "sessions", "dropped")
_METADATA_KEYS: Final = ("user", "deviceId", "date", "version")
_SESSION_KEYS: Final = ("session", "startedAt", "events")
_EVENT_KEYS: Final = ("action", "ref", "detail", "offset")


class RefKind(Enum):
    """What an event's ``ref`` names: always an identifier from a closed list, never free text."""

    TITLE_KEY = "a task title key of the program"
    FORM = "a form id of the program"
    FILTER_FIELD = "a Tasks tab filter field id (" + ", ".join(FILTER_FIELDS) + ")"


@dataclass(frozen=True)
class Action:
    """What one kind of event carries: a ``ref`` of some kind (required) or none; a ``detail`` (required,
    an integer from ``detail_min``) or none. ``detail`` is what the number counts, for the docs."""

    ref: RefKind | None = None
    detail: str | None = None
    detail_min: int = 0


#: the events the web app records, exactly; docs/interactions.md ("Events") has the same table (a test compares them)
ACTIONS: Final[Mapping[str, Action]] = MappingProxyType({
    "task_list:open": Action(),
    "task_list:loaded": Action(detail="number of tasks in the list"),
    "task_list:scroll": Action(),
    "task_list:leave": Action(),
    "task:open": Action(ref=RefKind.TITLE_KEY, detail="position of the task in the list (0 = first)"),
    "task:back": Action(),
    "task:form_open": Action(ref=RefKind.FORM),
    "task:form_save": Action(),
    "task:complete": Action(),
    "task:cancel": Action(),
    "task_group:show": Action(detail="number of tasks shown"),
    "task_group:select": Action(ref=RefKind.TITLE_KEY),
    "task_group:leave": Action(),
    "task_filter:open": Action(),
    "task_filter:close": Action(),
    "task_filter:reset": Action(),
    "task_filter:select": Action(ref=RefKind.FILTER_FIELD, detail="number of values selected", detail_min=1),
    "task_filter:clear": Action(ref=RefKind.FILTER_FIELD),
})


@dataclass(frozen=True)
class Vocabulary:
    """The identifiers a summary may name: the active program's task title keys and form ids, and the Tasks
    tab's filter fields (:mod:`kazi.analytics.vocabulary` builds it from a program)."""

    title_keys: frozenset[str]
    form_ids: frozenset[str]
    filter_fields: frozenset[str] = frozenset(FILTER_FIELDS)

    def allowed(self, kind: RefKind) -> frozenset[str]:
        if kind is RefKind.TITLE_KEY:
            return self.title_keys
        if kind is RefKind.FORM:
            return self.form_ids
        return self.filter_fields


@dataclass(frozen=True)
class SummaryProblem:
    """One thing wrong with a summary: ``field`` is its JSON path inside the summary (``""`` for the summary
    itself), ``index`` the summary's position in the request."""

    field: str
    message: str
    index: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "field": self.field, "message": self.message}


@dataclass(frozen=True)
class SummaryInfo:
    """The facts of a valid summary the store files it under."""

    id: str
    user: str
    device_id: str
    date: str
    version: str
    events: int
    dropped: int


def summary_id(day: str, user: str, device_id: str) -> str:
    """``interaction-<YYYY-MM-DD>-<user>-<deviceId>``: the one id of a user's day on a device."""
    return f"{ID_PREFIX}{day}-{user}-{device_id}"


def content_hash(summary: Mapping[str, Any]) -> str:
    """SHA-256 of the summary's canonical JSON (keys sorted): the same content in any key order is the same
    summary, which is what makes sending it twice harmless."""
    return hashlib.sha256(orjson.dumps(summary, option=orjson.OPT_SORT_KEYS)).hexdigest()


def latest_date(now_ms: int) -> date:
    """The latest calendar date anywhere on Earth at ``now_ms`` (in UTC+14): no summary can be later."""
    return (datetime.fromtimestamp(now_ms / 1000, UTC) + _EARLIEST_ZONE).date()


def day_window(day: date) -> tuple[int, int]:
    """``[start, end)`` in epoch ms of every instant that is on local day ``day`` in some zone."""
    midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return (int((midnight - _EARLIEST_ZONE).timestamp() * 1000),
            int((midnight + timedelta(days=1) + _LATEST_ZONE).timestamp() * 1000))


def check_summary(summary: object, vocabulary: Vocabulary, *, now_ms: int,
                  index: int = 0) -> tuple[SummaryInfo | None, list[SummaryProblem]]:
    """Validate one summary: ``(info, [])`` when it is good, ``(None, problems)`` otherwise, every problem
    located. ``now_ms`` is the server's clock (a summary of a day that has not begun anywhere is refused)."""
    return _Checker(vocabulary, now_ms, index).check(summary)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _describe(value: object) -> str:
    """A short description of a bad value: its type, or the value itself when it is short and harmless."""
    if isinstance(value, bool) or value is None:
        return orjson.dumps(value).decode()
    if _is_int(value) or isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return repr(value) if len(value) <= 60 else f"a string of {len(value)} characters"
    return f"a JSON {'array' if isinstance(value, list) else 'object'}"


class _Checker:
    def __init__(self, vocabulary: Vocabulary, now_ms: int, index: int) -> None:
        self.vocabulary = vocabulary
        self.now_ms = now_ms
        self.index = index
        self.problems: list[SummaryProblem] = []

    def problem(self, field: str, message: str) -> None:
        self.problems.append(SummaryProblem(field, message, self.index))

    def keys(self, obj: Mapping[str, Any], allowed: tuple[str, ...], path: str) -> None:
        """Unknown keys are refused: they are where free text (and personal data) would go."""
        for key in obj:
            if key not in allowed:
                shown = repr(key) if len(key) <= 60 else f"of {len(key)} characters"
                self.problem(_join(path, key), f"unknown key {shown}: only {', '.join(allowed)} are allowed "
                                               "(a summary carries no free text)")

    def obj(self, value: object, path: str, what: str) -> Mapping[str, Any] | None:
        if isinstance(value, Mapping):
            return value
        self.problem(path, f"must be {what}, got {_describe(value)}")
        return None

    def integer(self, value: object, path: str, low: int, high: int) -> int | None:
        if not _is_int(value):
            self.problem(path, f"must be an integer, got {_describe(value)}")
            return None
        assert isinstance(value, int)
        if not low <= value <= high:
            self.problem(path, f"must be between {low} and {high}, got {value}")
            return None
        return value

    def check(self, summary: object) -> tuple[SummaryInfo | None, list[SummaryProblem]]:
        top = self.obj(summary, "", "a JSON object (one interaction summary)")
        if top is None:
            return None, self.problems
        self.keys(top, _TOP_KEYS, "")
        if top.get("type") != SUMMARY_TYPE:
            self.problem("type", f"must be {SUMMARY_TYPE!r}, got {_describe(top.get('type'))}")
        user, device_id, day, version = self.metadata(top.get("metadata"))
        expected = summary_id(day.isoformat(), user, device_id) if user and device_id and day else None
        sent_id = top.get("_id")
        if not isinstance(sent_id, str):
            self.problem("_id", f"must be a string, got {_describe(sent_id)}")
        elif expected is not None and sent_id != expected:
            self.problem("_id", f"must be {expected!r} (interaction-<date>-<user>-<deviceId> of the metadata), "
                                f"got {_describe(sent_id)}")
        events = self.sessions(top.get("sessions"), day)
        dropped = self.integer(top.get("dropped"), "dropped", 0, MAX_DROPPED)
        if dropped and events is not None and events < MAX_EVENTS:
            self.problem("dropped", f"{dropped} events dropped but only {events} kept: the cap drops events only "
                                    f"once {MAX_EVENTS} are kept")
        if self.problems:
            return None, self.problems
        assert expected is not None and day is not None and events is not None and dropped is not None
        assert version is not None
        return SummaryInfo(expected, user, device_id, day.isoformat(), version, events, dropped), []

    def metadata(self, value: object) -> tuple[str, str, date | None, str | None]:
        meta = self.obj(value, "metadata", "an object with user, deviceId, date and version")
        if meta is None:
            return "", "", None, None
        self.keys(meta, _METADATA_KEYS, "metadata")
        user = meta.get("user")
        if not isinstance(user, str) or len(user) > MAX_USERNAME_LENGTH or not USERNAME_PATTERN.fullmatch(user):
            self.problem("metadata.user", f"must be a username, got {_describe(user)}")
            user = ""
        device_id = meta.get("deviceId")
        if not isinstance(device_id, str) or not _UUID.fullmatch(device_id):
            self.problem("metadata.deviceId", "must be the device's random id, a lower-case UUID "
                                              f"(8-4-4-4-12 hex digits), got {_describe(device_id)}")
            device_id = ""
        version = meta.get("version")
        if not isinstance(version, str) or not _VERSION.fullmatch(version):
            self.problem("metadata.version", "must be the app's version: a release number (1.4.2, 2.0.0-beta.1), "
                                             f"a hex build hash or 'unknown', got {_describe(version)}")
            version = None
        return user, device_id, self.day(meta.get("date")), version

    def day(self, value: object) -> date | None:
        parsed: date | None = None
        if isinstance(value, str) and _DATE.fullmatch(value):
            try:
                parsed = date.fromisoformat(value)
            except ValueError:
                parsed = None
        if parsed is None:
            self.problem("metadata.date", f"must be a date YYYY-MM-DD, got {_describe(value)}")
            return None
        latest = latest_date(self.now_ms)
        if parsed > latest:
            self.problem("metadata.date", f"{value} has not begun anywhere yet (the latest date is {latest})")
            return None
        return parsed

    def sessions(self, value: object, day: date | None) -> int | None:
        """The number of events when the sessions are well-formed enough to count them."""
        if not isinstance(value, list) or not value:
            self.problem("sessions", f"must be a non-empty array of sessions, got {_describe(value)}")
            return None
        total = sum(len(s["events"]) for s in value if isinstance(s, Mapping) and isinstance(s.get("events"), list))
        if total > MAX_EVENTS:
            # checking each of them would only spend time on a summary refused anyway
            self.problem("sessions", f"{total} events: a summary keeps at most {MAX_EVENTS} a day (the device "
                                     "counts the rest in dropped)")
            return None
        window = day_window(day) if day is not None else None
        seen: set[str] = set()
        previous_start = -1
        for i, session in enumerate(value):
            path = f"sessions[{i}]"
            s = self.obj(session, path, "an object with session, startedAt and events")
            if s is None:
                continue
            self.keys(s, _SESSION_KEYS, path)
            sid = s.get("session")
            if not isinstance(sid, str) or not _UUID.fullmatch(sid):
                self.problem(f"{path}.session", f"must be the session's random id, a lower-case UUID, got "
                                                f"{_describe(sid)}")
            elif sid in seen:
                self.problem(f"{path}.session", "the same session twice: a session's events go in one entry")
            else:
                seen.add(sid)
            started = self.integer(s.get("startedAt"), f"{path}.startedAt", 0, 2**53)
            if started is not None:
                if started < previous_start:
                    self.problem(f"{path}.startedAt", "sessions must be in the order they started")
                previous_start = started
            self.events(s.get("events"), path, started, window)
        return total

    def events(self, value: object, path: str, started: int | None, window: tuple[int, int] | None) -> None:
        if not isinstance(value, list) or not value:
            self.problem(f"{path}.events", f"must be a non-empty array of events, got {_describe(value)}")
            return
        previous = -1
        for j, event in enumerate(value):
            epath = f"{path}.events[{j}]"
            e = self.obj(event, epath, "an object with action, offset and, by action, ref and detail")
            if e is None:
                continue
            self.keys(e, _EVENT_KEYS, epath)
            self.action(e, epath)
            offset = self.integer(e.get("offset"), f"{epath}.offset", 0, MAX_OFFSET_MS)
            if offset is None:
                continue
            if offset < previous:
                self.problem(f"{epath}.offset", "events must be in the order they happened (offsets never go back)")
            previous = offset
            if started is not None and window is not None and not window[0] <= started + offset < window[1]:
                self.problem(f"{epath}.offset", "startedAt + offset is not on the summary's date in any time zone")

    def action(self, e: Mapping[str, Any], epath: str) -> None:
        name = e.get("action")
        spec = ACTIONS.get(name) if isinstance(name, str) else None
        if spec is None:
            self.problem(f"{epath}.action", f"unknown action {_describe(name)} (known: {', '.join(ACTIONS)})")
            return
        ref = e.get("ref")
        if spec.ref is None:
            if "ref" in e:
                self.problem(f"{epath}.ref", f"{name} takes no ref")
        elif not isinstance(ref, str) or not ref:
            self.problem(f"{epath}.ref", f"{name} needs a ref, {spec.ref.value}; got {_describe(ref)}")
        elif len(ref) > MAX_REF_LENGTH:
            self.problem(f"{epath}.ref", f"longer than {MAX_REF_LENGTH} characters: not {spec.ref.value}")
        elif ref not in self.vocabulary.allowed(spec.ref):
            self.problem(f"{epath}.ref", f"{ref!r} is not {spec.ref.value}")
        if spec.detail is None:
            if "detail" in e:
                self.problem(f"{epath}.detail", f"{name} takes no detail")
        elif "detail" not in e:
            self.problem(f"{epath}.detail", f"{name} needs a detail: the {spec.detail}")
        else:
            self.integer(e["detail"], f"{epath}.detail", spec.detail_min, MAX_DETAIL)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key
