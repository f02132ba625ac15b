"""Supervision reports' queries (docs/supervision.md): who the health workers under a place are, and their indicators'
counts by month, counted by the database on SQLite and PostgreSQL alike.

Why it scales: a report never reads a task document's JSON, and reads few rows. Whole months come from
``task_stats`` (:mod:`kazi.store.task_stats`, migration 0008): the task documents' events already summed per
worker, UTC month and task, kept up to date by every task-document write, so a district's 13 months are a row
per worker, month and task definition. A local month differs from the UTC month of the same name by a sliver
of a few hours at each end (the zone's offset); the slivers, and periods that are not whole months (the 30-day
window of a supervisor-task rule), are counted from ``task_docs`` itself through the covering indexes
``ix_task_docs_closed`` and ``ix_task_docs_generated`` (columns of migration 0007), which is exact and cheap
for a few hours. In both, each indicator is a ``SUM(CASE ...)`` column of one grouped query, with the
program's categories and states written into the ``CASE`` expressions; months are bucketed by bounds in epoch
ms computed in Python in the caller's zone, so no database time-zone function is needed (SQLite has none
worth the name). Counting every document of the range, as a first version did, grew with the history: for a
district's 13 months at 50,000 households its task counts took 4.4 times as long as these (SQLite; 2.5 times
on PostgreSQL), bench/SUPERVISION_RESULTS.md.

Reports by form are counted by submitter: the report's ``contact._id`` (``docs.contact_id``) is the worker's
contact (``users.contact_id``), from the covering index ``ix_docs_submitted`` (0008).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, TypeVar

import orjson
from sqlalchemy import ColumnElement, Table, and_, case, exists, false, func, literal, or_, select, true
from sqlalchemy.engine import Connection

from kazi.engine.taskdocs import CANCELLED, COMPLETED, FAILED, READY
from kazi.store import db
from kazi.store import task_stats as stats
from kazi.store.schema import REPORT, doc_ancestors, docs, task_docs, task_stats, users
from kazi.store.store import Store
from kazi.store.users import StoredUser
from kazi.supervision.definitions import SUPERVISOR_TASK_PREFIX, Supervision
from kazi.supervision.report import TOTAL, Counts

CHUNK = 500
USER_PREFIX = "org.couchdb.user:"
_T = TypeVar("_T")


def _chunks(items: Sequence[_T], size: int = CHUNK) -> Iterator[Sequence[_T]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def health_workers(store: Store, place_id: str, *, exclude: str | None = None) -> list[StoredUser]:
    """The health workers of a report on ``place_id``: enabled users whose place (``facility_id``) is at or
    under it and who hold at least one task document, by username; ``exclude`` (the caller) left out."""
    under = select(doc_ancestors.c.doc_id).where(doc_ancestors.c.ancestor_id == place_id)
    has_tasks = exists().where(task_docs.c.user_id == literal(USER_PREFIX) + users.c.username)
    query = (select(users.c.username)
             .where(users.c.disabled.is_(False), or_(users.c.facility_id == place_id, users.c.facility_id.in_(under)),
                    has_tasks)
             .order_by(users.c.username))
    if exclude is not None:
        query = query.where(users.c.username != exclude)
    with db.reader(store.engine).begin() as conn:
        names = {r.username for r in conn.execute(query)}
    # one query for the accounts (a district has hundreds of workers; one query each cost more than the counts)
    return [u for u in store.users.list_all(include_disabled=False) if u.username in names]


def doc_names(store: Store, ids: Iterable[str]) -> dict[str, str | None]:
    """The ``name`` of each stored, live document named (workers' contacts and places: a handful)."""
    wanted = list(dict.fromkeys(i for i in ids if i))
    out: dict[str, str | None] = {}
    with db.reader(store.engine).begin() as conn:
        for chunk in _chunks(wanted):
            for row in conn.execute(select(docs.c.id, docs.c.body)
                                    .where(docs.c.id.in_(chunk), docs.c.deleted.is_(False))):
                name = orjson.loads(row.body).get("name")
                out[row.id] = name if isinstance(name, str) else None
    return out


def _bucket(column: Any, bounds: Sequence[int]) -> ColumnElement[Any]:
    """The index of the month ``column`` (epoch ms) falls in: ``bounds`` are the months' starts and the end
    of the last (the rows are already restricted to ``bounds[0] <= column < bounds[-1]``)."""
    return case(*[(column < b, i) for i, b in enumerate(bounds[1:])], else_=len(bounds) - 2)


def _category_match(table: Table, supervision: Supervision, category: str | None) -> ColumnElement[bool]:
    """SQL: the row (``task_docs`` or ``task_stats``) is of ``category`` (by task name or title key); every
    task without one."""
    if category is None:
        return true()
    cat = supervision.categories[category]
    return or_(false(), *([table.c.task_name.in_(cat.tasks)] if cat.tasks else []),
               *([table.c.title_key.in_(cat.titles)] if cat.titles else []))


def _not_supervisor(table: Table) -> ColumnElement[bool]:
    """SQL: not a supervisor task (a supervisor's own tasks about workers are not a worker's performance)."""
    return or_(table.c.task_name.is_(None), table.c.task_name.not_like(f"{SUPERVISOR_TASK_PREFIX}%"))


_CLOSED_STATE = {"completed": COMPLETED, "failed": FAILED, "cancelled": CANCELLED}


def _closed_event(state: str) -> ColumnElement[bool]:
    """SQL: the terminal document is this state event (``completed_on_time``: Completed on time)."""
    if state == "completed_on_time":
        return and_(task_docs.c.state == COMPLETED, task_docs.c.on_time.is_(True))
    return task_docs.c.state == _CLOSED_STATE[state]


def _task_counts(conn: Connection, supervision: Supervision, settings_ids: Sequence[str], bounds: Sequence[int]
                 ) -> list[tuple[str, str, int, int]]:
    """(settings id, indicator id, period index, count) of the task indicators counted from ``task_docs``
    itself: one query by ``closed_at`` (completed, on time, failed, cancelled) and one by ``authored_on``
    (generated), each a row per worker and period with a ``SUM(CASE ...)`` column per indicator, from the
    covering indexes. What :func:`count_indicators` uses for the slivers at month bounds and for periods that
    are not whole months; its time grows with the documents of the range."""
    inds = [i for i in supervision.indicators if i.kind == "tasks"]
    lo, hi = bounds[0], bounds[-1]
    not_supervisor = _not_supervisor(task_docs)
    closed_cols: list[Any] = []
    closed_ids: list[str] = []
    made_cols: list[Any] = []
    made_ids: list[str] = []
    for ind in inds:
        cat = _category_match(task_docs, supervision, ind.category)
        events = [s for s in ind.states if s != "generated"]
        if events:
            total = sum((case((and_(cat, _closed_event(e)), 1), else_=0) for e in events), literal(0))
            closed_cols.append(func.sum(total).label(f"c{len(closed_cols)}"))
            closed_ids.append(ind.id)
        if "generated" in ind.states:
            made_cols.append(func.sum(case((cat, 1), else_=0)).label(f"c{len(made_cols)}"))
            made_ids.append(ind.id)
    out: list[tuple[str, str, int, int]] = []
    for chunk in _chunks(list(settings_ids)):
        for at, cols, ids in ((task_docs.c.closed_at, closed_cols, closed_ids),
                              (task_docs.c.authored_on, made_cols, made_ids)):
            if not cols:
                continue
            bucket = _bucket(at, bounds).label("period")
            query = (select(task_docs.c.user_id, bucket, *cols)
                     .where(task_docs.c.user_id.in_(chunk), at >= lo, at < hi, not_supervisor)
                     .group_by(task_docs.c.user_id, bucket))
            for row in conn.execute(query):
                out.extend((row[0], iid, int(row[1]), int(n)) for iid, n in zip(ids, row[2:], strict=True) if n)
    return out


def _month_counts(conn: Connection, supervision: Supervision, settings_ids: Sequence[str], plan: stats.Plan
                  ) -> Iterator[tuple[str, str, int, int]]:
    """(settings id, indicator id, period index, count) of the task indicators over the whole UTC months of
    ``plan``, from ``task_stats``: one query, a row per worker and period, a ``SUM(CASE ...)`` column per
    indicator over the rows of its task names and title keys."""
    span = plan.month_range
    if span is None:
        return
    inds = [i for i in supervision.indicators if i.kind == "tasks"]
    cols: list[Any] = []
    for n, ind in enumerate(inds):
        events = sum((task_stats.c[s] for s in ind.states), literal(0))  # the states name its columns
        cols.append(func.sum(case((_category_match(task_stats, supervision, ind.category), events), else_=0))
                    .label(f"c{n}"))
    period = case(*[(task_stats.c.month < until, p) for until, p in plan.month_steps()], else_=-1).label("period")
    for chunk in _chunks(list(settings_ids)):
        query = (select(task_stats.c.user_id, period, *cols)
                 .where(task_stats.c.user_id.in_(chunk), task_stats.c.month >= span[0], task_stats.c.month < span[1],
                        _not_supervisor(task_stats))
                 .group_by(task_stats.c.user_id, period))
        for row in conn.execute(query):
            user_id, k = row[0], int(row[1])
            if k >= 0:
                yield from ((user_id, ind.id, k, int(n)) for ind, n in zip(inds, row[2:], strict=True) if n)


def _indicator_task_counts(conn: Connection, supervision: Supervision, settings_ids: Sequence[str],
                           bounds: Sequence[int]) -> Iterator[tuple[str, str, int, int]]:
    """(settings id, indicator id, period index, signed count) whose sums per period are the counts of
    ``task_docs`` in each period ``[bounds[k], bounds[k+1])``: whole UTC months from ``task_stats``, the slivers
    between them and the periods' bounds (and periods that are not whole months) from ``task_docs``
    (:func:`kazi.store.task_stats.plan`)."""
    plan = stats.plan(bounds)
    yield from _month_counts(conn, supervision, settings_ids, plan)
    for (lo, hi), targets in plan.exact.items():
        for settings_id, iid, _, n in _task_counts(conn, supervision, settings_ids, [lo, hi]):
            for period, sign in targets:
                yield settings_id, iid, period, sign * n


def _report_rows(conn: Connection, contact_ids: Sequence[str], forms: Sequence[str], bounds: Sequence[int]
                 ) -> list[tuple[str, str, int, int]]:
    """(submitter contact, form, month index, count) of the live reports of ``forms`` in the range, from the
    covering index ``ix_docs_submitted``.

    The documents are grouped by ``kind`` and ``deleted`` too, and those that are not live reports dropped
    here, rather than filtered in ``WHERE``: with ``kind = 'report'`` there, SQLite's planner took the
    ``kind`` index (its sampled statistics, ``analysis_limit``, make it look selective) and read every report's
    row, twice as slow at a district's 13 months."""
    if not forms or not contact_ids:
        return []
    bucket = _bucket(docs.c.reported_date, bounds).label("period")
    out: list[tuple[str, str, int, int]] = []
    for chunk in _chunks(list(contact_ids)):
        query = (select(docs.c.contact_id, docs.c.form, bucket, docs.c.kind, docs.c.deleted, func.count().label("n"))
                 .where(docs.c.form.in_(list(forms)), docs.c.contact_id.in_(chunk),
                        docs.c.reported_date >= bounds[0], docs.c.reported_date < bounds[-1])
                 .group_by(docs.c.contact_id, docs.c.form, bucket, docs.c.kind, docs.c.deleted))
        out.extend((r[0], r[1], int(r[2]), int(r[5])) for r in conn.execute(query) if r[3] == REPORT and not r[4])
    return out


def count_indicators(store: Store, supervision: Supervision, workers: Sequence[StoredUser],
                     bounds: Sequence[int], keys: Sequence[str]) -> Counts:
    """The count indicators of each worker (by username) per month key and TOTAL: ``bounds`` are the
    months' starts in epoch ms and the end of the last, ``keys`` the months' keys."""
    sums: dict[tuple[str, str, int], int] = defaultdict(int)  # (username, indicator, period)
    report_inds = [i for i in supervision.indicators if i.kind == "reports"]
    by_contact = {w.contact_id: w.username for w in workers if w.contact_id}
    with db.reader(store.engine).begin() as conn:  # one snapshot (PostgreSQL: REPEATABLE READ) for every count
        if workers and any(i.kind == "tasks" for i in supervision.indicators):
            by_settings = {w.settings_id: w.username for w in workers}
            for settings_id, iid, period, n in _indicator_task_counts(conn, supervision, list(by_settings), bounds):
                sums[by_settings[settings_id], iid, period] += n
        if report_inds and by_contact:
            for contact_id, form, period, n in _report_rows(conn, list(by_contact), supervision.report_forms,
                                                            bounds):
                for ind in report_inds:
                    if form in ind.forms:
                        sums[by_contact[contact_id], ind.id, period] += n
    counts: Counts = {w.username: {} for w in workers}
    for (user, iid, period), n in sums.items():
        by_key = counts[user].setdefault(iid, {})
        by_key[keys[period]] = by_key.get(keys[period], 0) + n
        by_key[TOTAL] = by_key.get(TOTAL, 0) + n
    return counts


def overdue_counts(store: Store, workers: Sequence[StoredUser], today_of: dict[str, str]) -> dict[str, int]:
    """Each worker's overdue tasks now: Ready with a due date before their local today (``today_of`` by
    username)."""
    out = {w.username: 0 for w in workers}
    with db.reader(store.engine).begin() as conn:
        for w in workers:
            n = conn.scalar(select(func.count()).select_from(task_docs)
                            .where(task_docs.c.user_id == w.settings_id, task_docs.c.state == READY,
                                   task_docs.c.due_date < today_of[w.username]))
            out[w.username] = int(n or 0)
    return out


def worker_tasks(store: Store, worker: StoredUser, *, overdue_before: str | None, failed: bool,
                 closed_from: int | None = None, closed_to: int | None = None) -> list[dict[str, Any]]:
    """A worker's task documents that are overdue (Ready, due before ``overdue_before``) and/or Failed (closed
    in ``[closed_from, closed_to)`` when given), newest first (by due date, then authoring)."""
    wanted: list[ColumnElement[bool]] = []
    if overdue_before is not None:
        wanted.append(and_(task_docs.c.state == READY, task_docs.c.due_date < overdue_before))
    if failed:
        cond = task_docs.c.state == FAILED
        if closed_from is not None:
            cond = and_(cond, task_docs.c.closed_at >= closed_from)
        if closed_to is not None:
            cond = and_(cond, task_docs.c.closed_at < closed_to)
        wanted.append(cond)
    if not wanted:
        return []
    query = (select(task_docs.c.body).where(task_docs.c.user_id == worker.settings_id, or_(*wanted))
             .order_by(task_docs.c.due_date.desc().nulls_last(), task_docs.c.authored_on.desc(), task_docs.c.id))
    with db.reader(store.engine).begin() as conn:
        return [orjson.loads(r.body) for r in conn.execute(query)]


def supervisor_task_docs(store: Store, settings_id: str) -> list[dict[str, Any]]:
    """A user's task documents of supervisor tasks (task name ``supervisor:<rule>``), every state."""
    query = (select(task_docs.c.body)
             .where(task_docs.c.user_id == settings_id, task_docs.c.task_name.like(f"{SUPERVISOR_TASK_PREFIX}%"))
             .order_by(task_docs.c.seq))
    with db.reader(store.engine).begin() as conn:
        return [orjson.loads(r.body) for r in conn.execute(query)]


def followups(store: Store, contact_ids: Sequence[str], forms: Sequence[str], since_ms: int
              ) -> dict[str, list[tuple[str, int]]]:
    """``(form, reported_date)`` of the live reports of ``forms`` about each contact (their subject is the
    contact's ``_id``) reported at or after ``since_ms``."""
    out: dict[str, list[tuple[str, int]]] = {}
    if not contact_ids or not forms:
        return out
    with db.reader(store.engine).begin() as conn:
        for chunk in _chunks(list(contact_ids)):
            query = (select(docs.c.subject, docs.c.form, docs.c.reported_date)
                     .where(docs.c.kind == REPORT, docs.c.deleted.is_(False), docs.c.subject.in_(chunk),
                            docs.c.form.in_(list(forms)), docs.c.reported_date >= since_ms))
            for row in conn.execute(query):
                out.setdefault(row.subject, []).append((row.form, int(row.reported_date)))
    return out
