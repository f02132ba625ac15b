"""Who may write what, where: the rules a document write obeys beyond "the document is in the writer's place".

:class:`~kazi.store.store.Store` checks that every document of a batch is in the writer's scope as stored and
as written (:mod:`kazi.store.scope`). That alone leaves holes a restricted user (a CHW, a supervisor) could use
to reach another place's patients, so the write transaction also applies these rules, each a function here
returning the problems it finds (the batch is then refused whole, nothing stored):

* **References** (:func:`reference_problems`, restricted writers): every subject a report names
  (``patient_id``, ``patient_uuid``, ``place_id``, ``place_uuid``, top level or in ``fields``) and its
  submitter (``contact._id``) must not name a stored contact outside the writer's place. A report is in a
  place when *one* of its subjects is, so without this a report naming one of the writer's own patients and
  another place's patient would reach (and give tasks to) that other place. A reference that names no stored
  contact is accepted: CHT keeps such reports (a report about a patient registered elsewhere, or not synced
  yet), and the store files them under their submitter's place until the contact arrives. Likewise a contact
  may not take a subject id (``_id``, ``patient_id``, ``place_id``) that a stored document outside the
  writer's place already carries: a CHW's contact with another area's patient's short code would make that
  patient's reports hers.
* **The hierarchy** (:func:`hierarchy_problems`): a restricted writer may not create, move or remove her own
  place (its ancestors are outside her place, so already refused); moving any contact (its parent changes)
  needs a writer whose place holds both the old and the new parent. Removing a contact that still has
  contacts under it (``_deleted``, or rewriting it as something that is not a contact) is refused for every
  writer, administrators and system callers included: its subtree would hang from nothing.

The functions run inside the write's transaction: :func:`reference_problems` before the batch's rows are
written (what the writer could see before it), :func:`hierarchy_problems` after (where the batch put things).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final, TypeVar

import orjson
from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from kazi.errors import DocumentError
from kazi.store.documents import Prepared
from kazi.store.schema import CONTACT, REPORT, doc_ancestors, doc_subjects, docs
from kazi.store.scope import Scope, visible

#: the keys of a report that name its subject, top level or in ``fields`` (CHT's ``getSubjectIds``)
SUBJECT_KEYS: Final = ("patient_id", "patient_uuid", "place_id", "place_uuid")
#: ids per ``IN (...)`` list, as the store's
_CHUNK: Final = 500

_T = TypeVar("_T")


def subject_references(body: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(field, id)`` for every reference a report makes: its subjects, then its submitter."""
    refs: list[tuple[str, str]] = []
    fields = body.get("fields")
    for key in SUBJECT_KEYS:
        value = body.get(key)
        if isinstance(value, str) and value:
            refs.append((key, value))
        value = fields.get(key) if isinstance(fields, dict) else None
        if isinstance(value, str) and value:
            refs.append((f"fields.{key}", value))
    contact = body.get("contact")
    submitter = contact.get("_id") if isinstance(contact, dict) else None
    if isinstance(submitter, str) and submitter:
        refs.append(("contact._id", submitter))
    return refs


def reference_problems(conn: Connection, scope: Scope, changed: Sequence[Prepared],
                       old_subjects: Mapping[str, Sequence[str]]) -> list[DocumentError]:
    """The references of ``changed`` (about to be written by a writer confined to ``scope``) that name
    stored documents outside the scope; run before the batch's rows are written."""
    if scope.everything:
        return []
    report_refs: list[tuple[Prepared, list[tuple[str, str]]]] = []
    claims: list[tuple[Prepared, list[str]]] = []
    for p in changed:
        if p.deleted:
            continue
        if p.kind == REPORT:
            report_refs.append((p, subject_references(orjson.loads(p.body))))
        elif p.kind == CONTACT:
            had = set(old_subjects.get(p.id, ()))
            new = [s for s in p.subjects if s not in had]  # ids it already carried were checked when it got them
            if new:
                claims.append((p, new))

    # subject ids that name a stored contact outside the scope; submitters by _id only
    subject_values = list(dict.fromkeys(v for _, refs in report_refs for f, v in refs if f != "contact._id"))
    outside_subjects = _outside(conn, scope, subject_values, kinds=(CONTACT,))
    submitters = list(dict.fromkeys(v for _, refs in report_refs for f, v in refs if f == "contact._id"))
    outside_submitters: set[str] = set()
    for chunk in _chunks(submitters):
        outside_submitters.update(conn.scalars(
            select(docs.c.id).where(docs.c.id.in_(chunk), docs.c.kind == CONTACT, docs.c.deleted.is_(False),
                                    ~visible(scope, docs))))
    # ids a contact takes that a stored contact or report outside the scope already carries
    claimed = _outside(conn, scope, list(dict.fromkeys(s for _, ids in claims for s in ids)),
                       kinds=(CONTACT, REPORT))

    problems: list[DocumentError] = []
    for p, refs in report_refs:
        for field, value in refs:
            named_outside = outside_submitters if field == "contact._id" else outside_subjects
            if value in named_outside:
                problems.append(DocumentError(
                    f"{value!r} is a contact outside the user's place: a report may only name contacts of the "
                    "user's place", doc_id=p.id, field=field, index=p.index))
    for p, ids in claims:
        for value in ids:
            if value in claimed:
                problems.append(DocumentError(
                    f"{value!r} already identifies a contact or report outside the user's place: choose "
                    "another id", doc_id=p.id, field=_claim_field(p, value), index=p.index))
    return problems


def _claim_field(p: Prepared, value: str) -> str:
    if value == p.id:
        return "_id"
    body = orjson.loads(p.body)
    return "patient_id" if body.get("patient_id") == value else "place_id"


def _outside(conn: Connection, scope: Scope, subject_ids: list[str], *, kinds: tuple[str, ...]) -> set[str]:
    """The ids among ``subject_ids`` that a stored (not deleted) document of ``kinds`` outside ``scope``
    carries as a subject id."""
    out: set[str] = set()
    for chunk in _chunks(subject_ids):
        out.update(conn.scalars(
            select(doc_subjects.c.subject_id).distinct()
            .join(docs, docs.c.id == doc_subjects.c.doc_id)
            .where(doc_subjects.c.subject_id.in_(chunk), doc_subjects.c.kind.in_(kinds),
                   docs.c.deleted.is_(False), ~visible(scope, docs))))
    return out


def hierarchy_problems(conn: Connection, scope: Scope, changed: Sequence[Prepared],
                       existing: Mapping[str, Any], old_lineage: Mapping[str, Sequence[str]],
                       skip: set[str]) -> list[DocumentError]:
    """Moves and removals of contacts that the writer (confined to ``scope``) may not make; run after the
    batch's rows and lineage are written. ``existing``: the stored rows before the write; ``old_lineage``:
    the stored contacts' ancestors before it, nearest first; ``skip``: documents already refused."""
    problems: list[DocumentError] = []
    removed: list[Prepared] = []
    moves: list[tuple[Prepared, str | None, str | None]] = []
    for p in changed:
        if p.id in skip:
            continue
        old = existing.get(p.id)
        was_contact = old is not None and old.kind == CONTACT and not old.deleted
        is_removal = was_contact and (p.deleted or p.kind != CONTACT)
        if is_removal:
            removed.append(p)
        old_chain = old_lineage.get(p.id, ()) if was_contact else ()
        old_parent = old_chain[0] if old_chain else None
        is_move = was_contact and not is_removal and p.parent_id != old_parent
        is_creation = not was_contact and not p.deleted and p.kind == CONTACT
        if scope.everything:
            continue
        if p.id in scope.places and (is_removal or is_move or is_creation):
            what, field = (("delete", "_deleted" if p.deleted else "type") if is_removal
                           else ("move", "parent") if is_move else ("create", "_id"))
            problems.append(DocumentError(
                f"a user may not {what} her own place (nor any place above it): an administrator does",
                doc_id=p.id, field=field, index=p.index))
        elif is_move:
            moves.append((p, old_parent, p.parent_id))

    if moves:
        # "the place holds the parent": the parent is the place or under it, i.e. the contact is strictly under
        # the place, before (its stored lineage) and after (as this batch resolved it; a new parent may be a
        # stub only, arriving later, as a new contact's may)
        now_under: set[str] = set()
        for chunk in _chunks([p.id for p, _, _ in moves]):
            now_under.update(conn.scalars(select(doc_ancestors.c.doc_id).distinct().where(
                doc_ancestors.c.doc_id.in_(chunk), doc_ancestors.c.depth > 0,
                doc_ancestors.c.ancestor_id.in_(scope.places))))
        for p, old_parent, new_parent in moves:
            was_under = any(a in scope.places for a in old_lineage.get(p.id, ()))
            if not was_under or p.id not in now_under:
                problems.append(DocumentError(
                    f"moving a contact from {old_parent!r} to {new_parent!r} needs a user whose place holds both "
                    "parents", doc_id=p.id, field="parent", index=p.index))

    if removed:
        below: dict[str, int] = {}
        for chunk in _chunks([p.id for p in removed]):
            rows = conn.execute(select(doc_ancestors.c.ancestor_id, func.count().label("n"))
                                .where(doc_ancestors.c.ancestor_id.in_(chunk), doc_ancestors.c.depth > 0)
                                .group_by(doc_ancestors.c.ancestor_id))
            below.update({row.ancestor_id: int(row.n) for row in rows})
        for p in removed:
            if below.get(p.id):
                problems.append(DocumentError(
                    f"{below[p.id]} contact(s) are still under it: move or delete them first (in this batch or "
                    "before)", doc_id=p.id, field="_deleted" if p.deleted else "type", index=p.index))
    return problems


def _chunks(items: Sequence[_T], size: int = _CHUNK) -> Iterator[Sequence[_T]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
