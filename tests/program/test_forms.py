"""Kazi's form format (kazi.program.forms), translations (kazi.program.translations) and how a program folder's
forms/ and translations/ are loaded, validated and stored.

Validation tests build forms one rule at a time, as the task validator's tests do, and check each problem is
located (file, form, field path) and says what is wrong; the answer tests pin the rules the web app
implements in JavaScript (docs/api.md, "Forms").
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from kazi.demo import PROGRAM_DIR
from kazi.errors import Problem, ProgramError
from kazi.program import forms as f
from kazi.program import translations as tr
from kazi.program.loader import inspect_tasks, load_program
from kazi.program.validate import format_problems

YES_NO = [{"value": "yes", "label": "form.choice.yes"}, {"value": "no", "label": "form.choice.no"}]


def form(**changes: Any) -> dict[str, Any]:
    """A valid form (the contract's example) with ``changes`` applied."""
    base: dict[str, Any] = {
        "id": "appointment_verification",
        "title": "form.appointment_verification.title",
        "fields": [
            {"name": "patient_id", "type": "hidden", "from": "patient_id"},
            {"name": "missed_appointment_id", "type": "hidden", "from": "missed_appointment_id"},
            {"name": "intro", "type": "note", "label": "form.appointment_verification.intro"},
            {"name": "visited", "type": "select_one", "label": "form.appointment_verification.visited",
             "required": True, "choices": copy.deepcopy(YES_NO)},
            {"name": "visit_date", "type": "date", "label": "form.appointment_verification.visit_date",
             "required": True, "relevant": {"field": "visited", "equals": "yes"}},
            {"name": "notes", "type": "text", "label": "form.common.notes"},
        ],
    }
    base.update(changes)
    return base


def with_field(index: int, **changes: Any) -> dict[str, Any]:
    data = form()
    data["fields"][index] = {**data["fields"][index], **changes}
    return data


def problems_of(data: Any, form_id: str = "appointment_verification") -> list[Problem]:
    parsed, problems = f.parse_form(data, form_id)
    assert (parsed is None) == any(p.severity == "error" for p in problems), format_problems(problems)
    return problems


def single(problems: list[Problem]) -> Problem:
    assert len(problems) == 1, format_problems(problems)
    return problems[0]


# ------------------------------------------------------------------------------------------------------
# validation of a form file


def test_the_contracts_example_is_valid() -> None:
    parsed, problems = f.parse_form(form(), "appointment_verification")
    assert problems == [] and parsed is not None
    assert [x.name for x in parsed.fields][:2] == ["patient_id", "missed_appointment_id"]
    assert parsed.field("visit_date") is not None and parsed.field("visit_date").relevant == f.Relevance(  # type: ignore[union-attr]
        "visited", "equals", ("yes",))
    assert parsed.definition == form()


def test_problems_are_located_by_file_form_and_field_path() -> None:
    p = single(problems_of(with_field(3, type="select_won")))
    assert (p.severity, p.file, p.form, p.field) == ("error", "forms/appointment_verification.json",
                                                     "appointment_verification", "fields[3].type")
    assert "'visited'" in p.message and "select_won" in p.message and "select_one" in p.message  # a suggestion
    assert str(p).startswith('error: forms/appointment_verification.json, form "appointment_verification", '
                             "field fields[3].type")


def test_the_id_must_be_the_file_name() -> None:
    p = single(problems_of(form(id="verification")))
    assert p.field == "id" and p.rule == f.RULE_FORM_ID and "forms/verification.json" in p.hint
    assert single(problems_of(form(id=""))).field == "id"


def test_a_form_needs_a_title_and_fields() -> None:
    assert single(problems_of(form(title=""))).field == "title"
    assert single(problems_of(form(fields=[]))).field == "fields"
    assert single(problems_of([form()])).rule == f.RULE_FORM_FILE
    p = single(problems_of(form(feilds=[])))
    assert p.field == "feilds" and "fields" in p.message  # unknown key, with what was meant


def test_duplicate_field_names() -> None:
    data = form()
    data["fields"].append({"name": "notes", "type": "text", "label": "x"})
    p = single(problems_of(data))
    assert p.field == "fields[6].name" and "field 5" in p.message and p.rule == f.RULE_FIELD_NAME


def test_unknown_field_keys_and_bad_names() -> None:
    assert single(problems_of(with_field(5, lable="x"))).field == "fields[5].lable"
    assert single(problems_of(with_field(5, name="my notes"))).field == "fields[5].name"
    assert single(problems_of(with_field(5, required="yes"))).field == "fields[5].required"
    assert single(problems_of(with_field(2, required=True))).field == "fields[2].required"  # a note


def test_labels_are_required_except_for_hidden_fields() -> None:
    data = form()
    del data["fields"][5]["label"]
    assert single(problems_of(data)).field == "fields[5].label"
    assert problems_of(with_field(0, label="form.x")) == []  # a hidden field may have one


def test_choices_only_and_always_for_select_types() -> None:
    data = form()
    del data["fields"][3]["choices"]
    p = single(problems_of(data))
    assert p.field == "fields[3].choices" and "missing" in p.message and p.rule == f.RULE_FIELD_CHOICES
    assert single(problems_of(with_field(3, choices=[]))).field == "fields[3].choices"
    assert single(problems_of(with_field(5, choices=YES_NO))).field == "fields[5].choices"
    twice = with_field(3, choices=[*YES_NO, {"value": "yes", "label": "again"}])
    assert single(problems_of(twice)).field == "fields[3].choices[2].value"
    spaced = with_field(3, choices=[{"value": "not sure", "label": "x"}])
    assert "without spaces" in single(problems_of(spaced)).message


def test_relevant_names_an_earlier_field() -> None:
    later = with_field(3, relevant={"field": "visit_date", "equals": "2025-01-01"})
    p = single(problems_of(later))
    assert p.field == "fields[3].relevant.field" and "comes later" in p.message
    unknown = with_field(4, relevant={"field": "visted", "equals": "yes"})
    p = single(problems_of(unknown))
    assert "no field of the form" in p.message and "visited" in p.hint
    assert "itself" in single(problems_of(with_field(4, relevant={"field": "visit_date", "equals": "x"}))).message
    assert "a note" in single(problems_of(with_field(4, relevant={"field": "intro", "equals": "x"}))).message


def test_relevant_has_one_condition_on_a_real_choice() -> None:
    assert "exactly one" in single(problems_of(with_field(4, relevant={"field": "visited"}))).message
    two = with_field(4, relevant={"field": "visited", "equals": "yes", "in": ["yes"]})
    assert "exactly one" in single(problems_of(two)).message
    assert single(problems_of(with_field(4, relevant={"field": "visited", "in": []}))).field == \
        "fields[4].relevant.in"
    p = single(problems_of(with_field(4, relevant={"field": "visited", "equals": "maybe"})))
    assert p.field == "fields[4].relevant.equals" and "not one of its choices" in p.message
    assert problems_of(with_field(4, relevant={"field": "visited", "not_equals": "no"})) == []


def test_from_belongs_to_hidden_fields() -> None:
    assert single(problems_of(with_field(5, **{"from": "notes"}))).field == "fields[5].from"
    assert single(problems_of(with_field(0, **{"from": "contact..x"}))).field == "fields[0].from"


def test_every_problem_at_once() -> None:
    data = form(id="other", title=None)
    data["fields"][1]["type"] = "hiden"
    data["fields"][3]["choices"] = "yes no"
    problems = problems_of(data)
    assert {p.field for p in problems} == {"id", "title", "fields[1].type", "fields[3].choices"}


# ------------------------------------------------------------------------------------------------------
# answers


@pytest.fixture
def parsed() -> f.Form:
    data = form()
    data["fields"] += [
        {"name": "signs", "type": "select_multiple", "label": "s", "required": True,
         "choices": [{"value": v, "label": v} for v in ("none", "fever", "cough")]},
        {"name": "referred", "type": "select_one", "label": "r", "required": True, "choices": YES_NO,
         "relevant": {"field": "signs", "not_equals": "none"}},
        {"name": "days", "type": "integer", "label": "d"},
        {"name": "weight", "type": "decimal", "label": "w"},
        {"name": "why", "type": "text", "label": "y", "relevant": {"field": "days", "in": [3, 4]}},
    ]
    out, problems = f.parse_form(data, "appointment_verification")
    assert out is not None, format_problems(problems)
    return out


def test_answers_are_checked_and_normalized(parsed: f.Form) -> None:
    fields, problems = f.check_answers(parsed, {
        "patient_id": "C0042", "missed_appointment_id": "m-1", "visited": "yes", "visit_date": "2025-07-30",
        "signs": ["fever", "cough", "fever"], "referred": "no", "days": "3", "weight": "3.25", "why": "far",
    })
    assert problems == []
    assert fields == {"patient_id": "C0042", "missed_appointment_id": "m-1", "visited": "yes",
                      "visit_date": "2025-07-30", "signs": "fever cough", "referred": "no", "days": 3,
                      "weight": 3.25, "why": "far"}
    assert list(fields) == [x.name for x in parsed.fields if x.name in fields]  # the form's order


def test_irrelevant_answers_are_dropped(parsed: f.Form) -> None:
    fields, problems = f.check_answers(parsed, {"visited": "no", "visit_date": "2025-07-30", "signs": "none",
                                               "referred": "yes", "days": 5, "why": "far"})
    assert problems == []
    assert fields == {"visited": "no", "signs": "none", "days": 5}


def test_every_problem_of_the_answers_is_listed(parsed: f.Form) -> None:
    _, problems = f.check_answers(parsed, {"visited": "perhaps", "signs": "fever sneeze", "days": 2.5,
                                           "weight": True, "intro": "hello", "colour": "red"})
    by_field = {p.field: p.message for p in problems}
    assert set(by_field) == {"fields.colour", "fields.intro", "fields.visited", "fields.signs", "fields.days",
                             "fields.weight", "fields.referred"}
    assert "no field 'colour'" in by_field["fields.colour"]
    assert "note" in by_field["fields.intro"]
    assert "one of yes, no" in by_field["fields.visited"]
    assert "'sneeze' is not a choice" in by_field["fields.signs"]
    assert "whole number" in by_field["fields.days"]
    # "fever sneeze" was refused, so signs has no answer, which is "not none": referred is asked
    assert by_field["fields.referred"] == "required"
    _, problems = f.check_answers(parsed, {"visited": "yes", "visit_date": "2025-02-30", "signs": []})
    assert {p.field: p.message for p in problems} == {"fields.visit_date": "'2025-02-30' is not a calendar date",
                                                       "fields.signs": "required", "fields.referred": "required"}


def test_relevance_rules(parsed: f.Form) -> None:
    why = parsed.field("why")
    referred = parsed.field("referred")
    assert why is not None and referred is not None
    assert f.is_relevant(why, parsed, {"days": 3}) and not f.is_relevant(why, parsed, {"days": 5})
    assert not f.is_relevant(why, parsed, {})
    assert f.is_relevant(referred, parsed, {}) is True  # not_equals: unanswered equals nothing
    assert f.is_relevant(referred, parsed, {"signs": "fever"})
    assert not f.is_relevant(referred, parsed, {"signs": "cough none"})  # select_multiple: "contains"


def test_hidden_fields_are_filled_from_the_action_content() -> None:
    data = form()
    data["fields"].insert(0, {"name": "patient_uuid", "type": "hidden", "from": "contact._id"})
    data["fields"].insert(1, {"name": "place", "type": "hidden", "from": "contact"})
    data["fields"].insert(2, {"name": "household", "type": "hidden", "from": "contact.parent._id"})
    parsed, _ = f.parse_form(data, "appointment_verification")
    assert parsed is not None
    content = {"source": "task", "patient_id": "C0042", "contact": {"_id": "p1", "name": "Grace",
                                                                   "parent": {"_id": "hh1"}}}
    assert f.prefill(parsed, content) == {"patient_uuid": "p1", "place": "p1", "household": "hh1",
                                          "patient_id": "C0042"}
    assert f.subject_ids({"patient_uuid": "p1", "patient_id": "C0042", "place_id": ""}) == [
        ("patient_id", "C0042"), ("patient_uuid", "p1")]


# ------------------------------------------------------------------------------------------------------
# translations


def test_properties_files_parse_as_cht_writes_them() -> None:
    text = ("# a comment\n! another\n\ntask.a = ANC visit\ntask.b=Kuyendera mayi\n  task.c : with colon\n"
            "task.d = first line \\\n    continued\ntask.e = caf\\u00e9 \\t tab\ntask.f\nkey\\ with\\ space = x\n"
            "task.a = last wins\n")
    assert tr.parse_properties(text) == {"task.a": "last wins", "task.b": "Kuyendera mayi",
                                         "task.c": "with colon", "task.d": "first line continued",
                                         "task.e": "caf\u00e9 \t tab", "task.f": "", "key with space": "x"}


def test_locales_and_fallback() -> None:
    assert all(tr.is_locale(x) for x in ("en", "ny", "pt-BR", "zh-Hans-CN", "es-419"))
    assert not any(tr.is_locale(x) for x in ("", "english", "EN", "pt_BR", "e", None, 3))
    assert tr.fallback_chain("pt-BR", "en") == ["pt-BR", "pt", "en"]
    assert tr.fallback_chain("en", "en") == ["en"]
    messages = {"en": {"a": "A", "b": "B", "c": "C"}, "pt": {"a": "Á", "b": "Bê"}, "pt-BR": {"a": "Á!"}}
    assert tr.messages_for(messages, "pt-BR", "en") == {"a": "Á!", "b": "Bê", "c": "C"}
    assert tr.messages_for(messages, "fr", "en") == messages["en"]
    assert tr.locale_of_file("messages-ny.properties") == "ny" and tr.locale_of_file("x.properties") is None


# ------------------------------------------------------------------------------------------------------
# program folders


@pytest.fixture
def demo_copy(tmp_path: Path) -> Path:
    dest = tmp_path / "program"
    shutil.copytree(PROGRAM_DIR, dest)
    return dest


def test_the_demo_program_loads_its_forms_and_translations() -> None:
    problems = inspect_tasks(PROGRAM_DIR)
    assert problems == [], format_problems(problems)
    program = load_program(PROGRAM_DIR)
    action_forms = {"anc_visit", "delivery", "danger_sign_follow_up", "pnc_visit", "newborn_check",
                    "supervisor_case_review", "appointment_verification", "client_tracing",
                    "verification_backlog_review", "home_visit"}
    # and the follow-up form of the demo's supervisor task (settings `supervision`, docs/supervision.md)
    assert set(program.forms) == action_forms | {"performance_follow_up"}
    assert sorted(program.translations) == ["en", "ny"] and program.default_locale == "en"
    assert program.fresh_copy().forms == program.forms


def test_every_demo_label_is_translated_in_english_and_chichewa() -> None:
    program = load_program(PROGRAM_DIR)
    keys: set[str] = set()
    for parsed in program.forms.values():
        keys.add(parsed.title)
        for field in parsed.fields:
            keys.update(k for k in (field.label, *(c.label for c in field.choices)) if k)
    for locale in ("en", "ny"):
        missing = keys - set(program.translations[locale])
        assert not missing, f"{locale}: {sorted(missing)}"
    # the Chichewa file covers every English key (task titles, priorities, contact types too)
    assert set(program.translations["en"]) <= set(program.translations["ny"])
    assert program.translations["ny"]["form.choice.yes"] == "Inde"


def test_form_problems_block_the_load_and_name_the_file(demo_copy: Path) -> None:
    (demo_copy / "forms" / "delivery.json").write_text('{"id": "delivery", "title": "x", "fields": [\n  {,}\n]}')
    broken = json.loads((demo_copy / "forms" / "client_tracing.json").read_text())
    broken["fields"][6]["type"] = "yes_no"
    (demo_copy / "forms" / "client_tracing.json").write_text(json.dumps(broken))
    problems = inspect_tasks(demo_copy)
    errors = [p for p in problems if p.severity == "error"]
    assert {(p.file, p.form) for p in errors} == {("forms/delivery.json:2", "delivery"),
                                                   ("forms/client_tracing.json", "client_tracing")}
    assert any("invalid JSON at line 2" in p.message for p in errors)
    assert any(p.field == "fields[6].type" and "yes_no" in p.message for p in errors)
    with pytest.raises(ProgramError) as caught:
        load_program(demo_copy)
    assert "client_tracing" in str(caught.value)


def test_a_task_form_without_a_form_file_is_a_warning(demo_copy: Path) -> None:
    (demo_copy / "forms" / "pnc_visit.json").unlink()
    (demo_copy / "forms" / "app").mkdir()  # CHT's XForms beside Kazi's forms are not Kazi's
    (demo_copy / "forms" / "app" / "pnc_visit.xml").write_text("<h:html/>")
    problems = inspect_tasks(demo_copy)
    p = single(problems)
    assert (p.severity, p.file, p.definition_name, p.field, p.form) == (
        "warning", "tasks.js", "pnc.home_visit", "actions[0].form", "pnc_visit")
    assert "forms/pnc_visit.json" in p.message
    assert "pnc_visit" not in load_program(demo_copy).forms


def test_programs_without_forms_get_no_form_warnings(demo_copy: Path) -> None:
    shutil.rmtree(demo_copy / "forms")
    assert inspect_tasks(demo_copy) == []
    assert load_program(demo_copy).forms == {}


def test_a_translation_file_with_a_bad_locale_is_a_warning(demo_copy: Path) -> None:
    (demo_copy / "translations" / "messages-Chichewa.properties").write_text("a = b\n")
    p = single(inspect_tasks(demo_copy))
    assert p.severity == "warning" and p.file == "translations/messages-Chichewa.properties"
    assert sorted(load_program(demo_copy).translations) == ["en", "ny"]


def test_forms_are_stored_with_the_program_files(demo_copy: Path) -> None:
    from kazi.service.tasks import program_files

    (demo_copy / "forms" / "app").mkdir()
    (demo_copy / "forms" / "app" / "anc_visit.xml").write_text("<h:html/>")
    files = program_files(demo_copy, "js")
    assert {k for k in files if k.startswith("forms/")} == {f"forms/{name}.json" for name in
                                                            load_program(demo_copy).forms}
    assert "translations/messages-ny.properties" in files
