"""Reading messages against SMS forms (kazi.sms.parse): codes, spacing, names of several words, each error."""

from __future__ import annotations

import pytest

from kazi.demo import PROGRAM_DIR
from kazi.program.loader import load_program
from kazi.sms import parse as p
from kazi.sms.forms import SmsForm

FORMS: dict[str, SmsForm] = load_program(PROGRAM_DIR).sms_forms


@pytest.mark.parametrize(("text", "form", "fields"), [
    ("P 12 Mary Banda", "P", {"last_menstrual_period": 12, "patient_name": "Mary Banda"}),
    ("  p\t12  \n Mary   Chisomo  Banda ", "P", {"last_menstrual_period": 12, "patient_name": "Mary Chisomo Banda"}),
    ("P 0 Ruth", "P", {"last_menstrual_period": 0, "patient_name": "Ruth"}),
    ("d 12345 h", "D", {"patient_id": "12345", "delivery_place": "home"}),
    ("D 12345 F 2025-07-31", "D", {"patient_id": "12345", "delivery_place": "health_facility",
                                   "delivery_date": "2025-07-31"}),
    ("D 12345 R 1/8/2025", "D", {"patient_id": "12345", "delivery_place": "en_route", "delivery_date": "2025-08-01"}),
    ("Vr", "VR", {}),
    ("VR my child is sick", "VR", {"reason": "my child is sick"}),
])
def test_messages_that_fit(text: str, form: str, fields: dict[str, object]) -> None:
    parsed = p.parse_message(text, FORMS)
    assert isinstance(parsed, p.Parsed), parsed
    assert parsed.form.code == form and parsed.fields == fields


@pytest.mark.parametrize(("text", "code", "field", "value", "expected"), [
    ("", p.EMPTY, None, None, None),
    ("   \n", p.EMPTY, None, None, None),
    ("Z 12 Mary", p.UNKNOWN_FORM, None, "Z", None),
    ("P", p.MISSING_FIELD, "last_menstrual_period", None, None),
    ("P 12", p.MISSING_FIELD, "patient_name", None, None),
    ("P 1.5 Mary", p.INVALID_FIELD, "last_menstrual_period", "1.5", "integer_range"),
    ("P 43 Mary", p.INVALID_FIELD, "last_menstrual_period", "43", "integer_range"),
    ("D 12345 X", p.INVALID_FIELD, "delivery_place", "X", "choice"),
    ("D 12345 F 31-02-2025", p.INVALID_FIELD, "delivery_date", "31-02-2025", "date"),
    ("D 12345 F yesterday", p.INVALID_FIELD, "delivery_date", "yesterday", "date"),
    ("D 12345 F 2025-07-31 twins", p.EXTRA_TEXT, "delivery_date", "twins", None),
])
def test_each_error_says_what_and_where(text: str, code: str, field: str | None, value: str | None,
                                        expected: str | None) -> None:
    error = p.parse_message(text, FORMS)
    assert isinstance(error, p.ParseError), error
    assert error.code == code and error.value == value and error.expected == expected
    assert (error.field.name if error.field else None) == field
    if code not in (p.EMPTY, p.UNKNOWN_FORM):
        assert error.form is not None and error.form.code == text.split()[0].upper()


def test_dates_are_checked_for_real_days() -> None:
    assert p.parse_date("2024-02-29") is not None and p.parse_date("2025-02-29") is None
    assert str(p.parse_date("05.08.2025")) == "2025-08-05" and p.parse_date("2025/08/05") is None
