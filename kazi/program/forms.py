"""Kazi's own form format: the model, its validation when a program loads, and the checking of answers.

Why a format of Kazi's own: CHT's app forms are XForms run by Enketo in the browser, far too heavy for the
cheap phones the Tasks tab targets and impossible to run on the server. What a task's form needs is small:
typed fields with translated labels, required answers, choices, a simple "ask this only if" rule and hidden
inputs filled from the task action's ``content`` (what CHT passes to a form as ``inputs``). One JSON file per
form, ``forms/<form id>.json``::

    {"id": "client_tracing", "title": "form.client_tracing.title",
     "fields": [
       {"name": "patient_uuid", "type": "hidden", "from": "contact._id"},
       {"name": "client_found", "type": "select_one", "label": "form.client_tracing.client_found",
        "required": true, "choices": [{"value": "yes", "label": "form.choice.yes"},
                                      {"value": "no", "label": "form.choice.no"}]},
       {"name": "reason_missed", "type": "text", "label": "form.client_tracing.reason_missed",
        "relevant": {"field": "client_found", "equals": "yes"}}]}

Everything here is pure (no file or database access): the loader reads the files and hands their JSON over,
the API hands over a submission's answers. The web app implements the same rules in JavaScript; they are
written out in docs/api.md ("Forms"), and this module is their reference:

* field types: ``text``, ``integer``, ``decimal``, ``date`` (``YYYY-MM-DD``), ``select_one``,
  ``select_multiple`` (stored space-separated, as CHT stores an XForm's multiple choice), ``note`` (a label,
  no value) and ``hidden`` (filled from the task's ``content``: ``from`` is a key or dotted path, default the
  field's name; a contact found there, ``{"_id", ...}``, gives its ``_id``);
* ``relevant``: ``{"field": NAME, "equals": V}``, ``{"field", "not_equals": V}`` or ``{"field", "in": [V...]}``
  on an earlier field. For a ``select_multiple`` field ``equals`` means "contains" (and ``not_equals`` "does
  not contain", ``in`` "contains one of"). An unanswered or irrelevant field equals nothing (``not_equals`` is
  then true). An irrelevant field is not submitted: a value sent for it is dropped, as XForms drops the values
  of non-relevant questions.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, Final

from kazi.errors import Problem
from kazi.program.wording import did_you_mean as _suggest
from kazi.program.wording import show as _show

FORMS_DIR: Final = "forms"

TEXT: Final = "text"
INTEGER: Final = "integer"
DECIMAL: Final = "decimal"
DATE: Final = "date"
SELECT_ONE: Final = "select_one"
SELECT_MULTIPLE: Final = "select_multiple"
NOTE: Final = "note"
HIDDEN: Final = "hidden"
FIELD_TYPES: Final = (TEXT, INTEGER, DECIMAL, DATE, SELECT_ONE, SELECT_MULTIPLE, NOTE, HIDDEN)
SELECT_TYPES: Final = (SELECT_ONE, SELECT_MULTIPLE)
#: hidden fields naming the report's subject, in CHT's order of precedence (``getSubjectId``)
SUBJECT_FIELDS: Final = ("patient_id", "patient_uuid", "place_id")

_FORM_KEYS: Final = ("id", "title", "fields")
_FIELD_KEYS: Final = ("name", "type", "label", "required", "choices", "relevant", "from")
_CHOICE_KEYS: Final = ("value", "label")
_RELEVANT_OPS: Final = ("equals", "not_equals", "in")
#: a field name becomes a key of the report's ``fields`` (and, in CHT, an XML element name)
_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")
_FORM_ID: Final = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")
_INTEGER_TEXT: Final = re.compile(r"\s*[+-]?\d+\s*")
_DECIMAL_TEXT: Final = re.compile(r"\s*[+-]?(?:\d+(?:\.\d*)?|\.\d+)\s*")
_DATE_TEXT: Final = re.compile(r"\d{4}-\d{2}-\d{2}")

# rule names (what a Problem's ``rule`` says, as the task validator's rules do)
RULE_FORM_FILE: Final = "forms/<id>.json: a form object"
RULE_FORM_ID: Final = "form id: equals the file name"
RULE_FORM_TITLE: Final = "title: required translation key"
RULE_FORM_FIELDS: Final = "fields: array with at least 1 field"
RULE_FORM_KEYS: Final = "no unknown keys"
RULE_FIELD: Final = "fields[]: object"
RULE_FIELD_NAME: Final = "fields[].name: required, unique"
RULE_FIELD_TYPE: Final = "fields[].type: " + ", ".join(FIELD_TYPES)
RULE_FIELD_LABEL: Final = "fields[].label: translation key (required but for hidden fields)"
RULE_FIELD_REQUIRED: Final = "fields[].required: true or false"
RULE_FIELD_CHOICES: Final = "fields[].choices: required for select types only"
RULE_FIELD_FROM: Final = "fields[].from: content key or dotted path, hidden fields only"
RULE_FIELD_RELEVANT: Final = "fields[].relevant: {field: an earlier field, equals | not_equals | in}"
RULE_ACTION_FORM: Final = "actions[].form: a form in forms/"


@dataclass(frozen=True)
class Choice:
    value: str
    label: str


@dataclass(frozen=True)
class Relevance:
    """Ask a field only when an earlier field's answer matches (``op``: equals, not_equals or in)."""

    field: str
    op: str
    values: tuple[Any, ...]


@dataclass(frozen=True)
class Field:
    name: str
    type: str
    label: str | None = None
    required: bool = False
    choices: tuple[Choice, ...] = ()
    relevant: Relevance | None = None
    source: str | None = None  # a hidden field's ``from``

    @property
    def has_value(self) -> bool:
        return self.type != NOTE

    @property
    def content_path(self) -> str:
        """Where a hidden field's value is in the task action's ``content``."""
        return self.source or self.name


@dataclass(frozen=True)
class Form:
    """A valid form. ``definition`` is the JSON object as the file gives it (what the API serves)."""

    id: str
    title: str
    fields: tuple[Field, ...]
    definition: Mapping[str, Any]

    def field(self, name: str) -> Field | None:
        return next((f for f in self.fields if f.name == name), None)


@dataclass(frozen=True)
class AnswerProblem:
    """One thing wrong with a submission, located by the body's path (``fields.visit_date``)."""

    field: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"field": self.field, "message": self.message}


# --------------------------------------------------------------------------------------------------------
# validation of a form file


def form_file(form_id: str) -> str:
    """The program-relative path of a form's file."""
    return f"{FORMS_DIR}/{form_id}.json"






class _FormChecker:
    """Collects every problem of one form file (each located by file, form, field path)."""

    def __init__(self, file: str, form_id: str, problems: list[Problem]) -> None:
        self.file = file
        self.form_id = form_id
        self.problems = problems
        self.failed = False
        self.names: list[Any] = []  # every field's name as written, by index

    def error(self, field: str | None, rule: str, message: str, hint: str = "") -> None:
        self.failed = True
        self.problems.append(Problem("error", self.file, message, rule=rule, field=field, hint=hint,
                                     form=self.form_id))

    def unknown_keys(self, obj: Mapping[str, Any], allowed: tuple[str, ...], path: str | None, what: str) -> None:
        for key in obj:
            if key not in allowed:
                where = f"{path}.{key}" if path else str(key)
                self.error(where, RULE_FORM_KEYS, f"{what} has an unknown key {key!r}.{_suggest(str(key), allowed)}",
                           f"Use only {', '.join(allowed)}.")

    def check(self, data: Any) -> Form | None:
        if not isinstance(data, dict):
            self.error(None, RULE_FORM_FILE, f"the file holds {_show(data)}; a form is a JSON object "
                       '{"id", "title", "fields": [...]}.', "Wrap the form in { }.")
            return None
        form_id = data.get("id")
        if not isinstance(form_id, str) or not form_id:
            self.error("id", RULE_FORM_ID, f"the form's id is {_show(form_id)}; it must be the file's name "
                       f"({self.form_id!r}).", f'Add "id": "{self.form_id}".')
        elif form_id != self.form_id:
            self.error("id", RULE_FORM_ID, f"the form's id {form_id!r} differs from its file name "
                       f"{self.file!r}: tasks name forms by id, and the file is found by its name.",
                       f'Rename the file to forms/{form_id}.json or set "id": "{self.form_id}".')
        title = data.get("title")
        if not isinstance(title, str) or not title:
            self.error("title", RULE_FORM_TITLE, f"the form's title is {_show(title)}; it must be a non-empty "
                       "translation key.", f'Add "title": "form.{self.form_id}.title" and its translations.')
        self.unknown_keys(data, _FORM_KEYS, None, "the form")
        raw_fields = data.get("fields")
        if not isinstance(raw_fields, list) or not raw_fields:
            what = "an empty array" if raw_fields == [] else _show(raw_fields)
            self.error("fields", RULE_FORM_FIELDS, f"the form's fields are {what}; a form needs at least one.",
                       'Add "fields": [{"name": ..., "type": ..., "label": ...}].')
            return None
        fields: list[Field] = []
        first_at: dict[str, int] = {}
        self.names = [f.get("name") if isinstance(f, dict) else None for f in raw_fields]
        for index, raw in enumerate(raw_fields):
            parsed = self.check_field(raw, index, fields, first_at)
            if parsed is not None:
                fields.append(parsed)
        if self.failed:
            return None
        assert isinstance(title, str)
        return Form(self.form_id, title, tuple(fields), data)

    def check_field(self, raw: Any, index: int, earlier: list[Field], first_at: dict[str, int]) -> Field | None:
        path = f"fields[{index}]"
        if not isinstance(raw, dict):
            self.error(path, RULE_FIELD, f"field {index} is {_show(raw)}; fields are objects "
                       '{"name", "type", "label", ...}.', "Replace it with a field object.")
            return None
        name = raw.get("name")
        shown = f"field {index}" + (f" ({name!r})" if isinstance(name, str) and name else "")
        ok = True
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            ok = False
            self.error(f"{path}.name", RULE_FIELD_NAME, f"{shown} has the name {_show(name)}; a name is a "
                       "letter or '_' followed by letters, digits, '_', '-' or '.'.",
                       "Give the field a name such as visit_date: it becomes a key of the report's fields.")
        elif name in first_at:
            ok = False
            self.error(f"{path}.name", RULE_FIELD_NAME, f"{shown} repeats the name of field {first_at[name]}: "
                       "each answer is stored under its field's name, so names must be unique.",
                       "Rename one of the two fields.")
        else:
            first_at[name] = index
        ftype = raw.get("type")
        known = ftype in FIELD_TYPES  # what depends on the type is only checked once the type is right
        if not known:
            ok = False
            hint = _suggest(ftype, FIELD_TYPES) if isinstance(ftype, str) else ""
            self.error(f"{path}.type", RULE_FIELD_TYPE, f"{shown} has the type {_show(ftype)}; the types are "
                       f"{', '.join(FIELD_TYPES)}.{hint}", "Use one of the listed types.")
        self.unknown_keys(raw, _FIELD_KEYS, path, shown)
        label = raw.get("label")
        if "label" in raw or (known and ftype != HIDDEN):
            if not isinstance(label, str) or not label:
                ok = False
                self.error(f"{path}.label", RULE_FIELD_LABEL, f"{shown} has the label {_show(label)}; a label is "
                           "a non-empty translation key (hidden fields alone may have none).",
                           f'Add "label": "form.{self.form_id}.{name if isinstance(name, str) else "..."}".')
        required = raw.get("required", False)
        if not isinstance(required, bool):
            ok = False
            self.error(f"{path}.required", RULE_FIELD_REQUIRED, f"{shown} has required = {_show(required)}; "
                       "it must be true or false.", "Write true or false, without quotes.")
        elif required and ftype == NOTE:
            ok = False
            self.error(f"{path}.required", RULE_FIELD_REQUIRED, f"{shown} is a note, which holds no answer, "
                       "yet is marked required.", "Remove required from the note.")
        choices = self.check_choices(raw, path, shown, ftype) if known else ()
        ok = ok and choices is not None
        source = raw.get("from")
        if "from" in raw:
            if known and ftype != HIDDEN:
                ok = False
                self.error(f"{path}.from", RULE_FIELD_FROM, f"{shown} is {_show(ftype)}, not hidden; only hidden "
                           "fields are filled from the task's content.", 'Remove "from" or make the field hidden.')
            elif not isinstance(source, str) or not all(source.split(".")):  # checked whatever the type
                ok = False
                self.error(f"{path}.from", RULE_FIELD_FROM, f"{shown} reads from {_show(source)}; it must be a "
                           "key of the task action's content or a dotted path (contact._id).",
                           "Name the content key, e.g. \"from\": \"source_report_id\".")
        relevance = self.check_relevant(raw, path, shown, earlier, index)
        ok = ok and (relevance is not None or "relevant" not in raw)
        if not ok:
            return None
        assert isinstance(name, str) and isinstance(ftype, str) and choices is not None
        return Field(name, ftype, label if isinstance(label, str) else None, bool(required), choices, relevance,
                     source if isinstance(source, str) else None)

    def check_choices(self, raw: Mapping[str, Any], path: str, shown: str, ftype: Any) -> tuple[Choice, ...] | None:
        choices = raw.get("choices")
        if ftype not in SELECT_TYPES:
            if "choices" in raw:
                self.error(f"{path}.choices", RULE_FIELD_CHOICES, f"{shown} is {_show(ftype)}; only select_one "
                           "and select_multiple fields have choices.", "Remove the choices or change the type.")
                return None
            return ()
        if not isinstance(choices, list) or not choices:
            what = "an empty array" if choices == [] else ("missing" if "choices" not in raw else _show(choices))
            self.error(f"{path}.choices", RULE_FIELD_CHOICES, f"{shown} is {ftype} but its choices are {what}; "
                       "a select field needs at least one choice.",
                       'Add "choices": [{"value": "yes", "label": "form.choice.yes"}, ...].')
            return None
        out: list[Choice] = []
        seen: dict[str, int] = {}
        ok = True
        for j, choice in enumerate(choices):
            where = f"{path}.choices[{j}]"
            if not isinstance(choice, dict):
                ok = False
                self.error(where, RULE_FIELD_CHOICES, f"{shown}, choice {j} is {_show(choice)}; choices are objects "
                           '{"value", "label"}.', "Replace it with a choice object.")
                continue
            self.unknown_keys(choice, _CHOICE_KEYS, where, f"{shown}, choice {j}")
            value, label = choice.get("value"), choice.get("label")
            if not isinstance(value, str) or not value or any(ch.isspace() for ch in value):
                ok = False
                self.error(f"{where}.value", RULE_FIELD_CHOICES, f"{shown}, choice {j} has the value {_show(value)}; "
                           "a value is a non-empty string without spaces (multiple choices are stored "
                           "space-separated).", "Use a value such as health_facility.")
            elif value in seen:
                ok = False
                self.error(f"{where}.value", RULE_FIELD_CHOICES, f"{shown}, choice {j} repeats the value {value!r} "
                           f"of choice {seen[value]}.", "Give every choice its own value.")
            else:
                seen[value] = j
            if not isinstance(label, str) or not label:
                ok = False
                self.error(f"{where}.label", RULE_FIELD_CHOICES, f"{shown}, choice {j} has the label {_show(label)}; "
                           "it must be a non-empty translation key.", 'Add "label": "form.choice...".')
            if isinstance(value, str) and isinstance(label, str):
                out.append(Choice(value, label))
        return tuple(out) if ok else None

    def check_relevant(self, raw: Mapping[str, Any], path: str, shown: str, earlier: list[Field],
                       index: int) -> Relevance | None:
        if "relevant" not in raw:
            return None
        rel = raw["relevant"]
        where = f"{path}.relevant"
        example = '{"field": "visited", "equals": "yes"}'
        if not isinstance(rel, dict):
            self.error(where, RULE_FIELD_RELEVANT, f"{shown} has relevant = {_show(rel)}; it must be an object "
                       f"such as {example}.", "Write the condition as an object.")
            return None
        self.unknown_keys(rel, ("field", *_RELEVANT_OPS), where, f"{shown}'s relevant")
        target = rel.get("field")
        ops = [op for op in _RELEVANT_OPS if op in rel]
        ok = True
        if len(ops) != 1:
            ok = False
            self.error(where, RULE_FIELD_RELEVANT, f"{shown}'s relevant has {len(ops)} of equals, not_equals, in; "
                       "it needs exactly one.", f"Write it as {example}.")
        by_name = {f.name: f for f in earlier}
        ref: Field | None = None
        if not isinstance(target, str) or not target:
            ok = False
            self.error(f"{where}.field", RULE_FIELD_RELEVANT, f"{shown}'s relevant names the field {_show(target)}; "
                       "it must name an earlier field.", f"Write it as {example}.")
        elif target in by_name:
            ref = by_name[target]
            if not ref.has_value:
                ok = False
                self.error(f"{where}.field", RULE_FIELD_RELEVANT, f"{shown} depends on {target!r}, a note, which "
                           "has no answer.", "Depend on a field that holds an answer.")
        else:
            ok = False
            before = self.names[:index]
            if target in before:
                pass  # an earlier field with problems of its own, already reported
            else:
                suggestion = ""
                if target == raw.get("name"):
                    what = "itself"
                elif target in self.names[index + 1:]:
                    what = f"field {target!r}, which comes later"
                else:
                    what = f"{target!r}, which is no field of the form"
                    suggestion = _suggest(target, [n for n in self.names if isinstance(n, str)])
                self.error(f"{where}.field", RULE_FIELD_RELEVANT, f"{shown} depends on {what}; a field can only "
                           "depend on an earlier one (the form is filled in order).",
                           "Move the field after the one it depends on, or fix the name." + suggestion)
        if len(ops) == 1:
            op = ops[0]
            value = rel[op]
            values: tuple[Any, ...]
            if op == "in":
                if not isinstance(value, list) or not value or not all(_is_scalar(v) for v in value):
                    self.error(f"{where}.in", RULE_FIELD_RELEVANT, f"{shown}'s relevant 'in' is {_show(value)}; it "
                               "must be a non-empty array of values.", 'Write "in": ["a", "b"].')
                    return None
                values = tuple(value)
            else:
                if not _is_scalar(value):
                    self.error(f"{where}.{op}", RULE_FIELD_RELEVANT, f"{shown}'s relevant {op} {_show(value)}; it "
                               "must be a string, a number or true/false.", f'Write "{op}": "yes".')
                    return None
                values = (value,)
            if ref is not None and ref.type in SELECT_TYPES:
                allowed = {c.value for c in ref.choices}
                unknown = [v for v in values if v not in allowed]
                if unknown:
                    self.error(f"{where}.{op}", RULE_FIELD_RELEVANT, f"{shown} depends on {ref.name!r} being "
                               f"{', '.join(_show(v) for v in unknown)}, which is not one of its choices "
                               f"({', '.join(sorted(allowed))}): the field would never (or always) be asked.",
                               "Use one of the choices' values.")
                    return None
            if ok:
                assert isinstance(target, str)
                return Relevance(target, op, values)
        return None


def _is_scalar(value: Any) -> bool:
    return isinstance(value, (str, bool)) or (isinstance(value, (int, float)) and math.isfinite(value))


def parse_form(data: Any, form_id: str, file: str | None = None) -> tuple[Form | None, list[Problem]]:
    """A form file's JSON (``data``) as a :class:`Form`, or ``None`` with every problem located.

    ``form_id`` is what the file name says the id is (``forms/<form_id>.json``); ``file`` the path shown.
    """
    problems: list[Problem] = []
    form = _FormChecker(file or form_file(form_id), form_id, problems).check(data)
    return form, problems


def action_form_problems(shape: Any, form_ids: Iterable[str], file: str) -> list[Problem]:
    """Warnings for task actions whose ``form`` has no Kazi form (the web app cannot open them).

    A warning, not an error: a CHT program's XForms work in CHT, and its tasks still compute; only the web
    app's form is missing. ``shape`` is the described export of ``tasks.js`` / ``tasks.py``.
    """
    known = set(form_ids)
    out: list[Problem] = []
    if not isinstance(shape, list):
        return out
    for index, definition in enumerate(shape):
        if not isinstance(definition, dict) or not isinstance(definition.get("actions"), list):
            continue
        name = definition.get("name") if isinstance(definition.get("name"), str) and definition["name"] else None
        for j, action in enumerate(definition["actions"]):
            if not isinstance(action, dict) or action.get("type", "report") not in ("report", None):
                continue
            form = action.get("form")
            if isinstance(form, str) and form and form not in known:
                out.append(Problem(
                    "warning", file, f"the action opens the form {form!r}, which has no {form_file(form)}: the "
                    "task computes, but the web app cannot open its form (a CHT XForm does not run in Kazi).",
                    rule=RULE_ACTION_FORM, definition_index=index, definition_name=name, field=f"actions[{j}].form",
                    hint=f"Write {form_file(form)} (see docs/api.md, Forms).", form=form))
    return out


# --------------------------------------------------------------------------------------------------------
# answers


def lookup(content: Any, path: str) -> Any:
    """The value at a key or dotted path of a task action's ``content``; ``None`` when absent."""
    node = content
    for step in path.split("."):
        if not isinstance(node, Mapping) or step not in node:
            return None
        node = node[step]
    return node


def hidden_value(field: Field, content: Mapping[str, Any] | None) -> Any:
    """What a hidden field takes from a task action's ``content``; a contact there (``{"_id", ...}``, as CHT
    hands a form its contact) gives its ``_id``, so ``"from": "contact"`` works like ``"contact._id"``."""
    value = lookup(content or {}, field.content_path)
    if isinstance(value, Mapping):
        value = value.get("_id")
        return value if isinstance(value, str) else None
    return value


def prefill(form: Form, content: Mapping[str, Any] | None) -> dict[str, Any]:
    """The hidden fields' values a client fills from a task action's ``content`` (absent ones left out)."""
    out: dict[str, Any] = {}
    for f in form.fields:
        if f.type == HIDDEN:
            value = hidden_value(f, content)
            if value is not None:
                out[f.name] = value
    return out


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return bool(a == b)


def is_relevant(field: Field, form: Form, values: Mapping[str, Any]) -> bool:
    """Whether ``field`` is asked, given the (checked) answers of the fields before it."""
    rel = field.relevant
    if rel is None:
        return True
    ref = form.field(rel.field)
    answer = values.get(rel.field)
    if answer is None:
        return rel.op == "not_equals"
    if ref is not None and ref.type == SELECT_MULTIPLE and isinstance(answer, str):
        picked = answer.split()
        hit = any(_same(p, v) for p in picked for v in rel.values)
    else:
        hit = any(_same(answer, v) for v in rel.values)
    return not hit if rel.op == "not_equals" else hit


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip()) or value == []


def _check_value(field: Field, value: Any) -> tuple[Any, str | None]:
    """``(normalized value, None)`` or ``(None, what is wrong)`` for one answered field."""
    t = field.type
    if t == TEXT:
        return (value, None) if isinstance(value, str) else (None, "must be text")
    if t == INTEGER:
        if isinstance(value, int) and not isinstance(value, bool):
            return value, None
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            return int(value), None
        if isinstance(value, str) and _INTEGER_TEXT.fullmatch(value):
            return int(value), None
        return None, f"must be a whole number, got {_show(value)}"
    if t == DECIMAL:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return value, None
        if isinstance(value, str) and _DECIMAL_TEXT.fullmatch(value):
            number = float(value)
            return (int(number) if number.is_integer() and "." not in value else number), None
        return None, f"must be a number, got {_show(value)}"
    if t == DATE:
        if isinstance(value, str) and _DATE_TEXT.fullmatch(value):
            try:
                date.fromisoformat(value)
            except ValueError:
                return None, f"{value!r} is not a calendar date"
            return value, None
        return None, f"must be a date written YYYY-MM-DD, got {_show(value)}"
    allowed = [c.value for c in field.choices]
    if t == SELECT_ONE:
        if isinstance(value, str) and value in allowed:
            return value, None
        return None, f"must be one of {', '.join(allowed)}, got {_show(value)}"
    if t == SELECT_MULTIPLE:
        picked = value.split() if isinstance(value, str) else value
        if not isinstance(picked, list) or not all(isinstance(v, str) for v in picked):
            return None, "must be a list of choices (or their values separated by spaces)"
        unknown = [v for v in picked if v not in allowed]
        if unknown:
            return None, f"{', '.join(repr(v) for v in unknown)} is not a choice (choices: {', '.join(allowed)})"
        return " ".join(dict.fromkeys(picked)), None
    if t == HIDDEN:
        if _is_scalar(value):
            return value, None
        return None, f"a hidden value must be text, a number or true/false, got {_show(value)}"
    return None, "holds no value"  # a note


def check_answers(form: Form, answers: Mapping[str, Any]) -> tuple[dict[str, Any], list[AnswerProblem]]:
    """A submission's answers checked against the form: ``(fields to store, problems)``.

    The stored fields are in the form's order, normalized (``"3"`` for an integer is 3, a multiple choice
    is its values separated by spaces); unanswered and irrelevant fields are left out. Problems: an unknown
    field, a value for a note, a required field unanswered, a value of the wrong type or not a choice.
    """
    problems: list[AnswerProblem] = []
    names = {f.name for f in form.fields}
    for key in answers:
        if key not in names:
            problems.append(AnswerProblem(f"fields.{key}", f"{form.id} has no field {key!r}"
                                          + _suggest(str(key), sorted(names))))
    out: dict[str, Any] = {}
    for f in form.fields:
        value = answers.get(f.name)
        if not f.has_value:
            if value is not None:
                problems.append(AnswerProblem(f"fields.{f.name}", "a note holds no answer: leave it out"))
            continue
        if not is_relevant(f, form, out):
            continue
        if _empty(value):
            if f.required:
                problems.append(AnswerProblem(f"fields.{f.name}", "required" if f.type != HIDDEN else
                                              "required (a hidden field: the task's content must provide it)"))
            continue
        normalized, wrong = _check_value(f, value)
        if wrong is not None:
            problems.append(AnswerProblem(f"fields.{f.name}", wrong))
        else:
            out[f.name] = normalized
    return out, problems


def subject_ids(fields: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(field name, id)`` of the subject fields a report's answers carry, in CHT's order of precedence."""
    return [(name, str(fields[name])) for name in SUBJECT_FIELDS
            if name in fields and not _empty(fields[name])]
