"""Task interaction summaries in the store (table ``interaction_summaries``, migration 0004).

What a phone sends may arrive twice (a retry after a lost answer, a second sync) or, after a bug or a restored
backup, arrive again under the same id with other content. Neither may lose or double anything:

* the **same content again** (compared by a hash of its canonical JSON, so key order does not matter) is
  stored once: :func:`save_summaries` answers ``unchanged`` with the stored row;
* **other content under an id already stored** is kept beside the first as a numbered conflict
  (``conflict`` 1, 2, ...; the first received is 0) and answered ``conflict``: nothing is overwritten, so an
  analyst can look at both (CHT saves such a document as ``<_id>-conflicted-<time>``).
* **conflicts are capped** (:class:`InteractionLimits`, ``KAZI_INTERACTION_MAX_CONFLICTS``, 20 by default): a
  real device makes one or two (a restored backup, a bug), while a client sending endless variants of one
  summary would otherwise grow the table, and every analyst's read of that day, without bound. A summary
  beyond the cap is refused (:class:`TooManyConflicts`) and nothing of its batch is stored.

A batch is one transaction: every summary of it is stored, or none. Two unique indexes, ``(id, conflict)``
and ``(id, content_hash)``, make concurrent writers of the same id safe on PostgreSQL too: the loser of a race
fails its insert and retries the whole batch, and then sees the winner's row.

Analysts read summaries within their scope: those of users whose place (``facility_id``) is at or under one
of the analyst's places (the store's closure table answers it in one lookup), everything for administrators
and national users, nothing for a user without a place.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import orjson
from sqlalchemy import ColumnElement, Select, and_, func, insert, select, true
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from kazi.analytics.summary import SummaryInfo, content_hash
from kazi.errors import KaziError
from kazi.store import db
from kazi.store.schema import doc_ancestors, interaction_summaries, users
from kazi.store.scope import Scope
from kazi.store.store import Store

SaveStatus = Literal["created", "unchanged", "conflict"]
#: attempts at a batch that lost a race to a concurrent writer of the same summary id
_ATTEMPTS: Final = 3
_T = interaction_summaries
#: the environment variable of :attr:`InteractionLimits.max_conflicts`
MAX_CONFLICTS_ENV: Final = "KAZI_INTERACTION_MAX_CONFLICTS"


@dataclass(frozen=True)
class InteractionLimits:
    """Tunable limits of the interaction store (one place, so ``create_app`` and the CLI can pass them)."""

    #: conflicting versions kept per summary ``_id`` beside the first one received (0: none)
    max_conflicts: int = 20

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> InteractionLimits:
        """The limits from the environment (``KAZI_INTERACTION_MAX_CONFLICTS``), the defaults otherwise."""
        env = os.environ if environ is None else environ
        raw = env.get(MAX_CONFLICTS_ENV)
        if raw is None or not raw.strip():
            return cls()
        try:
            value = int(raw)
        except ValueError:
            value = -1
        if value < 0:
            raise ValueError(f"{MAX_CONFLICTS_ENV}={raw!r}: give a whole number of conflicting versions kept "
                             "per interaction summary, 0 or more")
        return cls(max_conflicts=value)


class TooManyConflicts(KaziError):
    """Summaries of a batch that would add a conflicting version beyond the cap; nothing of the batch was
    stored. ``refused`` holds ``(index in the batch, summary _id)``."""

    def __init__(self, refused: list[tuple[int, str]], max_conflicts: int) -> None:
        self.refused = refused
        self.max_conflicts = max_conflicts
        index, doc_id = refused[0]
        super().__init__(f"[{index}] {doc_id!r}: {max_conflicts} conflicting versions of this summary are already "
                         "stored, the most kept; this other content is refused (send the summary as first stored "
                         "to get `unchanged`)")


@dataclass(frozen=True)
class Saved:
    """What became of one summary sent: ``created`` (new id), ``unchanged`` (this content was already
    stored) or ``conflict`` (stored beside other content under the same id, as number ``conflict``)."""

    id: str
    status: SaveStatus
    seq: int
    conflict: int


@dataclass(frozen=True)
class StoredSummary:
    """One stored summary version, with its body (``None`` when not asked for)."""

    seq: int
    id: str
    conflict: int
    username: str
    device_id: str
    day: str
    app_version: str
    events: int
    dropped: int
    received_at: int
    body: dict[str, Any] | None

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "body"}
        if self.body is not None:
            out["summary"] = self.body
        return out


def save_summaries(store: Store, summaries: Sequence[tuple[SummaryInfo, Mapping[str, Any]]], *,
                   received_at: int, limits: InteractionLimits | None = None) -> list[Saved]:
    """Store validated summaries (``(info, summary)`` pairs), all or none; one :class:`Saved` each, in order.
    :class:`TooManyConflicts` (nothing stored) when one would add a conflict beyond ``limits.max_conflicts``."""
    cap = (limits or InteractionLimits()).max_conflicts
    for attempt in range(_ATTEMPTS):
        try:
            with db.writer(store.engine).begin() as conn:
                saved = [_save_one(conn, info, body, received_at, cap) for info, body in summaries]
                refused = [(i, s.id) for i, s in enumerate(saved) if s.conflict > cap]
                if refused:
                    raise TooManyConflicts(refused, cap)  # leaving the block rolls the whole batch back
                return saved
        except IntegrityError:
            if attempt == _ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def _save_one(conn: Connection, info: SummaryInfo, body: Mapping[str, Any], received_at: int, cap: int) -> Saved:
    digest = content_hash(body)
    stored = conn.execute(select(_T.c.seq, _T.c.conflict, _T.c.content_hash).where(_T.c.id == info.id)).all()
    for row in stored:
        if row.content_hash == digest:
            return Saved(info.id, "unchanged", row.seq, row.conflict)
    conflict = max((row.conflict for row in stored), default=-1) + 1
    if conflict > cap:
        return Saved(info.id, "conflict", 0, conflict)  # refused by the caller: nothing inserted
    result = conn.execute(insert(_T).values(
        id=info.id, conflict=conflict, username=info.user, device_id=info.device_id, day=info.date,
        app_version=info.version, events=info.events, dropped=info.dropped, content_hash=digest,
        body=orjson.dumps(body).decode(), received_at=received_at))
    key = result.inserted_primary_key
    assert key is not None
    seq = int(key[0])
    return Saved(info.id, "conflict" if conflict else "created", seq, conflict)


def _users_under(places: Sequence[str]) -> Select[tuple[str]]:
    """Usernames of the accounts whose place is at or under one of ``places``."""
    return (select(users.c.username)
            .join(doc_ancestors, doc_ancestors.c.doc_id == users.c.facility_id)
            .where(doc_ancestors.c.ancestor_id.in_(places)))


def _where(scope: Scope, *, date_from: str | None, date_to: str | None, places: Sequence[str],
           usernames: Sequence[str]) -> ColumnElement[bool]:
    conditions: list[ColumnElement[bool]] = []
    if not scope.everything:
        conditions.append(_T.c.username.in_(_users_under(scope.places)))
    if places:
        conditions.append(_T.c.username.in_(_users_under(places)))
    if usernames:
        conditions.append(_T.c.username.in_(usernames))
    if date_from is not None:
        conditions.append(_T.c.day >= date_from)
    if date_to is not None:
        conditions.append(_T.c.day <= date_to)
    return and_(true(), *conditions)


def find_summaries(store: Store, scope: Scope, *, date_from: str | None = None, date_to: str | None = None,
                   places: Sequence[str] = (), usernames: Sequence[str] = (), with_body: bool = True,
                   limit: int | None = None, offset: int = 0) -> list[StoredSummary]:
    """Stored summary versions within ``scope`` (see the module docstring), of users at or under ``places``
    and among ``usernames`` when given, with ``date_from <= day <= date_to``; ordered by day, user, device,
    then arrival. Every conflicting version is listed."""
    if scope.empty:
        return []
    columns = [_T.c.seq, _T.c.id, _T.c.conflict, _T.c.username, _T.c.device_id, _T.c.day, _T.c.app_version,
               _T.c.events, _T.c.dropped, _T.c.received_at] + ([_T.c.body] if with_body else [])
    query = (select(*columns)
             .where(_where(scope, date_from=date_from, date_to=date_to, places=places, usernames=usernames))
             .order_by(_T.c.day, _T.c.username, _T.c.device_id, _T.c.id, _T.c.conflict)
             .limit(limit).offset(offset))
    with db.reader(store.engine).begin() as conn:
        rows = conn.execute(query).all()
    return [StoredSummary(r.seq, r.id, r.conflict, r.username, r.device_id, r.day, r.app_version, r.events,
                          r.dropped, r.received_at, orjson.loads(r.body) if with_body else None) for r in rows]


def count_summaries(store: Store, scope: Scope, *, date_from: str | None = None, date_to: str | None = None,
                    places: Sequence[str] = (), usernames: Sequence[str] = ()) -> int:
    """How many versions :func:`find_summaries` would list without a limit."""
    if scope.empty:
        return 0
    query = select(func.count()).select_from(_T).where(
        _where(scope, date_from=date_from, date_to=date_to, places=places, usernames=usernames))
    with db.reader(store.engine).begin() as conn:
        return int(conn.execute(query).scalar_one())
