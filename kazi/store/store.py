"""The store: CHT documents, each user's task documents and the accounts, in SQLite or PostgreSQL.

Every write is one transaction: a batch is checked whole before the database is touched, then written whole
or not at all (a problem found inside the transaction, such as a document outside the writer's place, rolls
everything back). Writing a document whose ``_id`` exists replaces it; writing the same content again changes
nothing, not even the change sequence, so clients may retry any write. Writes of clients are checked
(:class:`WriteChecks`): an update must carry the stored ``_rev``, as in CouchDB, and a contact may not take
another user's phone number; the store's own writers (import, demo, SMS) replace without them.

Methods that take ``user`` (a :class:`~kazi.store.users.StoredUser` or a :class:`~kazi.store.scope.Scope`)
confine themselves to that scope: a document outside it is "not found", exactly like a missing one. ``None``
means a system caller (workers, import, tests) and sees everything: API handlers must always pass the caller.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol, TypeVar

import orjson
from argon2 import PasswordHasher
from sqlalchemy import Engine, Row, Table, Update, and_, bindparam, delete, func, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from kazi.engine.containers import hydrate_lineage
from kazi.engine.engine import User
from kazi.engine.taskdocs import TERMINAL_STATES
from kazi.errors import (
    DocumentBatchError,
    DocumentConflict,
    DocumentError,
    DocumentExistsError,
    NotFoundError,
    TaskDocsChangedError,
    batch_error,
)
from kazi.sms import phones
from kazi.store import db, documents, task_stats, write_rules
from kazi.store.documents import Doc, Prepared
from kazi.store.schema import (
    CONTACT,
    DOCS_COUNTER,
    REPORT,
    TASKS_COUNTER,
    changes,
    counters,
    doc_ancestors,
    doc_subjects,
    docs,
    task_docs,
    users,
)
from kazi.store.scope import Scope, contact_ids_in, report_ids_in, resolve, scope_of, visible
from kazi.store.users import StoredUser, UserStore
from kazi.supervision.definitions import task_name_of
from kazi.supervision.report import completed_on_time

#: ids per ``IN (...)`` list: far below SQLite's and PostgreSQL's bound-parameter limits
CHUNK = 500
#: why a write is refused when a document is, or would be, outside the writer's place (one wording for both)
OUTSIDE_SCOPE = "outside the user's place"
_T = TypeVar("_T")
Scoped = StoredUser | Scope | None


@dataclass(frozen=True)
class WriteChecks:
    """What a document write checks beyond the documents themselves: on for writes that come from clients
    (``POST /api/v1/docs``), off for the store's own writers, which legitimately replace (``kazi import``
    loads CHT exports whose ``_rev`` are CouchDB's, the demo rewrites its population, SMS creates new ids).

    * ``rev``: as CouchDB, a document that is stored (and not deleted) is replaced only by a write carrying
      its current ``_rev``; a new ``_id`` takes no ``_rev``; a deleted one is created again without one (or
      with its tombstone's). Content equal to what is stored is never a conflict: it changes nothing and
      answers the stored revision, so a client that lost the answer to a write may send it again.
    * ``phones``: a contact may not be given a number that is the phone of another user's contact (an enabled
      account's, other than ``writer``'s own): SMS from that number would be attributed to it. Numbers are
      compared as the SMS gateway matches senders (:func:`kazi.sms.phones.same_number` with ``country_code``,
      the program's ``default_country_code``). A contact that keeps the number it had is not refused.
    """

    rev: bool = False
    phones: bool = False
    country_code: str | None = None
    writer: str | None = None  # the writing account's username: its own contact's number is its to give


@dataclass(frozen=True)
class WriteResult:
    """One written document: its revision and change sequence (unchanged content keeps both)."""

    id: str
    rev: str
    seq: int
    changed: bool


@dataclass(frozen=True)
class Change:
    """One entry of the document change log.

    ``subjects`` are the subject ids the document had before *and* after the write, and ``lineage`` a
    contact's ancestor ids before and after: what a recompute worker must mark dirty (a report that moves
    from one patient to another changes both containers; a contact that moves changes both places' users).
    """

    seq: int
    id: str
    rev: str
    kind: str
    deleted: bool
    subjects: tuple[str, ...]
    lineage: tuple[str, ...]


@dataclass(frozen=True)
class TaskChange:
    """The last write of a task document (one entry per document, as CouchDB's changes feed)."""

    seq: int
    id: str
    rev: str
    user_id: str
    state: str | None


class ScopeDocs(NamedTuple):
    """The documents of a scope: what a user's full recompute reads."""

    contacts: list[Doc]
    reports: list[Doc]


def open_store(url: str | None = None, *, migrate: bool = True, password_hasher: PasswordHasher | None = None,
               **engine_kwargs: Any) -> Store:
    """Open (and, unless told not to, migrate) the store at ``url``.

    ``url`` is ``sqlite:///PATH`` (default ``sqlite:///data/kazi.sqlite3``; the directory is created) or
    ``postgresql+psycopg://USER:PASSWORD@HOST:PORT/DB``. ``password_hasher`` replaces the Argon2 parameters
    (tests use cheap ones); hashes record their parameters, so a store can hold hashes of several kinds.
    """
    engine = db.create_store_engine(db.normalize_url(url), **engine_kwargs)
    try:
        if migrate:
            db.ensure_schema(engine)
    except BaseException:
        engine.dispose()
        raise
    return Store(engine, password_hasher=password_hasher)


class Store:
    """Documents, task documents and users over one SQLAlchemy engine (see the module docstring)."""

    def __init__(self, engine: Engine, *, password_hasher: PasswordHasher | None = None) -> None:
        self.engine = engine
        self._writer = db.writer(engine)
        self._reader = db.reader(engine)
        self.users = UserStore(engine, password_hasher)

    @property
    def backend(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self.engine.dialect.name

    def close(self) -> None:
        self.engine.dispose()

    def analyze(self) -> None:
        """Refresh the query planner's statistics (after a large import, and hourly in the background worker).

        PostgreSQL's autovacuum keeps them itself, but only after enough changes and a while. SQLite keeps none
        unless asked, and without them it picks indexes by rule: at 50,000 households it read every report
        through the ``kind`` index to find a client's few (50 ms instead of 1). ``analysis_limit`` samples
        each index, so this takes well under a second on a million documents.
        """
        with self._writer.begin() as conn:
            if self.backend == "sqlite":
                conn.exec_driver_sql("PRAGMA analysis_limit=1000")
            conn.exec_driver_sql("ANALYZE")

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------------------------------------------
    # documents: writing

    def write_docs(self, batch: Iterable[object], *, user: Scoped = None, create_only: bool = False,
                   check_rev: bool = False, check_phones: bool = False, country_code: str | None = None
                   ) -> list[WriteResult]:
        """Write a batch of CHT documents, all or none (:class:`DocumentBatchError` lists every problem).

        A document with ``_deleted: true`` is a deletion (CouchDB's tombstone). With ``user``, every document
        must be in the user's scope both as it was and as written. ``create_only``: refuse the batch with
        :class:`DocumentExistsError` if any ``_id`` is taken (tombstones included), checked in the write's
        own transaction. ``check_rev`` and ``check_phones`` (with the program's ``country_code``): the checks
        of a client's write (:class:`WriteChecks`); a batch refused by them alone raises
        :class:`~kazi.errors.DocumentConflictError`.
        """
        items = list(batch)
        prepared = _prepare_batch(items, documents.prepare)
        if not prepared:
            return []
        try:
            with self._writer.begin() as conn:
                if create_only:
                    _lock_counter(conn, DOCS_COUNTER)  # writers wait here, so the check sees every commit
                    taken = [row.id for chunk in _chunks([p.id for p in prepared])
                             for row in conn.execute(select(docs.c.id).where(docs.c.id.in_(chunk)))]
                    if taken:
                        raise DocumentExistsError(taken)
                checks = WriteChecks(check_rev, check_phones, country_code, _username(user))
                return _DocWriter(conn, resolve(user), len(items), checks).write(prepared)
        except IntegrityError as exc:
            # a unique index refused an insert: with the counter lock above it cannot happen, but if a writer
            # ever bypassed that lock, a taken _id must still read as taken, not as a server error
            if create_only:
                raise DocumentExistsError([p.id for p in prepared]) from exc
            raise

    @contextmanager
    def writing(self) -> Iterator[DocTransaction]:
        """One write transaction holding the document writers' lock, for a module that writes documents
        together with rows of its own (an SMS message and the person and report it made): all or none."""
        with self._writer.begin() as conn:
            _lock_counter(conn, DOCS_COUNTER)  # serialised with every other document writer
            yield DocTransaction(conn)

    def write_doc(self, doc: object, *, user: Scoped = None, create_only: bool = False, check_rev: bool = False,
                  check_phones: bool = False, country_code: str | None = None) -> WriteResult:
        """Write one document (a batch of one)."""
        return self.write_docs([doc], user=user, create_only=create_only, check_rev=check_rev,
                               check_phones=check_phones, country_code=country_code)[0]

    def delete_docs(self, ids: Iterable[str], *, user: Scoped = None) -> list[WriteResult]:
        """Delete documents (tombstones keep their ``_id`` for the change log); unknown ids refuse the batch."""
        id_list = list(ids)
        found = {d["_id"]: d for d in self.get_docs(id_list, user=user)}
        problems = [DocumentError("not found", doc_id=i, field="_id", index=n)
                    for n, i in enumerate(id_list) if i not in found]
        if problems:
            raise DocumentBatchError(problems, len(id_list))
        return self.write_docs([{"_id": i, "_deleted": True} for i in id_list], user=user)

    # ----------------------------------------------------------------------------------------------------
    # documents: reading

    def get_doc(self, doc_id: str, *, user: Scoped = None) -> Doc:
        """A document with its ``_rev``; :class:`NotFoundError` when missing, deleted or outside the scope."""
        found = self.get_docs([doc_id], user=user)
        if not found:
            raise NotFoundError("document", doc_id)
        return found[0]

    def get_docs(self, ids: Iterable[str], *, user: Scoped = None, include_deleted: bool = False) -> list[Doc]:
        """The documents among ``ids`` that exist (and are in scope), in the order asked."""
        scope = resolve(user)
        wanted = list(dict.fromkeys(ids))
        by_id: dict[str, Doc] = {}
        with self._reader.begin() as conn:
            for chunk in _chunks(wanted):
                query = select(docs.c.id, docs.c.rev, docs.c.body).where(docs.c.id.in_(chunk), visible(scope, docs))
                if not include_deleted:
                    query = query.where(docs.c.deleted.is_(False))
                for row in conn.execute(query):
                    by_id[row.id] = documents.decode(row.body, row.rev)
        return [by_id[i] for i in wanted if i in by_id]

    def scope_of(self, user: StoredUser) -> Scope:
        """The user's scope (see :mod:`kazi.store.scope`)."""
        return scope_of(user)

    def docs_in_scope(self, user: StoredUser | Scope) -> ScopeDocs:
        """Every contact and report the user sees: what a full recompute of their tasks reads."""
        scope = resolve(user)
        contacts_q = select(docs.c.rev, docs.c.body).where(docs.c.kind == CONTACT, docs.c.deleted.is_(False))
        reports_q = select(docs.c.rev, docs.c.body).where(docs.c.kind == REPORT, docs.c.deleted.is_(False))
        if scope.empty:
            return ScopeDocs([], [])
        if not scope.everything:
            contacts_q = contacts_q.where(docs.c.id.in_(contact_ids_in(scope)))
            reports_q = reports_q.where(docs.c.id.in_(report_ids_in(scope, docs)))
        with self._reader.begin() as conn:
            contacts = [documents.decode(r.body, r.rev) for r in conn.execute(contacts_q.order_by(docs.c.seq))]
            reports = [documents.decode(r.body, r.rev) for r in conn.execute(reports_q.order_by(docs.c.seq))]
        return ScopeDocs(contacts, reports)

    def contacts_under(self, place_id: str, *, user: Scoped = None) -> list[Doc]:
        """The place and every contact below it, at any depth (within ``user``'s scope)."""
        query = (select(docs.c.rev, docs.c.body)
                 .where(docs.c.kind == CONTACT, docs.c.deleted.is_(False),
                        docs.c.id.in_(contact_ids_in(Scope(places=(place_id,)))), visible(resolve(user), docs))
                 .order_by(docs.c.seq))
        with self._reader.begin() as conn:
            return [documents.decode(r.body, r.rev) for r in conn.execute(query)]

    def lineage(self, contact_id: str) -> list[str]:
        """Ancestor ids of a stored contact, nearest first (as the store resolved them)."""
        query = (select(doc_ancestors.c.ancestor_id)
                 .where(doc_ancestors.c.doc_id == contact_id, doc_ancestors.c.depth > 0)
                 .order_by(doc_ancestors.c.depth))
        with self._reader.begin() as conn:
            return list(conn.scalars(query))

    def docs_for_subjects(self, subject_ids: Iterable[str], *, user: Scoped = None) -> list[Doc]:
        """The contacts and reports an incremental recompute of ``subject_ids`` needs (CHT's ``taskDataFor``).

        Contacts: those whose ``_id``, ``patient_id`` or ``place_id`` is one of the ids. Reports: those whose
        single subject (``getSubjectId``) is one of the ids or of those contacts' ids, so a contact named by
        ``_id`` brings the reports filed under its short code. Contacts first, then reports by change order.
        """
        scope = resolve(user)
        wanted = list(dict.fromkeys(subject_ids))
        out: list[Doc] = []
        with self._reader.begin() as conn:
            contact_ids: list[str] = []
            for chunk in _chunks(wanted):
                contact_ids.extend(conn.scalars(select(doc_subjects.c.doc_id).where(
                    doc_subjects.c.kind == CONTACT, doc_subjects.c.subject_id.in_(chunk))))
            contact_ids = list(dict.fromkeys(contact_ids))
            all_subjects = dict.fromkeys(wanted)
            contact_rows: list[Row[Any]] = []
            for chunk in _chunks(contact_ids):
                contact_rows.extend(conn.execute(
                    select(docs.c.seq, docs.c.rev, docs.c.body)
                    .where(docs.c.id.in_(chunk), docs.c.deleted.is_(False), visible(scope, docs))))
                all_subjects.update(dict.fromkeys(conn.scalars(select(doc_subjects.c.subject_id).where(
                    doc_subjects.c.doc_id.in_(chunk), doc_subjects.c.kind == CONTACT))))
            report_rows: list[Row[Any]] = []
            for chunk in _chunks(list(all_subjects)):
                # only reports have a `subject` (documents.py), so no `kind` condition: without statistics
                # SQLite would read every report through the `kind` index instead of a few through `subject`
                report_rows.extend(conn.execute(
                    select(docs.c.seq, docs.c.rev, docs.c.body)
                    .where(docs.c.subject.in_(chunk), docs.c.deleted.is_(False), visible(scope, docs))))
        for rows in (contact_rows, report_rows):
            out.extend(documents.decode(r.body, r.rev) for r in sorted(rows, key=lambda r: r.seq))
        return out

    def hydrated_contact(self, contact_id: str, *, user: Scoped = None) -> Doc | None:
        """A contact with every ``parent`` stub replaced by the stored parent (CHT's hydrated lineage)."""
        ids = [contact_id, *self.lineage(contact_id)]
        by_id = {d["_id"]: d for d in self.get_docs(ids, user=user)}
        return hydrate_lineage(by_id.get(contact_id), by_id) if contact_id in by_id else None

    def engine_user(self, user: StoredUser) -> User:
        """The engine's view of a user: name, roles and the user's contact with hydrated lineage (the
        ``user`` global of task code)."""
        contact = self.hydrated_contact(user.contact_id) if user.contact_id else None
        return User(name=user.username, roles=user.roles, contact=contact)

    def changes_since(self, since: int = 0, *, limit: int = 1000) -> list[Change]:
        """Document writes with a sequence number above ``since``, oldest first (unscoped: for workers)."""
        query = select(changes).where(changes.c.seq > since).order_by(changes.c.seq).limit(limit)
        with self._reader.begin() as conn:
            rows = conn.execute(query).all()
        return [Change(r.seq, r.doc_id, r.rev, r.kind, bool(r.deleted), tuple(orjson.loads(r.subjects)),
                       tuple(orjson.loads(r.lineage))) for r in rows]

    def last_seq(self) -> int:
        """The sequence number of the last document write (0 for an empty store)."""
        return self._counter(DOCS_COUNTER)

    # ----------------------------------------------------------------------------------------------------
    # task documents

    def write_task_docs(self, batch: Iterable[object], *, expect: tuple[str, int] | None = None
                        ) -> list[WriteResult]:
        """Write task documents (as the engine returns them in ``Result.writes``), all or none.

        ``expect = (settings id, seq)``: write only if that user's newest task document still has sequence
        number ``seq`` (what the computation read), else raise :class:`TaskDocsChangedError` and write nothing.
        Task writes are serialized (SQLite's write lock, PostgreSQL's lock on the task counter), so the check
        and the write are one step: two processes computing the same user cannot both add a document for one
        new emission. The monthly event counts supervision reports read (``task_stats``) change in the same
        transaction, by what each written document counted for before and counts for now.
        """
        items = list(batch)
        prepared = _prepare_batch(items, _prepare_task)
        if not prepared:
            return []
        with self._writer.begin() as conn:
            seq = _lock_counter(conn, TASKS_COUNTER)
            if expect is not None:
                current = conn.scalar(select(func.max(task_docs.c.seq)).where(task_docs.c.user_id == expect[0]))
                if int(current or 0) != expect[1]:
                    raise TaskDocsChangedError(f"the task documents of {expect[0]} changed while they were computed")
            existing: dict[str, Row[Any]] = {}
            for chunk in _chunks([p.id for p in prepared]):
                for row in conn.execute(select(task_docs.c.id, task_docs.c.rev, task_docs.c.seq,
                                               *[task_docs.c[c] for c in task_stats.TaskEvents._fields])
                                        .where(task_docs.c.id.in_(chunk))):
                    existing[row.id] = row
            results: list[WriteResult] = []
            inserts: list[dict[str, Any]] = []
            updates: list[dict[str, Any]] = []
            events: list[tuple[task_stats.TaskEvents | None, task_stats.TaskEvents]] = []
            zones = _zones_of(conn, {p.user_id for p in prepared if p.state == "Completed"})
            for p in prepared:
                old = existing.get(p.id)
                if old is not None and documents.rev_hash(old.rev) == p.content_hash:
                    results.append(WriteResult(p.id, old.rev, old.seq, False))
                    continue
                seq += 1
                rev = f"{documents.rev_generation(old.rev) + 1 if old is not None else 1}-{p.content_hash}"
                values = {"rev": rev, "seq": seq, "user_id": p.user_id, "requester": p.requester,
                          "owner": p.owner, "state": p.state, "emission_id": p.emission_id,
                          "due_date": p.due_date, "authored_on": p.authored_on, "body": p.body,
                          "task_name": p.task_name, "title_key": p.title_key, "closed_at": p.closed_at,
                          "on_time": completed_on_time(p.closed_at, p.end_date, zones.get(p.user_id, "UTC"))
                          if p.state == "Completed" else None}
                if old is None:
                    inserts.append({"id": p.id, **values})
                else:
                    updates.append({"b_id": p.id, **{f"b_{k}": v for k, v in values.items()}})
                events.append((None if old is None else task_stats.events_of(dict(old._mapping)),
                               task_stats.events_of(values)))
                results.append(WriteResult(p.id, rev, seq, True))
            if inserts:
                conn.execute(insert(task_docs), inserts)
            if updates:
                conn.execute(_update_by_id(task_docs), updates)
            task_stats.apply(conn, task_stats.deltas(events))
            _set_counter(conn, TASKS_COUNTER, seq)
        return results

    def task_docs(
        self, user: StoredUser | str, *, states: Iterable[str] | None = None,
        requesters: Iterable[str] | None = None, owners: Iterable[str] | None = None,
        since: int | None = None,
    ) -> list[Doc]:
        """A user's task documents (``user``: an account or a username), optionally only some states,
        requesters (the container contacts) or owners, or only those written after sequence number ``since``
        (a device's delta: the index on ``(user_id, seq)`` serves it), in write order."""
        user_id = user.settings_id if isinstance(user, StoredUser) else f"org.couchdb.user:{user}"
        query = select(task_docs.c.rev, task_docs.c.body).where(task_docs.c.user_id == user_id)
        if since is not None:
            query = query.where(task_docs.c.seq > since)
        in_memory: list[tuple[str, set[str]]] = []  # lists too long for one IN (...) filter the decoded docs
        for column, values in ((task_docs.c.state, states), (task_docs.c.requester, requesters),
                               (task_docs.c.owner, owners)):
            if values is None:
                continue
            wanted = list(dict.fromkeys(values))
            if len(wanted) <= CHUNK:
                query = query.where(column.in_(wanted))
            else:
                in_memory.append((column.name, set(wanted)))
        with self._reader.begin() as conn:
            out = [documents.decode(r.body, r.rev) for r in conn.execute(query.order_by(task_docs.c.seq))]
        for key, allowed in in_memory:  # the body keys have the column names
            out = [d for d in out if d.get(key) in allowed]
        return out

    def get_task_doc(self, task_id: str, *, user: StoredUser | None = None) -> Doc:
        """A task document; with ``user``, only the user's own (admins and national users see all)."""
        with self._reader.begin() as conn:
            row = conn.execute(select(task_docs.c.rev, task_docs.c.body, task_docs.c.user_id)
                               .where(task_docs.c.id == task_id)).first()
        if row is None or (user is not None and row.user_id != user.settings_id
                           and not scope_of(user).everything):
            raise NotFoundError("task", task_id)
        return documents.decode(row.body, row.rev)

    def task_changes_since(self, since: int = 0, *, user: StoredUser | str | None = None,
                           limit: int = 1000) -> list[TaskChange]:
        """Task documents written after ``since`` (each once, at its last write), optionally one user's."""
        query = select(task_docs.c.seq, task_docs.c.id, task_docs.c.rev, task_docs.c.user_id, task_docs.c.state)
        query = query.where(task_docs.c.seq > since).order_by(task_docs.c.seq).limit(limit)
        if user is not None:
            user_id = user.settings_id if isinstance(user, StoredUser) else f"org.couchdb.user:{user}"
            query = query.where(task_docs.c.user_id == user_id)
        with self._reader.begin() as conn:
            return [TaskChange(r.seq, r.id, r.rev, r.user_id, r.state) for r in conn.execute(query)]

    def last_task_seq(self) -> int:
        return self._counter(TASKS_COUNTER)

    def _counter(self, name: str) -> int:
        with self._reader.begin() as conn:
            value = conn.scalar(select(counters.c.value).where(counters.c.name == name))
        return int(value or 0)


# --------------------------------------------------------------------------------------------------------
# the document write transaction


class _DocWriter:
    """One document batch inside its transaction: rows, subjects, lineage, scope check, change log."""

    def __init__(self, conn: Connection, scope: Scope, total: int, checks: WriteChecks | None = None) -> None:
        self.conn = conn
        self.scope = scope
        self.total = total
        self.checks = checks or WriteChecks()
        self.problems: list[DocumentError] = []

    def fail_if_problems(self) -> None:
        if self.problems:
            raise self.error()

    def error(self) -> DocumentBatchError:
        """Every problem found so far, in batch order (not in the order the checks ran, which would tell a
        scope refusal of a taken ``_id`` from one of a document placed elsewhere)."""
        problems = _conflicts_of_acceptable(self.problems)
        return batch_error(sorted(problems, key=lambda e: -1 if e.index is None else e.index), self.total)

    def write(self, prepared: list[Prepared]) -> list[WriteResult]:
        conn = self.conn
        seq = _lock_counter(conn, DOCS_COUNTER)  # from here on, no other writer runs
        ids = [p.id for p in prepared]
        existing: dict[str, Row[Any]] = {}
        for chunk in _chunks(ids):
            for row in conn.execute(select(docs.c.id, docs.c.rev, docs.c.seq, docs.c.kind, docs.c.deleted)
                                    .where(docs.c.id.in_(chunk))):
                existing[row.id] = row
        if not self.scope.everything:
            # A stored document outside the scope is refused and left out of the write, while the rest of the
            # batch goes on to the check "as written": a refusal then reads the same whether the id was taken
            # elsewhere or the document as sent lies elsewhere, and which other documents are refused does not
            # depend on it either (see _check_scope). Leaving it out also spares the transaction re-rooting
            # another place's subtree only to roll it back.
            refused = self._check_scope([p for p in prepared if p.id in existing and not existing[p.id].deleted])
            prepared = [p for p in prepared if p.id not in refused]

        results: dict[str, WriteResult] = {}
        changed: list[Prepared] = []
        for p in prepared:
            old = existing.get(p.id)
            if old is not None and documents.rev_hash(old.rev) == p.content_hash:
                results[p.id] = WriteResult(p.id, old.rev, old.seq, False)
            else:
                changed.append(p)
        if self.checks.rev:
            self._check_revs(changed, existing)
        if self.checks.phones:
            self._check_phones(changed)
        if not changed:
            self.fail_if_problems()
            return [results[i] for i in ids]

        changed_ids = [p.id for p in changed]
        replaced = [i for i in changed_ids if i in existing]
        old_subjects = self._old_rows(doc_subjects.c.subject_id, replaced, depth_ordered=False)
        old_lineage = self._old_rows(doc_ancestors.c.ancestor_id, replaced, depth_ordered=True)
        self.problems.extend(write_rules.reference_problems(conn, self.scope, changed, old_subjects))
        stub_ids = list(dict.fromkeys(s for p in changed for s in p.stub_chain))
        stored_chains = self._stored_chains(stub_ids)

        rows_new: list[dict[str, Any]] = []
        rows_old: list[dict[str, Any]] = []
        log: list[dict[str, Any]] = []
        for p in changed:
            old = existing.get(p.id)
            seq += 1
            rev = p.rev(documents.rev_generation(old.rev) + 1 if old is not None else 1)
            kind = old.kind if p.deleted and old is not None else p.kind
            values = {"rev": rev, "seq": seq, "kind": kind, "type": p.type, "contact_type": p.contact_type,
                      "form": p.form, "parent_id": p.parent_id, "contact_id": p.contact_id, "subject": p.subject,
                      "reported_date": p.reported_date, "deleted": p.deleted, "body": p.body,
                      "phone": p.phone}
            if old is None:
                rows_new.append({"id": p.id, **values})
            else:
                rows_old.append({"b_id": p.id, **{f"b_{k}": v for k, v in values.items()}})
            results[p.id] = WriteResult(p.id, rev, seq, True)
            log.append({"seq": seq, "doc_id": p.id, "rev": rev, "kind": kind, "deleted": p.deleted,
                        "subjects": list(dict.fromkeys([*old_subjects.get(p.id, []), *p.subjects])),
                        "lineage": list(dict.fromkeys(old_lineage.get(p.id, [])))})
        if rows_new:
            conn.execute(insert(docs), rows_new)
        if rows_old:
            conn.execute(_update_by_id(docs), rows_old)
        for chunk in _chunks(replaced):
            conn.execute(delete(doc_subjects).where(doc_subjects.c.doc_id.in_(chunk)))
            conn.execute(delete(doc_ancestors).where(doc_ancestors.c.doc_id.in_(chunk)))
        subject_rows = [{"doc_id": p.id, "subject_id": s, "kind": p.kind}
                        for p in changed if not p.deleted and p.kind in (CONTACT, REPORT) for s in p.subjects]
        if subject_rows:
            conn.execute(insert(doc_subjects), subject_rows)

        had_rows = {i for i in replaced if existing[i].kind == CONTACT and not existing[i].deleted}
        new_chains = self._write_lineage(changed, stored_chains, old_lineage, had_rows)
        for entry in log:
            chain = new_chains.get(entry["doc_id"])
            if chain is not None:
                entry["lineage"] = list(dict.fromkeys([*entry["lineage"], *chain]))
            entry["subjects"] = orjson.dumps(entry["subjects"]).decode()
            entry["lineage"] = orjson.dumps(entry["lineage"]).decode()
        conn.execute(insert(changes), log)

        outside: set[str] = set()
        if not self.scope.everything:
            outside = self._check_scope([p for p in changed if not p.deleted])
        self.problems.extend(write_rules.hierarchy_problems(conn, self.scope, changed, existing, old_lineage, outside))
        self.fail_if_problems()
        _set_counter(conn, DOCS_COUNTER, seq)
        return [results[i] for i in ids]

    def _old_rows(self, column: Any, ids: list[str], *, depth_ordered: bool) -> dict[str, list[str]]:
        """Current subject ids (or ancestor ids, nearest first) of stored documents about to be replaced."""
        out: dict[str, list[str]] = {}
        table = column.table
        for chunk in _chunks(ids):
            query = select(table.c.doc_id, column.label("value")).where(table.c.doc_id.in_(chunk))
            if depth_ordered:
                query = query.where(table.c.depth > 0).order_by(table.c.doc_id, table.c.depth)
            for row in self.conn.execute(query):
                out.setdefault(row.doc_id, []).append(row.value)
        return out

    def _stored_chains(self, ids: list[str]) -> dict[str, list[str]]:
        """Ancestor chains (nearest first) of the stored contacts among ``ids``; absent ids are not stored."""
        out: dict[str, list[tuple[int, str]]] = {}
        for chunk in _chunks(ids):
            for row in self.conn.execute(
                    select(doc_ancestors.c.doc_id, doc_ancestors.c.ancestor_id, doc_ancestors.c.depth)
                    .where(doc_ancestors.c.doc_id.in_(chunk))):
                out.setdefault(row.doc_id, []).append((row.depth, row.ancestor_id))
        return {k: [a for d, a in sorted(v) if d > 0] for k, v in out.items()}

    def _write_lineage(self, changed: list[Prepared], stored: dict[str, list[str]],
                       old_lineage: dict[str, list[str]], had_rows: set[str]) -> dict[str, list[str]]:
        """Resolve each changed contact's ancestors and keep the closure table right below it.

        A contact's lineage is its parent stubs up to the first stub that is a stored contact, then that
        contact's own resolved lineage: the stored hierarchy wins over stale stubs, and a contact written
        with only ``parent: {_id}`` still gets every ancestor. When a contact's lineage changes (new, moved,
        or its parent arrived after it), everything below it is re-rooted, shallowest first.
        ``had_rows``: the changed contacts that were stored contacts before this write.
        """
        contacts = [p for p in changed if p.kind == CONTACT and not p.deleted]
        pending = {p.id for p in contacts}
        chains: dict[str, list[str]] = {}
        stale: set[str] = set()  # in-batch contacts whose old lineage an earlier contact of the batch used
        loops = False
        for p in contacts:
            pending.discard(p.id)
            chain: list[str] = []
            for sid in p.stub_chain:
                chain.append(sid)
                if sid in chains:
                    chain.extend(chains[sid])
                    break
                if sid in pending:
                    stale.add(sid)
                if sid in stored:
                    chain.extend(stored[sid])
                    break
            if p.id in chain or len(set(chain)) != len(chain):
                self.problems.append(DocumentError(
                    "lineage loop: the contact would be its own ancestor (moved under its own descendant?)",
                    doc_id=p.id, field="parent", index=p.index))
                loops = True
            chains[p.id] = chain
        if loops:  # a loop cannot be written; scope refusals found so far do not stop the write
            raise self.error()
        moved = [p for p in contacts if p.id not in had_rows or chains[p.id] != old_lineage.get(p.id, [])]
        # Contacts below a moved one, outside this batch: the batch's own rows are not written yet.
        below = set(stale)
        for chunk in _chunks([p.id for p in moved]):
            below.update(self.conn.scalars(select(doc_ancestors.c.ancestor_id).distinct().where(
                doc_ancestors.c.ancestor_id.in_(chunk), doc_ancestors.c.depth > 0)))
        rows = [{"doc_id": p.id, "ancestor_id": a, "depth": d}
                for p in contacts for d, a in enumerate([p.id, *chains[p.id]])]
        if rows:
            self.conn.execute(insert(doc_ancestors), rows)
        for p in sorted((p for p in moved if p.id in below), key=lambda p: len(chains[p.id])):
            try:
                _reroot_descendants(self.conn, p.id)
            except IntegrityError as exc:
                self.problems.append(DocumentError(
                    f"lineage loop: a contact below {p.id!r} would also be above it", doc_id=p.id,
                    field="parent", index=p.index))
                raise self.error() from exc
        return chains

    def _check_revs(self, changed: list[Prepared], existing: dict[str, Row[Any]]) -> None:
        """Refuse the changes that do not name the stored revision (:class:`WriteChecks`), each with the
        revision that is stored, so a client can re-read the document, apply its change and send it again.

        Only changes are checked: content equal to what is stored was skipped before (it is no write), so
        re-sending a write whose answer was lost answers the current revision instead of a conflict. The
        revisions named are of documents the writer can read: another place's were refused as stored, and a
        deleted document's (which may have been another place's) is not named: it is created again without one.
        """
        for p in changed:
            old = existing.get(p.id)
            sent = p.sent_rev
            message: str | None = None
            if old is None:
                if sent is not None:
                    message = (f"_rev {sent!r} given, but no document with this _id is stored: send it without "
                               "_rev to create it")
            elif old.deleted:
                if sent is not None and sent != old.rev:
                    message = f"stale _rev {sent!r}: the document was deleted; send it without _rev to create it again"
            elif sent is None:
                message = (f"_rev missing: the document is stored at {old.rev!r}; read it, apply your change and "
                           "send it with that _rev")
            elif sent != old.rev:
                message = (f"stale _rev {sent!r}: the document was changed since, it is now at {old.rev!r}; read "
                           "it again, apply your change and send it with the current _rev")
            if message is not None:
                self.problems.append(DocumentConflict(message, doc_id=p.id, field="_rev", index=p.index,
                                                      current_rev=None if old is None or old.deleted else old.rev))

    def _check_phones(self, changed: list[Prepared]) -> None:
        """Refuse contacts given the phone number of another user's contact (:class:`WriteChecks`).

        The numbers held are those of contacts with an enabled account other than the writer's, as they will
        be after this write (a contact of the batch counts as written, not as stored). Only those contacts are
        read, through the indexed phone key, so a write without phones (a report) costs no query. The answer
        names the holder only when the writer may see it.
        """
        wanted = {p.id: p for p in changed if p.kind == CONTACT and not p.deleted and p.phone}
        if not wanted:
            return
        country = self.checks.country_code
        accounts = (select(users.c.contact_id)
                    .where(users.c.disabled.is_(False), users.c.contact_id.is_not(None)))
        if self.checks.writer is not None:
            accounts = accounts.where(users.c.username != self.checks.writer)
        numbers: dict[str, str] = {}  # holder contact id -> its number, as it will be after this write
        changed_ids = {p.id for p in changed}
        keys = sorted({p.phone for p in wanted.values() if p.phone})
        for chunk in _chunks(keys):
            for row in self.conn.execute(select(docs.c.id, docs.c.body).where(
                    docs.c.phone.in_(chunk), docs.c.kind == CONTACT, docs.c.deleted.is_(False),
                    docs.c.id.in_(accounts))):
                if row.id not in changed_ids:
                    numbers[row.id] = _phone_of(row.body)
        for chunk in _chunks(list(wanted)):
            owned: list[str] = list(self.conn.scalars(accounts.where(users.c.contact_id.in_(chunk))))
            numbers.update((contact_id, _phone_of(wanted[contact_id].body)) for contact_id in owned)
        by_key: dict[str, list[tuple[str, str]]] = {}  # only numbers with one key can be one phone
        for holder, held in numbers.items():
            key = phones.phone_key(held)
            if key is not None:
                by_key.setdefault(key, []).append((holder, held))
        holders: dict[str, set[str]] = {}
        for p in wanted.values():
            number = _phone_of(p.body)
            for holder, held in by_key.get(p.phone or "", []):
                if holder != p.id and phones.same_number(number, held, country):
                    holders.setdefault(p.id, set()).add(holder)
        if not holders:
            return
        before = self._stored_numbers(list(holders))
        seen = self._visible({h for found in holders.values() for h in found})
        for doc_id, found in holders.items():
            p = wanted[doc_id]
            number = _phone_of(p.body)
            if before.get(doc_id) and phones.same_number(number, before[doc_id], country):
                continue  # not given by this write: the contact had this number already
            named = sorted(found & seen)
            whose = f" ({', '.join(repr(h) for h in named)})" if named else ""
            self.problems.append(DocumentConflict(
                f"phone {number!r} is the number of another user's contact{whose}: SMS from it would be "
                "attributed to this contact; give it another number", doc_id=doc_id, field="phone", index=p.index))

    def _stored_numbers(self, ids: list[str]) -> dict[str, str]:
        """The phone numbers, as written, of the live stored contacts among ``ids``."""
        out: dict[str, str] = {}
        for chunk in _chunks(ids):
            for row in self.conn.execute(select(docs.c.id, docs.c.body).where(
                    docs.c.id.in_(chunk), docs.c.kind == CONTACT, docs.c.deleted.is_(False))):
                out[row.id] = _phone_of(row.body)
        return out

    def _visible(self, ids: set[str]) -> set[str]:
        """The ids among ``ids`` of stored documents in the writer's scope."""
        if self.scope.everything:
            return ids
        out: set[str] = set()
        for chunk in _chunks(sorted(ids)):
            out.update(self.conn.scalars(select(docs.c.id).where(docs.c.id.in_(chunk), visible(self.scope, docs))))
        return out

    def _check_scope(self, batch: list[Prepared]) -> set[str]:
        """Refuse the documents of ``batch`` that are outside the writer's scope; returns their ids.

        Called twice: on the documents as stored (an ``_id`` taken by another place's document) and on the
        documents as written (placed, or about a subject, elsewhere). Both refusals carry the same words, so
        the answer does not say which one applied, and with it whether the ``_id`` exists elsewhere. What is
        left is inherent (docs/api.md): an ``_id`` taken elsewhere is refused where a fresh one would be
        stored, since the alternative is overwriting another place's document.
        """
        ok: set[str] = set()
        for chunk in _chunks([p.id for p in batch]):
            ok.update(self.conn.scalars(select(docs.c.id).where(docs.c.id.in_(chunk), visible(self.scope, docs))))
        refused = [p for p in batch if p.id not in ok]
        for p in refused:
            self.problems.append(DocumentError(OUTSIDE_SCOPE, doc_id=p.id, field="_id", index=p.index))
        return {p.id for p in refused}


def _conflicts_of_acceptable(problems: list[DocumentError]) -> list[DocumentError]:
    """The problems without the conflicts of documents refused for something else.

    A document refused for what it is (placed outside the writer's place, say) is refused for that alone: its
    conflicts would tell more than the refusal does (a ``_rev`` sent with an ``_id`` unused here but taken by
    another place's deleted document would name that document's revision). Its conflicts are found again
    once it is otherwise acceptable, as problems found while writing come once a batch is well-formed.
    """
    refused = {p.index for p in problems if not isinstance(p, DocumentConflict)}
    return [p for p in problems if not (isinstance(p, DocumentConflict) and p.index in refused)]


def _phone_of(body: str) -> str:
    """The ``phone`` of a contact's JSON body, as written (``""`` for none)."""
    phone = orjson.loads(body).get("phone")
    return phone if isinstance(phone, str) else ""


def _username(user: Scoped) -> str | None:
    return user.username if isinstance(user, StoredUser) else None


def _update_by_id(table: Table) -> Update:
    """``UPDATE table SET every column WHERE id = ...`` for executemany with ``b_``-prefixed parameters."""
    return (update(table).where(table.c.id == bindparam("b_id"))
            .values({c.name: bindparam(f"b_{c.name}") for c in table.c if c.name != "id"}))


def _reroot_descendants(conn: Connection, contact_id: str) -> None:
    """Give every contact below ``contact_id`` the lineage ``contact_id`` now has above it."""
    below = doc_ancestors.alias("below")
    mine = doc_ancestors.alias("mine")
    # each descendant keeps its path up to contact_id; what was above contact_id goes
    depth_of_contact = (select(below.c.depth)
                        .where(below.c.doc_id == doc_ancestors.c.doc_id, below.c.ancestor_id == contact_id)
                        .scalar_subquery())
    descendants = select(below.c.doc_id).where(below.c.ancestor_id == contact_id, below.c.depth > 0)
    conn.execute(delete(doc_ancestors).where(doc_ancestors.c.doc_id.in_(descendants),
                                             doc_ancestors.c.depth > depth_of_contact))
    conn.execute(insert(doc_ancestors).from_select(
        ["doc_id", "ancestor_id", "depth"],
        select(below.c.doc_id, mine.c.ancestor_id, below.c.depth + mine.c.depth)
        .select_from(below.join(mine, and_(mine.c.doc_id == contact_id, mine.c.depth > 0)))
        .where(below.c.ancestor_id == contact_id, below.c.depth > 0)))


class DocTransaction:
    """What :meth:`Store.writing` yields: its connection, for the caller's own rows, and document writes in
    the same transaction (validated, scoped and logged as :meth:`Store.write_docs` does)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def write_docs(self, batch: Iterable[object], *, user: Scoped = None) -> list[WriteResult]:
        items = list(batch)
        prepared = _prepare_batch(items, documents.prepare)
        return _DocWriter(self.conn, resolve(user), len(items)).write(prepared) if prepared else []


def _lock_counter(conn: Connection, name: str) -> int:
    """Read a counter, holding its row lock to the end of the transaction (SQLite: the write lock is held
    since BEGIN IMMEDIATE). Writers are serialised, so sequence numbers are committed in order."""
    value = conn.scalar(select(counters.c.value).where(counters.c.name == name).with_for_update())
    return int(value or 0)


def _set_counter(conn: Connection, name: str, value: int) -> None:
    conn.execute(update(counters).where(counters.c.name == name).values(value=value))


# --------------------------------------------------------------------------------------------------------
# task documents


@dataclass
class _PreparedTask:
    id: str
    body: str
    content_hash: str
    user_id: str
    requester: str | None
    owner: str | None
    state: str | None
    emission_id: str | None
    due_date: str | None
    authored_on: int | None
    task_name: str | None = None  # supervision columns (migration 0007)
    title_key: str | None = None
    closed_at: int | None = None
    end_date: str | None = None  # emission.endDate: `on_time` needs the user's zone, known at the write


def _prepare_task(doc: object, index: int) -> _PreparedTask | DocumentError:
    if not isinstance(doc, dict):
        return DocumentError(f"a task document must be a JSON object, got {type(doc).__name__}", index=index)
    checked = documents.check_id(doc.get("_id"), index)
    if isinstance(checked, DocumentError):
        return checked
    if doc.get("type") != "task":
        return DocumentError("must be 'task'", doc_id=checked, field="type", index=index)
    user_id = doc.get("user")
    if not isinstance(user_id, str) or not user_id:
        return DocumentError("must name the user (org.couchdb.user:NAME)", doc_id=checked, field="user",
                             index=index)
    body = {k: v for k, v in doc.items() if k != "_rev"}
    try:
        text = documents.encode(body)
    except (orjson.JSONEncodeError, TypeError) as exc:
        return DocumentError(f"not representable as JSON: {exc}", doc_id=checked, index=index)
    emission = body.get("emission") if isinstance(body.get("emission"), dict) else {}
    assert isinstance(emission, dict)

    def text_or_none(value: object) -> str | None:
        return value if isinstance(value, str) else None

    return _PreparedTask(
        id=checked, body=text, content_hash=documents.content_hash(body), user_id=user_id,
        requester=text_or_none(body.get("requester")), owner=text_or_none(body.get("owner")),
        state=text_or_none(body.get("state")), emission_id=text_or_none(emission.get("_id")),
        due_date=text_or_none(emission.get("dueDate")), authored_on=documents.epoch_ms(body.get("authoredOn")),
        task_name=task_name_of(emission.get("_id")), title_key=text_or_none(emission.get("title")),
        closed_at=_closed_at(body), end_date=text_or_none(emission.get("endDate")),
    )


def _zones_of(conn: Connection, settings_ids: set[str]) -> dict[str, str]:
    """The zones of the users named (by settings id) that have one: `on_time` is judged in the user's zone."""
    names = [u.removeprefix("org.couchdb.user:") for u in settings_ids]
    out: dict[str, str] = {}
    for chunk in _chunks(names):
        for row in conn.execute(select(users.c.username, users.c.timezone)
                                .where(users.c.username.in_(chunk), users.c.timezone.is_not(None))):
            out[f"org.couchdb.user:{row.username}"] = row.timezone
    return out


def _closed_at(body: dict[str, Any]) -> int | None:
    """When a terminal task document reached its state: its last history entry (supervision reports count
    completions, failures and cancellations by it)."""
    history = body.get("stateHistory")
    if body.get("state") not in TERMINAL_STATES or not isinstance(history, list) or not history:
        return None
    last = history[-1]
    return documents.epoch_ms(last.get("timestamp")) if isinstance(last, dict) else None


def _chunks(items: Sequence[_T], size: int = CHUNK) -> Iterator[Sequence[_T]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


class _HasId(Protocol):
    id: str


_P = TypeVar("_P", bound=_HasId)


def _prepare_batch(
    items: list[object], prepare: Callable[[object, int], _P | DocumentError | list[DocumentError]],
) -> list[_P]:
    """Every item prepared, or :class:`DocumentBatchError` with every problem (repeated ids included):
    a batch is checked whole before anything is written."""
    prepared: list[_P] = []
    problems: list[DocumentError] = []
    first_at: dict[str, int] = {}
    for i, doc in enumerate(items):
        p = prepare(doc, i)
        if isinstance(p, DocumentError):
            problems.append(p)
        elif isinstance(p, list):
            problems.extend(p)
        elif p.id in first_at:
            problems.append(DocumentError(f"_id repeated in the batch (first at #{first_at[p.id]})",
                                          doc_id=p.id, field="_id", index=i))
        else:
            first_at[p.id] = i
            prepared.append(p)
    if problems:
        raise DocumentBatchError(problems, len(items))
    return prepared
