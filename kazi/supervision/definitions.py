"""The program's ``supervision`` settings: indicators, task categories and supervisor tasks (pure).

A program declares them in its settings file (``app_settings.json``), as plain JSON so that a JavaScript and a
Python program write them alike and the web app could read them too::

    "supervision": {
      "categories": {"anc": {"label": "ANC", "tasks": ["anc.visit"], "titles": ["task.anc.visit.title"]}},
      "indicators": [
        {"id": "anc_completed", "label": "ANC tasks completed", "tasks": {"category": "anc", "states": ["completed"]}},
        {"id": "pregnancies", "label": "Pregnancies registered", "reports": {"forms": ["pregnancy", "P"]}},
        {"id": "completion_rate", "label": "Completion rate",
         "rate": {"numerator": "tasks_completed", "denominator": "tasks_closed"}}
      ],
      "supervisor_tasks": [
        {"id": "low_completion", "indicator": "completion_rate", "below": 0.6, "window_days": 30,
         "permission": "can_supervise_chws", "title": "task.supervision.low_completion.title",
         "form": "performance_follow_up", "priority": 8}
      ]
    }

Why parsed here, once, when the program loads: a misspelt task name or form would otherwise count nothing,
silently, for months. Every problem is located (settings file, ``supervision.indicators[2].tasks.states[0]``,
the indicator's id) and misspellings get a suggestion. Docs: ``docs/supervision.md``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from kazi.errors import Problem
from kazi.program.wording import did_you_mean as _suggest
from kazi.program.wording import show as _show

#: task state events an indicator can count (each has its instant: see docs/supervision.md)
TASK_STATES: Final = ("generated", "completed", "completed_on_time", "failed", "cancelled")
#: the built-in value a supervisor task may test besides the program's indicators: Ready tasks due before today
OVERDUE: Final = "overdue_tasks"
#: task names of supervisor tasks: ``supervisor:<rule id>``; no program task may start so
SUPERVISOR_TASK_PREFIX: Final = "supervisor:"
#: the longest window of a supervisor task (a task document is timely only 60 days back, reference 7.4)
MAX_WINDOW_DAYS: Final = 60

RULE: Final = "supervision"
_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*$")
_SCHEDULED_SUFFIX = re.compile(r"-\d+$")


@dataclass(frozen=True)
class Category:
    """A group of tasks ("ANC"): by task name (the definition's ``name``) and/or title key."""

    id: str
    label: str
    tasks: tuple[str, ...] = ()
    titles: tuple[str, ...] = ()

    def matches(self, task_name: str | None, title: str | None) -> bool:
        return (task_name is not None and task_name in self.tasks) or (title is not None and title in self.titles)


@dataclass(frozen=True)
class Indicator:
    """One indicator: a count of task documents (``kind`` tasks), of reports (reports) or a rate."""

    id: str
    label: str
    kind: str  # "tasks" | "reports" | "rate"
    higher_is_better: bool = True
    category: str | None = None  # tasks: None = every task
    states: tuple[str, ...] = ()  # tasks: the state events counted
    forms: tuple[str, ...] = ()  # reports
    numerator: str | None = None  # rate
    denominator: str | None = None  # rate

    @property
    def is_rate(self) -> bool:
        return self.kind == "rate"

    def to_dict(self) -> dict[str, Any]:
        """As the report API lists it."""
        return {"id": self.id, "label": self.label, "kind": "rate" if self.is_rate else "count",
                "format": "percent" if self.is_rate else "number", "higher_is_better": self.higher_is_better}


@dataclass(frozen=True)
class SupervisorTask:
    """A task for supervisors about a worker whose indicator crossed a threshold over the last days."""

    id: str
    indicator: str  # an indicator id or OVERDUE
    above: float | None
    below: float | None
    window_days: int
    permission: str
    title: str
    form: str
    priority: int | None = None
    priority_label: str | None = None
    action_label: str | None = None

    @property
    def task_name(self) -> str:
        return f"{SUPERVISOR_TASK_PREFIX}{self.id}"

    def crossed(self, value: float | None) -> bool:
        """Whether ``value`` is past the threshold (an unknown value, a rate without denominator, never is)."""
        if value is None:
            return False
        if self.above is not None and value > self.above:
            return True
        return self.below is not None and value < self.below


@dataclass(frozen=True)
class Supervision:
    """The parsed ``supervision`` settings."""

    categories: dict[str, Category] = field(default_factory=dict)
    indicators: tuple[Indicator, ...] = ()
    supervisor_tasks: tuple[SupervisorTask, ...] = ()

    def indicator(self, indicator_id: str) -> Indicator | None:
        return next((i for i in self.indicators if i.id == indicator_id), None)

    def categories_of(self, task_name: str | None, title: str | None) -> list[str]:
        return [c.id for c in self.categories.values() if c.matches(task_name, title)]

    @property
    def report_forms(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(f for i in self.indicators for f in i.forms))


EMPTY: Final = Supervision()


def task_name_of(emission_id: object) -> str | None:
    """The task definition's name in an emission ``_id`` (``<subject>~<event>~<name>`` and ``-<i>`` for a
    scheduled task's i-th occurrence); ``None`` when the id has no such shape."""
    if not isinstance(emission_id, str):
        return None
    parts = emission_id.split("~")
    if len(parts) < 3 or not parts[-1]:
        return None
    return _SCHEDULED_SUFFIX.sub("", parts[-1]) or None


@dataclass
class _Checker:
    file: str
    task_names: frozenset[str] | None
    title_keys: frozenset[str] | None
    form_ids: frozenset[str] | None
    permissions: frozenset[str] | None
    kazi_forms: frozenset[str] | None
    problems: list[Problem] = field(default_factory=list)

    def error(self, path: str, message: str, *, name: str | None = None, hint: str = "",
              severity: str = "error") -> None:
        # the id in the message too: a Problem shows its definition only with an index, and "which indicator"
        # is the first thing a program author asks
        shown = f"{name}: {message}" if name else message
        self.problems.append(Problem(severity, self.file, shown, rule=RULE, definition_name=name,
                                     field=f"supervision.{path}", hint=hint))

    def keys(self, obj: Mapping[str, Any], allowed: tuple[str, ...], path: str, name: str | None) -> None:
        for key in obj:
            if key not in allowed:
                self.error(f"{path}.{key}", f"unknown key {key!r}.{_suggest(str(key), allowed)}", name=name,
                           hint=f"Use only {', '.join(allowed)}.")

    def string(self, obj: Mapping[str, Any], key: str, path: str, name: str | None, *, required: bool = True
               ) -> str | None:
        value = obj.get(key)
        if value is None and not required:
            return None
        if not isinstance(value, str) or not value.strip():
            self.error(f"{path}.{key}", f"must be a non-empty string, got {_show(value)}", name=name)
            return None
        return value

    def strings(self, obj: Mapping[str, Any], key: str, path: str, name: str | None) -> tuple[str, ...]:
        value = obj.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            self.error(f"{path}.{key}", f"must be a list of non-empty strings, got {_show(value)}", name=name)
            return ()
        return tuple(value)

    def known(self, values: Iterable[str], known: frozenset[str] | None, path: str, name: str | None,
              what: str, *, strict: bool = True) -> None:
        """Each value must be one of ``known`` (when known): an error with a suggestion, or (``strict``
        false: a report form may be an XForm Kazi does not see) a warning unless a close match suggests a
        misspelling."""
        if known is None:
            return
        for i, value in enumerate(values):
            if value in known:
                continue
            hint = _suggest(value, known)
            if strict or _suggest(value, known, cutoff=0.85):
                self.error(f"{path}[{i}]", f"no {what} is named {value!r}.{hint}", name=name,
                           hint=f"Known: {', '.join(sorted(known)) or 'none'}.")
            else:
                self.error(f"{path}[{i}]", f"no {what} of the program is named {value!r}: it counts only if "
                           "reports of that form arrive from elsewhere (an XForm, an import)", name=name,
                           severity="warning")


def parse_supervision(
    settings: Mapping[str, Any], file: str, *, task_names: Iterable[str] | None = None,
    title_keys: Iterable[str] | None = None, form_ids: Iterable[str] | None = None,
    kazi_forms: Iterable[str] | None = None,
) -> tuple[Supervision, list[Problem]]:
    """The program's ``supervision`` settings and every problem found (errors block the load).

    ``task_names``, ``title_keys`` and ``form_ids`` are what the program defines (its task definitions'
    names and titles, its forms); when given, names are checked against them. ``kazi_forms`` are the
    program's web-app forms (``forms/*.json``) when it has a ``forms/`` folder: a supervisor task's form must
    be one of them then, as every task action's (a program without that folder runs XForms elsewhere). The
    permissions a supervisor task names are checked against the settings' ``permissions``.
    """
    raw = settings.get("supervision")
    if raw is None:
        return EMPTY, []
    perms = settings.get("permissions")
    check = _Checker(file, _frozen(task_names), _frozen(title_keys), _frozen(form_ids),
                     frozenset(perms) if isinstance(perms, dict) else None, _frozen(kazi_forms))
    if not isinstance(raw, dict):
        check.error("", f"must be an object with categories, indicators and supervisor_tasks, got {_show(raw)}")
        return EMPTY, check.problems
    check.keys(raw, ("categories", "indicators", "supervisor_tasks"), "", None)
    categories = _categories(check, raw.get("categories", {}))
    indicators = _indicators(check, raw.get("indicators", []), categories)
    rules = _supervisor_tasks(check, raw.get("supervisor_tasks", []), indicators)
    if rules and check.task_names is not None:
        for name in sorted(check.task_names):
            if name.startswith(SUPERVISOR_TASK_PREFIX):
                check.error("supervisor_tasks", f"the task definition {name!r} uses the prefix "
                            f"{SUPERVISOR_TASK_PREFIX!r}, which names supervisor tasks", hint="Rename it.")
    if any(p.severity == "error" for p in check.problems):
        return EMPTY, check.problems
    return Supervision(categories, tuple(indicators), tuple(rules)), check.problems


def _categories(check: _Checker, raw: Any) -> dict[str, Category]:
    out: dict[str, Category] = {}
    if not isinstance(raw, dict):
        check.error("categories", f"must be an object of categories by id, got {_show(raw)}")
        return out
    for cid, body in raw.items():
        path = f"categories.{cid}"
        if not _ID.match(cid):
            check.error(path, "a category id is a letter then letters, digits, '_', '.' or '-'", name=cid)
        if not isinstance(body, dict):
            check.error(path, f"must be an object with tasks and/or titles, got {_show(body)}", name=cid)
            continue
        check.keys(body, ("label", "tasks", "titles"), path, cid)
        label = check.string(body, "label", path, cid, required=False) or cid
        tasks = check.strings(body, "tasks", path, cid)
        titles = check.strings(body, "titles", path, cid)
        check.known(tasks, check.task_names, f"{path}.tasks", cid, "task definition")
        check.known(titles, check.title_keys, f"{path}.titles", cid, "task title")
        if not tasks and not titles and "tasks" not in body and "titles" not in body:
            check.error(path, "names no task: give tasks (definition names) and/or titles (title keys)", name=cid)
        out[cid] = Category(cid, label, tasks, titles)
    return out


def _indicators(check: _Checker, raw: Any, categories: Mapping[str, Category]) -> list[Indicator]:
    out: list[Indicator] = []
    if not isinstance(raw, list):
        check.error("indicators", f"must be a list of indicators, got {_show(raw)}")
        return out
    seen: set[str] = set()
    pending_rates: list[tuple[int, Indicator]] = []
    for index, body in enumerate(raw):
        path = f"indicators[{index}]"
        if not isinstance(body, dict):
            check.error(path, f"must be an object, got {_show(body)}")
            continue
        iid = check.string(body, "id", path, None)
        name = iid
        if iid is not None:
            if not _ID.match(iid) or iid == OVERDUE:
                check.error(f"{path}.id", f"{iid!r} is not a usable id (a letter then letters, digits, '_', "
                            f"'.', '-'; not {OVERDUE!r})", name=name)
            elif iid in seen:
                check.error(f"{path}.id", f"the id {iid!r} is used twice", name=name)
            seen.add(iid)
        check.keys(body, ("id", "label", "tasks", "reports", "rate", "higher_is_better"), path, name)
        label = check.string(body, "label", path, name) or ""
        better = body.get("higher_is_better", True)
        if not isinstance(better, bool):
            check.error(f"{path}.higher_is_better", f"must be true or false, got {_show(better)}", name=name)
            better = True
        kinds = [k for k in ("tasks", "reports", "rate") if k in body]
        if len(kinds) != 1:
            check.error(path, "needs exactly one of tasks, reports or rate" + (f" (has {', '.join(kinds)})"
                                                                              if kinds else ""), name=name)
            continue
        kind = kinds[0]
        spec = body[kind]
        spath = f"{path}.{kind}"
        if not isinstance(spec, dict):
            check.error(spath, f"must be an object, got {_show(spec)}", name=name)
            continue
        iid_, better_ = iid or "", bool(better)
        if kind == "tasks":
            check.keys(spec, ("category", "states"), spath, name)
            category = check.string(spec, "category", spath, name, required=False)
            if category is not None and category not in categories:
                check.error(f"{spath}.category", f"no category is named {category!r}."
                            f"{_suggest(category, categories)}", name=name,
                            hint=f"Categories: {', '.join(categories) or 'none (define supervision.categories)'}.")
            states = check.strings(spec, "states", spath, name)
            if not states and "states" not in spec:
                check.error(f"{spath}.states", f"is required: a list of {', '.join(TASK_STATES)}", name=name)
            check.known(states, frozenset(TASK_STATES), f"{spath}.states", name, "task state")
            out.append(Indicator(iid_, label, "tasks", better_, category=category, states=states))
        elif kind == "reports":
            check.keys(spec, ("forms",), spath, name)
            forms = check.strings(spec, "forms", spath, name)
            if not forms:
                check.error(f"{spath}.forms", "is required: a list of form ids", name=name)
            check.known(forms, check.form_ids, f"{spath}.forms", name, "form", strict=False)
            out.append(Indicator(iid_, label, "reports", better_, forms=forms))
        else:
            check.keys(spec, ("numerator", "denominator"), spath, name)
            numerator = check.string(spec, "numerator", spath, name)
            denominator = check.string(spec, "denominator", spath, name)
            rate = Indicator(iid_, label, "rate", better_, numerator=numerator, denominator=denominator)
            out.append(rate)
            pending_rates.append((index, rate))
    counts = {i.id: i for i in out if not i.is_rate}
    for index, rate in pending_rates:
        for part in ("numerator", "denominator"):
            ref = getattr(rate, part)
            if ref is None or ref in counts:
                continue
            what = "a rate (a rate divides counts)" if any(i.id == ref and i.is_rate for i in out) else "not defined"
            check.error(f"indicators[{index}].rate.{part}", f"{ref!r} is {what}.{_suggest(ref, counts)}",
                        name=rate.id)
    return out


def _supervisor_tasks(check: _Checker, raw: Any, indicators: list[Indicator]) -> list[SupervisorTask]:
    out: list[SupervisorTask] = []
    if not isinstance(raw, list):
        check.error("supervisor_tasks", f"must be a list, got {_show(raw)}")
        return out
    ids = {i.id for i in indicators} | {OVERDUE}
    seen: set[str] = set()
    allowed = ("id", "indicator", "above", "below", "window_days", "permission", "title", "form", "priority",
               "priority_label", "action_label")
    for index, body in enumerate(raw):
        path = f"supervisor_tasks[{index}]"
        if not isinstance(body, dict):
            check.error(path, f"must be an object, got {_show(body)}")
            continue
        rid = check.string(body, "id", path, None)
        if rid is not None:
            if not _ID.match(rid):
                check.error(f"{path}.id", f"{rid!r} is not a usable id (a letter then letters, digits, '_', '.', "
                            "'-')", name=rid)
            elif rid in seen:
                check.error(f"{path}.id", f"the id {rid!r} is used twice", name=rid)
            seen.add(rid)
        check.keys(body, allowed, path, rid)
        indicator = check.string(body, "indicator", path, rid)
        if indicator is not None and indicator not in ids:
            check.error(f"{path}.indicator", f"no indicator is named {indicator!r}.{_suggest(indicator, ids)}",
                        name=rid)
        bounds: dict[str, float | None] = {}
        for key in ("above", "below"):
            value = body.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                check.error(f"{path}.{key}", f"must be a number, got {_show(value)}", name=rid)
                value = None
            bounds[key] = float(value) if value is not None else None
        if bounds["above"] is None and bounds["below"] is None and "above" not in body and "below" not in body:
            check.error(path, "needs a threshold: above (more than) and/or below (less than)", name=rid)
        window = body.get("window_days", 30)
        if isinstance(window, bool) or not isinstance(window, int) or not 1 <= window <= MAX_WINDOW_DAYS:
            check.error(f"{path}.window_days", f"must be a whole number of days from 1 to {MAX_WINDOW_DAYS}, got "
                        f"{_show(window)}", name=rid)
            window = 30
        permission = check.string(body, "permission", path, rid)
        if permission is not None and check.permissions is not None and permission not in check.permissions:
            check.error(f"{path}.permission", f"the settings define no permission {permission!r}."
                        f"{_suggest(permission, check.permissions)}", name=rid,
                        hint="Grant it to the supervisors' roles in permissions.")
        title = check.string(body, "title", path, rid)
        form = check.string(body, "form", path, rid)
        if form is not None:
            check.known([form], check.kazi_forms, f"{path}.form", rid, "form of forms/")
        priority = body.get("priority")
        if priority is not None and (isinstance(priority, bool) or not isinstance(priority, int)):
            check.error(f"{path}.priority", f"must be a whole number, got {_show(priority)}", name=rid)
            priority = None
        priority_label = check.string(body, "priority_label", path, rid, required=False)
        action_label = check.string(body, "action_label", path, rid, required=False)
        if rid and indicator and permission and title and form:
            out.append(SupervisorTask(rid, indicator, bounds["above"], bounds["below"], window, permission, title,
                                      form, priority, priority_label, action_label))
    return out


def shape_vocabulary(shape: Any) -> tuple[set[str], set[str], set[str]]:
    """(task names, title keys, form ids) of a program's described task definitions: what categories and
    indicators may name (forms: the report types tasks apply to and the forms their actions open)."""
    names: set[str] = set()
    titles: set[str] = set()
    forms: set[str] = set()
    if not isinstance(shape, list):
        return names, titles, forms
    for definition in shape:
        if not isinstance(definition, dict):
            continue
        for key, into in (("name", names), ("title", titles)):
            if isinstance(definition.get(key), str) and definition[key]:
                into.add(definition[key])
        applies = definition.get("appliesToType")
        if definition.get("appliesTo") == "reports" and isinstance(applies, list):
            forms.update(a for a in applies if isinstance(a, str))
        actions = definition.get("actions")
        if isinstance(actions, list):
            forms.update(a["form"] for a in actions if isinstance(a, dict) and isinstance(a.get("form"), str))
    return names, titles, forms


def _frozen(values: Iterable[str] | None) -> frozenset[str] | None:
    return None if values is None else frozenset(values)
