"""Tests for the task-definition validator (the rules of cht-conf's Joi schema).

Unit tests build described definitions by hand (functions are ``FUNCTION`` markers), one rule at a time;
the fixture tests run every folder of ``tests/conformance_suite/schema-errors`` (vendored from
../shared) through the real loader
(embedded V8) and check that each location a good error must name is named, and nothing else is
reported as an error.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from kazi.errors import Problem
from kazi.program import validate as v
from kazi.program.shape import FUNCTION, OTHER_OBJECT, UNDEFINED, from_python
from kazi.program.validate import format_problems, has_errors, validate_tasks

CONFORMANCE = Path(__file__).resolve().parents[1] / "conformance_suite"
SCHEMA_FIXTURES = CONFORMANCE / "schema-errors"
CONFIGS = CONFORMANCE / "configs"


# ------------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------------


def definition(**changes: Any) -> dict[str, Any]:
    """A valid report definition with ``changes`` applied (use :func:`without` to remove keys)."""
    base: dict[str, Any] = {
        "name": "visit.follow_up",
        "title": "task.visit_follow_up",
        "appliesTo": "reports",
        "appliesToType": ["visit"],
        "events": [{"id": "follow-up", "days": 3, "start": 1, "end": 2}],
        "actions": [{"form": "visit_follow_up"}],
    }
    base.update(changes)
    return base


def without(d: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: val for k, val in d.items() if k not in keys}


def event(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"id": "e", "days": 3, "start": 1, "end": 2}
    base.update(changes)
    return base


def problems_of(*definitions: Any, file: str = "tasks.js") -> list[Problem]:
    return validate_tasks(list(definitions), file)


def errors(problems: list[Problem]) -> list[Problem]:
    return [p for p in problems if p.severity == "error"]


def warnings(problems: list[Problem]) -> list[Problem]:
    return [p for p in problems if p.severity == "warning"]


def located(problems: list[Problem]) -> list[tuple[str, int | None, str | None, str]]:
    return [(p.severity, p.definition_index, p.field, p.rule) for p in problems]


def single(problems: list[Problem], severity: str = "error") -> Problem:
    """The only problem, which must have ``severity``; asserts there is exactly one."""
    assert len(problems) == 1, format_problems(problems)
    assert problems[0].severity == severity, format_problems(problems)
    return problems[0]


def assert_single_error(d: Any, field: str | None, rule: str) -> Problem:
    p = single(problems_of(d))
    assert (p.definition_index, p.field, p.rule) == (0, field, rule), format_problems([p])
    assert p.message and p.hint, "every problem says what is wrong and how to fix it"
    return p


def assert_single_warning(d: Any, field: str, rule: str) -> Problem:
    p = single(problems_of(d), "warning")
    assert (p.definition_index, p.field, p.rule) == (0, field, rule), format_problems([p])
    assert p.message and p.hint
    return p


# ------------------------------------------------------------------------------------------------------
# valid programs
# ------------------------------------------------------------------------------------------------------


def test_valid_definition_has_no_problem() -> None:
    assert problems_of(definition()) == []


def test_valid_definition_with_every_optional_property() -> None:
    d = definition(
        icon="icon-visit",
        appliesIf=FUNCTION,
        contactLabel=FUNCTION,
        resolvedIf=FUNCTION,
        priority={"level": "medium", "label": "task.priority.medium"},
        events=[event(id="a"), event(id="b", days=UNDEFINED, dueDate=FUNCTION)],
        actions=[
            {"type": "report", "form": "f", "label": "task.action", "modifyContent": FUNCTION},
            {"type": "contact", "label": "task.open"},
        ],
    )
    assert problems_of(d) == []


def test_valid_minimal_fixture_shape_by_hand() -> None:
    """90-valid-minimal, translated by hand (scheduled_tasks, numeric-priority function, contact action)."""
    shape = [
        {
            "name": "visit.follow_up",
            "title": "task.visit_follow_up",
            "appliesTo": "reports",
            "events": [{"days": 3, "start": 0, "end": 0}],
            "actions": [{"form": "visit_follow_up"}],
        },
        {
            "name": "reminder.follow_up",
            "title": "task.reminder_follow_up",
            "appliesTo": "scheduled_tasks",
            "appliesIf": FUNCTION,
            "events": [
                {"id": "a", "days": 0, "start": 1, "end": 1},
                {"id": "b", "dueDate": FUNCTION, "start": 0, "end": 0},
            ],
            "actions": [{"type": "report", "form": "reminder_ack"}, {"type": "contact"}],
            "priority": FUNCTION,
            "contactLabel": FUNCTION,
        },
    ]
    assert validate_tasks(shape) == []


def test_empty_program_is_valid() -> None:
    assert validate_tasks([]) == []


def test_undefined_optional_properties_count_as_absent() -> None:
    d = definition(icon=UNDEFINED, appliesIf=UNDEFINED, priority=UNDEFINED, contactLabel=UNDEFINED)
    assert problems_of(d) == []


def test_unknown_key_whose_value_is_undefined_is_ignored() -> None:
    assert problems_of(definition(notes=UNDEFINED)) == []


def test_python_definitions_are_described_with_the_same_markers() -> None:
    py = [
        {
            "name": "anc.visit",
            "title": "task.anc",
            "appliesTo": "contacts",
            "appliesIf": lambda c, r: True,
            "events": ({"days": 7, "start": 2, "end": 2},),
            "actions": [{"type": "contact"}],
            "resolvedIf": lambda c, r, e, d: False,
        }
    ]
    assert validate_tasks(from_python(py), "tasks.py") == []


# ------------------------------------------------------------------------------------------------------
# the export and the definitions
# ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("export", [definition(), UNDEFINED, None, "tasks", 3, FUNCTION, OTHER_OBJECT])
def test_export_must_be_an_array(export: Any) -> None:
    p = single(validate_tasks(export))
    assert (p.definition_index, p.definition_name, p.field, p.rule) == (None, None, None, v.RULE_EXPORT)
    assert p.file == "tasks.js"
    assert p.hint


def test_single_object_export_hint_says_to_wrap_it() -> None:
    p = single(validate_tasks(definition()))
    assert "single object" in p.message
    assert "[ ]" in p.hint


@pytest.mark.parametrize("entry", ["visit", None, 3, FUNCTION, OTHER_OBJECT, [definition()]])
def test_each_definition_must_be_an_object(entry: Any) -> None:
    problems = problems_of(definition(), entry)
    p = single(problems)
    assert (p.definition_index, p.definition_name, p.field, p.rule) == (1, None, None, v.RULE_DEFINITION)


# ------------------------------------------------------------------------------------------------------
# name, title, icon
# ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [UNDEFINED, "", 7, None, ["a"]])
def test_name_is_a_required_non_empty_string(name: Any) -> None:
    d = without(definition(), "name") if name is UNDEFINED else definition(name=name)
    p = assert_single_error(d, "name", v.RULE_NAME)
    assert p.definition_name is None


def test_missing_name_message() -> None:
    assert assert_single_error(without(definition(), "name"), "name", v.RULE_NAME).message == (
        "Definition 0 has no name."
    )


def test_duplicate_names_conflict_with_the_first_definition() -> None:
    a, b, c = definition(), definition(title="t.b"), definition(title="t.c")
    problems = problems_of(a, b, definition(name="other"), c)
    assert [(p.definition_index, p.field, p.rule, p.conflicts_with) for p in problems] == [
        (1, "name", v.RULE_NAME_UNIQUE, "0"),
        (3, "name", v.RULE_NAME_UNIQUE, "0"),
    ]
    assert all(p.definition_name == "visit.follow_up" for p in problems)
    assert "definition 0" in problems[0].message


def test_invalid_names_are_not_compared_for_uniqueness() -> None:
    problems = problems_of(definition(name=""), definition(name=""))
    assert [p.rule for p in problems] == [v.RULE_NAME, v.RULE_NAME]


def test_definition_name_is_reported_with_every_problem() -> None:
    p = assert_single_error(without(definition(name="pnc.visit"), "title"), "title", v.RULE_TITLE)
    assert p.definition_name == "pnc.visit"
    assert p.location() == 'tasks.js, definition 0 ("pnc.visit"), field title'


@pytest.mark.parametrize("title", [UNDEFINED, "", 3, None, {"en": "x"}])
def test_title_is_a_required_non_empty_string(title: Any) -> None:
    d = without(definition(), "title") if title is UNDEFINED else definition(title=title)
    assert_single_error(d, "title", v.RULE_TITLE)


def test_title_array_of_translations_is_rejected() -> None:
    d = definition(title=[{"locale": "en", "content": "Postnatal visit"}])
    p = assert_single_error(d, "title", v.RULE_TITLE_ARRAY)
    assert "array" in p.message


@pytest.mark.parametrize("icon", ["", None, 3, ["icon"]])
def test_icon_is_an_optional_non_empty_string(icon: Any) -> None:
    p = assert_single_error(definition(icon=icon), "icon", v.RULE_ICON)
    if icon is None:
        assert "null" in p.message


# ------------------------------------------------------------------------------------------------------
# appliesTo, appliesIf, appliesToType, contactLabel
# ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["contacts", "reports"])
def test_applies_to_values(value: str) -> None:
    assert problems_of(definition(appliesTo=value)) == []


@pytest.mark.parametrize("value", [UNDEFINED, "person", "contact", "", None, 1, ["reports"]])
def test_applies_to_must_be_one_of_three(value: Any) -> None:
    d = without(definition(), "appliesTo") if value is UNDEFINED else definition(appliesTo=value)
    assert_single_error(d, "appliesTo", v.RULE_APPLIES_TO)


def test_applies_to_typo_hint() -> None:
    p = assert_single_error(definition(appliesTo="report"), "appliesTo", v.RULE_APPLIES_TO)
    assert '"reports"' in p.hint
    p = assert_single_error(definition(appliesTo="person"), "appliesTo", v.RULE_APPLIES_TO)
    assert "appliesToType" in p.hint


@pytest.mark.parametrize("value", [True, "function () {}", None, {}])
def test_applies_if_must_be_a_function(value: Any) -> None:
    assert_single_error(definition(appliesIf=value), "appliesIf", v.RULE_APPLIES_IF)


def test_scheduled_tasks_without_applies_if_is_a_warning() -> None:
    p = assert_single_warning(
        definition(appliesTo="scheduled_tasks"), "appliesIf", v.RULE_SCHEDULED_WITHOUT_APPLIES_IF
    )
    assert "emits nothing" in p.message
    assert problems_of(definition(appliesTo="scheduled_tasks", appliesIf=FUNCTION)) == []


def test_applies_to_type_must_not_be_empty() -> None:
    assert_single_error(definition(appliesToType=[]), "appliesToType", v.RULE_APPLIES_TO_TYPE_EMPTY)


@pytest.mark.parametrize("value", ["pregnancy", None, 3, {"form": "x"}])
def test_applies_to_type_must_be_an_array(value: Any) -> None:
    p = assert_single_error(definition(appliesToType=value), "appliesToType", v.RULE_APPLIES_TO_TYPE)
    if value == "pregnancy":
        assert '["pregnancy"]' in p.hint


@pytest.mark.parametrize("item", ["", 3, None, FUNCTION])
def test_applies_to_type_items_are_non_empty_strings(item: Any) -> None:
    assert_single_error(definition(appliesToType=["visit", item]), "appliesToType[1]", v.RULE_APPLIES_TO_TYPE)


@pytest.mark.parametrize("value", ["Household", FUNCTION])
def test_contact_label_string_or_function(value: Any) -> None:
    assert problems_of(definition(contactLabel=value)) == []


@pytest.mark.parametrize("value", ["", None, 3, True, {"name": "x"}])
def test_contact_label_rejected_values(value: Any) -> None:
    assert_single_error(definition(contactLabel=value), "contactLabel", v.RULE_CONTACT_LABEL)


# ------------------------------------------------------------------------------------------------------
# resolvedIf and actions
# ------------------------------------------------------------------------------------------------------


def test_contact_only_actions_require_resolved_if() -> None:
    d = definition(actions=[{"type": "contact", "label": "task.open"}])
    p = assert_single_error(d, "resolvedIf", v.RULE_RESOLVED_IF_REQUIRED)
    assert "no report action" in p.message
    assert problems_of(definition(actions=[{"type": "contact"}], resolvedIf=FUNCTION)) == []


def test_action_without_type_counts_as_a_report_action() -> None:
    assert problems_of(definition(actions=[{"type": "contact"}, {"form": "f"}])) == []
    assert problems_of(definition(actions=[{"type": UNDEFINED, "form": "f"}])) == []


def test_empty_actions_reports_both_the_array_and_resolved_if() -> None:
    problems = problems_of(definition(actions=[]))
    assert located(problems) == [
        ("error", 0, "actions", v.RULE_ACTIONS),
        ("error", 0, "resolvedIf", v.RULE_RESOLVED_IF_REQUIRED),
    ]


def test_missing_actions_is_reported_once() -> None:
    assert_single_error(without(definition(), "actions"), "actions", v.RULE_ACTIONS_REQUIRED)


def test_actions_not_an_array() -> None:
    assert_single_error(definition(actions={"form": "f"}), "actions", v.RULE_ACTIONS)


def test_bad_action_type_also_leaves_no_resolving_form() -> None:
    problems = problems_of(definition(actions=[{"type": "form", "form": "f"}]))
    assert located(problems) == [
        ("error", 0, "actions[0].type", v.RULE_ACTION_TYPE),
        ("error", 0, "resolvedIf", v.RULE_RESOLVED_IF_REQUIRED),
    ]


@pytest.mark.parametrize("value", [True, "yes", None])
def test_resolved_if_must_be_a_function(value: Any) -> None:
    assert_single_error(definition(resolvedIf=value), "resolvedIf", v.RULE_RESOLVED_IF)


@pytest.mark.parametrize("value", ["form", "Report", None, 1])
def test_action_type_report_or_contact(value: Any) -> None:
    d = definition(actions=[{"type": value, "form": "f"}], resolvedIf=FUNCTION)
    assert_single_error(d, "actions[0].type", v.RULE_ACTION_TYPE)


@pytest.mark.parametrize("form", ["newborn_profile", None, ""])
def test_form_forbidden_on_contact_actions(form: Any) -> None:
    d = definition(actions=[{"form": "a"}, {"type": "contact", "form": form}])
    assert_single_error(d, "actions[1].form", v.RULE_ACTION_FORM_FORBIDDEN)


@pytest.mark.parametrize("action", [{"label": "x"}, {"type": "report"}, {"form": UNDEFINED}])
def test_report_action_requires_a_form(action: dict[str, Any]) -> None:
    assert_single_error(definition(actions=[action]), "actions[0].form", v.RULE_ACTION_FORM_REQUIRED)


@pytest.mark.parametrize("form", ["", None, 3, ["f"]])
def test_report_action_form_is_a_non_empty_string(form: Any) -> None:
    assert_single_error(definition(actions=[{"form": form}]), "actions[0].form", v.RULE_ACTION_FORM)


@pytest.mark.parametrize("label", ["", None, 3])
def test_action_label(label: Any) -> None:
    assert_single_error(
        definition(actions=[{"form": "f", "label": label}]), "actions[0].label", v.RULE_ACTION_LABEL
    )


@pytest.mark.parametrize("value", [{"visit": "day-3"}, "fn", None])
def test_modify_content_must_be_a_function(value: Any) -> None:
    d = definition(actions=[{"form": "f", "modifyContent": value}])
    assert_single_error(d, "actions[0].modifyContent", v.RULE_MODIFY_CONTENT)


@pytest.mark.parametrize("action", ["visit_follow_up", None, FUNCTION])
def test_actions_are_objects(action: Any) -> None:
    problems = problems_of(definition(actions=[{"form": "f"}, action]))
    assert located(problems) == [("error", 0, "actions[1]", v.RULE_ACTION)]


def test_unknown_action_key() -> None:
    p = assert_single_error(
        definition(actions=[{"forms": "f", "form": "g"}]), "actions[0].forms", v.RULE_UNKNOWN_KEY
    )
    assert '"form"' in p.hint


# ------------------------------------------------------------------------------------------------------
# events
# ------------------------------------------------------------------------------------------------------


def test_events_required() -> None:
    assert_single_error(without(definition(), "events"), "events", v.RULE_EVENTS)


@pytest.mark.parametrize("value", [{"days": 3, "start": 0, "end": 0}, None, "e"])
def test_events_must_be_an_array(value: Any) -> None:
    assert_single_error(definition(events=value), "events", v.RULE_EVENTS)


def test_events_must_not_be_empty() -> None:
    assert_single_error(definition(events=[]), "events", v.RULE_EVENTS_EMPTY)


@pytest.mark.parametrize("value", [None, 3, "e", [event()]])
def test_events_are_objects(value: Any) -> None:
    problems = problems_of(definition(events=[event(id="a"), value]))
    assert located(problems) == [("error", 0, "events[1]", v.RULE_EVENT)]


def test_single_event_id_is_optional() -> None:
    assert problems_of(definition(events=[event(id=UNDEFINED)])) == []
    assert problems_of(definition(events=[without(event(), "id")])) == []


def test_several_events_each_need_an_id() -> None:
    events = [without(event(), "id"), event(id="day-3"), without(event(), "id")]
    problems = problems_of(definition(events=events))
    assert located(problems) == [
        ("error", 0, "events[0].id", v.RULE_EVENT_ID_REQUIRED),
        ("error", 0, "events[2].id", v.RULE_EVENT_ID_REQUIRED),
    ]


@pytest.mark.parametrize("value", ["", 3, None, True])
def test_event_id_is_a_non_empty_string(value: Any) -> None:
    assert_single_error(definition(events=[event(id=value)]), "events[0].id", v.RULE_EVENT_ID)


def test_event_ids_are_unique() -> None:
    problems = problems_of(
        definition(events=[event(id="pnc"), event(id="x"), event(id="pnc"), event(id="pnc")])
    )
    assert [(p.field, p.rule, p.conflicts_with) for p in problems] == [
        ("events[2].id", v.RULE_EVENT_ID_UNIQUE, "events[0].id"),
        ("events[3].id", v.RULE_EVENT_ID_UNIQUE, "events[0].id"),
    ]


def test_event_ids_are_unique_per_definition() -> None:
    assert problems_of(definition(), definition(name="other")) == []


def test_days_and_due_date_together() -> None:
    problems = problems_of(definition(events=[event(dueDate=FUNCTION)]))
    assert [(p.field, p.rule, p.conflicts_with) for p in problems] == [
        ("events[0].days", v.RULE_DAYS_XOR_DUE_DATE, "events[0].dueDate"),
        ("events[0].dueDate", v.RULE_DAYS_XOR_DUE_DATE, "events[0].days"),
    ]


def test_neither_days_nor_due_date() -> None:
    problems = problems_of(definition(events=[without(event(), "days")]))
    assert [(p.field, p.rule) for p in problems] == [
        ("events[0].days", v.RULE_DAYS_XOR_DUE_DATE),
        ("events[0].dueDate", v.RULE_DAYS_XOR_DUE_DATE),
    ]


@pytest.mark.parametrize("days", [0, -3, 280, 3.0])
def test_days_numbers(days: Any) -> None:
    assert problems_of(definition(events=[event(days=days)])) == []


@pytest.mark.parametrize("days", [True, None, "three", "", float("nan"), float("inf"), [3]])
def test_days_must_be_a_number(days: Any) -> None:
    assert_single_error(definition(events=[event(days=days)]), "events[0].days", v.RULE_DAYS)


@pytest.mark.parametrize("days", ["3", " 7 ", "-2", "1e1"])
def test_days_numeric_string_is_a_warning(days: str) -> None:
    p = assert_single_warning(
        definition(events=[event(days=days)]), "events[0].days", v.rule_numeric_string("days")
    )
    assert "concatenation" in p.message


def test_fractional_days_warning() -> None:
    p = assert_single_warning(definition(events=[event(days=1.5)]), "events[0].days", v.rule_fraction("days"))
    assert "counts as 1" in p.message


@pytest.mark.parametrize("value", [True, "tomorrow", None, 3])
def test_due_date_must_be_a_function(value: Any) -> None:
    d = definition(events=[event(days=UNDEFINED, dueDate=value)])
    assert_single_error(d, "events[0].dueDate", v.RULE_DUE_DATE)


@pytest.mark.parametrize("key", ["start", "end"])
def test_start_and_end_are_required(key: str) -> None:
    d = definition(events=[without(event(), key)])
    assert_single_error(d, f"events[0].{key}", v.rule_window_required(key))


@pytest.mark.parametrize("key", ["start", "end"])
@pytest.mark.parametrize("value", [-1, -0.5, None, True, "soon", "-1", float("inf")])
def test_start_and_end_are_numbers_at_least_zero(key: str, value: Any) -> None:
    assert_single_error(definition(events=[event(**{key: value})]), f"events[0].{key}", v.rule_window(key))


@pytest.mark.parametrize("key", ["start", "end"])
def test_start_and_end_numeric_strings_are_warnings(key: str) -> None:
    d = definition(events=[event(**{key: "2"})])
    assert_single_warning(d, f"events[0].{key}", v.rule_numeric_string(key))


@pytest.mark.parametrize("key", ["start", "end"])
def test_fractional_start_and_end_are_warnings(key: str) -> None:
    assert_single_warning(definition(events=[event(**{key: 1.5})]), f"events[0].{key}", v.rule_fraction(key))


def test_unknown_event_key() -> None:
    p = assert_single_error(definition(events=[event(dayz=3)]), "events[0].dayz", v.RULE_UNKNOWN_KEY)
    assert '"days"' in p.hint


# ------------------------------------------------------------------------------------------------------
# priority
# ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "priority", [FUNCTION, {}, {"level": "high"}, {"level": "medium", "label": "x"}, {"label": "task.urgent"}]
)
def test_priority_valid(priority: Any) -> None:
    assert problems_of(definition(priority=priority)) == []


@pytest.mark.parametrize("level", [10, 0, 2.5])
def test_priority_literal_numeric_level_is_rejected(level: Any) -> None:
    p = assert_single_error(definition(priority={"level": level}), "priority.level", v.RULE_PRIORITY)
    assert "function" in p.hint


@pytest.mark.parametrize("level", ["low", "urgent", "High", None, True])
def test_priority_level_high_or_medium(level: Any) -> None:
    assert_single_error(definition(priority={"level": level}), "priority.level", v.RULE_PRIORITY_LEVEL)


@pytest.mark.parametrize("label", ["", None, 3])
def test_priority_label(label: Any) -> None:
    assert_single_error(definition(priority={"label": label}), "priority.label", v.RULE_PRIORITY_LABEL)


@pytest.mark.parametrize("priority", ["high", 10, None, True, ["high"], OTHER_OBJECT])
def test_priority_must_be_object_or_function(priority: Any) -> None:
    assert_single_error(definition(priority=priority), "priority", v.RULE_PRIORITY)


def test_unknown_priority_key() -> None:
    d = definition(priority={"level": "high", "colour": "red"})
    assert_single_error(d, "priority.colour", v.RULE_UNKNOWN_KEY)


# ------------------------------------------------------------------------------------------------------
# unknown keys, several problems at once
# ------------------------------------------------------------------------------------------------------


def test_unknown_definition_key_suggests_the_known_one() -> None:
    p = assert_single_error(definition(resolveIf=FUNCTION), "resolveIf", v.RULE_UNKNOWN_KEY)
    assert '"resolvedIf"' in p.hint


def test_unknown_key_without_close_match_lists_allowed_keys() -> None:
    p = assert_single_error(definition(zzz=1), "zzz", v.RULE_UNKNOWN_KEY)
    assert "appliesToType" in p.hint


def test_all_problems_of_all_definitions_at_once() -> None:
    """32-several-errors by hand, plus one more problem per definition kind."""
    shape = [
        definition(name="anc.visit", title="task.anc_visit", appliesToType=["pregnancy"]),
        without(definition(name="pnc.visit"), "title"),
        definition(
            name="newborn.check",
            appliesTo="contacts",
            events=[event(id="day-3"), event(id="day-7", start=-2)],
            priority={"level": "urgent"},
        ),
        definition(name="anc.visit", title="task.anc_visit_again", appliesToType=["P"], icon=""),
    ]
    assert [
        (p.definition_index, p.definition_name, p.field, p.rule, p.conflicts_with)
        for p in validate_tasks(shape)
    ] == [
        (1, "pnc.visit", "title", v.RULE_TITLE, None),
        (2, "newborn.check", "events[1].start", v.rule_window("start"), None),
        (2, "newborn.check", "priority.level", v.RULE_PRIORITY_LEVEL, None),
        (3, "anc.visit", "name", v.RULE_NAME_UNIQUE, "0"),
        (3, "anc.visit", "icon", v.RULE_ICON, None),
    ]


def test_several_problems_in_one_definition() -> None:
    d = {
        "name": "x",
        "title": ["t"],
        "appliesTo": "person",
        "events": [{"id": "a", "days": "3"}, {"id": "a", "dueDate": 4, "start": 0, "end": 0}],
        "actions": [{"type": "contact", "form": "f"}],
        "resolveIf": FUNCTION,
    }
    assert located(validate_tasks([d])) == [
        ("error", 0, "title", v.RULE_TITLE_ARRAY),
        ("error", 0, "appliesTo", v.RULE_APPLIES_TO),
        ("warning", 0, "events[0].days", v.rule_numeric_string("days")),
        ("error", 0, "events[0].start", v.rule_window_required("start")),
        ("error", 0, "events[0].end", v.rule_window_required("end")),
        ("error", 0, "events[1].id", v.RULE_EVENT_ID_UNIQUE),
        ("error", 0, "events[1].dueDate", v.RULE_DUE_DATE),
        ("error", 0, "actions[0].form", v.RULE_ACTION_FORM_FORBIDDEN),
        ("error", 0, "resolvedIf", v.RULE_RESOLVED_IF_REQUIRED),
        ("error", 0, "resolveIf", v.RULE_UNKNOWN_KEY),
    ]


def test_file_name_is_reported() -> None:
    (p,) = problems_of(without(definition(), "title"), file="tasks.py")
    assert p.file == "tasks.py"
    (p,) = validate_tasks({}, "tasks.py")
    assert p.file == "tasks.py" and "module.exports" not in p.hint


# ------------------------------------------------------------------------------------------------------
# format_problems, has_errors
# ------------------------------------------------------------------------------------------------------


def test_format_problems_errors_first_with_location_hint_and_conflict() -> None:
    problems = problems_of(
        definition(appliesTo="scheduled_tasks", appliesIf=UNDEFINED), definition(title="other")
    )
    assert [p.severity for p in problems] == ["warning", "error"]
    text = format_problems(problems)
    blocks = text.split("\n\n")
    assert blocks[0].startswith('error: tasks.js, definition 1 ("visit.follow_up"), field name')
    assert "conflicts with: definition 0" in blocks[0]
    assert "\n    fix: " in blocks[0]
    assert blocks[1].startswith('warning: tasks.js, definition 0 ("visit.follow_up"), field appliesIf')
    assert blocks[-1] == "1 error, 1 warning"


def test_format_problems_event_conflict_and_file_level() -> None:
    text = format_problems(problems_of(definition(events=[event(id="a"), event(id="a")])))
    assert "conflicts with: events[0].id" in text
    text = format_problems(validate_tasks({"name": "x"}))
    assert text.startswith("error: tasks.js  [tasks.js: array of definitions]")


def test_format_no_problems() -> None:
    assert format_problems([]) == "no problems"


def test_has_errors() -> None:
    assert not has_errors(problems_of(definition(appliesTo="scheduled_tasks")))
    assert has_errors(problems_of(definition(title="")))


# ------------------------------------------------------------------------------------------------------
# conformance fixtures, through the real loader
# ------------------------------------------------------------------------------------------------------

FILE_LEVEL_FIELDS = ("(root)", "(file)")
#: rules that describe the fixture as a whole rather than a single rule
WHOLE_FIXTURE_RULES = ("valid", "all rules, no early abort")


def _fixtures() -> list[Path]:
    return (
        sorted(p for p in SCHEMA_FIXTURES.iterdir() if (p / "expected.json").is_file())
        if SCHEMA_FIXTURES.is_dir()
        else []
    )


def _names(problem: Problem, location: dict[str, Any]) -> bool:
    """Does ``problem`` name ``location`` (definition, field, other half of a duplicate, line)?"""
    if problem.definition_index != location["definition_index"]:
        return False
    # an empty name is no name: Problem.location() and to_dict() treat "" and None alike
    if (problem.definition_name or None) != (location.get("definition_name") or None):
        return False
    field = location.get("field")
    if field in FILE_LEVEL_FIELDS:
        if problem.field not in (None, field):
            return False
    elif problem.field != field:
        return False
    if "conflicts_with" in location and problem.conflicts_with != str(location["conflicts_with"]):
        return False
    if "line" in location:
        text = f"{problem.file} {problem.message}"
        if not re.search(rf"(?<!\d){location['line']}(?!\d)", text):
            return False
    return True


@pytest.mark.parametrize("folder", _fixtures(), ids=lambda p: p.name)
def test_schema_fixture(folder: Path) -> None:
    from kazi.program.loader import inspect_tasks

    expected = json.loads((folder / "expected.json").read_text())
    problems = inspect_tasks(folder)
    report = format_problems(problems)
    if expected["expect_cht_conf_valid"]:
        assert not has_errors(problems), report
    else:
        assert has_errors(problems), report
    for location in expected["locations"]:
        assert any(_names(p, location) for p in problems), f"{location} not named:\n{report}"
    # no noise: every error is at one of the expected locations
    for p in errors(problems):
        assert any(_names(p, loc) for loc in expected["locations"]), f"unexpected error:\n{p}"
    file_level = any(loc.get("field") in FILE_LEVEL_FIELDS for loc in expected["locations"])
    if expected["rule"] not in WHOLE_FIXTURE_RULES and not file_level:
        # fixture rule strings are ours verbatim (the file-level ones belong to the loader)
        assert expected["rule"] in {p.rule for p in problems}, report


def test_every_schema_fixture_is_covered() -> None:
    if not SCHEMA_FIXTURES.is_dir():
        pytest.skip(f"no conformance suite at {SCHEMA_FIXTURES}")
    assert len(_fixtures()) == 34


@pytest.mark.parametrize(
    "folder", sorted(CONFIGS.iterdir()) if CONFIGS.is_dir() else [], ids=lambda p: p.name
)
def test_conformance_configs_are_valid(folder: Path) -> None:
    """The four real programs of the suite load without errors (warnings are allowed and deliberate)."""
    from kazi.program.loader import inspect_tasks

    problems = inspect_tasks(folder)
    assert not has_errors(problems), format_problems(problems)
    # the only warning is engine-edges' deliberate scheduled_tasks definition without appliesIf (quirk Q2)
    assert {(p.definition_name, p.rule) for p in warnings(problems)} <= {
        ("edge.scheduled_without_applies_if", v.RULE_SCHEDULED_WITHOUT_APPLIES_IF)
    }
