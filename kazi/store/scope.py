"""Who may see what: a user's scope, and the SQL that confines a query to it.

CHT's rule for users "restricted to their place": they see the contacts under their place (the place
included, at any depth) and the reports about those contacts. Kazi applies it to everyone but the users who
see everything: administrators (roles ``admin``/``_admin``) and national users (the ``national`` flag or the
``national_admin`` role). A user with neither a place nor such a role sees nothing, and so does a disabled
user: an account the store cannot place is confined to nothing rather than trusted with everything.

A report is "about" a contact when one of its subject ids (``patient_id``, ``place_id``, their ``_uuid``
forms, top level or in ``fields``) is one of the contact's ids (``_id``, ``patient_id``, ``place_id`` short
codes). A report whose subjects match no stored contact (no subject, or a subject Kazi has not seen: CHT's
headless reports) belongs to the scope of its submitter (``contact._id``), so the supervisor of the place
where it was submitted still sees it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from sqlalchemy import ColumnElement, Select, Table, and_, exists, false, literal, or_, select, true, union

from kazi.store.schema import CONTACT, REPORT, doc_ancestors, doc_subjects
from kazi.store.users import StoredUser


@dataclass(frozen=True)
class Scope:
    """The places whose subtree a user sees, or everything."""

    everything: bool = False
    places: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.everything and not self.places


#: what an unrestricted (system) caller sees: workers, import, admin tooling
EVERYTHING = Scope(everything=True)
NOTHING = Scope()


def scope_of(user: StoredUser) -> Scope:
    """The user's scope: everything for admins and national users, else the subtree of their place."""
    if user.disabled:
        return NOTHING
    if user.sees_everything:
        return EVERYTHING
    if user.facility_id:
        return Scope(places=(user.facility_id,))
    return NOTHING


def resolve(user: StoredUser | Scope | None) -> Scope:
    """``None`` (a system caller) sees everything; a user sees their scope."""
    if user is None:
        return EVERYTHING
    if isinstance(user, Scope):
        return user
    return scope_of(user)


def contact_ids_in(scope: Scope) -> Select[tuple[str]]:
    """Ids of the stored contacts in a restricted scope (the places themselves included)."""
    return select(doc_ancestors.c.doc_id).where(doc_ancestors.c.ancestor_id.in_(scope.places))


def subject_ids_in(scope: Scope) -> Select[tuple[str]]:
    """Every subject id (``_id`` and short codes) of the contacts in a restricted scope."""
    return (select(doc_subjects.c.subject_id)
            .join(doc_ancestors, doc_ancestors.c.doc_id == doc_subjects.c.doc_id)
            .where(doc_ancestors.c.ancestor_id.in_(scope.places), doc_subjects.c.kind == CONTACT))


def report_ids_in(scope: Scope, docs: Table) -> Select[tuple[str]]:
    """Ids of the reports in a restricted scope: about its contacts, or headless and submitted in it."""
    about = (select(doc_subjects.c.doc_id)
             .where(doc_subjects.c.kind == REPORT, doc_subjects.c.subject_id.in_(subject_ids_in(scope))))
    submitted = (select(docs.c.id)
                 .where(docs.c.kind == REPORT, docs.c.deleted.is_(False),
                        docs.c.contact_id.in_(contact_ids_in(scope)), ~_resolvable(docs)))
    return select(union(about, submitted).subquery().c[0])


# Aliases built once: building them is most of the cost of a scope condition.
_MINE = doc_ancestors.alias("mine")
_THEIRS = doc_ancestors.alias("theirs")
_SUBMITTER = doc_ancestors.alias("submitter")
_RS = doc_subjects.alias("rs")
_CS = doc_subjects.alias("cs")


@lru_cache(maxsize=4096)
def visible(scope: Scope, docs: Table) -> ColumnElement[bool]:
    """A condition on ``docs`` rows: the document is in ``scope``.

    Written as correlated lookups that start from the row (its lineage rows, its subjects' contacts), so
    checking a few documents by id costs a few index probes whatever the size of the scope; listing a whole
    scope goes the other way (:func:`contact_ids_in`, :func:`report_ids_in`). Cached per scope: building the
    expression costs more than running it.
    """
    if scope.everything:
        return true()
    if not scope.places:
        return false()
    contact_ok = and_(docs.c.kind == CONTACT, exists(
        select(literal(1)).where(_MINE.c.doc_id == docs.c.id, _MINE.c.ancestor_id.in_(scope.places))))
    about = exists(
        select(literal(1))
        .select_from(_RS.join(_CS, and_(_CS.c.subject_id == _RS.c.subject_id, _CS.c.kind == CONTACT))
                     .join(_THEIRS, _THEIRS.c.doc_id == _CS.c.doc_id))
        .where(_RS.c.doc_id == docs.c.id, _THEIRS.c.ancestor_id.in_(scope.places)))
    submitted = and_(~_resolvable(docs), exists(
        select(literal(1)).where(_SUBMITTER.c.doc_id == docs.c.contact_id,
                                 _SUBMITTER.c.ancestor_id.in_(scope.places))))
    return or_(contact_ok, and_(docs.c.kind == REPORT, or_(about, submitted)))


_RS_R = doc_subjects.alias("rs_r")
_CS_R = doc_subjects.alias("cs_r")


def _resolvable(docs: Table) -> ColumnElement[bool]:
    """The report has a subject that is a stored contact."""
    return exists(select(literal(1))
                  .select_from(_RS_R.join(_CS_R, and_(_CS_R.c.subject_id == _RS_R.c.subject_id,
                                                      _CS_R.c.kind == CONTACT)))
                  .where(_RS_R.c.doc_id == docs.c.id))
