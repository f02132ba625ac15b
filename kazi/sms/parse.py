"""Reading a text message against a program's SMS forms: a parsed message or a typed error. Pure.

The rules (docs/sms.md): words are separated by any run of spaces (tabs and line breaks too); the first
word is the form's code, matched case-insensitively; then each field in position order takes one word, except
the last field when it is text, which takes the rest of the message (``P 12 Mary Banda``: weeks 12, name
``Mary Banda``). A choice's code is matched case-insensitively. An optional field that is not written is left
out. Each error names what to fix: the form's code, the field and the word, so the reply can say it.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, Final

from kazi.sms.forms import CHOICE, DATE, INTEGER, TEXT, SmsField, SmsForm

#: error codes (each has a reply, kazi.sms.replies)
EMPTY: Final = "empty"
UNKNOWN_FORM: Final = "unknown_form"
MISSING_FIELD: Final = "missing_field"
INVALID_FIELD: Final = "invalid_field"
EXTRA_TEXT: Final = "extra_text"
#: errors found after parsing, when the message meets the store (kept here so every code is in one place)
UNKNOWN_PATIENT: Final = "unknown_patient"
UNKNOWN_SENDER: Final = "unknown_sender"
NOT_ALLOWED: Final = "not_allowed"
ERROR_CODES: Final = (EMPTY, UNKNOWN_FORM, MISSING_FIELD, INVALID_FIELD, EXTRA_TEXT, UNKNOWN_PATIENT,
                      UNKNOWN_SENDER, NOT_ALLOWED)

_INTEGER: Final = re.compile(r"[+-]?\d+")
_ISO: Final = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})")
_DMY: Final = re.compile(r"(\d{1,2})[-/.](\d{1,2})[-/.](\d{4})")


@dataclass(frozen=True)
class Parsed:
    """A message that fits its form: the values by field name, typed (int, ``YYYY-MM-DD``, choice value)."""

    form: SmsForm
    fields: dict[str, Any]


@dataclass(frozen=True)
class ParseError:
    """Why a message does not fit: ``code`` (one of :data:`ERROR_CODES`), the form and field at fault, the word
    written, and what was expected (``expected``: ``integer``, ``integer_range``, ``date`` or ``choice``)."""

    code: str
    form: SmsForm | None = None
    field: SmsField | None = None
    value: str | None = None
    expected: str | None = None
    params: dict[str, str] = dataclasses.field(default_factory=dict)


def words(text: str) -> list[str]:
    """The message's words: any run of white space separates them."""
    return text.split()


def parse_message(text: str, forms: Mapping[str, SmsForm]) -> Parsed | ParseError:
    """The message read against ``forms`` (by upper-case code, as :func:`parse_sms_forms` gives them)."""
    tokens = words(text)
    if not tokens:
        return ParseError(EMPTY)
    form = forms.get(tokens[0].upper())
    if form is None:
        return ParseError(UNKNOWN_FORM, value=tokens[0])
    rest = tokens[1:]
    values: dict[str, Any] = {}
    for i, f in enumerate(form.fields):
        last = i == len(form.fields) - 1
        if not rest:
            if f.required:
                return ParseError(MISSING_FIELD, form, f)
            continue
        if last and f.type == TEXT:
            word, rest = " ".join(rest), []
        else:
            word, rest = rest[0], rest[1:]
        value = _value(f, word)
        if isinstance(value, ParseError):
            return ParseError(value.code, form, f, word, value.expected, value.params)
        values[f.name] = value
    if rest:
        return ParseError(EXTRA_TEXT, form, form.fields[-1] if form.fields else None, " ".join(rest))
    return Parsed(form, values)


def _value(f: SmsField, word: str) -> Any:
    if f.type == TEXT:
        return word
    if f.type == INTEGER:
        if not _INTEGER.fullmatch(word):
            return _invalid(f)
        number = int(word)
        if f.range is not None and not f.range[0] <= number <= f.range[1]:
            return _invalid(f)
        return number
    if f.type == DATE:
        day = parse_date(word)
        return day.isoformat() if day is not None else ParseError(INVALID_FIELD, expected="date")
    if f.type == CHOICE:
        for written, stored in f.choices:
            if written.upper() == word.upper():
                return stored
        return ParseError(INVALID_FIELD, expected="choice",
                          params={"choices": ", ".join(written for written, _ in f.choices)})
    raise AssertionError(f"unknown field type {f.type!r}")  # forms are validated when the program loads


def _invalid(f: SmsField) -> ParseError:
    if f.range is None:
        return ParseError(INVALID_FIELD, expected="integer")
    return ParseError(INVALID_FIELD, expected="integer_range", params={"min": str(f.range[0]), "max": str(f.range[1])})


def parse_date(word: str) -> date | None:
    """``YYYY-MM-DD``, ``DD-MM-YYYY``, ``DD/MM/YYYY`` or ``DD.MM.YYYY`` (day first, as written in the countries
    Kazi serves); ``None`` for anything else or a day that does not exist."""
    iso = _ISO.fullmatch(word)
    dmy = _DMY.fullmatch(word)
    try:
        if iso:
            return date(int(iso.group(1)), int(iso.group(2)), int(iso.group(3)))
        if dmy:
            return date(int(dmy.group(3)), int(dmy.group(2)), int(dmy.group(1)))
    except ValueError:
        return None
    return None
