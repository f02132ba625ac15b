"""What the web app shows around contacts: names and lineages for a page of tasks, a contact's children and
reports, and whether a report's subject lies in the caller's place.

Kept apart from :mod:`kazi.store.store` because these are read models for screens, not document storage, and
they are built for the Tasks tab's budget: ``GET /api/v1/tasks`` is served to hundreds of users at once, so
the names and lineages of a whole page come from **one** query over the lineage closure (each owner with
every ancestor, names read by the database from the JSON bodies), never one query per task.

Scope: a contact's lineage is shown only up to the caller's place (a CHW sees "Household, Area 1", not the
district above their area); a contact outside the place has no entry at all.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, TypeVar

from sqlalchemy import JSON, ColumnElement, Select, bindparam, cast, func, select

from kazi.engine.containers import contact_subject_ids
from kazi.store import db, documents
from kazi.store.documents import Doc
from kazi.store.schema import CONTACT, REPORT, doc_ancestors, doc_subjects, docs
from kazi.store.scope import Scope, visible
from kazi.store.store import Store

CHUNK = 500
_T = TypeVar("_T")


def _chunks(items: Sequence[_T], size: int = CHUNK) -> Iterator[Sequence[_T]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


@dataclass(frozen=True)
class ContactRef:
    """A contact as lists show it: ``{"_id", "name", "contact_type"}``."""

    id: str
    name: str | None
    contact_type: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"_id": self.id, "name": self.name, "contact_type": self.contact_type}


@dataclass(frozen=True)
class Placed:
    """A stored contact in the caller's place, with its ancestors in that place (nearest first)."""

    contact: ContactRef
    lineage: list[ContactRef] = field(default_factory=list)


def _name(backend: str) -> ColumnElement[Any]:
    """The ``name`` of a document's JSON body, read by the database (the body itself never leaves it)."""
    if backend == "postgresql":
        return func.json_extract_path_text(cast(docs.c.body, JSON), "name")
    return func.json_extract(docs.c.body, "$.name")


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)


@lru_cache(maxsize=4)
def _placed_query(backend: str) -> Select[Any]:
    """Built once per backend: building a statement costs more than running it for a page of tasks."""
    # an outer join: ancestors known only from parent stubs still count for the scope, as in visible()
    return (select(doc_ancestors.c.doc_id, doc_ancestors.c.depth, doc_ancestors.c.ancestor_id, _name(backend),
                   docs.c.contact_type, docs.c.kind, docs.c.deleted)
            .select_from(doc_ancestors.outerjoin(docs, docs.c.id == doc_ancestors.c.ancestor_id))
            .where(doc_ancestors.c.doc_id.in_(bindparam("ids", expanding=True))))


def placed_contacts(store: Store, contact_ids: Iterable[str], scope: Scope) -> dict[str, Placed]:
    """Each stored, live contact of ``contact_ids`` that is in ``scope``, with its in-scope lineage.

    One query per 500 ids: the closure rows of the contacts joined to their ancestors' names.
    """
    wanted = list(dict.fromkeys(i for i in contact_ids if isinstance(i, str) and i))
    if not wanted or scope.empty:
        return {}
    query = _placed_query(store.backend)
    chains: dict[str, list[tuple[int, str]]] = {}
    refs: dict[str, ContactRef | None] = {}  # by ancestor id: a page's contacts share most of their places
    with db.reader(store.engine).begin() as conn:
        for chunk in _chunks(wanted):
            rows: Any = conn.execute(query, {"ids": list(chunk)})
            for doc_id, depth, ancestor_id, name, contact_type, kind, deleted in rows:
                if ancestor_id not in refs:
                    live = kind == CONTACT and not deleted
                    refs[ancestor_id] = ContactRef(ancestor_id, _text(name), contact_type) if live else None
                chains.setdefault(doc_id, []).append((depth, ancestor_id))
    places = set(scope.places)
    out: dict[str, Placed] = {}
    for doc_id, chain in chains.items():
        chain.sort()
        me = refs[chain[0][1]] if chain[0][0] == 0 else None
        if me is None:
            continue
        if scope.everything:
            top = len(chain) - 1
        else:
            inside = [n for n, (_, ancestor) in enumerate(chain) if ancestor in places]
            if not inside:
                continue  # outside the caller's place
            top = inside[-1]
        lineage = [refs[ancestor] for _, ancestor in chain[1:top + 1]]
        out[doc_id] = Placed(me, [ref for ref in lineage if ref is not None])
    return out


def children(store: Store, contact_id: str, scope: Scope) -> list[ContactRef]:
    """The live contacts whose parent is ``contact_id`` (within ``scope``), by name."""
    query = (select(docs.c.id, _name(store.backend).label("name"), docs.c.contact_type)
             .where(docs.c.parent_id == contact_id, docs.c.kind == CONTACT, docs.c.deleted.is_(False),
                    visible(scope, docs)))
    with db.reader(store.engine).begin() as conn:
        refs = [ContactRef(r.id, _text(r.name), r.contact_type) for r in conn.execute(query)]
    return sorted(refs, key=lambda r: ((r.name or "").casefold(), r.id))


def reports_about(store: Store, contact: Doc, scope: Scope, *, limit: int = 50) -> list[Doc]:
    """Reports whose subject is the contact (its ``_id`` or short codes), newest first, at most ``limit``."""
    subjects = [s for s in contact_subject_ids(contact) if isinstance(s, str)]
    if not subjects:
        return []
    query = (select(docs.c.rev, docs.c.body)
             .where(docs.c.kind == REPORT, docs.c.deleted.is_(False), docs.c.subject.in_(subjects),
                    visible(scope, docs))
             .order_by(docs.c.reported_date.desc().nulls_last(), docs.c.seq.desc())
             .limit(limit))
    with db.reader(store.engine).begin() as conn:
        return [documents.decode(r.body, r.rev) for r in conn.execute(query)]


def subjects_outside(store: Store, subject_ids: Iterable[str], scope: Scope) -> set[str]:
    """The subject ids that name stored contacts none of which is in ``scope``.

    A subject naming no stored contact is not "outside": CHT keeps such reports (headless, they belong to
    their submitter's place), so a form about a client the register knows and Kazi does not still works.
    """
    wanted = list(dict.fromkeys(subject_ids))
    if not wanted or scope.everything:
        return set()
    named: dict[str, set[str]] = {}
    seen: set[str] = set()
    with db.reader(store.engine).begin() as conn:
        rows = conn.execute(select(doc_subjects.c.subject_id, doc_subjects.c.doc_id)
                            .join(docs, docs.c.id == doc_subjects.c.doc_id)
                            .where(doc_subjects.c.subject_id.in_(wanted), doc_subjects.c.kind == CONTACT,
                                   docs.c.deleted.is_(False)))
        for r in rows:
            named.setdefault(r.subject_id, set()).add(r.doc_id)
        candidates = sorted({d for ids in named.values() for d in ids})
        if candidates:
            seen.update(conn.scalars(select(docs.c.id).where(docs.c.id.in_(candidates), visible(scope, docs))))
    return {s for s, ids in named.items() if not ids & seen}


def minified_lineage(store: Store, contact_id: str) -> dict[str, Any]:
    """``{"_id": contact, "parent": {"_id": ..., "parent": ...}}``: a contact with its stored ancestors, as
    CHT writes a report's ``contact`` (its minified lineage)."""
    node: dict[str, Any] | None = None
    for ancestor in reversed(store.lineage(contact_id)):
        node = {"_id": ancestor, **({"parent": node} if node else {})}
    return {"_id": contact_id, **({"parent": node} if node else {})}
