"""The texts Kazi replies to SMS senders: through the program's translations, else English built-ins. Pure.

Keys (a program overrides any of them in ``translations/messages-<locale>.properties``)::

    sms.reply.accepted        a report was stored (a form without its own ``reply`` key)
    sms.reply.<...>           a form's own ``reply`` key, e.g. sms.reply.P
    sms.error.<code>          one per error code of kazi.sms.parse (unknown_form, missing_field, ...)
    sms.expected.<kind>       what a malformed field should have been (integer, integer_range, date, choice)

Placeholders are CHT's ``{{name}}``: ``form``, ``code``, ``forms``, ``field``, ``value``, ``expected``, ``usage``,
``patient_id``, ``patient_name``, ``sender_name`` and every field of the message by name. An unknown
placeholder is left as written, so a typo shows in the reply instead of silently vanishing. Replies are cut
to :data:`MAX_LENGTH` characters (three SMS parts).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

from kazi.program import translations as ktr
from kazi.sms import parse as p
from kazi.sms.forms import SmsForm

MAX_LENGTH: Final = 459
ACCEPTED: Final = "sms.reply.accepted"
_PLACEHOLDER: Final = re.compile(r"\{\{\s*([A-Za-z0-9_.]+)\s*\}\}")

BUILTIN: Final[dict[str, str]] = {
    ACCEPTED: "Thank you {{sender_name}}: your {{form}} report was received.",
    "sms.error.empty": "Your message is empty. Start it with a form code: {{forms}}.",
    "sms.error.unknown_form": "{{code}} is not a form code. Start your message with one of: {{forms}}.",
    "sms.error.missing_field": "{{form}}: {{field}} is missing. Send: {{usage}}",
    "sms.error.invalid_field": "{{form}}: {{field}} '{{value}}' is not {{expected}}. Send: {{usage}}",
    "sms.error.extra_text": "{{form}}: '{{value}}' is more than the form takes. Send: {{usage}}",
    "sms.error.unknown_patient": "{{form}}: no patient with ID {{patient_id}} in your area. Check the ID and "
                                 "send again.",
    "sms.error.unknown_sender": "Your number is not registered. Ask your health worker to add it, then send "
                                "again.",
    "sms.error.not_allowed": "{{form}} reports cannot be sent from your number.",
    "sms.expected.integer": "a whole number",
    "sms.expected.integer_range": "a number from {{min}} to {{max}}",
    "sms.expected.date": "a date such as 2025-08-01",
    "sms.expected.choice": "one of {{choices}}",
}


class Replies:
    """Reply texts in one locale: the program's messages (locale, its language, the default locale) over
    :data:`BUILTIN`."""

    def __init__(self, translations: Mapping[str, Mapping[str, str]], locale: str, default_locale: str) -> None:
        self.locale = locale
        self.messages = {**BUILTIN, **ktr.messages_for(translations, locale, default_locale)}

    def text(self, key: str, params: Mapping[str, object]) -> str:
        """The message ``key`` with its placeholders filled; the key itself when no text exists (as CHT)."""
        template = self.messages.get(key, key)

        def fill(m: re.Match[str]) -> str:
            value = params.get(m.group(1))
            return m.group(0) if value is None else str(value)

        out = _PLACEHOLDER.sub(fill, template).strip()
        return out if len(out) <= MAX_LENGTH else out[:MAX_LENGTH - 1] + "…"

    def label(self, form: SmsForm, field_name: str) -> str:
        """How replies name a field: its short label translated, else its name with spaces."""
        f = next((x for x in form.fields if x.name == field_name), None)
        if f is not None and f.label and f.label in self.messages:
            return self.messages[f.label]
        return field_name.replace("_", " ")

    def usage(self, form: SmsForm) -> str:
        """``P <weeks> <patient name>`` with the fields' labels."""
        parts = [form.code]
        for f in form.fields:
            name = self.label(form, f.name)
            parts.append(f"<{name}>" if f.required else f"[{name}]")
        return " ".join(parts)

    def error(self, error: p.ParseError, forms: Mapping[str, SmsForm],
              extra: Mapping[str, object] | None = None) -> str:
        """The reply to a message refused with ``error``: what is wrong and how to write it."""
        params: dict[str, object] = {"forms": ", ".join(f.code for f in forms.values()), "code": error.value or "",
                                     "value": error.value or "", **error.params, **(extra or {})}
        if error.form is not None:
            params.update(form=error.form.code, usage=self.usage(error.form))
        if error.field is not None and error.form is not None:
            params["field"] = self.label(error.form, error.field.name)
        if error.expected is not None:
            params["expected"] = self.text(f"sms.expected.{error.expected}", params)
        return self.text(f"sms.error.{error.code}", params)

    def accepted(self, form: SmsForm, params: Mapping[str, object]) -> str:
        """The reply to a stored report: the form's own ``reply`` key, else :data:`ACCEPTED`."""
        key = form.reply if form.reply and form.reply in self.messages else ACCEPTED
        return self.text(key, {"form": form.code, **params})
