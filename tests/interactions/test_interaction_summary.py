"""Validation of interaction summaries (kazi.analytics.summary): each kind of bad summary is refused with its
JSON path and a message that says what to fix; nothing that could hold personal data gets through; the
vocabulary comes from the program; docs/interactions.md agrees with the code."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from interaction_builders import DEVICE, FORM, NOW, SICK, WELCOME, ev, local_ms, session, simple, summary

from kazi.analytics.summary import (
    ACTIONS,
    FILTER_FIELDS,
    MAX_EVENTS,
    SummaryInfo,
    Vocabulary,
    check_summary,
    content_hash,
    latest_date,
    summary_id,
)
from kazi.analytics.vocabulary import program_vocabulary, vocabulary_of
from kazi.demo import PROGRAM_DIR
from kazi.program.loader import load_program

ROOT = Path(__file__).resolve().parents[2]
TEST_PROGRAM = ROOT / "tests" / "server" / "program"
DOC = ROOT / "docs" / "interactions.md"
VOCAB = Vocabulary(frozenset({SICK, WELCOME}), frozenset({FORM}))
PERSON = "Grace Banda"  # a name that must never be accepted anywhere


def problems(doc: object, **kw: Any) -> list[tuple[str, str]]:
    info, found = check_summary(doc, VOCAB, now_ms=NOW, **kw)
    assert (info is None) == bool(found)
    return [(p.field, p.message) for p in found]


def only(doc: object) -> tuple[str, str]:
    found = problems(doc)
    assert len(found) == 1, found
    return found[0]


# --------------------------------------------------------------------------------------------------------
# good summaries


def test_a_valid_summary_gives_its_facts() -> None:
    doc = simple()
    info, found = check_summary(doc, VOCAB, now_ms=NOW)
    assert found == []
    assert info == SummaryInfo(id=f"interaction-2025-07-31-mary-{DEVICE}", user="mary", device_id=DEVICE,
                               date="2025-07-31", version="1.0.0", events=7, dropped=0)
    assert summary_id("2025-07-31", "mary", DEVICE) == info.id


def test_every_action_with_its_ref_and_detail_is_accepted() -> None:
    refs = {"task:open": SICK, "task_group:select": WELCOME, "task:form_open": FORM,
            "task_filter:select": "place", "task_filter:clear": "task_type"}
    events = [ev(i * 1000, action, refs.get(action), spec.detail_min if spec.detail else None)
              for i, action in enumerate(ACTIONS) for spec in [ACTIONS[action]]]
    assert problems(summary(session(1, local_ms("2025-07-31"), *events))) == []


def test_the_cap_holds_500_events_and_counts_the_dropped_ones() -> None:
    events = [ev(0, "task_list:open")] + [ev(i, "task_list:scroll") for i in range(1, MAX_EVENTS)]
    full = summary(session(1, local_ms("2025-07-31"), *events), dropped=100)
    assert problems(full) == []
    over = summary(session(1, local_ms("2025-07-31"), *events, ev(MAX_EVENTS, "task_list:leave")))
    assert only(over) == ("sessions", "501 events: a summary keeps at most 500 a day (the device counts the rest "
                                      "in dropped)")


def test_a_session_may_run_over_midnight_and_a_day_ends_in_the_latest_zone() -> None:
    # started at 23:00 on the 30th in Blantyre; its events after midnight belong to the 31st's summary
    started = local_ms("2025-07-30", 23)
    assert problems(summary(session(1, started, ev(3_700_000, "task:open", SICK, 0)))) == []
    # 2025-08-02 has begun in UTC+14 at the tests' clock (2025-08-01 08:00 UTC), 2025-08-03 nowhere
    assert str(latest_date(NOW)) == "2025-08-01"
    late = simple(day="2025-08-02")
    assert ("metadata.date", "2025-08-02 has not begun anywhere yet (the latest date is 2025-08-01)") in problems(late)


def test_the_same_content_in_another_key_order_has_the_same_hash() -> None:
    doc = simple()
    reordered = json.loads(json.dumps(doc, sort_keys=True))
    reordered["metadata"] = dict(reversed(list(doc["metadata"].items())))
    assert content_hash(reordered) == content_hash(doc)
    changed = copy.deepcopy(doc)
    changed["sessions"][0]["events"][2]["detail"] = 1
    assert content_hash(changed) != content_hash(doc)


# --------------------------------------------------------------------------------------------------------
# each kind of bad summary: its path and message


def modified(path: str, value: Any = None, *, delete: bool = False) -> dict[str, Any]:
    """:func:`simple` with the value at a dotted path (``sessions.0.events.2.ref``) replaced or deleted."""
    doc = simple()
    *parents, last = path.split(".")
    node: Any = doc
    for step in parents:
        node = node[int(step)] if isinstance(node, list) else node[step]
    key: Any = int(last) if isinstance(node, list) else last
    if delete:
        del node[key]
    else:
        node[key] = value
    return doc


E = "sessions[0].events"


@pytest.mark.parametrize("path, value, field, message", [
    ("type", "telemetry", "type", "must be 'interaction-log', got 'telemetry'"),
    ("_id", "interaction-2025-07-31-mary", "_id",
     f"must be 'interaction-2025-07-31-mary-{DEVICE}' (interaction-<date>-<user>-<deviceId> of the metadata), "
     "got 'interaction-2025-07-31-mary'"),
    ("metadata", [], "metadata", "must be an object with user, deviceId, date and version, got a JSON array"),
    ("metadata.user", "Mary Phiri", "metadata.user", "must be a username, got 'Mary Phiri'"),
    ("metadata.deviceId", "marys-phone", "metadata.deviceId",
     "must be the device's random id, a lower-case UUID (8-4-4-4-12 hex digits), got 'marys-phone'"),
    ("metadata.date", "2025-02-30", "metadata.date", "must be a date YYYY-MM-DD, got '2025-02-30'"),
    ("metadata.date", "31/07/2025", "metadata.date", "must be a date YYYY-MM-DD, got '31/07/2025'"),
    ("metadata.version", "1.0 beta", "metadata.version",
     "must be the app's version: a release number (1.4.2, 2.0.0-beta.1), a hex build hash or 'unknown', got "
     "'1.0 beta'"),
    ("metadata.version", "Grace", "metadata.version",
     "must be the app's version: a release number (1.4.2, 2.0.0-beta.1), a hex build hash or 'unknown', got "
     "'Grace'"),
    ("dropped", -1, "dropped", "must be between 0 and 10000000, got -1"),
    ("dropped", 3, "dropped", "3 events dropped but only 7 kept: the cap drops events only once 500 are kept"),
    ("dropped", "none", "dropped", "must be an integer, got 'none'"),
    ("sessions", [], "sessions", "must be a non-empty array of sessions, got a JSON array"),
    ("sessions.0", "s1", "sessions[0]", "must be an object with session, startedAt and events, got 's1'"),
    ("sessions.0.session", "42", "sessions[0].session", "must be the session's random id, a lower-case UUID, "
                                                        "got '42'"),
    ("sessions.0.startedAt", 1.5, "sessions[0].startedAt", "must be an integer, got 1.5"),
    ("sessions.0.events", [], f"{E}", "must be a non-empty array of events, got a JSON array"),
    ("sessions.0.events.1.action", "task_list:refresh", f"{E}[1].action",
     "unknown action 'task_list:refresh' (known: " + ", ".join(ACTIONS) + ")"),
    ("sessions.0.events.2.ref", "task.unknown", f"{E}[2].ref", "'task.unknown' is not a task title key of the program"),
    ("sessions.0.events.2.ref", "Follow up Grace Banda", f"{E}[2].ref",
     "'Follow up Grace Banda' is not a task title key of the program"),
    ("sessions.0.events.2.ref", "x" * 201, f"{E}[2].ref",
     "longer than 200 characters: not a task title key of the program"),
    ("sessions.0.events.2.detail", "third", f"{E}[2].detail", "must be an integer, got 'third'"),
    ("sessions.0.events.2.detail", True, f"{E}[2].detail", "must be an integer, got true"),
    ("sessions.0.events.2.detail", -1, f"{E}[2].detail", "must be between 0 and 1000000, got -1"),
    ("sessions.0.events.3.ref", "register", f"{E}[3].ref", "'register' is not a form id of the program"),
    ("sessions.0.events.3.ref", 7, f"{E}[3].ref", "task:form_open needs a ref, a form id of the program; got 7"),
    ("sessions.0.events.5.ref", FORM, f"{E}[5].ref", "task:complete takes no ref"),
    ("sessions.0.events.5.detail", 1, f"{E}[5].detail", "task:complete takes no detail"),
    ("sessions.0.events.5.note", "mother was not home", f"{E}[5].note",
     "unknown key 'note': only action, ref, detail, offset are allowed (a summary carries no free text)"),
    ("sessions.0.events.3.offset", 4000, f"{E}[3].offset",
     "events must be in the order they happened (offsets never go back)"),
    ("sessions.0.events.6.offset", 2 * 24 * 3600 * 1000, f"{E}[6].offset",
     "startedAt + offset is not on the summary's date in any time zone"),
    ("sessions.0.events.6.offset", -5, f"{E}[6].offset", "must be between 0 and 604800000, got -5"),
    ("metadata.name", PERSON, "metadata.name",
     "unknown key 'name': only user, deviceId, date, version are allowed (a summary carries no free text)"),
    ("contact", PERSON, "contact",
     "unknown key 'contact': only _id, type, metadata, sessions, dropped are allowed (a summary carries no free "
     "text)"),
])
def test_each_bad_value_is_refused_with_its_path(path: str, value: Any, field: str, message: str) -> None:
    assert only(modified(path, value)) == (field, message)


@pytest.mark.parametrize("path, field, message", [
    ("sessions.0.events.2.ref", f"{E}[2].ref", "task:open needs a ref, a task title key of the program; got null"),
    ("sessions.0.events.2.detail", f"{E}[2].detail",
     "task:open needs a detail: the position of the task in the list (0 = first)"),
    ("sessions.0.events.1.detail", f"{E}[1].detail", "task_list:loaded needs a detail: the number of tasks in the "
                                                     "list"),
    ("sessions.0.events.0.offset", f"{E}[0].offset", "must be an integer, got null"),
    ("dropped", "dropped", "must be an integer, got null"),
])
def test_each_missing_value_is_refused_with_its_path(path: str, field: str, message: str) -> None:
    assert only(modified(path, delete=True)) == (field, message)


def test_filters_name_a_field_id_and_count_the_values_selected() -> None:
    def with_event(event: dict[str, Any]) -> dict[str, Any]:
        return summary(session(1, local_ms("2025-07-31"), ev(0, "task_list:open"), event))

    assert problems(with_event(ev(10, "task_filter:select", "task_type", 2))) == []
    assert only(with_event(ev(10, "task_filter:select", "village", 1))) == (
        f"{E}[1].ref", "'village' is not a Tasks tab filter field id (overdue, task_type, place, search)")
    assert only(with_event(ev(10, "task_filter:select", "place", 0))) == (
        f"{E}[1].detail", "must be between 1 and 1000000, got 0")
    assert only(with_event(ev(10, "task_filter:clear", "search", 1))) == (
        f"{E}[1].detail", "task_filter:clear takes no detail")
    assert set(FILTER_FIELDS) == {"overdue", "task_type", "place", "search"}


def test_sessions_are_distinct_and_in_the_order_they_started() -> None:
    start = local_ms("2025-07-31")
    twice = summary(session(1, start, ev(0, "task_list:open")), session(1, start + 10, ev(0, "task_list:open")))
    assert only(twice) == ("sessions[1].session", "the same session twice: a session's events go in one entry")
    backwards = summary(session(1, start, ev(0, "task_list:open")), session(2, start - 10, ev(0, "task_list:open")))
    assert only(backwards) == ("sessions[1].startedAt", "sessions must be in the order they started")


def test_not_an_object_and_every_problem_at_once() -> None:
    assert problems([simple()]) == [("", "must be a JSON object (one interaction summary), got a JSON array")]
    doc = simple()
    doc["type"] = "x"
    doc["metadata"]["deviceId"] = "phone"
    doc["sessions"][0]["events"][2]["ref"] = "Grace"
    found = problems(doc, index=4)
    assert [f for f, _ in found] == ["type", "metadata.deviceId", f"{E}[2].ref"]
    _, listed = check_summary(doc, VOCAB, now_ms=NOW, index=4)
    assert {p.to_dict()["index"] for p in listed} == {4}


# --------------------------------------------------------------------------------------------------------
# no personal data: every string a summary holds is an identifier from a closed list


def _string_paths(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _string_paths(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _string_paths(v, (*path, i))
    elif isinstance(node, str):
        yield path


def _containers(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(node, dict):
        yield path
        for k, v in node.items():
            yield from _containers(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _containers(v, (*path, i))


def _at(doc: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        doc = doc[step]
    return doc


@pytest.mark.parametrize("text", [PERSON, "5001", "0f8e2c4a", "yes", "36.8"])
def test_no_string_anywhere_may_carry_a_name_or_an_answer(text: str) -> None:
    """Every string of a valid summary, replaced by a name or a form answer, is refused; and so is a key
    holding one added to any object of it."""
    base = simple()
    base["sessions"][0]["events"].insert(2, ev(450, "task_filter:select", "place", 1))
    assert problems(base) == []
    for path in _string_paths(base):
        if path == ("metadata", "version") and text[0].isdigit():
            continue  # a version is a number: 5001 may be one (the residual docs/interactions.md admits)
        doc = copy.deepcopy(base)
        _at(doc, path[:-1])[path[-1]] = text
        assert problems(doc), f"{text!r} accepted at {path}"
    for path in _containers(base):
        doc = copy.deepcopy(base)
        _at(doc, path)["label"] = text
        assert problems(doc), f"a key holding {text!r} accepted in {path}"


# --------------------------------------------------------------------------------------------------------
# the vocabulary comes from the program


def test_the_vocabulary_of_a_js_program_is_its_title_keys_and_forms() -> None:
    program = load_program(TEST_PROGRAM)
    vocabulary = program_vocabulary(program)
    assert vocabulary == Vocabulary(frozenset({SICK, WELCOME}), frozenset({FORM}))
    assert program_vocabulary(program) is vocabulary  # read once per program


def test_the_demo_program_names_every_task_title_and_form() -> None:
    program = load_program(PROGRAM_DIR)
    vocabulary = program_vocabulary(program)
    assert "task.anc.visit.title" in vocabulary.title_keys and len(vocabulary.title_keys) == 10  # 9 + the SMS visit
    assert set(program.forms) <= vocabulary.form_ids
    assert {"anc_visit", "appointment_verification"} <= vocabulary.form_ids


def test_action_forms_without_a_kazi_form_count_and_functions_do_not() -> None:
    from kazi.program.shape import FUNCTION

    definitions = [{"title": "task.a", "actions": [{"form": "cht_xform"}, {"type": "contact"}]},
                   {"title": FUNCTION, "actions": [{"form": FUNCTION}]}, "junk"]
    assert vocabulary_of(definitions, ["kazi_form"]) == Vocabulary(frozenset({"task.a"}),
                                                                   frozenset({"cht_xform", "kazi_form"}))


def test_a_python_program_has_a_vocabulary_too(tmp_path: Path) -> None:
    (tmp_path / "tasks.py").write_text(
        "tasks = [{'name': 'visit', 'title': 'task.visit', 'appliesTo': 'contacts', 'appliesToType': ['person'],\n"
        "          'events': [{'id': 'v', 'days': 0, 'start': 1, 'end': 1}],\n"
        "          'actions': [{'form': 'visit_form'}]}]\n")
    (tmp_path / "app_settings.json").write_text("{}")
    program = load_program(tmp_path)
    try:
        assert program_vocabulary(program) == Vocabulary(frozenset({"task.visit"}), frozenset({"visit_form"}))
    finally:
        unload = getattr(program.python_source, "unload", None)
        if callable(unload):
            unload()


# --------------------------------------------------------------------------------------------------------
# docs/interactions.md agrees with the code


def test_the_docs_table_of_events_is_the_codes() -> None:
    rows = re.findall(r"^\| `([a-z_]+:[a-z_]+)` \| ([^|]*) \| ([^|]*) \|", DOC.read_text(), flags=re.M)
    documented = {action: (ref.strip(), detail.strip()) for action, ref, detail in rows}
    assert set(documented) == set(ACTIONS)
    kinds = {"title key": "TITLE_KEY", "form id": "FORM", "filter field id": "FILTER_FIELD"}
    for action, spec in ACTIONS.items():
        ref, detail = documented[action]
        assert (kinds.get(ref) if ref != "–" else None) == (spec.ref.name if spec.ref else None), action
        assert (detail != "–") == (spec.detail is not None), action


def test_the_docs_example_summary_is_valid_for_the_demo_program() -> None:
    blocks = re.findall(r"```json\n(.*?)```", DOC.read_text(), flags=re.S)
    examples = [json.loads(b) for b in blocks if '"type": "interaction-log"' in b]
    assert examples
    vocabulary = program_vocabulary(load_program(PROGRAM_DIR))
    for example in examples:
        info, found = check_summary(example, vocabulary, now_ms=NOW)
        assert found == [] and info is not None


def test_the_demo_program_tracks_nobody_and_lets_the_program_officer_read_the_numbers() -> None:
    permissions = json.loads((PROGRAM_DIR / "app_settings.json").read_text())["permissions"]
    assert permissions["can_track_task_interactions"] == []
    assert permissions["can_view_interaction_analytics"] == ["program_officer"]
