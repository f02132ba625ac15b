"""Reply texts (kazi.sms.replies): the program's translations over English built-ins, placeholders filled."""

from __future__ import annotations

from kazi.demo import PROGRAM_DIR
from kazi.program.loader import load_program
from kazi.sms import parse as p
from kazi.sms.replies import BUILTIN, MAX_LENGTH, Replies

PROGRAM = load_program(PROGRAM_DIR)


def test_every_error_code_has_a_builtin_reply() -> None:
    assert {f"sms.error.{code}" for code in p.ERROR_CODES} <= set(BUILTIN)


def test_the_demo_translates_every_reply_in_english_and_chichewa() -> None:
    for locale in ("en", "ny"):
        assert set(BUILTIN) <= set(PROGRAM.translations[locale]), locale


def test_error_reply_names_the_field_by_its_label_and_shows_the_usage() -> None:
    en = Replies(PROGRAM.translations, "en", "en")
    error = p.parse_message("P many Mary", PROGRAM.sms_forms)
    assert isinstance(error, p.ParseError)
    assert en.error(error, PROGRAM.sms_forms) == (
        "P: the weeks 'many' is not a number from 0 to 42. Send: P <weeks> <name>")
    ny = Replies(PROGRAM.translations, "ny", "en")
    assert ny.error(error, PROGRAM.sms_forms) == (
        "P: masabata 'many' si nambala kuyambira 0 mpaka 42. Tumizani: P <masabata> <dzina>")


def test_without_translations_the_builtins_answer_and_unknown_placeholders_stay_visible() -> None:
    bare = Replies({}, "fr", "en")
    error = p.parse_message("Z", PROGRAM.sms_forms)
    assert isinstance(error, p.ParseError)
    assert bare.error(error, PROGRAM.sms_forms) == "Z is not a form code. Start your message with one of: P, D, VR."
    assert bare.text("sms.reply.accepted", {"form": "P"}) == "Thank you {{sender_name}}: your P report was received."
    assert bare.accepted(PROGRAM.sms_forms["P"], {"sender_name": "Ann"}) == (
        "Thank you Ann: your P report was received.")  # the form's own key has no text here: the default
    assert len(bare.text("sms.error.unknown_form", {"code": "x" * 1000})) == MAX_LENGTH
