"""Task documents: display windows, states, timeliness, the refresh round, temporal updates, sorting.

This is the half of CHT's rules-engine that turns task *emissions* (see ``docs/architecture.md``) into the
task *documents* a device stores, and the Tasks tab's order (docs/engine.md, "Pipeline").  It is pure: no I/O,
no clock, no
module state besides caches of deterministic per-zone date work.  Every instant (``calculated_at``, ``now``,
``ts``) is epoch milliseconds and every local-date question is answered in the explicit IANA zone ``tz``.

Documents are plain dicts exactly as CHT stores them (minus ``_rev``).  Input docs and emissions are never
mutated: a changed doc is a shallow copy with the changed members replaced, so unchanged nested values
(``actions``, ``stateHistory`` entries) are shared between input and output.  Treat all of them as immutable.

Public API:

* :func:`display_window`, :func:`calculate_state`, :func:`is_timely`, :func:`minify`, :func:`task_doc_id`
  -- the per-emission rules;
* :func:`refresh` -- one refresh round (CHT's ``refreshRulesEmissions``), returning a :class:`RefreshResult`;
* :func:`update_temporal_states` -- what ``fetchTasksFor`` does after a refresh (``updateTemporalStates``), returning a
  :class:`TemporalResult`;
* :func:`sort_for_tasks_tab` -- the Tasks tab order (``orderByDueDateAndPriority``).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any, NamedTuple, TypeGuard, TypeVar

from kazi.engine.dates import (
    MS_IN_DAY,
    add_days_local,
    epoch_day,
    local_date_str,
    make_local,
    ymd_midnight_ms,
)

__all__ = [
    "CANCELLED",
    "COMPLETED",
    "DRAFT",
    "FAILED",
    "READY",
    "TERMINAL_STATES",
    "RefreshResult",
    "TemporalResult",
    "Window",
    "calculate_state",
    "display_window",
    "is_terminal",
    "is_timely",
    "minify",
    "refresh",
    "sort_for_tasks_tab",
    "task_doc_id",
    "update_temporal_states",
]

Emission = Mapping[str, Any]
TaskDoc = dict[str, Any]
_T = TypeVar("_T", bound=Mapping[str, Any])

READY = "Ready"
DRAFT = "Draft"
COMPLETED = "Completed"
FAILED = "Failed"
CANCELLED = "Cancelled"

TERMINAL_STATES = frozenset({CANCELLED, COMPLETED, FAILED})
"""States a doc never leaves: the refresh round and the temporal update leave such docs untouched."""

# "Most ready" order used to pick winners among duplicates (lower is more ready); unknown states last.
_READINESS = {READY: 0, DRAFT: 1, COMPLETED: 2, FAILED: 3, CANCELLED: 4}
_UNKNOWN_RANK = 5

# Timeliness limits (reference 7.4), in local calendar days around the calculation instant.
_TIMELY_PAST_DAYS = 60
_TIMELY_FUTURE_DAYS = 180

# Members of an emission kept verbatim in the stored (minified) emission (reference 7.2).
_KEPT_MEMBERS = ("_id", "title", "icon", "deleted", "priority", "priorityLabel")


class Window(NamedTuple):
    """A task's display window as local ``YYYY-MM-DD`` strings (compared lexicographically, as CHT does)."""

    due: Any
    start: Any
    end: Any


class RefreshResult(NamedTuple):
    """Outcome of one refresh round (unpacks as ``docs, writes``).

    ``docs`` is the whole resulting set: every input doc (replaced by its new version when written)
    followed by the newly created docs that are written.  ``writes`` are the docs CHT would commit, in its
    order (updated/created, then cancelled because their emission vanished, then cancelled as duplicates).
    """

    docs: list[TaskDoc]
    writes: list[TaskDoc]


class TemporalResult(NamedTuple):
    """Outcome of a temporal update (unpacks as ``docs, writes``): all docs, and those whose state changed."""

    docs: list[TaskDoc]
    writes: list[TaskDoc]

    @property
    def ready(self) -> list[TaskDoc]:
        """The ``Ready`` docs (what ``fetchTasksFor`` returns), in ``docs`` order."""
        return [d for d in self.docs if d.get("state") == READY]


# --------------------------------------------------------------------------------------------------------
# JavaScript value semantics


def _truthy(value: Any) -> bool:
    """JavaScript truthiness of a JSON value (``[]`` and ``{}`` are truthy, ``NaN`` is not)."""
    if value is None or value is False:
        return False
    if value is True:
        return True
    if isinstance(value, (int, float)):
        return value != 0 and not math.isnan(value)
    if isinstance(value, str):
        return value != ""
    return True


def _is_number(value: Any) -> bool:
    """``typeof value === 'number'`` for JSON values (a bool is not a number)."""
    kind = type(value)
    return kind is int or kind is float or (kind is not bool and isinstance(value, (int, float)))


def _is_map(value: object) -> TypeGuard[Mapping[str, Any]]:
    """A JSON object (exact ``dict`` checked first: ``isinstance`` against an ABC is slow in hot loops)."""
    return type(value) is dict or isinstance(value, Mapping)


def _finite(value: Any) -> float | None:
    """``value`` as a float when it is a finite JavaScript number, else None."""
    if _is_number(value) and not math.isnan(value) and not math.isinf(value):
        return float(value)
    return None


def _num(value: Any) -> float:
    """A number for ordering comparisons; anything else compares as "smaller than every number"."""
    return float(value) if _is_number(value) and not math.isnan(value) else -math.inf


def _moment_days(value: Any) -> int:
    """Whole days moment adds for ``value || 0``: numeric strings convert, fractions round half from 0."""
    if not _truthy(value):
        return 0
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return 0
    days = _finite(value)
    if days is None:
        return 0
    n = math.floor(abs(days) + 0.5)
    return -n if days < 0 else n


def _same_json(a: Any, b: Any) -> bool:
    """Would ``JSON.stringify`` give the same text for ``a`` and ``b`` (member order aside)?

    Plain ``==`` (a fast C-level deep compare) is right for ``1 == 1.0`` as in JavaScript, but also says
    ``True == 1`` and ``False == 0`` where JSON differs; a second pass over the containers checks that.
    """
    return bool(a == b) and _same_bool_positions(a, b)


def _same_bool_positions(a: Any, b: Any) -> bool:
    # Precondition: a == b, so both are containers of the same kind with the same keys / lengths.
    if type(a) is dict:
        for key, value in a.items():
            other = b[key]
            tv = type(value)
            if tv is dict or tv is list:
                if not _same_bool_positions(value, other):
                    return False
            elif (tv is bool) is not (type(other) is bool):
                return False
        return True
    if type(a) is list:
        for value, other in zip(a, b, strict=True):
            tv = type(value)
            if tv is dict or tv is list:
                if not _same_bool_positions(value, other):
                    return False
            elif (tv is bool) is not (type(other) is bool):
                return False
        return True
    return (type(a) is bool) is (type(b) is bool)


# --------------------------------------------------------------------------------------------------------
# Windows, states, timeliness


class _Win(NamedTuple):
    """A window with the local midnights starting its first and last day (NaN when unparsable)."""

    window: Window
    start_ms: float
    end_ms: float


@lru_cache(maxsize=1 << 14)
def _midnight_of(ymd: str, tz: str) -> float:
    try:
        return ymd_midnight_ms(ymd, tz)
    except ValueError:
        return math.nan


def _midnight(value: Any, tz: str) -> float:
    """``moment(value)`` for a stored ``YYYY-MM-DD`` (local midnight); NaN when it does not parse."""
    return _midnight_of(value, tz) if isinstance(value, str) else math.nan


@lru_cache(maxsize=1 << 16)
def _computed_window(due_ms: float, start_days: int, end_days: int, tz: str) -> _Win | None:
    due = local_date_str(due_ms, tz)
    # moment's add/subtract of days is setDate() on the local date (wall time kept), then formatted
    # locally; going through the instant (not a string shift) keeps zones that skipped a whole day exact.
    start = local_date_str(add_days_local(due_ms, -start_days, tz), tz) if start_days else due
    end = local_date_str(add_days_local(due_ms, end_days, tz), tz) if end_days else due
    if due is None or start is None or end is None:
        return None
    return _Win(Window(due, start, end), _midnight(start, tz), _midnight(end, tz))


def _window_of(emission: Emission, tz: str) -> _Win | None:
    start = emission.get("startDate")
    end = emission.get("endDate")
    if (start is not None or end is not None) and (_truthy(start) or _truthy(end)):
        return _Win(Window(emission.get("dueDate"), start, end), _midnight(start, tz), _midnight(end, tz))
    due: Any = emission.get("dueDateMs")
    kind = type(due)
    if kind is not int and (kind is not float or not math.isfinite(due)):
        return None
    ready_start: Any = emission.get("readyStart")
    ready_end: Any = emission.get("readyEnd")
    return _computed_window(
        due,
        ready_start if type(ready_start) is int else _moment_days(ready_start),
        ready_end if type(ready_end) is int else _moment_days(ready_end),
        tz,
    )


def display_window(emission: Emission, tz: str) -> Window | None:
    """The display window of an emission or of a stored (minified) emission; ``None`` when invalid.

    A stored emission carries ``startDate``/``endDate`` and they are reused as they are, which is why the
    temporal update needs no zone arithmetic.  Otherwise, with ``due`` the emission's due instant
    (``dueDateMs``): ``start = due - readyStart`` and ``end = due + readyEnd`` calendar days in ``tz``.
    """
    win = _window_of(emission, tz)
    return win.window if win is not None else None


def _has_date(emission: Emission) -> bool:
    # CHT checks `emission.date || emission.dueDate`; an internal emission's `date` is `dueDateMs`.
    return (
        emission.get("dueDateMs") is not None
        or _truthy(emission.get("dueDate"))
        or _truthy(emission.get("date"))
    )


def _state_with(emission: Emission, win: _Win | None, today: str | None) -> str | None:
    """:func:`calculate_state` with the window and the local date of ``ts`` already known."""
    # An internal emission's `resolved` is the boolean; a stored one's is the raw value: truthiness only.
    resolved = emission.get("resolved")
    if resolved is True or (resolved is not None and resolved is not False and _truthy(resolved)):
        return COMPLETED
    deleted = emission.get("deleted")
    if deleted is True or (deleted is not None and deleted is not False and _truthy(deleted)):
        return CANCELLED
    if win is None or today is None or not _has_date(emission):
        return None
    start, end = win.window.start, win.window.end
    # Only well-formed string windows are comparable; a malformed stored window counts as invalid.
    if type(start) is not str or type(end) is not str or not start or not end or start > end:
        return None
    if start > today:
        return DRAFT
    if end < today:
        return FAILED
    return READY


def _state_on(emission: Any, today: str | None, tz: str) -> str | None:
    if not _is_map(emission):
        return None
    if not emission:
        return None
    return _state_with(emission, _window_of(emission, tz), today)


def calculate_state(emission: Emission | None, ts: float, tz: str) -> str | None:
    """State of an emission at instant ``ts`` (reference 7.3); ``None`` stands for CHT's "invalid" (false).

    First match wins: resolved -> Completed (even before the window), deleted -> Cancelled, no due date or
    no valid window -> None, window starts after today -> Draft, ended before today -> Failed, else Ready.
    "Today" is the local date of ``ts``: both window ends are inclusive whole local days.
    """
    return _state_on(emission, local_date_str(ts, tz), tz)


@lru_cache(maxsize=4096)
def _round_context(ts: float, tz: str) -> tuple[str | None, float, float]:
    """(local date of ``ts``, ``ts`` - 60 local days, ``ts`` + 180 local days): shared by a whole round."""
    return (
        local_date_str(ts, tz),
        add_days_local(ts, -_TIMELY_PAST_DAYS, tz),
        add_days_local(ts, _TIMELY_FUTURE_DAYS, tz),
    )


def _timely_in(win: _Win | None, earliest: float, latest: float) -> bool:
    # NaN compares false, so an unparsable end or start is not timely, as with an invalid moment.
    return win is not None and earliest < win.end_ms and latest > win.start_ms


def is_timely(emission: Emission, ts: float, tz: str) -> bool:
    """Whether an emission may become a doc at ``ts`` (reference 7.4).

    Timely iff ``ts - 60 days`` is strictly before the local midnight starting ``endDate`` and
    ``ts + 180 days`` is strictly after the one starting ``startDate`` (exact instants, the day shifts are
    local calendar days).  Invalid dates are never timely.
    """
    _, earliest, latest = _round_context(ts, tz)
    return _timely_in(_window_of(emission, tz), earliest, latest)


def is_terminal(state: Any) -> bool:
    """Cancelled, Completed and Failed are terminal: CHT never revives or recomputes such a doc."""
    return state in TERMINAL_STATES


def _rank(state: Any) -> int:
    return _READINESS.get(state, _UNKNOWN_RANK) if isinstance(state, str) else _UNKNOWN_RANK


# --------------------------------------------------------------------------------------------------------
# Minified emission and task docs


def _contact_id(value: Any) -> Any:
    # Internally `content.contact` is the contact's `_id`; CHT had the whole doc there.
    if _is_map(value):
        return value.get("_id")
    return value


def _minify(emission: Emission, window: Window | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in _KEPT_MEMBERS:
        if key in emission:
            out[key] = emission[key]
    # The stored `resolved` is resolvedIf's raw value (absent when it returned undefined).
    if "_k_resolved_raw" in emission:
        out["resolved"] = emission["_k_resolved_raw"]
    if "actions" in emission:
        actions = emission["actions"]
        if isinstance(actions, list):
            for_id: Any = None
            stripped: list[Any] = []
            for action in actions:
                content = action.get("content") if _is_map(action) else None
                if _is_map(content) and content:
                    if not _truthy(for_id):
                        for_id = _contact_id(content.get("contact"))
                    if "contact" in content:
                        action = dict(action)
                        content = dict(content)
                        del content["contact"]
                        action["content"] = content
                stripped.append(action)
            out["actions"] = stripped
            if for_id is not None:
                out["forId"] = for_id
        else:
            out["actions"] = actions
    contact = emission.get("contact")
    if _truthy(contact):
        out["contact"] = {"name": contact["name"]} if _is_map(contact) and "name" in contact else {}
    if _has_date(emission) or "dueDate" in emission:
        if window is None:
            out["dueDate"] = out["startDate"] = out["endDate"] = None  # NaN, stored as null
        else:
            out["dueDate"], out["startDate"], out["endDate"] = window.due, window.start, window.end
    return out


def minify(emission: Emission, tz: str) -> dict[str, Any]:
    """The emission as stored in a task doc (reference 7.2).

    Keeps ``_id, title, icon, deleted, actions, priority, priorityLabel`` when present, ``resolved`` = the
    raw ``_k_resolved_raw`` (absent when absent), ``contact = {name}`` (``{}`` without a name), the local
    ``dueDate``/``startDate``/``endDate``, and ``forId`` = the first action content's contact id; every
    action's ``content.contact`` is removed.  Internal ``_k_*`` members, ``requester``, ``dueDateMs``,
    ``readyStart``/``readyEnd`` never reach a doc.
    """
    return _minify(emission, display_window(emission, tz))


def _ms_int(value: float) -> int:
    """Epoch ms as JavaScript prints it in ids (an integral number, no ``.0``)."""
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError(f"calculation timestamp must be whole milliseconds, got {value!r}")
        return int(value)
    return int(value)


def task_doc_id(user_settings_id: str, emission_id: Any, calculated_at: float) -> str:
    """``task~<user-settings id>~<emission _id>~<calculatedAt>``: unique per user, emission and round."""
    return f"task~{user_settings_id}~{emission_id}~{_ms_int(calculated_at)}"


def _set_state(doc: TaskDoc, state: str | None, ts: float, reason: str = "") -> None:
    """CHT's setStateOnTaskDoc on a doc this module owns (a copy): invalid -> Cancelled/'invalid'."""
    if not state:
        doc["state"] = CANCELLED
        doc["stateReason"] = "invalid"
    else:
        doc["state"] = state
        if reason:
            doc["stateReason"] = reason
    history = doc.get("stateHistory")
    if not isinstance(history, list):
        history = []
    last = history[-1] if history else None
    if not _is_map(last) or last.get("state") != doc["state"]:
        # A new list: the input doc's history must stay as it was.
        doc["stateHistory"] = [*history, {"state": doc["state"], "timestamp": ts}]


def _with_state(doc: Mapping[str, Any], state: str | None, ts: float, reason: str = "") -> TaskDoc:
    new = dict(doc)
    _set_state(new, state, ts, reason)
    return new


def _emission_id(doc: Mapping[str, Any]) -> Any:
    emission = doc.get("emission")
    return emission.get("_id") if _is_map(emission) else None


def _more_ready(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Does ``a`` beat ``b``: more ready state, then later ``authoredOn``, then (determinism) smaller _id."""
    ra, rb = _rank(a.get("state")), _rank(b.get("state"))
    if ra != rb:
        return ra < rb
    ta, tb = _num(a.get("authoredOn")), _num(b.get("authoredOn"))
    if ta != tb:
        return ta > tb
    return str(a.get("_id")) < str(b.get("_id"))


_MISSING = object()  # an absent member (JavaScript `undefined`: dropped by JSON)


def _unchanged(
    existing: Mapping[str, Any], user: str, requester: Any, owner: Any, minified: Any, state: str | None
) -> bool:
    """Would rewriting an open ``existing`` doc leave its JSON as it was?  (Without building the new doc.)

    Only ``user``, ``requester``, ``owner``, ``emission``, ``state``, ``stateReason`` and ``stateHistory``
    can change; every other member is carried over.
    """
    # An open doc keeps its JSON only if the state stays the same (an invalid state would be Cancelled,
    # which an open doc is not) and no history entry is appended.
    if not state or existing.get("state") != state:
        return False
    history = existing.get("stateHistory")
    if type(history) is not list or not history:
        return False
    last = history[-1]
    if not _is_map(last) or last.get("state") != state:
        return False
    return (
        existing.get("user") == user
        and _same_json(existing.get("requester", _MISSING), _MISSING if requester is None else requester)
        and _same_json(existing.get("owner", _MISSING), _MISSING if owner is None else owner)
        and _same_json(existing.get("emission", _MISSING), minified)
    )


def _transform(
    emission: Emission,
    window: Window | None,
    state: str | None,
    existing: Mapping[str, Any] | None,
    user_settings_id: str,
    calc: int,
) -> tuple[TaskDoc | None, bool]:
    """Emission -> doc (reference 7.6).  Returns (the doc to write or None, reused)."""
    existing_state = existing.get("state") if existing is not None else None
    reuse = existing is not None and (not is_terminal(existing_state) or existing_state == state)
    if reuse and is_terminal(existing_state):
        # Same terminal state: CHT rewrites members in memory but never writes; the stored doc stands.
        return None, True
    requester = emission.get("requester")
    contact = emission.get("contact")
    owner = contact.get("_id") if _is_map(contact) else None
    if owner is None and _is_map(contact) and requester is not None:
        # Deliberate fix of CHT's open bug #7677: a contactLabel replaced the contact, so CHT leaves the
        # doc without `owner` and the task vanishes from the contact's profile. Kazi keeps the subject.
        owner = requester
    minified = _minify(emission, window)
    doc: TaskDoc
    if reuse:
        assert existing is not None
        # A reused open doc is written iff its JSON changed.
        if _unchanged(existing, user_settings_id, requester, owner, minified, state):
            return None, True
        doc = dict(existing)
    else:
        doc = {
            "_id": task_doc_id(user_settings_id, emission.get("_id"), calc),
            "type": "task",
            "authoredOn": calc,
            "stateHistory": [],
        }
    doc["user"] = user_settings_id
    if requester is None:
        doc.pop("requester", None)
    else:
        doc["requester"] = requester
    if owner is None:
        doc.pop("owner", None)  # no contact at all
    else:
        doc["owner"] = owner
    doc["emission"] = minified
    _set_state(doc, state, calc)
    if not reuse and doc["state"] == CANCELLED:
        return None, False  # no doc is created for a deleted or invalid emission
    return doc, reuse


# --------------------------------------------------------------------------------------------------------
# The refresh round


def _unique_by_id(docs: Sequence[Mapping[str, Any]]) -> Sequence[Mapping[str, Any]]:
    """``docs`` without later repeats of an ``_id`` (the same doc passed twice must not duplicate itself)."""
    seen: set[Any] = set()
    out: list[Mapping[str, Any]] = []
    repeated = False
    for doc in docs:
        doc_id = doc.get("_id")
        if type(doc_id) is str:
            if doc_id in seen:
                repeated = True
                continue
            seen.add(doc_id)
        out.append(doc)
    return out if repeated else docs


def refresh(
    emissions: Iterable[Emission],
    existing_docs: Sequence[Mapping[str, Any]],
    user_settings_id: str,
    calculated_at: float,
    tz: str,
) -> RefreshResult:
    """One refresh round (reference 7.5): existing task docs + this round's emissions -> docs to write.

    Steps as numbered in the reference:

    2. Existing docs authored after ``calculated_at`` (device clock moved back) are set aside: neither
       winners nor duplicates.  The rest are grouped by ``emission._id``; the most ready doc wins (ties:
       later ``authoredOn``, then smaller ``_id`` so the choice never depends on input order); the others
       are duplicates.
    3. Untimely emissions (:func:`is_timely`) are dropped.
    4. Among emissions sharing an ``_id`` the first is kept unless a later one is strictly more ready
       (invalid counting as Cancelled).
    5. Each kept emission is transformed against the winner doc of its id (reference 7.6): the winner is
       reused when it is open or already in the emitted state, otherwise a new doc
       ``task~<user>~<emission id>~<calculated_at>`` is created (and written only if not Cancelled); a
       reused open doc is written iff its JSON changed, a reused terminal doc never.
    6. Every open input doc (future-authored ones included) whose emission id was not kept in steps 3-4
       is Cancelled (no reason).
    7. Every still-open duplicate is Cancelled with ``stateReason: duplicate`` (a duplicate Cancelled in
       step 6 is terminal by then and keeps no reason).

    ``emissions`` are internal emission dicts (``docs/architecture.md``) in emitter order (order only
    matters between emissions sharing an ``_id``).  ``existing_docs`` are keyed by ``_id`` as in a
    database: a repeated ``_id`` after its first occurrence is ignored.  ``calculated_at`` is whole epoch
    ms.

    Incremental use: every rule above works within one group of docs and emissions sharing an
    ``emission._id``; groups never influence each other.  So a caller may pass only part of the data --
    typically the existing docs whose ``requester`` is in a set of contacts plus the emissions of those
    contacts' containers -- and the result for the docs passed equals a full recompute PROVIDED every
    emission id involved is complete: all existing docs carrying an emission id that is passed (as a doc or
    an emission) are passed, and all emissions with the emission id of a passed doc are passed (a doc whose
    emission is missing is Cancelled).  Partitioning by requester satisfies this unless an emission id moved
    between requesters (a report re-linked to another subject): then include both requesters.  Docs not
    passed are simply not touched.  (CHT itself loads docs by requester and does NOT merge such groups, so
    it can leave two docs for one emission id until both requesters happen to be refreshed together; a
    caller reproducing CHT exactly passes the requesters CHT would refresh.)
    """
    calc = _ms_int(calculated_at)
    today, earliest, latest = _round_context(calc, tz)
    existing_docs = _unique_by_id(existing_docs)

    # Step 2: disambiguate existing docs.
    winners: dict[Any, Mapping[str, Any]] = {}
    duplicates: list[Mapping[str, Any]] = []
    for doc in existing_docs:
        if _num(doc.get("authoredOn")) > calc:
            continue
        eid = _emission_id(doc)
        current = winners.get(eid)
        if current is None:
            winners[eid] = doc
        elif _more_ready(doc, current):
            duplicates.append(current)
            winners[eid] = doc
        else:
            duplicates.append(doc)

    # Steps 3 and 4: timely emissions, disambiguated by id.
    kept: dict[Any, tuple[Emission, Window | None, str | None]] = {}
    for emission in emissions:
        win = _window_of(emission, tz)
        if not _timely_in(win, earliest, latest):
            continue
        state = _state_with(emission, win, today)
        window = win.window if win is not None else None
        eid = emission.get("_id")
        previous = kept.get(eid)
        if previous is None or _rank(state or CANCELLED) < _rank(previous[2] or CANCELLED):
            kept[eid] = (emission, window, state)

    # Step 5: transform.
    replaced: dict[int, TaskDoc] = {}  # id() of an input doc -> its new version
    updated: list[TaskDoc] = []
    created: list[TaskDoc] = []
    for eid, (emission, window, state) in kept.items():
        existing = winners.get(eid)
        new_doc, reused = _transform(emission, window, state, existing, user_settings_id, calc)
        if new_doc is None:
            continue
        updated.append(new_doc)
        if reused:
            assert existing is not None
            replaced[id(existing)] = new_doc
        else:
            created.append(new_doc)

    # Step 6: open docs whose emission vanished.
    cancelled: list[TaskDoc] = []
    for doc in existing_docs:
        if is_terminal(doc.get("state")) or _emission_id(doc) in kept:
            continue
        new = _with_state(replaced.get(id(doc), doc), CANCELLED, calc)
        replaced[id(doc)] = new
        cancelled.append(new)

    # Step 7: open duplicates (a duplicate already Cancelled in step 6 is terminal by now).
    dedup: list[TaskDoc] = []
    for doc in duplicates:
        current = replaced.get(id(doc), doc)
        if is_terminal(current.get("state")):
            continue
        new = _with_state(current, CANCELLED, calc, "duplicate")
        replaced[id(doc)] = new
        dedup.append(new)

    docs: list[TaskDoc] = []
    for doc in existing_docs:
        replacement = replaced.get(id(doc))
        docs.append(replacement if replacement is not None else doc if isinstance(doc, dict) else dict(doc))
    docs.extend(created)
    return RefreshResult(docs=docs, writes=[*updated, *cancelled, *dedup])


# --------------------------------------------------------------------------------------------------------
# Temporal updates


def update_temporal_states(docs: Sequence[Mapping[str, Any]], now: float, tz: str) -> TemporalResult:
    """What CHT's ``fetchTasksFor`` does after a refresh (reference 7.7).

    Every open (non-terminal) doc gets its state recomputed at ``now`` from its stored emission
    (stored ``startDate``/``endDate``; Draft -> Ready at local midnight, Ready -> Failed after ``endDate``);
    a doc authored after ``now`` (clock moved back) is forced to Cancelled; docs whose state changed are
    written with a history entry at ``now``.  The result's ``ready`` lists the resulting ``Ready`` docs
    (input order; see :func:`sort_for_tasks_tab`).  Terminal docs pass through untouched.  ``now`` is
    whole epoch ms.
    """
    now = _ms_int(now)
    today = local_date_str(now, tz)
    writes: list[TaskDoc] = []
    out: list[TaskDoc] = []
    for doc in docs:
        state = doc.get("state")
        current: TaskDoc = doc if isinstance(doc, dict) else dict(doc)
        if not is_terminal(state):
            new_state = _state_on(doc.get("emission"), today, tz)
            if _num(doc.get("authoredOn")) > now:
                new_state = CANCELLED
            # An invalid state (CHT's `false`) never equals a stored state: Cancelled with 'invalid'.
            if new_state is None or new_state != state:
                current = _with_state(doc, new_state, now)
                writes.append(current)
        out.append(current)
    return TemporalResult(docs=out, writes=writes)


# --------------------------------------------------------------------------------------------------------
# Tasks tab order


def _sort_date(value: Any, tz: str | None) -> float:
    """``moment(dueDate)`` as a number (numbers as they are); NaN when invalid."""
    if _is_number(value):
        return float(value)
    if not isinstance(value, str):
        return math.nan
    return _date_string_ms(value, tz)


@functools.lru_cache(maxsize=8192)
def _date_string_ms(value: str, tz: str | None) -> float:
    """A due date string as epoch ms. Cached: a list of hundreds of tasks shares a few dozen due dates, and
    converting local time in a zone is the costliest step of sorting a Tasks tab."""
    try:
        if len(value) == 10:
            d = date.fromisoformat(value)
            if tz is None:
                return float(epoch_day(d) * MS_IN_DAY)
            return make_local(d.year, d.month - 1, d.day, tz=tz)
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return math.nan
    if dt.tzinfo is not None or tz is None:
        return (dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)).timestamp() * 1000
    return make_local(
        dt.year, dt.month - 1, dt.day, dt.hour, dt.minute, dt.second, dt.microsecond // 1000, tz=tz
    )


def sort_for_tasks_tab(items: Iterable[_T], tz: str | None = None) -> list[_T]:
    """Tasks tab order (reference 7.10, ``orderByDueDateAndPriority``), stable.

    Items are task docs (their ``emission`` is used) or emissions.  A priority is valid iff it is a number
    >= 0: valid priorities come first, higher first; equal or both-invalid priorities fall back to the due
    date, earlier first, invalid dates last.  ``dueDate`` strings are local dates; ``tz`` is only needed to
    order them against numeric due dates (without it they are read as UTC midnights, which orders strings
    among themselves identically).
    """

    def key(item: _T) -> tuple[int, float, int, float]:
        emission = item.get("emission")
        source: Mapping[str, Any] = emission if _is_map(emission) else item
        priority: Any = source.get("priority")
        # typeof number and >= 0 (Infinity included, NaN not).
        level = float(priority) if _is_number(priority) and priority >= 0 else None
        when = _sort_date(source.get("dueDate"), tz)
        bad_date = math.isnan(when)
        return (
            0 if level is not None else 1,
            -level if level is not None else 0.0,
            1 if bad_date else 0,
            0.0 if bad_date else when,
        )

    return sorted(items, key=key)
