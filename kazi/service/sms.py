"""Processing incoming SMS: sender, parsing, permission, patient, documents and reply, for either gateway.

Each message goes through these steps, and the first that fails decides the reply (kazi.sms.replies):

1. **Already kept?** A message is identified by the gateway's id and the sender's number, compared as the
   sender is matched to contacts (``+265993...`` and ``0993...`` are one number with the program's
   ``default_country_code``): a second delivery gets the first one's outcome back and changes nothing
   (:func:`kazi.store.sms.record` re-checks inside its transaction, so two deliveries at once are processed
   once too).
2. **Sender**: the contacts within the gateway account's place whose phone is the sender's
   (:mod:`kazi.sms.phones`). Several share the number: a contact with a Kazi account (a health worker) first,
   then a person before a place, then the oldest. None: ``unknown_sender``, and the message is kept for review.
3. **Parsing** against the program's SMS forms (:mod:`kazi.sms.parse`).
4. **Sender allowed**: the form's ``sender`` (``user``, ``client``, ``any``) and ``permission``.
5. **Patient** (``refers_to: patient_id``): a contact with that ``patient_id`` in the sender's place (their
   account's place, else the sender's parent); anywhere else is "no such patient", as a missing one.
6. **Documents**: the report (and for a registration the person, with a new ``patient_id``), the message and
   the reply, in one transaction; the change log then brings the tasks to the users concerned.

The reply's language: the sender's account's locale, else the contact's ``locale``, else the program's
``locale_outgoing`` (CHT's setting for outgoing messages), else its default locale.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kazi.engine.permissions import has_permissions
from kazi.program import translations as ktr
from kazi.program.loader import Program
from kazi.sms import parse as sp
from kazi.sms import phones
from kazi.sms import records as rec
from kazi.sms.forms import NAME_FIELD, PATIENT_FIELD, SmsForm
from kazi.sms.gateway import Incoming
from kazi.sms.replies import Replies
from kazi.store import Store, StoredUser, scope_of
from kazi.store import sms as stored
from kazi.store.contacts import minified_lineage
from kazi.store.documents import Doc


@dataclass
class SmsProcessor:
    """Processes incoming messages for one gateway account against one program."""

    store: Store
    program: Program
    gateway_user: StoredUser
    clock: Callable[[], int]
    rng: random.Random = field(default_factory=random.SystemRandom)
    new_id: Callable[[], str] = field(default=lambda: str(uuid.uuid4()))

    def receive(self, msg: Incoming, *, gateway: str, reply_gateway: str, reply_state: str
                ) -> tuple[stored.StoredMessage, bool]:
        """Keep and process one message; returns it as stored and whether documents were written."""
        country = phones.country_code_of(self.program.settings)
        known = stored.find_message(self.store, msg.id, msg.sender, country)
        if known is not None:
            return known, False
        now = self.clock()
        plan = self._plan(msg, now)
        message, written = stored.record(
            self.store, msg_id=msg.id, sender=msg.sender, text=msg.text,
            received_at=msg.received_at if msg.received_at is not None else now, sent_at=msg.sent_at,
            stored_at=now, gateway=gateway, gateway_user=self.gateway_user.username, reply_gateway=reply_gateway,
            reply_state=reply_state, decide=plan.decide, needs_patient_id=plan.needs_patient_id, rng=self.rng,
            new_id=self.new_id, country_code=country)
        return message, any(w.changed for w in written)

    # -- the steps

    def _plan(self, msg: Incoming, now: int) -> _Plan:
        program = self.program
        sender, account = self._sender(msg.sender)
        replies = Replies(program.translations, self._locale(sender, account), program.default_locale)
        forms = program.sms_forms
        if sender is None:
            error = sp.ParseError(sp.UNKNOWN_SENDER)
            return _Plan.refused(stored.UNKNOWN_SENDER, None, replies.error(error, forms), None, None)
        parsed = sp.parse_message(msg.text, forms)
        if isinstance(parsed, sp.ParseError):
            return _Plan.refused(stored.ERROR, parsed.code, replies.error(parsed, forms), parsed.form, sender)
        form = parsed.form
        if not self._allowed(form, account):
            error = sp.ParseError(sp.NOT_ALLOWED, form)
            return _Plan.refused(stored.ERROR, error.code, replies.error(error, forms), form, sender)
        fields: Doc = dict(parsed.fields)
        patient: Doc | None = None
        if form.refers_to == "patient_id":
            place = account.facility_id if account is not None else _parent_id(sender)
            patient = stored.patient_by_id(self.store, str(fields[PATIENT_FIELD]), place) if place else None
            if patient is None:
                error = sp.ParseError(sp.UNKNOWN_PATIENT, form)
                return _Plan.refused(stored.ERROR, error.code,
                                     replies.error(error, forms, {"patient_id": fields[PATIENT_FIELD]}), form, sender)
            fields["patient_uuid"] = patient["_id"]
        elif form.refers_to == "sender":
            patient = sender
            if isinstance(sender.get("patient_id"), str) and sender["patient_id"]:
                fields["patient_id"] = sender["patient_id"]
            fields["patient_uuid"] = sender["_id"]
        report_id = self.new_id()
        person_id = self.new_id() if form.registers else None
        locale = replies.locale
        reported = msg.received_at if msg.received_at is not None else now
        contact = minified_lineage(self.store, sender["_id"])
        parent_id = _parent_id(sender)
        parent = minified_lineage(self.store, parent_id) if parent_id else None
        store_sender_name = sender.get("name") if isinstance(sender.get("name"), str) else ""

        def decide(patient_id: str | None) -> stored.Outcome:
            report_fields = dict(fields)
            docs: list[Doc] = []
            subject_code: str | None = None
            if form.registers == "person":
                assert patient_id is not None and person_id is not None
                report_fields.update(patient_id=patient_id, patient_uuid=person_id)
                docs.append(rec.person_doc(person_id=person_id, name=str(fields[NAME_FIELD]), patient_id=patient_id,
                                           contact_type=form.contact_type, parent=parent, reported_date=reported,
                                           created_by_doc=report_id))
                subject_code = patient_id
            elif patient is not None:
                code = patient.get("patient_id")
                subject_code = code if isinstance(code, str) else None
            docs.append(rec.sms_report(report_id=report_id, form=form.code, sender_phone=msg.sender,
                                       contact=contact, fields=report_fields, text=msg.text, locale=locale,
                                       reported_date=reported, gateway_ref=msg.id))
            name = fields.get(NAME_FIELD) or (patient.get("name") if patient is not None else None)
            params: dict[str, Any] = {**report_fields, "sender_name": store_sender_name,
                                      "patient_id": subject_code or "", "patient_name": name or ""}
            return stored.Outcome(stored.PROCESSED, replies.accepted(form, params), docs, None, form.code,
                                  sender["_id"], report_id, subject_code)

        return _Plan(decide, form.registers == "person")

    def _sender(self, number: str) -> tuple[Doc | None, StoredUser | None]:
        key = phones.phone_key(number)
        if key is None:
            return None, None
        country = phones.country_code_of(self.program.settings)
        candidates = [c for c in stored.contacts_by_phone(self.store, key, scope_of(self.gateway_user))
                      if isinstance(c.get("phone"), str) and phones.same_number(c["phone"], number, country)]
        if not candidates:
            return None, None
        accounts = stored.accounts_of(self.store, [c["_id"] for c in candidates])

        def rank(item: tuple[int, Doc]) -> tuple[int, int, int]:
            index, contact = item
            is_person = contact.get("type") == "person" or contact.get("contact_type") == "person"
            return (0 if contact["_id"] in accounts else 1, 0 if is_person else 1, index)

        _, chosen = min(enumerate(candidates), key=rank)
        found = accounts.get(chosen["_id"])
        return chosen, (min(found, key=lambda u: u.id) if found else None)

    def _locale(self, sender: Doc | None, account: StoredUser | None) -> str:
        if account is not None and account.locale:
            return account.locale
        if sender is not None and ktr.is_locale(sender.get("locale")):
            return str(sender["locale"])
        outgoing = self.program.settings.get("locale_outgoing")
        return outgoing if isinstance(outgoing, str) and ktr.is_locale(outgoing) else self.program.default_locale

    def _allowed(self, form: SmsForm, account: StoredUser | None) -> bool:
        if form.sender == "client":
            return account is None
        if form.sender == "user":
            if account is None:
                return False
            return form.permission is None or has_permissions(form.permission, list(account.roles),
                                                              self.program.settings)
        return True


@dataclass
class _Plan:
    decide: Callable[[str | None], stored.Outcome]
    needs_patient_id: bool

    @staticmethod
    def refused(status: str, error: str | None, reply: str, form: SmsForm | None, sender: Doc | None) -> _Plan:
        outcome = stored.Outcome(status, reply, [], error, form.code if form is not None else None,
                                 sender["_id"] if sender is not None else None)
        return _Plan(lambda _code: outcome, False)


def _parent_id(contact: Doc) -> str | None:
    parent = contact.get("parent")
    pid = parent.get("_id") if isinstance(parent, dict) else None
    return pid if isinstance(pid, str) and pid else None
