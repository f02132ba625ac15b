"""SMS forms in a program's settings (kazi.sms.forms): what loads, and every problem located by file, form and
field, through the loader as `kazi validate` and `kazi program load` see them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from kazi.demo import PROGRAM_DIR
from kazi.errors import ProgramError
from kazi.program.loader import inspect_tasks, load_program
from kazi.sms.forms import CHOICE, DATE, INTEGER, TEXT, SmsField, parse_sms_forms

P_FORM: dict[str, Any] = {
    "meta": {"code": "P", "label": "sms.form.P"},
    "fields": {
        "patient_name": {"position": 1, "type": "text", "required": True},
        "last_menstrual_period": {"position": 0, "type": "integer", "required": True, "range": [0, 42],
                                  "labels": {"short": {"translation_key": "sms.field.weeks"}}},
    },
    "registers": "person",
}


def test_the_demo_program_has_its_sms_forms() -> None:
    program = load_program(PROGRAM_DIR)
    assert sorted(program.sms_forms) == ["D", "P", "VR"]
    p, d, vr = program.sms_forms["P"], program.sms_forms["D"], program.sms_forms["VR"]
    assert [f.name for f in p.fields] == ["last_menstrual_period", "patient_name"]
    assert p.registers == "person" and p.permission == "can_do_home_visits" and p.reply == "sms.reply.P"
    assert d.refers_to == "patient_id" and d.fields[1] == SmsField(
        "delivery_place", 1, CHOICE, True, "sms.field.delivery_place", None,
        (("F", "health_facility"), ("H", "home"), ("R", "en_route")))
    assert d.fields[2].type == DATE and not d.fields[2].required
    assert vr.refers_to == "sender" and vr.sender == "client"
    assert program.fresh_copy().sms_forms == program.sms_forms


def test_fields_are_ordered_by_position_and_cht_label_objects_are_read() -> None:
    forms, problems = parse_sms_forms({"forms": {"P": P_FORM}}, "app_settings.json")
    assert problems == []
    f = forms["P"]
    assert [(x.name, x.type, x.label, x.range) for x in f.fields] == [
        ("last_menstrual_period", INTEGER, "sms.field.weeks", (0, 42)), ("patient_name", TEXT, None, None)]
    assert f.usage() == "P <last_menstrual_period> <patient_name>"
    assert parse_sms_forms({}, "app_settings.json") == ({}, [])


BAD: list[tuple[dict[str, Any], str, str]] = [
    # (form P changed to, the problem's field, words of its message)
    ({"meta": {"code": "Q"}}, "forms.P.meta.code", "must repeat the form's key 'P'"),
    ({"fields": {"patient_name": {"position": 0, "type": "boolean"}}}, "forms.P.fields.patient_name.type",
     "the types are text, integer, date, choice"),
    ({"fields": {"a": {"position": 0, "type": "text"}, "b": {"position": 2, "type": "text"}}}, "forms.P.fields",
     "the positions are [0, 2]"),
    ({"fields": {"w": {"position": 0, "type": "integer", "range": [5, 1]}}}, "forms.P.fields.w.range",
     "[min, max]"),
    ({"fields": {"w": {"position": 0, "type": "choice"}}}, "forms.P.fields.w.choices", "a choice field needs"),
    ({"fields": {"w": {"position": 0, "type": "text", "choices": {"A": "a"}}}}, "forms.P.fields.w.choices",
     "only choice fields"),
    ({"fields": {"w": {"position": 0, "type": "text", "colour": 1}}}, "forms.P.fields.w.colour", "unknown key"),
    ({"fields": {"w": {"position": 0, "type": "text"}}}, "forms.P.fields", "needs a text field 'patient_name'"),
    ({"registers": "place"}, "forms.P.registers", "may register person"),
    ({"refers_to": "patient_id"}, "forms.P.refers_to", "not both"),
    ({"sender": "everyone"}, "forms.P.sender", "one of user, client, any"),
    ({"sender": "client", "permission": "can_x"}, "forms.P.permission", "only applies to forms sent by users"),
    ({"reply": 5}, "forms.P.reply", "translation key"),
    ({"registers_person": True}, "forms.P.registers_person", "unknown key"),
]


@pytest.mark.parametrize(("change", "field", "words"), BAD, ids=[b[1] + ":" + b[2][:20] for b in BAD])
def test_each_problem_names_the_file_the_form_and_the_field(change: dict[str, Any], field: str, words: str) -> None:
    _, problems = parse_sms_forms({"forms": {"P": {**P_FORM, **change}}}, "app_settings.json")
    found = [p for p in problems if p.field == field]
    assert found, [str(p) for p in problems]
    assert all(p.severity == "error" and p.file == "app_settings.json" and p.form == "P" for p in problems)
    assert words in found[0].message, found[0].message
    assert str(found[0]).startswith(f'error: app_settings.json, form "P", field {field}: ')


def test_codes_are_unique_case_insensitively_and_forms_must_be_an_object() -> None:
    _, problems = parse_sms_forms({"forms": {"P": P_FORM, "p": {**P_FORM, "meta": {"code": "p"}}}}, "s.json")
    assert [p.field for p in problems] == ["forms.p"] and "repeats 'P'" in problems[0].message
    _, problems = parse_sms_forms({"forms": ["P"]}, "s.json")
    assert [p.field for p in problems] == ["forms"]


def test_a_bad_sms_form_blocks_the_program_load(tmp_path: Path) -> None:
    dest = tmp_path / "program"
    shutil.copytree(PROGRAM_DIR, dest)
    settings = json.loads((dest / "app_settings.json").read_text())
    settings["forms"]["D"]["fields"]["delivery_place"]["choices"] = {"F": "health_facility", "f": "home"}
    (dest / "app_settings.json").write_text(json.dumps(settings))
    problems = [p for p in inspect_tasks(dest) if p.severity == "error"]
    assert [(p.file, p.form, p.field) for p in problems] == [
        ("app_settings.json", "D", "forms.D.fields.delivery_place.choices.f")]
    with pytest.raises(ProgramError, match="forms.D.fields.delivery_place.choices.f"):
        load_program(dest)


def test_a_cht_json_form_loads_as_written_in_cht() -> None:
    cht = {"forms": {"R": {"meta": {"code": "R", "icon": "risk", "label": {"en": "Risk"}},
                           "fields": {"patient_name": {"labels": {"tiny": "N", "short": {"en": "Name"}},
                                                       "position": 0, "type": "string", "length": [1, 30],
                                                       "required": True, "flags": {}}},
                           "public_form": True, "use_sentinel": True}}}
    forms, problems = parse_sms_forms(cht, "app_settings.json")
    assert problems == [], [str(p) for p in problems]
    assert forms["R"].fields == (SmsField("patient_name", 0, TEXT, True),)
