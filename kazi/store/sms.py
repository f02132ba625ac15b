"""SMS in the store: finding senders and patients, keeping every message, writing a message's effects at once.

* Senders are found by the indexed phone key of contacts (``docs.phone``, :func:`kazi.sms.phones.phone_key`),
  within the gateway account's scope; patients by their ``patient_id`` (``doc_subjects``), within the sender's
  place.
* :func:`record` is **one transaction**: the documents a message becomes (a new person and the report), the
  message with its outcome and the reply. The documents go through the store's own document writer, the path
  ``POST /api/v1/docs`` takes, so the change log marks the right users dirty and the worker recomputes them.
  The transaction starts by taking the document writers' lock and then looks the message up by the gateway's
  id and the sender: a message delivered twice, even by two requests at once, is processed once, and the
  second delivery gets the first one's outcome back. The sender is compared as a phone number
  (:func:`kazi.sms.phones.same_number`, the rule that matches senders to contacts), not as written: one
  message delivered once as ``+265993...`` and again as ``0993...`` is one message. Rows keep the sender as
  the gateway gave it, so messages kept before this rule are found by it too.
* A new ``patient_id`` is drawn inside that transaction and checked against every subject id stored, so it is
  unique in the store (5 digits while they last, then 6, 7...).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, func, insert, or_, select, update
from sqlalchemy.engine import Connection, Row

from kazi.sms import phones
from kazi.store import db, documents
from kazi.store.documents import Doc
from kazi.store.schema import (
    CONTACT,
    doc_ancestors,
    doc_subjects,
    docs,
    sms_messages,
    sms_outgoing,
    users,
)
from kazi.store.scope import Scope, visible
from kazi.store.store import Store, WriteResult
from kazi.store.users import StoredUser

#: outcomes of an incoming message
PROCESSED = "processed"
ERROR = "error"
UNKNOWN_SENDER = "unknown_sender"
STATUSES = (PROCESSED, ERROR, UNKNOWN_SENDER)


@dataclass(frozen=True)
class Outcome:
    """What a message becomes, decided by the caller once the store has drawn a ``patient_id`` (if asked)."""

    status: str
    reply_text: str | None
    docs: list[Doc] = field(default_factory=list)
    error: str | None = None
    form: str | None = None
    contact_id: str | None = None
    report_id: str | None = None
    patient_id: str | None = None


@dataclass(frozen=True)
class StoredMessage:
    """An incoming message as kept, with its outcome and reply."""

    seq: int
    id: str
    sender: str
    text: str
    received_at: int
    stored_at: int
    gateway: str
    gateway_user: str
    status: str
    error: str | None
    form: str | None
    contact_id: str | None
    report_id: str | None
    patient_id: str | None
    reply_id: str | None
    reply_to: str | None
    reply_text: str | None
    replayed: bool = False

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out.pop("replayed")
        return out


def _message(row: Row[Any], replayed: bool = False) -> StoredMessage:
    return StoredMessage(
        seq=row.seq, id=row.id, sender=row.sender, text=row.text, received_at=row.received_at,
        stored_at=row.stored_at, gateway=row.gateway, gateway_user=row.gateway_user, status=row.status,
        error=row.error, form=row.form, contact_id=row.contact_id, report_id=row.report_id,
        patient_id=row.patient_id, reply_id=row.reply_id, reply_to=row.reply_to, reply_text=row.reply_text,
        replayed=replayed)


# --------------------------------------------------------------------------------------------------------
# reading


def contacts_by_phone(store: Store, key: str, scope: Scope) -> list[Doc]:
    """The stored, not deleted contacts whose phone key is ``key``, within ``scope`` (oldest first)."""
    query = (select(docs.c.rev, docs.c.body)
             .where(docs.c.phone == key, docs.c.kind == CONTACT, docs.c.deleted.is_(False), visible(scope, docs))
             .order_by(docs.c.seq))
    with db.reader(store.engine).begin() as conn:
        return [documents.decode(r.body, r.rev) for r in conn.execute(query)]


def patient_by_id(store: Store, patient_id: str, place_id: str | None) -> Doc | None:
    """The contact whose ``patient_id`` (or ``_id``) is ``patient_id``, at or under ``place_id`` (``None``:
    anywhere); the first stored when several share it."""
    query = (select(docs.c.rev, docs.c.body)
             .select_from(docs.join(doc_subjects, doc_subjects.c.doc_id == docs.c.id))
             .where(doc_subjects.c.subject_id == patient_id, doc_subjects.c.kind == CONTACT,
                    docs.c.deleted.is_(False))
             .order_by(docs.c.seq).limit(1))
    if place_id is not None:
        query = query.where(docs.c.id.in_(select(doc_ancestors.c.doc_id)
                                          .where(doc_ancestors.c.ancestor_id == place_id)))
    with db.reader(store.engine).begin() as conn:
        row = conn.execute(query).first()
    return documents.decode(row.body, row.rev) if row is not None else None


def accounts_of(store: Store, contact_ids: Iterable[str]) -> dict[str, list[StoredUser]]:
    """The enabled accounts whose contact is one of ``contact_ids``: who of the candidates is a health worker."""
    wanted = list(dict.fromkeys(contact_ids))
    if not wanted:
        return {}
    with db.reader(store.engine).begin() as conn:
        names = conn.execute(select(users.c.username, users.c.contact_id)
                             .where(users.c.contact_id.in_(wanted), users.c.disabled.is_(False))).all()
    out: dict[str, list[StoredUser]] = {}
    for row in names:
        out.setdefault(row.contact_id, []).append(store.users.get(row.username))
    return out


def find_message(store: Store, msg_id: str, sender: str, country_code: str | None = None) -> StoredMessage | None:
    """The message kept under the gateway's ``msg_id`` from ``sender``'s phone, however its number was written
    (``country_code``: the program's ``default_country_code``), or ``None``."""
    with db.reader(store.engine).begin() as conn:
        row = _kept(conn, msg_id, sender, country_code)
    return _message(row, replayed=True) if row is not None else None


def _kept(conn: Connection, msg_id: str, sender: str, country_code: str | None) -> Row[Any] | None:
    """The replay key of a message is the gateway's id and the sender's *number*: the rows with that id (an id
    is one message's, so there are one or a few) are compared by number, the first kept wins."""
    rows = conn.execute(select(sms_messages).where(sms_messages.c.id == msg_id).order_by(sms_messages.c.seq))
    for row in rows:
        if row.sender == sender or phones.same_number(row.sender, sender, country_code):
            return row
    return None


def list_messages(store: Store, scope: Scope, *, gateway_user: str | None, status: str | None, limit: int,
                  offset: int) -> tuple[int, list[StoredMessage]]:
    """Incoming messages, newest first: those whose sender is a contact in ``scope``, and (``gateway_user``)
    those that account delivered from senders it could not match."""
    where: list[Any] = []
    if not scope.everything:
        in_scope = sms_messages.c.contact_id.in_(select(doc_ancestors.c.doc_id)
                                                 .where(doc_ancestors.c.ancestor_id.in_(scope.places)))
        mine = and_(sms_messages.c.contact_id.is_(None), sms_messages.c.gateway_user == gateway_user)
        where.append(or_(in_scope, mine) if scope.places else mine)
    if status is not None:
        where.append(sms_messages.c.status == status)
    with db.reader(store.engine).begin() as conn:
        total = conn.scalar(select(func.count()).select_from(sms_messages).where(*where)) or 0
        rows = conn.execute(select(sms_messages).where(*where).order_by(sms_messages.c.seq.desc())
                            .limit(limit).offset(offset)).all()
    return int(total), [_message(r) for r in rows]


# --------------------------------------------------------------------------------------------------------
# writing


def _code_taken(conn: Connection, code: str) -> bool:
    return conn.scalar(select(doc_subjects.c.subject_id).where(doc_subjects.c.subject_id == code).limit(1)) is not None


def new_patient_id(conn: Connection, rng: random.Random) -> str:
    """A short code no stored document uses as a subject id: 5 digits, a digit more after repeated collisions."""
    digits = 5
    for attempt in range(60):
        if attempt and attempt % 10 == 0:
            digits += 1
        code = str(rng.randrange(10 ** (digits - 1), 10 ** digits))
        if not _code_taken(conn, code):
            return code
    raise RuntimeError("no free patient_id found")  # 60 collisions in a row: a broken random source


def record(store: Store, *, msg_id: str, sender: str, text: str, received_at: int, sent_at: int | None,
           stored_at: int, gateway: str, gateway_user: str, reply_gateway: str, reply_state: str,
           decide: Callable[[str | None], Outcome], needs_patient_id: bool, rng: random.Random,
           new_id: Callable[[], str], country_code: str | None = None) -> tuple[StoredMessage, list[WriteResult]]:
    """Keep one incoming message with its outcome, its documents and its reply, in one transaction.

    ``decide(patient_id)`` builds the outcome (``patient_id``: a fresh short code when ``needs_patient_id``).
    A message already kept under ``msg_id`` from the same number (``sender`` however written, read with
    ``country_code``) is returned as it was (``replayed``), nothing written.
    """
    with store.writing() as tx:  # serialised with every document writer (and other deliveries)
        conn = tx.conn
        row = _kept(conn, msg_id, sender, country_code)
        if row is not None:
            return _message(row, replayed=True), []
        outcome = decide(new_patient_id(conn, rng) if needs_patient_id else None)
        written: list[WriteResult] = []
        if outcome.docs:
            written = tx.write_docs(outcome.docs)
        reply_id = new_id() if outcome.reply_text else None
        values = {
            "id": msg_id, "sender": sender, "text": text, "sent_at": sent_at, "received_at": received_at,
            "stored_at": stored_at, "gateway": gateway, "gateway_user": gateway_user, "status": outcome.status,
            "error": outcome.error, "form": outcome.form, "contact_id": outcome.contact_id,
            "report_id": outcome.report_id, "patient_id": outcome.patient_id, "reply_id": reply_id,
            "reply_to": sender if outcome.reply_text else None, "reply_text": outcome.reply_text,
        }
        key = conn.execute(insert(sms_messages).values(values)).inserted_primary_key
        assert key is not None
        seq = int(key[0])
        if outcome.reply_text and reply_id is not None:
            conn.execute(insert(sms_outgoing).values(
                id=reply_id, to=sender, text=outcome.reply_text, gateway=reply_gateway, state=reply_state,
                reason=None, created_at=stored_at, updated_at=stored_at, in_reply_to=seq))
        stored = conn.execute(select(sms_messages).where(sms_messages.c.seq == seq)).one()
    return _message(stored), written


def outgoing_to_send(store: Store, gateway: str, states: tuple[str, ...], *, mark: str, now: int,
                     limit: int = 100) -> list[tuple[str, str, str]]:
    """``(id, to, text)`` of the replies in ``states`` for ``gateway`` (oldest first), now in state ``mark``."""
    with db.writer(store.engine).begin() as conn:
        rows = conn.execute(select(sms_outgoing.c.id, sms_outgoing.c.to, sms_outgoing.c.text, sms_outgoing.c.state)
                            .where(sms_outgoing.c.gateway == gateway, sms_outgoing.c.state.in_(states))
                            .order_by(sms_outgoing.c.seq).limit(limit)).all()
        fresh = [r.id for r in rows if r.state != mark]
        if fresh:
            conn.execute(update(sms_outgoing).where(sms_outgoing.c.id.in_(fresh)).values(state=mark, updated_at=now))
    return [(r.id, r.to, r.text) for r in rows]


def set_states(store: Store, updates: Iterable[tuple[str, str, str | None]], now: int) -> int:
    """Record delivery states ``(id, state, reason)`` reported by a gateway; unknown ids are ignored (a gateway
    may report on messages another server gave it). Returns how many were known."""
    known = 0
    with db.writer(store.engine).begin() as conn:
        for msg_id, state, reason in updates:
            result = conn.execute(update(sms_outgoing).where(sms_outgoing.c.id == msg_id)
                                  .values(state=state, reason=reason, updated_at=now))
            known += result.rowcount or 0
    return known


def outgoing(store: Store, msg_id: str) -> dict[str, Any] | None:
    """One reply as stored (tests and the admin's review)."""
    with db.reader(store.engine).begin() as conn:
        row = conn.execute(select(sms_outgoing).where(sms_outgoing.c.id == msg_id)).first()
    return dict(row._mapping) if row is not None else None
