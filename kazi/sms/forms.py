"""SMS forms: what a program declares a text message may say, and its validation when the program loads.

Where they live: in the program's settings, under ``forms``, where CHT keeps its SMS ("JSON") forms, in CHT's
shape (a form per code, ``meta.code``, ``fields`` by name with a ``position``), plus what Kazi needs to turn a
message into a case without Sentinel's transitions::

    "forms": {
      "P": {
        "meta": {"code": "P", "label": "sms.form.P"},
        "fields": {
          "last_menstrual_period": {"position": 0, "type": "integer", "required": true, "range": [0, 42],
                                    "labels": {"short": "sms.field.weeks"}},
          "patient_name": {"position": 1, "type": "text", "required": true}
        },
        "registers": "person",
        "sender": "user", "permission": "can_do_home_visits",
        "reply": "sms.reply.P"
      }
    }

* ``fields``: ``position`` orders them (0, 1, 2...: the order they are written in the message); ``type`` is
  ``text`` (CHT's ``string`` too), ``integer`` (``range: [min, max]``), ``date`` (``YYYY-MM-DD``,
  ``DD-MM-YYYY`` or ``DD/MM/YYYY``) or ``choice`` (``choices: {"F": "health_facility", ...}``: the code
  written, the value stored); a text field takes one word, except the last field, which takes the rest of the
  message (names of several words).
* ``registers: "person"`` creates a person (field ``patient_name``) under the sender's place with a new
  ``patient_id``; ``refers_to: "patient_id"`` names an existing person by their ``patient_id`` (field
  ``patient_id``); ``refers_to: "sender"`` makes the report about the sender (a client asking for a visit).
* ``sender``: who may send it: ``user`` (a health worker: a contact with a Kazi account; ``permission``
  narrows it to accounts whose roles hold that permission), ``client`` (a contact without an account) or
  ``any``. ``reply``: the translation key of the reply on success.

Pure: the loader hands the settings over; problems are :class:`kazi.errors.Problem` located by file, form
code and field path (``app_settings.json, form "P", field forms.P.fields.patient_name.type``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from kazi.errors import Problem
from kazi.program.wording import did_you_mean as _suggest
from kazi.program.wording import show as _show

TEXT: Final = "text"
INTEGER: Final = "integer"
DATE: Final = "date"
CHOICE: Final = "choice"
FIELD_TYPES: Final = (TEXT, INTEGER, DATE, CHOICE)
#: CHT's type for text, accepted as ``text``
CHT_STRING: Final = "string"
#: what ``registers`` may say, and ``refers_to``
REGISTERS: Final = ("person",)
REFERS_TO: Final = ("patient_id", "sender")
SENDERS: Final = ("user", "client", "any")
#: the field a registration takes the new person's name from, and the one a follow-up names its patient in
NAME_FIELD: Final = "patient_name"
PATIENT_FIELD: Final = "patient_id"

_FORM_KEYS: Final = ("meta", "fields", "registers", "refers_to", "contact_type", "sender", "permission", "reply",
                     # CHT's own keys of a JSON form: accepted and ignored, so CHT settings load unchanged
                     "public_form", "use_sentinel", "facility_reference", "private")
_META_KEYS: Final = ("code", "label", "icon", "translation_key", "subject_key")
_FIELD_KEYS: Final = ("position", "type", "required", "labels", "range", "choices", "length", "flags")
_CODE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_\-]*")
_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
RULE: Final = "settings forms: SMS forms (docs/sms.md)"


@dataclass(frozen=True)
class SmsField:
    name: str
    position: int
    type: str
    required: bool
    label: str | None = None  # translation key of the field's short label (replies name the field with it)
    range: tuple[int, int] | None = None
    choices: tuple[tuple[str, str], ...] = ()  # (code as written, value stored)


@dataclass(frozen=True)
class SmsForm:
    """A valid SMS form; ``code`` as written in the settings (messages match it case-insensitively)."""

    code: str
    fields: tuple[SmsField, ...]  # in position order
    registers: str | None = None
    refers_to: str | None = None
    contact_type: str = "person"
    sender: str = "user"
    permission: str | None = None
    reply: str | None = None
    label: str | None = None

    def usage(self) -> str:
        """How to write it: ``P <last_menstrual_period> <patient_name>``."""
        return " ".join([self.code, *(f"<{f.name}>" if f.required else f"[{f.name}]" for f in self.fields)])






class _Checker:
    def __init__(self, file: str, problems: list[Problem]) -> None:
        self.file = file
        self.problems = problems

    def error(self, form: str | None, field: str, message: str, hint: str = "") -> None:
        self.problems.append(Problem("error", self.file, message, rule=RULE, field=field, hint=hint, form=form))

    def form(self, code: str, raw: Any) -> SmsForm | None:
        path = f"forms.{code}"
        before = len(self.problems)
        if not _CODE.fullmatch(code):
            self.error(code, path, f"the form code {code!r} is not a code: letters and digits (and - or _), "
                       "without spaces, starting with a letter or digit.", "Use a short code such as P or VR.")
        if not isinstance(raw, dict):
            self.error(code, path, f"the form is {_show(raw)}; an SMS form is an object "
                       '{"meta": {"code"}, "fields": {...}}.', "Wrap the form in { }.")
            return None
        for key in raw:
            if key not in _FORM_KEYS:
                self.error(code, f"{path}.{key}",
                           f"the form has an unknown key {key!r}.{_suggest(str(key), _FORM_KEYS)}",
                           f"Use only {', '.join(_FORM_KEYS[:8])}.")
        meta = raw.get("meta")
        label: str | None = None
        if not isinstance(meta, dict):
            self.error(code, f"{path}.meta", f"meta is {_show(meta)}; it must be an object holding the code.",
                       f'Add "meta": {{"code": "{code}"}}.')
        else:
            if meta.get("code") != code:
                self.error(code, f"{path}.meta.code", f"meta.code is {_show(meta.get('code'))}; it must repeat the "
                           f"form's key {code!r} (CHT reads the code from both).", f'Set "code": "{code}".')
            for key in meta:
                if key not in _META_KEYS:
                    self.error(code, f"{path}.meta.{key}", f"meta has an unknown key {key!r}."
                               f"{_suggest(str(key), _META_KEYS)}", f"Use only {', '.join(_META_KEYS)}.")
            raw_label = meta.get("label", meta.get("translation_key"))
            label = raw_label if isinstance(raw_label, str) else None
        fields = self.fields(code, raw.get("fields"))
        registers, refers_to = raw.get("registers"), raw.get("refers_to")
        if registers is not None and registers not in REGISTERS:
            self.error(code, f"{path}.registers", f"registers is {_show(registers)}; the form may register "
                       f"{', '.join(REGISTERS)}.", 'Write "registers": "person" or remove it.')
        if refers_to is not None and refers_to not in REFERS_TO:
            self.error(code, f"{path}.refers_to", f"refers_to is {_show(refers_to)}; it is one of "
                       f"{', '.join(REFERS_TO)}.", 'Write "refers_to": "patient_id" for a follow-up.')
        if registers is not None and refers_to is not None:
            self.error(code, f"{path}.refers_to", "a form either registers a new person or refers to an existing "
                       "one, not both.", "Remove registers or refers_to.")
        by_name = {f.name: f for f in fields or ()}
        if registers == "person" and fields is not None and (by_name.get(NAME_FIELD) is None
                                                              or by_name[NAME_FIELD].type != TEXT):
            self.error(code, f"{path}.fields", f"a form that registers a person needs a text field "
                       f"{NAME_FIELD!r}: the new person's name.", f'Add "{NAME_FIELD}": {{"position": ..., '
                       '"type": "text", "required": true}.')
        if refers_to == "patient_id" and fields is not None and (by_name.get(PATIENT_FIELD) is None
                                                                  or by_name[PATIENT_FIELD].type != TEXT):
            self.error(code, f"{path}.fields", f"a form that refers to a patient needs a text field "
                       f"{PATIENT_FIELD!r}: their patient_id.", f'Add "{PATIENT_FIELD}": {{"position": 0, '
                       '"type": "text", "required": true}.')
        if registers is not None and PATIENT_FIELD in by_name:
            self.error(code, f"{path}.fields.{PATIENT_FIELD}", "a registration gets its patient_id from Kazi; "
                       "it cannot be a field of the message.", f"Remove the field {PATIENT_FIELD!r}.")
        sender = raw.get("sender", "user")
        if sender not in SENDERS:
            self.error(code, f"{path}.sender", f"sender is {_show(sender)}; it is one of {', '.join(SENDERS)}.",
                       'Write "sender": "user" (health workers), "client" or "any".')
        permission = raw.get("permission")
        if permission is not None and (not isinstance(permission, str) or not permission):
            self.error(code, f"{path}.permission", f"permission is {_show(permission)}; it is a permission name.",
                       'Write e.g. "permission": "can_do_home_visits".')
        elif permission is not None and sender != "user":
            self.error(code, f"{path}.permission", "a permission is held by accounts: it only applies to forms "
                       'sent by users ("sender": "user").', 'Remove permission or set "sender": "user".')
        reply = raw.get("reply")
        if reply is not None and (not isinstance(reply, str) or not reply):
            self.error(code, f"{path}.reply", f"reply is {_show(reply)}; it is a translation key.",
                       f'Write e.g. "reply": "sms.reply.{code}".')
        contact_type = raw.get("contact_type", "person")
        if not isinstance(contact_type, str) or not contact_type:
            self.error(code, f"{path}.contact_type", f"contact_type is {_show(contact_type)}; it names the "
                       "contact type of the person registered.", 'Write "contact_type": "person".')
        if len(self.problems) > before or fields is None:
            return None
        assert isinstance(sender, str) and isinstance(contact_type, str)
        return SmsForm(code, fields, registers, refers_to, contact_type, sender,
                       permission if isinstance(permission, str) else None,
                       reply if isinstance(reply, str) else None, label)

    def fields(self, code: str, raw: Any) -> tuple[SmsField, ...] | None:
        path = f"forms.{code}.fields"
        if not isinstance(raw, dict):
            self.error(code, path, f"fields are {_show(raw)}; they are an object by field name.",
                       'Write "fields": {"patient_id": {"position": 0, "type": "text"}}.')
            return None
        out: list[SmsField] = []
        ok = True
        for name, spec in raw.items():
            field = self.field(code, name, spec)
            ok = ok and field is not None
            if field is not None:
                out.append(field)
        if not ok:
            return None
        out.sort(key=lambda f: f.position)
        positions = [f.position for f in out]
        if positions != list(range(len(out))):
            self.error(code, path, f"the positions are {positions}; they number the fields 0, 1, 2... in the order "
                       "they are written, each once.", "Renumber the positions from 0.")
            return None
        return tuple(out)

    def field(self, code: str, name: Any, spec: Any) -> SmsField | None:
        path = f"forms.{code}.fields.{name}"
        before = len(self.problems)
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            self.error(code, path, f"{_show(name)} is not a field name: a letter or '_' then letters, digits or '_'.",
                       "Rename the field: it becomes a key of the report's fields.")
        if not isinstance(spec, dict):
            self.error(code, path, f"the field is {_show(spec)}; a field is an object "
                       '{"position", "type", "required"}.', "Replace it with a field object.")
            return None
        for key in spec:
            if key not in _FIELD_KEYS:
                self.error(code, f"{path}.{key}",
                           f"the field has an unknown key {key!r}.{_suggest(str(key), _FIELD_KEYS)}",
                           f"Use only {', '.join(_FIELD_KEYS)}.")
        position = spec.get("position")
        if isinstance(position, bool) or not isinstance(position, int) or position < 0:
            self.error(code, f"{path}.position", f"position is {_show(position)}; it is the field's place in the "
                       "message, 0 for the first field after the code.", '"position": 0')
        ftype = spec.get("type")
        if ftype == CHT_STRING:
            ftype = TEXT  # CHT's name for it: CHT settings load unchanged
        if ftype not in FIELD_TYPES:
            hint = _suggest(ftype, FIELD_TYPES) if isinstance(ftype, str) else ""
            self.error(code, f"{path}.type", f"type is {_show(ftype)}; the types are {', '.join(FIELD_TYPES)}.{hint}",
                       "Use one of the listed types.")
        required = spec.get("required", False)
        if not isinstance(required, bool):
            self.error(code, f"{path}.required", f"required is {_show(required)}; it is true or false.",
                       "Write true or false, without quotes.")
        labels = spec.get("labels")
        label: str | None = None
        short = labels.get("short") if isinstance(labels, dict) else None
        if isinstance(short, dict) and "translation_key" in short:
            short = short["translation_key"]
        cht_texts = isinstance(short, dict) and bool(short) and all(isinstance(v, str) for v in short.values())
        if labels is None or cht_texts or (isinstance(labels, dict) and short is None):
            pass  # no label, or CHT's older {"en": "Name", ...} (texts, not a key): replies use the field's name
        elif not isinstance(short, str) or not short:
            self.error(code, f"{path}.labels", f"labels is {_show(labels)}; write "
                       '{"short": "<translation key>"} (or CHT\'s {"short": {"translation_key": ...}}).',
                       f'"labels": {{"short": "sms.field.{name}"}}')
        else:
            label = short
        rng: tuple[int, int] | None = None
        if "range" in spec:
            raw_range = spec["range"]
            if ftype != INTEGER:
                self.error(code, f"{path}.range", "only integer fields have a range.", "Remove the range.")
            elif (not isinstance(raw_range, list) or len(raw_range) != 2
                  or not all(isinstance(v, int) and not isinstance(v, bool) for v in raw_range)
                  or raw_range[0] > raw_range[1]):
                self.error(code, f"{path}.range", f"range is {_show(raw_range)}; it is [min, max], two whole numbers.",
                           '"range": [0, 42]')
            else:
                rng = (raw_range[0], raw_range[1])
        choices: list[tuple[str, str]] = []
        raw_choices = spec.get("choices")
        if ftype == CHOICE:
            if not isinstance(raw_choices, dict) or not raw_choices:
                self.error(code, f"{path}.choices", f"choices are {_show(raw_choices)}; a choice field needs "
                           '{"<code written>": "<value stored>", ...}.', '"choices": {"F": "health_facility"}')
            else:
                seen: set[str] = set()
                for written, value in raw_choices.items():
                    if not _CODE.fullmatch(written) or written.upper() in seen:
                        self.error(code, f"{path}.choices.{written}", f"the choice code {written!r} is not a code "
                                   "without spaces, or repeats another (codes match case-insensitively).",
                                   "Use short distinct codes such as F, H.")
                    if not isinstance(value, str) or not value:
                        self.error(code, f"{path}.choices.{written}", f"the choice {written!r} stores {_show(value)}; "
                                   "it stores a non-empty string.", '"F": "health_facility"')
                    seen.add(written.upper())
                    choices.append((written, value if isinstance(value, str) else ""))
        elif "choices" in spec:
            self.error(code, f"{path}.choices", "only choice fields have choices.", "Remove the choices.")
        if len(self.problems) > before:
            return None
        assert isinstance(name, str) and isinstance(position, int) and isinstance(ftype, str)
        return SmsField(name, position, ftype, bool(required), label, rng, tuple(choices))


def parse_sms_forms(settings: Mapping[str, Any], file: str) -> tuple[dict[str, SmsForm], list[Problem]]:
    """The SMS forms of a program's settings by upper-case code, and every problem found (all at once).

    A program without ``forms`` has none. ``file`` is the settings file's name, for the problems."""
    problems: list[Problem] = []
    raw = settings.get("forms")
    if raw is None:
        return {}, problems
    checker = _Checker(file, problems)
    if not isinstance(raw, dict):
        checker.error(None, "forms", f"forms is {_show(raw)}; it is an object of SMS forms by code.",
                      'Write "forms": {"P": {"meta": {"code": "P"}, "fields": {...}}}.')
        return {}, problems
    out: dict[str, SmsForm] = {}
    for code, spec in raw.items():
        form = checker.form(str(code), spec)
        key = str(code).upper()
        if key in out:
            checker.error(str(code), f"forms.{code}", f"the code {code!r} repeats {out[key].code!r}: messages match "
                          "codes case-insensitively.", "Rename one of the two forms.")
            continue
        if form is not None:
            out[key] = form
    return out, problems
