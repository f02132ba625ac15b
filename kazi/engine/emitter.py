"""The emission loop for Python task definitions (``tasks.py``): cht-conf's task emitter, to the letter.

A ``tasks.py`` program must emit exactly what its ``tasks.js`` twin emits through V8, so this module follows
cht-conf's task emitter step by step, including the order in which callbacks run (it is observable: they
share state through ``this``): for each definition, for each report (or once for the contact), the
``appliesToType`` filter, ``appliesIf``, then the due dates of *all* events, then per event the
``contactLabel``, ``resolvedIf``, each action's ``modifyContent`` and finally ``priority``.

How Python definitions differ from JavaScript ones (the design, for program authors):

* **``this``.**  Every callback receives a :class:`TaskContext` as its *first* argument, followed by the
  arguments CHT passes (``applies_if(ctx, c, r)``, ``resolved_if(ctx, c, r, event, due_date)``...).  As in
  CHT there is one context per definition per contact container, shared by all of that definition's
  callbacks across the container's reports: ``ctx.lmp = ...`` in ``appliesIf`` is readable in
  ``events[].dueDate``.  Reading an attribute never set gives :data:`~kazi.engine.utils.UNDEFINED`
  (falsy), like ``this.x`` in JavaScript.  The context also carries the CHT globals: ``ctx.utils``
  (:class:`~kazi.engine.utils.Utils`), ``ctx.user`` (the user's contact with hydrated lineage) and
  ``ctx.cht`` (:class:`~kazi.engine.permissions.ChtApi`), because a Python module is imported once and
  cannot receive per-computation globals the way CHT's bundle does.
* **``this.definition``** is ``ctx.definition``: a read-only mapping of the definition with
  ``ctx.definition.default_resolved_if(c, r, event, due_date)`` (alias ``defaultResolvedIf``).
* **Arity.**  JavaScript ignores surplus arguments; so does Kazi: a callback gets only as many positional
  arguments as it declares (``lambda ctx, c: ...`` is a valid ``appliesIf``; so is ``lambda: True``).
* **Dates** are aware ``datetime`` objects; ``None`` is an Invalid Date (see :mod:`kazi.engine.utils`).  A
  ``dueDate`` callback must return one of those.
* **Module state.**  CHT re-evaluates ``tasks.js`` for every container; ``tasks.py`` is imported once, so
  keep per-contact state on ``ctx``, never in module globals.
* Kazi fixes one crash of CHT: a contact task on a contact marked ``deleted`` is emitted with
  ``deleted: True`` (CHT throws reading ``r.deleted`` of an undefined report).

Emissions are dicts in the internal format of ``docs/architecture.md``.
"""

from __future__ import annotations

import inspect
import math
import os
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from kazi.engine import dates
from kazi.engine.permissions import ChtApi
from kazi.engine.utils import (
    UNDEFINED,
    Utils,
    add_date_ms,
    datetime_to_ms,
    is_undefined,
    js_add_one,
    js_new_date_ms,
    js_prop,
    js_strict_equals,
    js_string,
    js_to_number,
    js_truthy,
    ms_to_datetime,
)
from kazi.errors import ConfigCodeError

__all__ = [
    "ChtError", "DefinitionView", "PythonEmitter", "TaskContext", "default_resolved_if_ms", "emit_tasks",
    "to_json",
]

Doc = dict[str, Any]
_NAN: Final = math.nan
_RESOLVING_FORM_MISSING: Final = "Could not find the default resolving form!"
_APPLIES_TO: Final = ("reports", "scheduled_tasks", "contacts")


# ---------------------------------------------------------------------------------------------------------
# JSON, as JSON.parse(JSON.stringify(value)) would give it
# ---------------------------------------------------------------------------------------------------------


def _json_float(x: float) -> float | int | None:
    if x != x or math.isinf(x):
        return None
    if x == int(x) and abs(x) < 1e21:
        return int(x)
    return x


def _iso(value: datetime) -> str:
    ms = datetime_to_ms(value)
    u = ms_to_datetime(ms, UTC)
    if u is None:  # pragma: no cover - a datetime always fits
        return ""
    return (f"{u.year:04d}-{u.month:02d}-{u.day:02d}T{u.hour:02d}:{u.minute:02d}:{u.second:02d}."
            f"{u.microsecond // 1000:03d}Z")


def to_json(value: Any) -> Any:
    """``JSON.parse(JSON.stringify(value))``: a fresh JSON value, or :data:`UNDEFINED` for nothing.

    ``UNDEFINED`` and callables vanish from objects and become ``null`` in arrays; datetimes become
    ``toISOString()`` strings; NaN and infinities ``null``; integral floats ints (JSON has one number type,
    so ``2.0`` and ``2`` are the same value).  Anything else JSON cannot hold raises ``TypeError``.
    """
    t = type(value)
    if t is str or t is bool or t is int or value is None:
        return value
    if t is float:
        return _json_float(value)
    if t is dict or isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            j = to_json(v)
            if j is not UNDEFINED:
                out[k if type(k) is str else js_string(k)] = j
        return out
    if t is list or t is tuple:
        return [None if (j := to_json(v)) is UNDEFINED else j for v in value]
    if isinstance(value, datetime):
        return _iso(value)
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return _json_float(float(value))
    if isinstance(value, str):
        return str(value)
    if is_undefined(value) or callable(value):
        return UNDEFINED
    raise TypeError(f"a {type(value).__name__} is not JSON-serialisable")


# ---------------------------------------------------------------------------------------------------------
# Callbacks and `this`
# ---------------------------------------------------------------------------------------------------------


def _arity(fn: Callable[..., Any]) -> int | None:
    """How many positional arguments ``fn`` takes (``None``: any number), so surplus ones can be dropped."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    n = 0
    for p in sig.parameters.values():
        if p.kind is inspect.Parameter.VAR_POSITIONAL:
            return None
        if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD):
            n += 1
    return n


class _Callback:
    """A definition function with its arity and its location (for error messages)."""

    __slots__ = ("fn", "nargs", "where")

    def __init__(self, fn: Any, where: str) -> None:
        self.fn = fn
        self.where = where
        self.nargs = _arity(fn) if callable(fn) else None

    def __call__(self, *args: Any) -> Any:
        if not callable(self.fn):
            raise TypeError(f"{self.where} is not a function")
        if self.nargs is None:
            return self.fn(*args)
        return self.fn(*args[: self.nargs])


class TaskContext:
    """``this`` of a definition's callbacks within one contact container, plus the CHT globals.

    Set any attribute to share state between callbacks (``ctx.count = (ctx.count or 0) + 1``); an attribute
    never set reads as :data:`~kazi.engine.utils.UNDEFINED`.
    """

    def __init__(self, prepared: _Definition, utils: Utils, user: Any, cht: ChtApi | None) -> None:
        self.utils = utils
        self.user = user
        self.cht = cht
        self._k_prepared = prepared

    def __getattr__(self, name: str) -> Any:
        if name == "definition":
            view = DefinitionView(self._k_prepared, self.utils)
            self.definition = view
            return view
        if name.startswith("__") or name == "_k_prepared":
            raise AttributeError(name)
        return UNDEFINED

    def get(self, name: str, default: Any = None) -> Any:
        """``getattr(ctx, name, default)`` for attributes set by callbacks."""
        return self.__dict__.get(name, default)

    def __repr__(self) -> str:
        own = {k: v for k, v in self.__dict__.items() if not k.startswith("_k_") and k not in (
            "utils", "user", "cht", "definition")}
        return f"TaskContext({self._k_prepared.name!r}, {own!r})"


class DefinitionView(Mapping[str, Any]):
    """``this.definition``: the definition as written (read-only), with ``default_resolved_if``."""

    def __init__(self, prepared: _Definition, utils: Utils) -> None:
        self._prepared = prepared
        self._utils = utils

    def __getitem__(self, key: str) -> Any:
        return self._prepared.raw[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._prepared.raw)

    def __len__(self) -> int:
        return len(self._prepared.raw)

    def default_resolved_if(
        self, c: Mapping[str, Any], r: Any, event: Any, due_date: datetime | None, utils: Utils | None = None,
    ) -> bool:
        """CHT's ``defaultResolvedIf``: a report of the first report action's form in the task's window."""
        u = utils or self._utils
        if due_date is None:
            due = _NAN
        elif isinstance(due_date, datetime):
            due = float(datetime_to_ms(due_date))
        else:
            raise TypeError("date.getTime is not a function: due_date must be a datetime (or None)")
        return default_resolved_if_ms(self._prepared.resolving_form, c, r, event, due, u)

    defaultResolvedIf = default_resolved_if


def default_resolved_if_ms(
    resolving_form: Any, c: Mapping[str, Any], r: Any, event: Any, due_ms: float, utils: Utils,
) -> bool:
    """The default resolution on epoch ms: ``[max(due - start days, reported_date + 1), due + end + 1 days]``.

    Both window ends are local midnights (``addDate``), the end one the day *after* the last visible day,
    and ``isFormSubmittedInWindow`` is inclusive, so a report at exactly that midnight still resolves.  For
    report tasks the window starts 1 ms after the triggering report, which can never resolve itself.
    """
    if resolving_form is None:
        raise ChtError(_RESOLVING_FORM_MISSING)
    tz = utils.tz
    start = add_date_ms(due_ms, -js_to_number(js_prop(event, "start")), tz)
    if js_truthy(r):
        floor = js_add_one(js_prop(r, "reported_date"))
        start = _NAN if start != start or floor != floor else max(start, floor)
    end_raw = js_prop(event, "end")
    end_days: Any = end_raw + "1" if isinstance(end_raw, str) else js_to_number(end_raw) + 1
    end = add_date_ms(due_ms, end_days, tz)
    return utils.is_form_submitted_in_window(js_prop(c, "reports"), resolving_form, start, end)


# ---------------------------------------------------------------------------------------------------------
# Prepared definitions (built once per program)
# ---------------------------------------------------------------------------------------------------------


class _Event:
    __slots__ = ("days", "due_date", "end", "index", "key", "raw", "ready_end", "ready_start", "start")

    def __init__(self, raw: Any, index: int) -> None:
        self.raw = raw
        self.index = index
        if not isinstance(raw, Mapping):
            raise TypeError(f"events[{index}] is not an object")
        ev_id = raw.get("id", UNDEFINED)
        self.key = js_string(ev_id) if js_truthy(ev_id) else str(index)
        due = raw.get("dueDate", UNDEFINED)
        self.due_date = _Callback(due, f"events[{index}].dueDate") if js_truthy(due) else None
        self.days = raw.get("days", UNDEFINED)
        self.start = raw.get("start", UNDEFINED)
        self.end = raw.get("end", UNDEFINED)
        self.ready_start = to_json(self.start if js_truthy(self.start) else 0)
        self.ready_end = to_json(self.end if js_truthy(self.end) else 0)


class _Action:
    __slots__ = ("form", "has_form", "label", "modify", "type")

    def __init__(self, raw: Any, index: int) -> None:
        if not isinstance(raw, Mapping):
            raise TypeError(f"actions[{index}] is not an object")
        t = raw.get("type", UNDEFINED)
        self.type = to_json(t if js_truthy(t) else "report")
        label = raw.get("label", UNDEFINED)
        self.label = to_json(label if js_truthy(label) else "Follow up")
        form = raw.get("form", UNDEFINED)
        self.has_form = not is_undefined(form)
        self.form = to_json(form) if self.has_form else None
        modify = raw.get("modifyContent", UNDEFINED)
        self.modify = _Callback(modify, f"actions[{index}].modifyContent") if js_truthy(modify) else None


class _Definition:
    """A definition digested once: the emitter runs it for every container of every computation."""

    def __init__(self, raw: Any, index: int) -> None:
        self.index = index
        self.raw: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
        d = self.raw
        name = d.get("name", UNDEFINED)
        self.name: str | None = name if isinstance(name, str) else None
        self.name_str = js_string(name)
        self.problem: str | None = None if isinstance(raw, Mapping) else "the definition is not an object"
        self.applies_to = d.get("appliesTo", UNDEFINED)
        aty = d.get("appliesToType", UNDEFINED)
        self.applies_to_type: Sequence[Any] | None = None
        self.applies_to_type_set: frozenset[str] | None = None
        if js_truthy(aty):
            self.applies_to_type = aty if isinstance(aty, (list, tuple)) else ()
            if all(type(x) is str for x in self.applies_to_type):
                self.applies_to_type_set = frozenset(self.applies_to_type)
        applies_if = d.get("appliesIf", UNDEFINED)
        self.applies_if = _Callback(applies_if, "appliesIf") if js_truthy(applies_if) else None
        resolved_if = d.get("resolvedIf", UNDEFINED)
        self.resolved_if = _Callback(resolved_if, "resolvedIf") if callable(resolved_if) else None
        self.title: Any = UNDEFINED
        self.icon: Any = UNDEFINED
        label = d.get("contactLabel", UNDEFINED)
        self.contact_label_cb = _Callback(label, "contactLabel") if callable(label) else None
        self.contact_label = label
        priority = d.get("priority", UNDEFINED)
        self.priority_cb = _Callback(priority, "priority") if callable(priority) else None
        self.priority = priority
        events = d.get("events", UNDEFINED)
        self.events: list[_Event] | None = None
        actions = d.get("actions", UNDEFINED)
        self.actions: list[_Action] | None = None
        try:
            self.title = to_json(d.get("title", UNDEFINED))
            icon = d.get("icon", UNDEFINED)
            self.icon = UNDEFINED if is_undefined(icon) else to_json(icon)
            if isinstance(events, (list, tuple)):
                self.events = [_Event(e, i) for i, e in enumerate(events)]
            if isinstance(actions, (list, tuple)):
                self.actions = [_Action(a, i) for i, a in enumerate(actions)]
        except TypeError as exc:
            self.problem = str(exc)
        self.resolving_form: Any = None
        if isinstance(actions, (list, tuple)):
            for a in actions:
                if isinstance(a, Mapping):
                    t = a.get("type", UNDEFINED)
                    if not js_truthy(t) or js_strict_equals(t, "report"):
                        form = a.get("form", UNDEFINED)
                        self.resolving_form = form if js_truthy(form) else None
                        break


# ---------------------------------------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------------------------------------


class ChtError(Exception):
    """An error CHT's emitter itself throws (a plain JavaScript ``Error``): reported without a type name."""


def _contact_shown(contact: Any) -> Any:
    if not js_truthy(contact):
        return None
    out: dict[str, Any] = {}
    if isinstance(contact, Mapping):
        for k in ("_id", "name"):
            v = contact.get(k, UNDEFINED)
            if not is_undefined(v):
                j = to_json(v)
                if j is not UNDEFINED:
                    out[k] = j
    return out


def _locate(exc: BaseException, file: str, root: str | None) -> str:
    """``helpers.py:12``: the innermost frame of the program folder ``root`` (``file`` if none is)."""
    if root is None:
        return file
    found = file
    prefix = root + os.sep
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename.startswith(prefix):
            found = f"{frame.filename[len(prefix):]}:{frame.lineno}"
    return found


class _Run:
    """One container through every definition."""

    __slots__ = ("c", "cht", "contact", "contact_id", "ctx", "file", "out", "prep", "reports", "requester",
                 "shown", "tz", "user", "utils", "zone")

    def __init__(self, c: Mapping[str, Any], utils: Utils, user: Any, cht: ChtApi | None,
                 where: tuple[str, str | None], out: list[Doc]) -> None:
        self.c = c
        self.utils = utils
        self.user = user
        self.cht = cht
        self.file = where
        self.out = out
        self.tz = utils.tz
        self.zone = utils.zone
        contact: Any = c.get("contact")
        self.contact = contact
        is_map = type(contact) is dict or isinstance(contact, Mapping)
        self.contact_id = contact.get("_id") if is_map else None
        requester = js_prop(contact, "_id") if js_truthy(contact) else None
        self.requester = None if is_undefined(requester) else to_json(requester)
        self.shown = _contact_shown(contact)
        reports = c.get("reports")
        self.reports: Sequence[Any] = reports if isinstance(reports, (list, tuple)) else ()
        self.ctx: TaskContext | None = None
        self.prep: _Definition | None = None

    # -- errors ----------------------------------------------------------------------------------------
    def error(
        self, prep: _Definition, callback: str | None, exc: BaseException, report: Any = None,
    ) -> ConfigCodeError:
        """A :class:`ConfigCodeError` naming the file, definition, callback, contact (and report)."""
        message = str(exc) if isinstance(exc, ChtError) else f"{type(exc).__name__}: {exc}"
        details: dict[str, Any] = {"exception": type(exc).__name__}
        if isinstance(report, Mapping) and "_id" in report:
            details["report_id"] = report["_id"]
        return ConfigCodeError(
            message=message, file=_locate(exc, *self.file), definition_index=prep.index,
            definition_name=prep.name,
            contact_id=self.contact_id if isinstance(self.contact_id, str) else None, callback=callback,
            stack="".join(traceback.format_exception(exc)), details=details,
        )

    def call(self, cb: _Callback, r: Any, *args: Any) -> Any:
        ctx = self.ctx
        if ctx is None:
            assert self.prep is not None
            ctx = self.ctx = TaskContext(self.prep, self.utils, self.user, self.cht)
        try:
            return cb(ctx, *args)
        except ConfigCodeError:
            raise
        except Exception as exc:
            assert self.prep is not None
            raise self.error(self.prep, cb.where, exc, r) from exc

    # -- per definition ------------------------------------------------------------------------------
    def definition(self, prep: _Definition) -> None:
        self.prep = prep
        self.ctx = None
        if prep.problem is not None:
            raise self.error(prep, None, TypeError(prep.problem))
        applies_to = prep.applies_to
        if applies_to == "reports" or applies_to == "scheduled_tasks":
            for r in self.reports:
                self.for_report(prep, r)
        elif applies_to == "contacts":
            contact = self.contact
            if not js_truthy(contact):
                return
            if prep.applies_to_type is not None:
                ctype = js_prop(contact, "type")
                ctype = js_prop(contact, "contact_type") if js_strict_equals(ctype, "contact") else ctype
                if not self.type_matches(prep, ctype):
                    return
            if prep.applies_if is not None:
                if not js_truthy(self.call(prep.applies_if, None, self.c, UNDEFINED)):
                    return
            self.for_events(prep, None, None)
        else:
            raise self.error(prep, None, ChtError(f"Unrecognised task.appliesTo: {js_string(applies_to)}"))

    @staticmethod
    def type_matches(prep: _Definition, value: Any) -> bool:
        if prep.applies_to_type_set is not None:
            return type(value) is str and value in prep.applies_to_type_set
        assert prep.applies_to_type is not None
        return any(js_strict_equals(x, value) for x in prep.applies_to_type)

    def for_report(self, prep: _Definition, r: Any) -> None:
        try:
            form = js_prop(r, "form")
        except TypeError as exc:
            raise self.error(prep, None, exc) from exc
        if prep.applies_to_type is not None and not self.type_matches(prep, form):
            return
        if prep.applies_to == "scheduled_tasks":
            if prep.applies_if is None:
                return  # Q2: scheduled_tasks without appliesIf emit nothing
            scheduled = js_prop(r, "scheduled_tasks")
            if not js_truthy(scheduled):
                return
            count = len(scheduled) if isinstance(scheduled, (list, tuple, str)) else 0
            for i in range(count):
                if js_truthy(self.call(prep.applies_if, r, self.c, r, i)):
                    self.for_events(prep, r, i)
            return
        if prep.applies_if is not None and not js_truthy(self.call(prep.applies_if, r, self.c, r)):
            return
        self.for_events(prep, r, None)

    # -- events --------------------------------------------------------------------------------------
    def due_of(self, prep: _Definition, ev: _Event, r: Any, idx: int | None) -> tuple[float, Any]:
        """(due epoch ms or NaN, the datetime callbacks see or UNDEFINED when not built yet)."""
        if ev.due_date is not None:
            value = self.call(ev.due_date, r, ev.raw, self.c, r if r is not None else UNDEFINED,
                              UNDEFINED if idx is None else idx)
            if value is None:
                return _NAN, None
            if isinstance(value, datetime) and value.utcoffset() is not None:
                return float(datetime_to_ms(value)), value
            raise self.error(prep, ev.due_date.where, TypeError(
                f"must return an aware datetime (or None for an invalid date), got {type(value).__name__}"
                + (" without a zone" if isinstance(value, datetime) else "")), r)
        try:
            if r is not None:
                if idx is not None:
                    item = js_prop(js_prop(r, "scheduled_tasks"), str(idx))
                    base = js_new_date_ms(js_prop(item, "due"), self.tz)
                else:
                    base = js_new_date_ms(js_prop(r, "reported_date"), self.tz)
            else:
                rd = js_prop(self.contact, "reported_date")
                base = js_new_date_ms(rd, self.tz) if js_truthy(rd) else float(self.utils.now_ms)
            return add_date_ms(base, ev.days, self.tz), UNDEFINED
        except TypeError as exc:
            raise self.error(prep, f"events[{ev.index}]", exc, r) from exc

    def for_events(self, prep: _Definition, r: Any, idx: int | None) -> None:
        if prep.events is None:
            raise self.error(prep, None, TypeError("events is not a list"), r)
        if prep.actions is None:
            raise self.error(prep, None, TypeError("actions is not a list"), r)
        # CHT computes every event's due date before emitting any of them (callbacks may share `this`).
        dues = [self.due_of(prep, ev, r, idx) for ev in prep.events]
        if r is not None:
            prefix = js_string(js_prop(r, "_id"))
        else:
            prefix = js_string(js_prop(self.contact, "_id"))
        suffix = "" if idx is None else f"-{idx}"
        r_arg = UNDEFINED if r is None else r
        idx_arg: Any = UNDEFINED if idx is None else idx
        c = self.c
        for ev, (due_ms, due_dt) in zip(prep.events, dues, strict=True):
            if r is not None:
                deleted = js_truthy(js_prop(r, "deleted"))
            else:  # Kazi fix: CHT throws for a deleted contact here
                deleted = js_truthy(js_prop(self.contact, "deleted"))
            # contact label
            if prep.contact_label_cb is not None:
                label = self.call(prep.contact_label_cb, r, c, r_arg)
            else:
                label = prep.contact_label
            if js_truthy(label):
                try:
                    shown: Any = {"name": to_json(label)}
                except TypeError as exc:
                    raise self.error(prep, "contactLabel", exc, r) from exc
            else:
                shown = None if self.shown is None else dict(self.shown)
            # resolvedIf
            if due_dt is UNDEFINED:
                due_dt = ms_to_datetime(due_ms, self.zone) if (
                    prep.resolved_if is not None or prep.priority_cb is not None) else None
            if prep.resolved_if is not None:
                raw = self.call(prep.resolved_if, r, c, r_arg, ev.raw, due_dt, idx_arg)
                try:
                    raw_json = to_json(raw)
                except TypeError as exc:
                    raise self.error(prep, "resolvedIf", exc, r) from exc
                resolved = js_truthy(raw)
            else:
                try:
                    resolved = default_resolved_if_ms(prep.resolving_form, c, r, ev.raw, due_ms, self.utils)
                except Exception as exc:
                    raise self.error(prep, "resolvedIf (default)", exc, r) from exc
                raw_json = resolved
            actions = [self.action(prep, a, r, ev) for a in prep.actions]
            emission: Doc = {
                "_id": f"{prefix}~{ev.key}~{prep.name_str}{suffix}",
                "requester": self.requester,
                "contact": shown,
                "dueDate": dates.local_date_str(due_ms, self.tz) if due_ms == due_ms else None,
                "dueDateMs": int(due_ms) if due_ms == due_ms else None,
                "readyStart": ev.ready_start,
                "readyEnd": ev.ready_end,
                "resolved": resolved,
                "deleted": deleted,
                "actions": actions,
            }
            if prep.title is not UNDEFINED:
                emission["title"] = prep.title
            if prep.icon is not UNDEFINED:
                emission["icon"] = prep.icon
            if raw_json is not UNDEFINED:
                emission["_k_resolved_raw"] = raw_json
            # priority
            if prep.priority_cb is not None:
                priority = self.call(prep.priority_cb, r, c, r_arg, ev.raw, due_dt, idx_arg)
            else:
                priority = prep.priority
            if js_truthy(priority):
                try:
                    for key, out_key in (("level", "priority"), ("label", "priorityLabel")):
                        v = priority.get(key, UNDEFINED) if isinstance(priority, Mapping) else UNDEFINED
                        j = to_json(v)
                        if j is not UNDEFINED:
                            emission[out_key] = j
                except TypeError as exc:
                    raise self.error(prep, "priority", exc, r) from exc
            self.out.append(emission)

    def action(self, prep: _Definition, action: _Action, r: Any, ev: _Event) -> Doc:
        contact = self.contact
        if r is not None:
            source_id = js_prop(r, "_id")
        else:
            source_id = js_prop(contact, "_id") if js_truthy(contact) else contact
        content: dict[str, Any] = {"source": "task", "source_id": source_id, "contact": contact}
        if action.modify is not None:
            self.call(action.modify, r, content, self.c, UNDEFINED if r is None else r, ev.raw)
        try:
            json_content = _content_json(content)
        except TypeError as exc:
            raise self.error(prep, action.modify.where if action.modify else "actions", exc, r) from exc
        out: Doc = {"type": action.type, "label": action.label, "content": json_content}
        if action.has_form:
            out["form"] = action.form
        return out


def _content_json(content: Any) -> Any:
    """Action content as JSON, its ``contact`` (the whole contact doc) replaced by the contact's ``_id``."""
    if type(content) is not dict and not isinstance(content, Mapping):
        return to_json(content)
    out: dict[str, Any] = {}
    for k, v in content.items():
        if k == "contact":
            continue
        j = to_json(v)
        if j is not UNDEFINED:
            out[k if type(k) is str else js_string(k)] = j
    if "contact" in content:
        cc = content["contact"]
        if js_truthy(cc) and isinstance(cc, Mapping):
            cid = to_json(cc.get("_id", UNDEFINED))
            if cid is not UNDEFINED:
                out["contact"] = cid
    return out


class PythonEmitter:
    """Emitter for a ``tasks.py`` program: definitions are digested once, then run for any containers."""

    def __init__(self, definitions: Sequence[Any], *, file: str = "tasks.py", root: str | None = None) -> None:
        self.file = file
        self.root = root.rstrip(os.sep) if root else None
        self.definitions = list(definitions)
        self._prepared = [_Definition(d, i) for i, d in enumerate(self.definitions)]

    def emit_container(
        self, container: Mapping[str, Any], utils: Utils, user: Any = None, cht: ChtApi | None = None,
    ) -> list[Doc]:
        """Every emission of one container; a failing callback raises :class:`ConfigCodeError`."""
        out: list[Doc] = []
        run = _Run(container, utils, user, cht, (self.file, self.root), out)
        for prep in self._prepared:
            run.definition(prep)
        return out

    def emit(
        self, containers: Sequence[Mapping[str, Any]], utils: Utils, user: Any = None,
        cht: ChtApi | None = None, *, collect: bool = False,
    ) -> tuple[list[Doc], list[ConfigCodeError]]:
        """Emissions of many containers.

        With ``collect=False`` the first error is raised; with ``collect=True`` a failing container
        contributes no emissions, its error is returned and the others go on (as the JS runtime does).
        """
        out: list[Doc] = []
        errors: list[ConfigCodeError] = []
        where = (self.file, self.root)
        prepared = self._prepared
        for container in containers:
            mark = len(out)
            try:
                run = _Run(container, utils, user, cht, where, out)
                for prep in prepared:
                    run.definition(prep)
            except ConfigCodeError as err:
                del out[mark:]
                if not collect:
                    raise
                errors.append(err)
        return out, errors


def emit_tasks(
    definitions: Sequence[Any], containers: Sequence[Mapping[str, Any]], *, utils: Utils, user: Any = None,
    cht: ChtApi | None = None, file: str = "tasks.py",
) -> list[Doc]:
    """One-shot convenience: the emissions of ``definitions`` for ``containers`` (errors raise)."""
    out, _ = PythonEmitter(definitions, file=file).emit(containers, utils, user, cht)
    return out
