"""Validation of task definitions (the rules of cht-conf's Joi schema for ``tasks.js``), shared by ``tasks.js``
and ``tasks.py`` programs.

Why a validator of our own instead of "whatever cht-conf says": CHT only checks definitions when
``cht compile-app-settings`` runs, and its Joi schema stops at the first rule that carries a custom
message, so an author fixing a broken file learns about one problem per compile. Kazi loads the
program itself, so it checks the same rules (the rules of cht-conf's schema, unknown keys rejected)
and reports **every** problem at once, each located by definition index, definition name and field
path (``events[1].id``, ``actions[0].form``, ``priority.level``...), with a one-line fix.

The validator never sees live code. The loader describes the module's export as plain data
(:mod:`kazi.program.shape`): a function is :data:`FUNCTION`, a JavaScript ``undefined`` is
:data:`UNDEFINED`, any other non-JSON object is :data:`OTHER_OBJECT`. A key whose value is
``UNDEFINED`` counts as absent, as it does for Joi and for the task emitter.

Two severities:

* ``error``: cht-conf would refuse the file (or CHT could not run it). The program must not load.
* ``warning``: cht-conf accepts the definition and CHT runs it, but it almost certainly does not do what
  its author meant. Kazi must still run it exactly as CHT does, so these never block loading:

  - ``appliesTo: 'scheduled_tasks'`` without ``appliesIf``: the emitter emits nothing for it (quirk Q2).
  - ``days``, ``start`` or ``end`` given as a numeric string (conformance fixture ``33-days-as-string``).
    This is a warning, not an error, because the fixture records ``expect_cht_conf_valid: true``:
    cht-conf's Joi schema converts numeric strings while validating, compiles the program and CHT
    runs it, with the *string* reaching the task code (``Utils.addDate`` then computes
    ``date.getDate() + "3"``, a concatenation: day 15 becomes day 153). Refusing the file would make
    Kazi reject a program CHT deploys; Kazi instead reproduces CHT and says loudly that the result is
    not what the author meant. A non-numeric string (``days: 'three'``) is an error, as in cht-conf.
  - a fractional ``days`` (truncated by ``Date.setDate``, quirk Q4) or a fractional ``start``/``end``
    (the visible window and the default resolution window round the fraction differently).

Where the report differs from cht-conf's: ``actions: []`` reports both the empty array and the missing
``resolvedIf`` (cht-conf only names ``resolvedIf``); ``days`` with ``dueDate`` (or neither) gives one
problem per field, so both are named; several events without ids add no spurious "duplicate id
undefined"; a missing ``actions`` is not repeated as a missing ``resolvedIf``. ``events: []`` is an
error whatever cht-conf says about it: a definition without events can never emit.

Location conventions (what :class:`~kazi.errors.Problem` carries): ``definition_index`` is 0-based;
``definition_name`` is the definition's ``name`` when it is a non-empty string, else None; ``field`` is
the path inside the definition, spelled as the conformance fixtures spell it, and None for file-level
problems (the fixtures write ``(root)``); ``conflicts_with`` is the other half of a duplicate: the
index of the earlier definition as a string (``"0"``) for a duplicate name, the earlier event's path
(``events[0].id``) for a duplicate event id, the other field for ``days`` + ``dueDate``.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Iterable, Sequence
from typing import Any, Final

from kazi.errors import Problem
from kazi.program.shape import FUNCTION, OTHER_OBJECT, UNDEFINED

# --------------------------------------------------------------------------------------------------
# Rule identifiers. Where a conformance fixture (../shared/conformance/schema-errors) names a rule, the
# string is the fixture's, so a Problem can be matched against expected.json verbatim.
# --------------------------------------------------------------------------------------------------

RULE_EXPORT: Final = "tasks.js: array of definitions"
RULE_DEFINITION: Final = "definition: object"
RULE_UNKNOWN_KEY: Final = "no unknown keys"
RULE_NAME: Final = "name: required non-empty string"
RULE_NAME_UNIQUE: Final = "name: unique across tasks"
RULE_TITLE: Final = "title: required non-empty string"
RULE_TITLE_ARRAY: Final = "title: string (arrays rejected)"
RULE_ICON: Final = "icon: optional non-empty string"
RULE_APPLIES_TO: Final = "appliesTo: one of contacts, reports, scheduled_tasks"
RULE_APPLIES_IF: Final = "appliesIf: optional function"
RULE_APPLIES_TO_TYPE_EMPTY: Final = "appliesToType: optional array of strings, at least 1 item"
RULE_APPLIES_TO_TYPE: Final = "appliesToType: array of strings"
RULE_CONTACT_LABEL: Final = "contactLabel: non-empty string or function"
RULE_RESOLVED_IF_REQUIRED: Final = "resolvedIf: required unless an action has type report (or no type)"
RULE_RESOLVED_IF: Final = "resolvedIf: optional function"
RULE_EVENTS: Final = "events: required array"
RULE_EVENTS_EMPTY: Final = "events: at least 1 event"
RULE_EVENT: Final = "events[]: object"
RULE_EVENT_ID_REQUIRED: Final = "events[].id: required when there is more than one event"
RULE_EVENT_ID: Final = "events[].id: non-empty string"
RULE_EVENT_ID_UNIQUE: Final = "events[].id: unique"
RULE_DAYS_XOR_DUE_DATE: Final = "events[]: days XOR dueDate"
RULE_DAYS: Final = "events[].days: number"
RULE_DUE_DATE: Final = "events[].dueDate: function"
RULE_PRIORITY: Final = "priority: {level?: high|medium, label?: non-empty string} or function"
RULE_PRIORITY_LEVEL: Final = "priority.level: high or medium"
RULE_PRIORITY_LABEL: Final = "priority.label: optional non-empty string"
RULE_ACTIONS_REQUIRED: Final = "actions: required"
RULE_ACTIONS: Final = "actions: array with at least 1 item"
RULE_ACTION: Final = "actions[]: object"
RULE_ACTION_TYPE: Final = "actions[].type: report or contact"
RULE_ACTION_FORM_REQUIRED: Final = "actions[].form: required unless type is contact"
RULE_ACTION_FORM_FORBIDDEN: Final = "actions[].form: forbidden when type is contact"
RULE_ACTION_FORM: Final = "actions[].form: non-empty string"
RULE_ACTION_LABEL: Final = "actions[].label: optional non-empty string"
RULE_MODIFY_CONTENT: Final = "actions[].modifyContent: optional function"
# warnings
RULE_SCHEDULED_WITHOUT_APPLIES_IF: Final = "appliesIf: needed for scheduled_tasks"


def rule_window_required(key: str) -> str:
    """Rule for a missing ``events[].start`` / ``events[].end`` (fixture 23 spells the ``end`` one)."""
    return f"events[].{key}: required number >= 0"


def rule_window(key: str) -> str:
    """Rule for a ``start`` / ``end`` that is not a number >= 0 (fixture 22 spells the ``start`` one)."""
    return f"events[].{key}: number >= 0"


def rule_numeric_string(key: str) -> str:
    """Warning rule for ``days``/``start``/``end`` given as a numeric string (fixture 33 spells ``days``)."""
    return f"events[].{key}: number (cht-conf converts numeric strings)"


def rule_fraction(key: str) -> str:
    """Warning rule for a fractional ``days``/``start``/``end``."""
    return f"events[].{key}: whole number of days"


SEVERITY_ERROR: Final = "error"
SEVERITY_WARNING: Final = "warning"

_DEFINITION_KEYS: Final = (
    "name", "icon", "title", "appliesTo", "appliesIf", "appliesToType", "contactLabel", "resolvedIf",
    "events", "priority", "actions",
)  # fmt: skip
_EVENT_KEYS: Final = ("id", "days", "dueDate", "start", "end")
_ACTION_KEYS: Final = ("type", "form", "label", "modifyContent")
_PRIORITY_KEYS: Final = ("level", "label")
_APPLIES_TO: Final = ("contacts", "reports", "scheduled_tasks")
_ACTION_TYPES: Final = ("report", "contact")
_PRIORITY_LEVELS: Final = ("high", "medium")

#: what Joi's number type converts from a string (optional sign, decimals, exponent, surrounding blanks)
_NUMERIC_STRING: Final = re.compile(r"^\s*[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?\s*$", re.IGNORECASE)

_NULL_NOTE: Final = (
    " null is not the same as leaving the property out (and the task emitter would crash on it when it"
    " walks the definition)."
)


# --------------------------------------------------------------------------------------------------
# Value helpers
# --------------------------------------------------------------------------------------------------


def _absent(obj: dict[Any, Any], key: str) -> bool:
    """A key is absent when missing or explicitly ``undefined`` (Joi and the emitter agree on that)."""
    return key not in obj or obj[key] is UNDEFINED


def _is_number(value: Any) -> bool:
    """A JavaScript number: bool is not one, even though Python says ``True`` is an int."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_finite_number(value: Any) -> bool:
    """Joi's number type refuses NaN and the infinities."""
    return _is_number(value) and math.isfinite(value)


def _is_fraction(value: Any) -> bool:
    return isinstance(value, float) and math.isfinite(value) and not value.is_integer()


def _is_text(value: Any) -> bool:
    """Joi's ``string()``: a string, and not the empty string (Joi refuses ``''`` unless told otherwise)."""
    return isinstance(value, str) and value != ""


def _numeric_string(value: Any) -> float | None:
    """The number Joi would convert a numeric string to, else None."""
    if isinstance(value, str) and _NUMERIC_STRING.match(value):
        return float(value)
    return None


def _js_number(value: int | float) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        if value.is_integer():
            return str(int(value))
    return repr(value)


def _literal(value: Any, depth: int = 0) -> str:
    """Render a described value the way it would be written in tasks.js (``{level: 10}``)."""
    if value is FUNCTION:
        return "function"
    if value is UNDEFINED:
        return "undefined"
    if value is OTHER_OBJECT:
        return "<object>"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if _is_number(value):
        return _js_number(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        if depth > 1:
            return "[...]"
        return "[" + ", ".join(_literal(v, depth + 1) for v in value) + "]"
    if isinstance(value, dict):
        if depth > 1:
            return "{...}"
        return "{" + ", ".join(f"{k}: {_literal(v, depth + 1)}" for k, v in value.items()) + "}"
    return repr(value)


def _show(value: Any) -> str:
    """Short rendering for messages: long literals are cut so one message stays one readable line."""
    text = _literal(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _kind(value: Any) -> str:
    """What a value is, in words, for "must be X but is Y" messages."""
    if value is FUNCTION:
        return "a function"
    if value is OTHER_OBJECT:
        return "a non-plain object"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean {_literal(value)}"
    if _is_number(value):
        return f"the number {_js_number(value)}"
    if isinstance(value, str):
        return "an empty string" if value == "" else f"the string {_show(value)}"
    if isinstance(value, list):
        return "an empty array" if not value else f"an array ({_show(value)})"
    if isinstance(value, dict):
        return f"an object ({_show(value)})"
    return _show(value)


def _null_note(value: Any) -> str:
    return _NULL_NOTE if value is None else ""


def _suggest(key: str, allowed: Sequence[str]) -> str:
    """`did you mean "resolvedIf"?` for typos, else the list of allowed keys."""
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    if not close:
        close = [a for a in allowed if a.lower() == key.lower()]
    if close:
        return f'Rename it to "{close[0]}" (probably a typo)'
    return "Remove it; allowed properties here: " + ", ".join(allowed)


# --------------------------------------------------------------------------------------------------
# Checker
# --------------------------------------------------------------------------------------------------


class _DefinitionChecker:
    """Checks one definition; collects located problems instead of raising, so nothing stops early."""

    def __init__(self, file: str, index: int, definition: Any, problems: list[Problem]) -> None:
        self.file = file
        self.index = index
        self.definition = definition
        name = definition.get("name") if isinstance(definition, dict) else None
        self.name: str | None = name if _is_text(name) else None
        self.problems = problems
        self.where = f'Definition {index} ("{self.name}")' if self.name else f"Definition {index}"

    # -- recording ----------------------------------------------------------------------------------

    def _add(
        self, severity: str, field: str | None, rule: str, message: str, hint: str, conflicts_with: str | None
    ) -> None:
        self.problems.append(
            Problem(
                severity=severity,
                file=self.file,
                message=message,
                rule=rule,
                definition_index=self.index,
                definition_name=self.name,
                field=field,
                hint=hint,
                conflicts_with=conflicts_with,
            )
        )

    def error(
        self, field: str | None, rule: str, message: str, hint: str, conflicts_with: str | None = None
    ) -> None:
        self._add(SEVERITY_ERROR, field, rule, message, hint, conflicts_with)

    def warning(
        self, field: str | None, rule: str, message: str, hint: str, conflicts_with: str | None = None
    ) -> None:
        self._add(SEVERITY_WARNING, field, rule, message, hint, conflicts_with)

    def unknown_keys(self, obj: dict[Any, Any], allowed: Sequence[str], prefix: str, what: str) -> None:
        """Joi rejects unknown keys by default; a misspelt key would otherwise be silently ignored."""
        for key in obj:
            if str(key) in allowed or obj[key] is UNDEFINED:
                continue
            path = f"{prefix}.{key}" if prefix else str(key)
            self.error(
                path,
                RULE_UNKNOWN_KEY,
                f'{self.where}{what} has an unknown property "{key}"; unknown properties are rejected'
                " (CHT would ignore it, which hides typos).",
                _suggest(str(key), allowed) + ".",
            )

    # -- the definition -----------------------------------------------------------------------------

    def check(self, first_index_by_name: dict[str, int]) -> None:
        d = self.definition
        if not isinstance(d, dict):
            self.error(
                None,
                RULE_DEFINITION,
                f"{self.where} is {_kind(d)}; every entry of the array must be a task definition object.",
                "Replace it with an object literal {name, title, appliesTo, events, actions, ...}"
                " or remove it.",
            )
            return
        self.check_name(d, first_index_by_name)
        self.check_title(d)
        self.check_icon(d)
        self.check_applies_to(d)
        self.check_applies_if(d)
        self.check_applies_to_type(d)
        self.check_contact_label(d)
        self.check_events(d)
        self.check_priority(d)
        self.check_actions(d)
        self.check_resolved_if(d)
        self.unknown_keys(d, _DEFINITION_KEYS, "", "")

    def check_name(self, d: dict[Any, Any], first_index_by_name: dict[str, int]) -> None:
        hint = 'Give it a unique non-empty name, e.g. name: "anc.visit" (it is part of every task id).'
        if _absent(d, "name"):
            self.error("name", RULE_NAME, f"{self.where} has no name.", hint)
            return
        name = d["name"]
        if name == "":
            self.error("name", RULE_NAME, f"{self.where} has an empty name.", hint)
        elif not isinstance(name, str):
            self.error(
                "name",
                RULE_NAME,
                f"{self.where} has name = {_show(name)}; it must be a string." + _null_note(name),
                hint,
            )
        elif name in first_index_by_name:
            first = first_index_by_name[name]
            self.error(
                "name",
                RULE_NAME_UNIQUE,
                f'{self.where} has the name "{name}", already used by definition {first}; names must be'
                " unique because they are part of every emission id (the two definitions' tasks would"
                " collide).",
                f"Rename one of definitions {first} and {self.index}.",
                conflicts_with=str(first),
            )
        else:
            first_index_by_name[name] = self.index

    def check_title(self, d: dict[Any, Any]) -> None:
        hint = 'Set title to a translation key, e.g. title: "task.anc_visit.title".'
        if _absent(d, "title"):
            self.error("title", RULE_TITLE, f"{self.where} has no title.", hint)
            return
        title = d["title"]
        if isinstance(title, list):
            self.error(
                "title",
                RULE_TITLE_ARRAY,
                f"{self.where} has a title that is an array (legacy translations); only a translation key"
                " (a string) is accepted.",
                "Move the texts into the translation files and set title to their key.",
            )
        elif not _is_text(title):
            self.error(
                "title",
                RULE_TITLE,
                f"{self.where} has title = {_show(title)}; it must be a non-empty string."
                + _null_note(title),
                hint,
            )

    def check_icon(self, d: dict[Any, Any]) -> None:
        if _absent(d, "icon") or _is_text(d["icon"]):
            return
        icon = d["icon"]
        what = "an empty icon" if icon == "" else f"icon = {_show(icon)}"
        self.error(
            "icon",
            RULE_ICON,
            f"{self.where} has {what}; icon is optional, but a non-empty string when given."
            + _null_note(icon),
            'Set it to an icon name (e.g. icon: "icon-pregnancy") or remove the property.',
        )

    def check_applies_to(self, d: dict[Any, Any]) -> None:
        allowed = ", ".join(_APPLIES_TO)
        if _absent(d, "appliesTo"):
            self.error(
                "appliesTo",
                RULE_APPLIES_TO,
                f"{self.where} has no appliesTo; it says what the task is about ({allowed}).",
                'Add appliesTo: "reports" (one task per report), "contacts" or "scheduled_tasks".',
            )
            return
        value = d["appliesTo"]
        if value in _APPLIES_TO:
            return
        close = difflib.get_close_matches(value, _APPLIES_TO, n=1) if isinstance(value, str) else []
        hint = f'Use appliesTo: "{close[0]}".' if close else f"Use one of: {allowed}."
        if value == "person" or value in ("clinic", "health_center", "district_hospital"):
            hint = 'Use appliesTo: "contacts" and put the contact type in appliesToType: ["' + value + '"].'
        self.error(
            "appliesTo",
            RULE_APPLIES_TO,
            f"{self.where} has appliesTo = {_show(value)}; allowed: {allowed}." + _null_note(value),
            hint,
        )

    def check_applies_if(self, d: dict[Any, Any]) -> None:
        if _absent(d, "appliesIf"):
            if d.get("appliesTo") == "scheduled_tasks":
                self.warning(
                    "appliesIf",
                    RULE_SCHEDULED_WITHOUT_APPLIES_IF,
                    f'{self.where} has appliesTo "scheduled_tasks" but no appliesIf: CHT emits nothing for'
                    " such a definition (scheduled tasks are only created for the indexes that"
                    " appliesIf(contact, report, index) accepts).",
                    "Add appliesIf: function (contact, report, i) { ... report.scheduled_tasks[i] ... }.",
                )
            return
        value = d["appliesIf"]
        if value is not FUNCTION:
            self.error(
                "appliesIf",
                RULE_APPLIES_IF,
                f"{self.where} has appliesIf = {_show(value)}; it must be a function(contact, report)."
                + _null_note(value),
                "Write appliesIf: function (contact, report) { return ...; } or remove it to apply always.",
            )

    def check_applies_to_type(self, d: dict[Any, Any]) -> None:
        if _absent(d, "appliesToType"):
            return
        value = d["appliesToType"]
        if isinstance(value, list) and not value:
            self.error(
                "appliesToType",
                RULE_APPLIES_TO_TYPE_EMPTY,
                f"{self.where} has an empty appliesToType array; it needs at least one contact type or form"
                " code.",
                'List the types (e.g. appliesToType: ["person"]) or remove the property to apply to all.',
            )
        elif not isinstance(value, list):
            hint = (
                f"Wrap it in an array: appliesToType: [{_literal(value)}]."
                if _is_text(value)
                else 'Use an array of strings, e.g. appliesToType: ["pregnancy"].'
            )
            self.error(
                "appliesToType",
                RULE_APPLIES_TO_TYPE,
                f"{self.where} has appliesToType = {_show(value)}; it must be an array of strings."
                + _null_note(value),
                hint,
            )
        else:
            for k, item in enumerate(value):
                if not _is_text(item):
                    self.error(
                        f"appliesToType[{k}]",
                        RULE_APPLIES_TO_TYPE,
                        f"{self.where} has appliesToType[{k}] = {_show(item)}; every entry must be a"
                        " non-empty string (a contact type or a form code).",
                        "Replace it with the contact type or form code as a string, or remove it.",
                    )

    def check_contact_label(self, d: dict[Any, Any]) -> None:
        if _absent(d, "contactLabel"):
            return
        value = d["contactLabel"]
        if value is FUNCTION or _is_text(value):
            return
        what = "an empty contactLabel" if value == "" else f"contactLabel = {_show(value)}"
        self.error(
            "contactLabel",
            RULE_CONTACT_LABEL,
            f"{self.where} has {what}; it must be a non-empty string or a function(contact, report)."
            + _null_note(value),
            "Remove it to show the contact's name, or give a label or a function returning one.",
        )

    # -- events -------------------------------------------------------------------------------------

    def check_events(self, d: dict[Any, Any]) -> None:
        example = 'events: [{ id: "visit", days: 7, start: 2, end: 2 }]'
        if _absent(d, "events"):
            self.error(
                "events",
                RULE_EVENTS,
                f"{self.where} has no events; each event becomes one task.",
                f"Add {example}.",
            )
            return
        events = d["events"]
        if not isinstance(events, list):
            self.error(
                "events",
                RULE_EVENTS,
                f"{self.where} has events = {_show(events)}; it must be an array of event objects."
                + _null_note(events),
                f"Use an array, e.g. {example}.",
            )
            return
        if not events:
            self.error(
                "events",
                RULE_EVENTS_EMPTY,
                f"{self.where} has an empty events array, so it can never emit a task.",
                f"Add at least one event, e.g. {example}.",
            )
            return
        first_index_by_id: dict[str, int] = {}
        for j, event in enumerate(events):
            path = f"events[{j}]"
            if not isinstance(event, dict):
                self.error(
                    path,
                    RULE_EVENT,
                    f"{self.where}, event {j} is {_kind(event)}; events must be objects"
                    " {id, days | dueDate, start, end}.",
                    "Replace it with an event object or remove it.",
                )
                continue
            self.check_event_id(event, j, len(events), first_index_by_id)
            self.check_event_due(event, j)
            for key in ("start", "end"):
                self.check_event_window(event, j, key)
            self.unknown_keys(event, _EVENT_KEYS, path, f", event {j},")

    def check_event_id(
        self, event: dict[Any, Any], j: int, count: int, first_index_by_id: dict[str, int]
    ) -> None:
        path = f"events[{j}].id"
        if _absent(event, "id"):
            if count > 1:
                self.error(
                    path,
                    RULE_EVENT_ID_REQUIRED,
                    f"{self.where} has {count} events and event {j} has no id; with more than one event"
                    " every event needs a unique id (it is part of the emission id).",
                    f'Give event {j} an id, e.g. id: "day-{j}".',
                )
            return
        value = event["id"]
        if not _is_text(value):
            self.error(
                path,
                RULE_EVENT_ID,
                f"{self.where}, event {j} has id = {_show(value)}; an event id must be a non-empty string."
                + _null_note(value),
                'Use a string id, e.g. id: "day-3".' if count > 1 else "Use a string id or remove it.",
            )
            return
        if value in first_index_by_id:
            first = first_index_by_id[value]
            self.error(
                path,
                RULE_EVENT_ID_UNIQUE,
                f'{self.where}: events {first} and {j} share the id "{value}"; event ids must be unique'
                " because they are part of the emission id (the two tasks would collide).",
                f"Rename the id of event {j}.",
                conflicts_with=f"events[{first}].id",
            )
        else:
            first_index_by_id[value] = j

    def check_event_due(self, event: dict[Any, Any], j: int) -> None:
        days_path, due_path = f"events[{j}].days", f"events[{j}].dueDate"
        has_days, has_due = not _absent(event, "days"), not _absent(event, "dueDate")
        if has_days and has_due:
            message = (
                f"{self.where}, event {j} has both days and dueDate; exactly one of them gives the due date."
            )
            hint = "Keep days (a number of days after the report or contact date) or dueDate, not both."
            self.error(days_path, RULE_DAYS_XOR_DUE_DATE, message, hint, conflicts_with=due_path)
            self.error(due_path, RULE_DAYS_XOR_DUE_DATE, message, hint, conflicts_with=days_path)
        elif not has_days and not has_due:
            message = f"{self.where}, event {j} has neither days nor dueDate, so it has no due date."
            hint = (
                "Add days: <number of days after the report or contact date> or dueDate: function () {...}."
            )
            self.error(days_path, RULE_DAYS_XOR_DUE_DATE, message, hint)
            self.error(due_path, RULE_DAYS_XOR_DUE_DATE, message, hint)
        if has_days:
            self.check_days(event["days"], j)
        if has_due and event["dueDate"] is not FUNCTION:
            value = event["dueDate"]
            self.error(
                due_path,
                RULE_DUE_DATE,
                f"{self.where}, event {j} has dueDate = {_show(value)}; it must be a"
                " function(event, contact, report) returning a Date." + _null_note(value),
                "Use days for a fixed offset, or dueDate: function (event, contact, report) { return ...; }.",
            )

    def check_days(self, value: Any, j: int) -> None:
        path = f"events[{j}].days"
        converted = _numeric_string(value)
        if _is_finite_number(value):
            if _is_fraction(value):
                self.warning(
                    path,
                    rule_fraction("days"),
                    f"{self.where}, event {j} has days = {_js_number(value)}; Utils.addDate drops the"
                    " fraction (Date.setDate truncates the day number),"
                    f" so it counts as {math.floor(value)}.",
                    f"Use a whole number of days (days: {math.floor(value)}).",
                )
        elif converted is not None:
            self.warning(
                path,
                rule_numeric_string("days"),
                f"{self.where}, event {j} has days = {_show(value)} (a string). cht-conf accepts it (it"
                " converts numeric strings while validating), but the task code gets the string:"
                f" Utils.addDate computes date.getDate() + {_show(value)}, a string concatenation"
                f" (day 15 becomes day 15{value.strip()}), so the due date is wrong.",
                f"Write the number without quotes: days: {_js_number(converted)}.",
            )
        else:
            self.error(
                path,
                RULE_DAYS,
                f"{self.where}, event {j} has days = {_show(value)}; it must be a number of days."
                + _null_note(value),
                "Use a number, e.g. days: 7 (or a dueDate function instead of days).",
            )

    def check_event_window(self, event: dict[Any, Any], j: int, key: str) -> None:
        """``start``/``end``: days before/after the due date during which the task is visible."""
        path = f"events[{j}].{key}"
        meaning = "before" if key == "start" else "after"
        if _absent(event, key):
            self.error(
                path,
                rule_window_required(key),
                f"{self.where}, event {j} has no {key} (the number of days {meaning} the due date the task"
                " stays visible).",
                f"Add {key}: <number of days>, e.g. {key}: 2 (0 for the due date only).",
            )
            return
        value = event[key]
        converted = _numeric_string(value)
        if _is_finite_number(value):
            if value < 0:
                self.error(
                    path,
                    rule_window(key),
                    f"{self.where}, event {j} has {key} = {_js_number(value)}; it must be >= 0 (it counts"
                    f" days {meaning} the due date).",
                    f"Use {key}: {_js_number(abs(value))} or 0; to move the task itself change days/dueDate.",
                )
            elif _is_fraction(value):
                self.warning(
                    path,
                    rule_fraction(key),
                    f"{self.where}, event {j} has {key} = {_js_number(value)}; it counts whole days: the"
                    " visible window (computed with moment) and the default resolution window (computed"
                    " with Utils.addDate) treat the fraction differently, so the two windows disagree.",
                    f"Use a whole number of days ({key}: {math.floor(value)}).",
                )
        elif converted is not None and converted >= 0:
            effect = (
                f"the default resolution window computes end + 1 = {_show(value.strip() + '1')}"
                " (concatenation)"
                if key == "end"
                else "the emission carries the string as readyStart and date arithmetic relies on implicit"
                " conversions"
            )
            self.warning(
                path,
                rule_numeric_string(key),
                f"{self.where}, event {j} has {key} = {_show(value)} (a string). cht-conf accepts it (it"
                f" converts numeric strings while validating), but the task code gets the string: {effect}.",
                f"Write the number without quotes: {key}: {_js_number(converted)}.",
            )
        else:
            self.error(
                path,
                rule_window(key),
                f"{self.where}, event {j} has {key} = {_show(value)}; it must be a number >= 0."
                + _null_note(value),
                f"Use a number of days, e.g. {key}: 2.",
            )

    # -- priority -----------------------------------------------------------------------------------

    def check_priority(self, d: dict[Any, Any]) -> None:
        if _absent(d, "priority") or d["priority"] is FUNCTION:
            return
        value = d["priority"]
        if not isinstance(value, dict):
            self.error(
                "priority",
                RULE_PRIORITY,
                f"{self.where} has priority = {_show(value)}; it must be an object {{level, label}} or a"
                " function returning one." + _null_note(value),
                'Use priority: { level: "high", label: "task.priority.high" } or a priority function.',
            )
            return
        if not _absent(value, "level"):
            level = value["level"]
            if _is_number(level):
                self.error(
                    "priority.level",
                    RULE_PRIORITY,
                    f"{self.where} has priority {_show(value)}: a literal priority object only accepts level"
                    ' "high" or "medium" (numeric levels need a priority function).',
                    f'Write priority: function () {{ return {_literal(value)}; }} or use level "high".',
                )
            elif level not in _PRIORITY_LEVELS:
                self.error(
                    "priority.level",
                    RULE_PRIORITY_LEVEL,
                    f"{self.where} has priority level {_show(level)}; allowed: high, medium."
                    + _null_note(level),
                    'Use level: "high" or "medium", or compute the priority in a function.',
                )
        if not _absent(value, "label") and not _is_text(value["label"]):
            label = value["label"]
            self.error(
                "priority.label",
                RULE_PRIORITY_LABEL,
                f"{self.where} has priority label {_show(label)}; it must be a non-empty string (a"
                " translation key)." + _null_note(label),
                "Set label to a translation key or remove it.",
            )
        self.unknown_keys(value, _PRIORITY_KEYS, "priority", "'s priority")

    # -- actions and resolvedIf ---------------------------------------------------------------------

    def check_actions(self, d: dict[Any, Any]) -> None:
        example = 'actions: [{ form: "follow_up" }]'
        if _absent(d, "actions"):
            self.error(
                "actions",
                RULE_ACTIONS_REQUIRED,
                f"{self.where} has no actions; a task needs at least one thing to do.",
                f"Add {example}.",
            )
            return
        actions = d["actions"]
        if not isinstance(actions, list) or not actions:
            what = "an empty actions array" if actions == [] else f"actions = {_show(actions)}"
            self.error(
                "actions",
                RULE_ACTIONS,
                f"{self.where} has {what}; it must be an array with at least one action."
                + _null_note(actions),
                f"Add an action, e.g. {example}.",
            )
            return
        for j, action in enumerate(actions):
            path = f"actions[{j}]"
            if not isinstance(action, dict):
                self.error(
                    path,
                    RULE_ACTION,
                    f"{self.where}, action {j} is {_kind(action)}; actions must be objects"
                    " {type, form, label, modifyContent}.",
                    'Replace it with an action object, e.g. { form: "follow_up" }.',
                )
                continue
            self.check_action(action, j)
            self.unknown_keys(action, _ACTION_KEYS, path, f", action {j},")

    def check_action(self, action: dict[Any, Any], j: int) -> None:
        path = f"actions[{j}]"
        action_type = action.get("type", UNDEFINED)
        if action_type is not UNDEFINED and action_type not in _ACTION_TYPES:
            self.error(
                f"{path}.type",
                RULE_ACTION_TYPE,
                f"{self.where}, action {j} has type {_show(action_type)}; allowed: report, contact."
                + _null_note(action_type),
                'Use type: "report" (open a form, the default) or type: "contact" (open the contact).',
            )
        if action_type == "contact":
            if not _absent(action, "form"):
                self.error(
                    f"{path}.form",
                    RULE_ACTION_FORM_FORBIDDEN,
                    f'{self.where}, action {j} is of type "contact" but has form = {_show(action["form"])};'
                    " contact actions open the contact, not a form.",
                    'Remove the form, or drop type: "contact" to make it a report action.',
                )
        elif _absent(action, "form"):
            kind = "of type report" if action_type == "report" else "(type defaults to report)"
            self.error(
                f"{path}.form",
                RULE_ACTION_FORM_REQUIRED,
                f"{self.where}, action {j} {kind} has no form.",
                'Add the form to open, e.g. form: "follow_up", or make it type: "contact".',
            )
        elif not _is_text(action["form"]):
            form = action["form"]
            self.error(
                f"{path}.form",
                RULE_ACTION_FORM,
                f"{self.where}, action {j} has form = {_show(form)}; it must be a form code (a non-empty"
                " string)." + _null_note(form),
                'Use the form code, e.g. form: "follow_up".',
            )
        if not _absent(action, "label") and not _is_text(action["label"]):
            label = action["label"]
            self.error(
                f"{path}.label",
                RULE_ACTION_LABEL,
                f"{self.where}, action {j} has label = {_show(label)}; it must be a non-empty string."
                + _null_note(label),
                'Set a label (translation key) or remove it to get "Follow up".',
            )
        if not _absent(action, "modifyContent") and action["modifyContent"] is not FUNCTION:
            value = action["modifyContent"]
            self.error(
                f"{path}.modifyContent",
                RULE_MODIFY_CONTENT,
                f"{self.where}, action {j} has modifyContent = {_show(value)}; it must be a"
                " function(content, contact, report, event)." + _null_note(value),
                "Write modifyContent: function (content, contact, report, event) { content.x = ...; }.",
            )

    def check_resolved_if(self, d: dict[Any, Any]) -> None:
        """``resolvedIf`` may be left out only when a report action supplies the default resolving form.

        The default resolver looks for the first action without ``type`` or with ``type: 'report'`` and
        throws when there is none, so cht-conf requires ``resolvedIf`` in that case, including
        ``actions: []``. When ``actions`` is missing or not an array, that problem is reported on its
        own and this one would only repeat it.
        """
        actions = d.get("actions")
        if _absent(d, "resolvedIf"):
            if not isinstance(actions, list):
                return
            has_report_action = any(
                isinstance(a, dict) and (_absent(a, "type") or a["type"] == "report") for a in actions
            )
            if has_report_action:
                return
            why = (
                "has no actions"
                if not actions
                else 'has no report action (no action without type or with type "report")'
            )
            self.error(
                "resolvedIf",
                RULE_RESOLVED_IF_REQUIRED,
                f"{self.where} {why}, so there is no default resolving form: resolvedIf is required.",
                "Add resolvedIf: function (contact, report, event, dueDate) { return ...; }"
                " or a report action.",
            )
            return
        value = d["resolvedIf"]
        if value is not FUNCTION:
            self.error(
                "resolvedIf",
                RULE_RESOLVED_IF,
                f"{self.where} has resolvedIf = {_show(value)}; it must be a"
                " function(contact, report, event, dueDate)." + _null_note(value),
                "Write resolvedIf: function (contact, report, event, dueDate) { return ...; } or remove it"
                " to use the default (the first report action's form submitted in the window).",
            )


# --------------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------------


def validate_tasks(shape: Any, file: str = "tasks.js") -> list[Problem]:
    """Every problem of a described task program, errors and warnings, in definition order.

    ``shape`` is the module's export described with the markers of :mod:`kazi.program.shape`. The
    result is empty for a clean program; the program may load when no problem has severity ``error``.
    """
    problems: list[Problem] = []
    if not isinstance(shape, list):
        problems.append(_export_problem(shape, file))
        return problems
    first_index_by_name: dict[str, int] = {}
    for index, definition in enumerate(shape):
        _DefinitionChecker(file, index, definition, problems).check(first_index_by_name)
    return problems


def _export_problem(shape: Any, file: str) -> Problem:
    if shape is UNDEFINED:
        what = "exports nothing (the export is undefined)"
    elif isinstance(shape, dict) and ("name" in shape or "events" in shape):
        what = "exports a single object instead of an array of definitions"
    else:
        what = f"exports {_kind(shape)} instead of an array of definitions"
    if file.endswith(".js"):
        hint = "Export an array: module.exports = [ { name: ..., ... }, ... ]."
    else:
        hint = "Export a list of definitions (dicts), one per task."
    if isinstance(shape, dict):
        hint += " A single definition goes inside [ ]."
    return Problem(
        severity=SEVERITY_ERROR,
        file=file,
        message=f"{file} {what}; the export must be an array of task definitions.",
        rule=RULE_EXPORT,
        hint=hint,
    )


def has_errors(problems: Iterable[Problem]) -> bool:
    """True when at least one problem blocks loading (warnings never do)."""
    return any(p.severity == SEVERITY_ERROR for p in problems)


def _describe_conflict(conflicts_with: str) -> str:
    """A bare index names another definition (duplicate names); anything else is a field path."""
    return f"definition {conflicts_with}" if conflicts_with.isdigit() else conflicts_with


def format_problems(problems: Iterable[Problem]) -> str:
    """Human-readable report: one block per problem, errors before warnings, then a count.

    Errors come first because they are what stops the program from loading; the relative order of
    problems of the same severity (definition order, then field order) is kept.
    """
    rank = {SEVERITY_ERROR: 0, SEVERITY_WARNING: 1}
    ordered = sorted(problems, key=lambda p: rank.get(p.severity, 2))
    if not ordered:
        return "no problems"
    blocks = []
    for p in ordered:
        head = f"{p.severity}: {p.location()}"
        if p.rule:
            head += f"  [{p.rule}]"
        lines = [head, f"    {p.message}"]
        if p.conflicts_with:
            lines.append(f"    conflicts with: {_describe_conflict(p.conflicts_with)}")
        if p.hint:
            lines.append(f"    fix: {p.hint}")
        blocks.append("\n".join(lines))
    errors = sum(1 for p in ordered if p.severity == SEVERITY_ERROR)
    warnings = sum(1 for p in ordered if p.severity == SEVERITY_WARNING)
    blocks.append(
        f"{errors} error{'s' if errors != 1 else ''}, {warnings} warning{'s' if warnings != 1 else ''}"
    )
    return "\n\n".join(blocks)
