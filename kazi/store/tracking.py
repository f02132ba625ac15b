"""What the task service remembers between rounds, and the lookups it uses to find whom a change affects.

Kept apart from :mod:`kazi.store.store` because none of it is about documents as such: the service's last
processed change and per-user computation state (migration 0002), the stored program versions, and
set-based questions ("which places do these subjects live under", "who holds task documents for these
requesters") that let one query replace a loop over users.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
from sqlalchemy import delete, func, insert, select, update

from kazi.store import db
from kazi.store.schema import (
    CONTACT,
    DOCS_COUNTER,
    counters,
    doc_ancestors,
    doc_subjects,
    docs,
    programs,
    service_state,
    task_docs,
    task_users,
)
from kazi.store.store import Store

CHUNK = 500
_T = TypeVar("_T")

#: ``service_state`` row: the sequence number of the last document change the service has processed
PROCESSED_SEQ = "processed_seq"


def _chunks(items: Sequence[_T], size: int = CHUNK) -> Iterator[Sequence[_T]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


# --------------------------------------------------------------------------------------------------------
# service state


def get_state(store: Store, name: str, default: int = 0) -> int:
    with db.reader(store.engine).begin() as conn:
        value = conn.scalar(select(service_state.c.value).where(service_state.c.name == name))
    return default if value is None else int(value)


def set_state(store: Store, name: str, value: int) -> None:
    with db.writer(store.engine).begin() as conn:
        done = conn.execute(update(service_state).where(service_state.c.name == name).values(value=value))
        if done.rowcount == 0:
            conn.execute(insert(service_state).values(name=name, value=value))


@dataclass(frozen=True)
class TaskUserState:
    """What a user's stored task documents were computed with."""

    user_id: int
    program_version: int
    fingerprint: str
    local_day: str
    full_at: int


def task_user_states(store: Store) -> dict[int, TaskUserState]:
    with db.reader(store.engine).begin() as conn:
        rows = conn.execute(select(task_users)).all()
    return {r.user_id: TaskUserState(r.user_id, r.program_version, r.fingerprint, r.local_day, r.full_at)
            for r in rows}


def task_user_state(store: Store, user_id: int) -> TaskUserState | None:
    with db.reader(store.engine).begin() as conn:
        r = conn.execute(select(task_users).where(task_users.c.user_id == user_id)).first()
    return None if r is None else TaskUserState(r.user_id, r.program_version, r.fingerprint, r.local_day, r.full_at)


@dataclass(frozen=True)
class Freshness:
    """What read-your-writes checks on every API read, read in one transaction: is anything to do?"""

    program_version: int | None  # the active program version (None: no program)
    last_seq: int  # the last document change
    processed_seq: int  # the last change a round processed
    state: TaskUserState | None  # the user's stored state
    task_seq: int  # the newest sequence number among the user's task documents (see user_task_seq)


def freshness(store: Store, user_id: int, settings_id: str) -> Freshness:
    """One read transaction instead of five: this runs on every ``GET /api/v1/tasks``."""
    with db.reader(store.engine).begin() as conn:
        version = conn.scalar(select(programs.c.version).where(programs.c.active.is_(True)))
        last = conn.scalar(select(counters.c.value).where(counters.c.name == DOCS_COUNTER))
        processed = conn.scalar(select(service_state.c.value).where(service_state.c.name == PROCESSED_SEQ))
        r = conn.execute(select(task_users).where(task_users.c.user_id == user_id)).first()
        task_seq = conn.scalar(select(func.max(task_docs.c.seq)).where(task_docs.c.user_id == settings_id))
    state = None if r is None else TaskUserState(r.user_id, r.program_version, r.fingerprint, r.local_day, r.full_at)
    return Freshness(None if version is None else int(version), int(last or 0), int(processed or 0), state,
                     int(task_seq or 0))


def user_task_seq(store: Store, settings_id: str) -> int:
    """The newest change sequence number among one user's task documents (0: none): it moves whenever any of
    them is written, which is what a cached Tasks page must notice (:mod:`kazi.service.pages`)."""
    with db.reader(store.engine).begin() as conn:
        value = conn.scalar(select(func.max(task_docs.c.seq)).where(task_docs.c.user_id == settings_id))
    return int(value or 0)


def save_task_user_state(store: Store, state: TaskUserState) -> None:
    values = {"program_version": state.program_version, "fingerprint": state.fingerprint,
              "local_day": state.local_day, "full_at": state.full_at}
    with db.writer(store.engine).begin() as conn:
        done = conn.execute(update(task_users).where(task_users.c.user_id == state.user_id).values(**values))
        if done.rowcount == 0:
            conn.execute(insert(task_users).values(user_id=state.user_id, **values))


def forget_task_user(store: Store, user_id: int) -> None:
    """Drop a user's state, so the next round recomputes them in full (a disabled user, re-enabled later)."""
    with db.writer(store.engine).begin() as conn:
        conn.execute(delete(task_users).where(task_users.c.user_id == user_id))


# --------------------------------------------------------------------------------------------------------
# lookups for dirty tracking


def places_of_subjects(store: Store, subject_ids: Iterable[str]) -> set[str]:
    """Every stored contact (itself included) above the contacts named by ``subject_ids`` (``_id`` or short
    code): the places whose users see those contacts and the reports about them."""
    wanted = list(dict.fromkeys(subject_ids))
    out: set[str] = set()
    with db.reader(store.engine).begin() as conn:
        for chunk in _chunks(wanted):
            out.update(conn.scalars(
                select(doc_ancestors.c.ancestor_id).distinct()
                .join(doc_subjects, doc_subjects.c.doc_id == doc_ancestors.c.doc_id)
                .where(doc_subjects.c.kind == CONTACT, doc_subjects.c.subject_id.in_(chunk))))
    return out


def places_of_submitters(store: Store, report_ids: Iterable[str]) -> set[str]:
    """The places above the submitters of these reports (where a headless report is seen)."""
    wanted = list(dict.fromkeys(report_ids))
    out: set[str] = set()
    with db.reader(store.engine).begin() as conn:
        for chunk in _chunks(wanted):
            submitters = select(docs.c.contact_id).where(docs.c.id.in_(chunk), docs.c.contact_id.is_not(None))
            out.update(conn.scalars(select(doc_ancestors.c.ancestor_id).distinct()
                                    .where(doc_ancestors.c.doc_id.in_(submitters))))
    return out


def contact_ids_under(store: Store, place_ids: Iterable[str]) -> set[str]:
    """Ids of the stored contacts at or below these places (any depth)."""
    wanted = list(dict.fromkeys(place_ids))
    out: set[str] = set()
    with db.reader(store.engine).begin() as conn:
        for chunk in _chunks(wanted):
            out.update(conn.scalars(select(doc_ancestors.c.doc_id).where(doc_ancestors.c.ancestor_id.in_(chunk))))
    return out


def lineages(store: Store, contact_ids: Iterable[str]) -> dict[str, list[str]]:
    """Ancestor ids (nearest first) of stored contacts, in one query per chunk; absent ids are not stored."""
    wanted = list(dict.fromkeys(contact_ids))
    rows: dict[str, list[tuple[int, str]]] = {}
    with db.reader(store.engine).begin() as conn:
        for chunk in _chunks(wanted):
            for r in conn.execute(select(doc_ancestors.c.doc_id, doc_ancestors.c.ancestor_id, doc_ancestors.c.depth)
                                  .where(doc_ancestors.c.doc_id.in_(chunk))):
                rows.setdefault(r.doc_id, []).append((r.depth, r.ancestor_id))
    return {k: [a for d, a in sorted(v) if d > 0] for k, v in rows.items()}


def descendants_subjects(store: Store, contact_id: str) -> set[str]:
    """Subject ids (``_id`` and short codes) of every contact strictly below ``contact_id``."""
    below = select(doc_ancestors.c.doc_id).where(doc_ancestors.c.ancestor_id == contact_id,
                                                 doc_ancestors.c.depth > 0)
    with db.reader(store.engine).begin() as conn:
        return set(conn.scalars(select(doc_subjects.c.subject_id)
                                .where(doc_subjects.c.kind == CONTACT, doc_subjects.c.doc_id.in_(below))))


def task_holders(store: Store, requesters: Iterable[str]) -> set[str]:
    """``org.couchdb.user:NAME`` of every user holding a task document for one of these requesters."""
    wanted = list(dict.fromkeys(requesters))
    out: set[str] = set()
    with db.reader(store.engine).begin() as conn:
        for chunk in _chunks(wanted):
            out.update(conn.scalars(select(task_docs.c.user_id).distinct().where(task_docs.c.requester.in_(chunk))))
    return out


# --------------------------------------------------------------------------------------------------------
# programs


@dataclass(frozen=True)
class StoredProgram:
    """One loaded program version as stored: its folder's files and what the load found."""

    version: int
    kind: str
    files: dict[str, str]
    settings_override: dict[str, Any] | None
    warnings: list[dict[str, Any]]
    loaded_at: int
    active: bool


def _program(row: Any) -> StoredProgram:
    return StoredProgram(row.version, row.kind, orjson.loads(row.files),
                         orjson.loads(row.settings_override) if row.settings_override else None,
                         orjson.loads(row.warnings), row.loaded_at, bool(row.active))


def active_program_version(store: Store) -> int | None:
    """The active version (one cheap query: the service asks it every round to notice another process's load)."""
    with db.reader(store.engine).begin() as conn:
        value = conn.scalar(select(programs.c.version).where(programs.c.active.is_(True)))
    return None if value is None else int(value)


def active_program(store: Store) -> StoredProgram | None:
    with db.reader(store.engine).begin() as conn:
        row = conn.execute(select(programs).where(programs.c.active.is_(True))).first()
    return None if row is None else _program(row)


def program_versions(store: Store) -> list[StoredProgram]:
    """Every version, oldest first (without deciding anything about them)."""
    with db.reader(store.engine).begin() as conn:
        return [_program(r) for r in conn.execute(select(programs).order_by(programs.c.version))]


def add_program(store: Store, *, kind: str, files: dict[str, str], settings_override: dict[str, Any] | None,
                warnings: list[dict[str, Any]], loaded_at: int) -> int:
    """Store a new version and make it the active one, in one transaction; returns its number."""
    with db.writer(store.engine).begin() as conn:
        # lock the current active row (PostgreSQL) so two loads at once get different numbers
        conn.execute(select(programs.c.version).where(programs.c.active.is_(True)).with_for_update())
        last = conn.scalar(select(programs.c.version).order_by(programs.c.version.desc()).limit(1))
        version = int(last or 0) + 1
        conn.execute(update(programs).where(programs.c.active.is_(True)).values(active=False))
        conn.execute(insert(programs).values(
            version=version, kind=kind, files=orjson.dumps(files).decode(),
            settings_override=orjson.dumps(settings_override).decode() if settings_override is not None else None,
            warnings=orjson.dumps(warnings).decode(), loaded_at=loaded_at, active=True))
    return version


def sample_contact_ids(store: Store, place_id: str, limit: int) -> list[str]:
    """Up to ``limit`` contacts at or below ``place_id``, picked at random (a new program version's
    pre-flight: random so that successive trials see different parts of the population)."""
    if limit <= 0:
        return []
    query = (select(docs.c.id)
             .where(docs.c.kind == CONTACT, docs.c.deleted.is_(False),
                    docs.c.id.in_(select(doc_ancestors.c.doc_id).where(doc_ancestors.c.ancestor_id == place_id)))
             .order_by(func.random()).limit(limit))
    with db.reader(store.engine).begin() as conn:
        return list(conn.scalars(query))
