"""Phone numbers as senders are matched (kazi.sms.phones): the indexed key and the full comparison."""

from __future__ import annotations

from kazi.sms import phones


def test_the_key_is_the_last_nine_digits_whatever_the_separators() -> None:
    assert phones.phone_key("+265 888-123-456") == "888123456"
    assert phones.phone_key("0888 123 456") == "888123456"
    assert phones.phone_key("(0888) 123.456") == "888123456"
    assert phones.phone_key("12345") == "12345"
    assert phones.phone_key("no") is None and phones.phone_key(None) is None and phones.phone_key("12") is None


def test_local_and_international_forms_with_the_programs_country_code() -> None:
    assert phones.normalise("0888 123 456", "265") == "+265888123456"
    assert phones.normalise("00265888123456", "265") == "+265888123456"
    assert phones.normalise("265888123456", "265") == "+265888123456"
    assert phones.same_number("0888-123-456", "+265888123456", "265")
    assert not phones.same_number("0888123456", "+260888123456", "265")  # Zambia's number, not Malawi's


def test_without_a_country_code_a_local_form_matches_by_key_only() -> None:
    assert phones.same_number("0888123456", "+265888123456")
    assert not phones.same_number("+260888123456", "+265888123456")  # two international forms must be equal


def test_country_code_setting() -> None:
    assert phones.country_code_of({"default_country_code": 265}) == "265"
    assert phones.country_code_of({"default_country_code": "+265"}) == "265"
    assert phones.country_code_of({"default_country_code": True}) is None
    assert phones.country_code_of({}) is None
