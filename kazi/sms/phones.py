"""Phone numbers as SMS senders are matched to contacts: normalisation and the indexed key.

Why two forms: a gateway gives the sender in international form (``+265888123456``), while contacts' ``phone``
fields are typed by people, often in local form (``0888 123 456``) or with spaces and dashes. The store
indexes a *key* that both forms share, the last :data:`KEY_DIGITS` digits (the national number without its
trunk ``0`` or country code is nine digits in Malawi, Zambia, Kenya, Tanzania, Uganda, Mozambique, Rwanda...),
so a sender is found by one indexed query; the candidates are then compared in full with :func:`same_number`,
using the program's ``default_country_code`` (CHT's app setting) to read local forms. Pure: no I/O.
"""

from __future__ import annotations

import re
from typing import Final

#: digits of the indexed key (the migration 0006 keeps a frozen copy of this rule)
KEY_DIGITS: Final = 9
_NOT_DIGIT: Final = re.compile(r"\D")
_SEPARATORS: Final = re.compile(r"[\s\-().]")


def phone_key(value: object) -> str | None:
    """The indexed key of a phone number: its last nine digits (all of them when shorter); ``None`` for
    anything that is not a string holding at least three digits."""
    if not isinstance(value, str):
        return None
    digits = _NOT_DIGIT.sub("", value)
    if len(digits) < 3:
        return None
    return digits[-KEY_DIGITS:]


def normalise(value: str, country_code: str | None = None) -> str:
    """A number in comparable form: separators (spaces, dashes, dots, brackets) removed; ``00`` as ``+``;
    a local number (one leading ``0``) gets ``+<country_code>`` in place of its ``0`` when the country code
    is known. ``+265 888-123-456``, ``00265888123456`` and ``0888123456`` (country code 265) all give
    ``+265888123456``."""
    text = _SEPARATORS.sub("", value.strip())
    if text.startswith("00"):
        text = "+" + text[2:]
    if country_code and text.startswith("0") and not text.startswith("00"):
        text = f"+{country_code}{text[1:]}"
    elif country_code and not text.startswith("+") and text.startswith(country_code) and len(text) > 10:
        text = "+" + text  # 265888123456: international without the plus
    return text


def same_number(a: str, b: str, country_code: str | None = None) -> bool:
    """Whether two written numbers are the same phone. Equal once normalised; without a country code, a local
    and an international form are the same when their keys are (the best that can be known)."""
    na, nb = normalise(a, country_code), normalise(b, country_code)
    if na == nb:
        return True
    if country_code:
        return False
    key = phone_key(na)  # two texts without a number's digits (sender names) are not one phone
    return key is not None and key == phone_key(nb) and (not na.startswith("+") or not nb.startswith("+"))


def country_code_of(settings: dict[str, object]) -> str | None:
    """The program's ``default_country_code`` (CHT's app setting, e.g. 265), as digits, or ``None``."""
    value = settings.get("default_country_code")
    if isinstance(value, bool) or value is None:
        return None
    text = str(value).lstrip("+")
    return text if text.isdigit() else None
