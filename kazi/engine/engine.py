"""The engine's one entry point: documents + program + user + now + zone -> emissions and task docs.

Pure: no clock (``now_ms`` is an argument), no zone of the machine (``tz`` is an argument), no
storage (documents in, documents out). The program is anything that can emit for containers (a
JavaScript runtime or Python definitions); storage and scheduling call this.

Incremental use: pass only the contacts, reports and task documents of the affected subjects (or
pass everything and name the ``subjects`` to recompute); the result for those subjects is what a
full recompute gives, because a container only ever sees its own contact, reports and tasks.
"""

from __future__ import annotations

import gc
import math
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from kazi.engine import dates, taskdocs
from kazi.engine.budget import Budget
from kazi.engine.containers import contact_subject_ids, is_contact, marshal
from kazi.errors import ConfigCodeError

Doc = dict[str, Any]
DEFAULT_BATCH = 400


class EmissionSource(Protocol):
    """A program's emitter."""

    def emit(
        self, containers: list[Doc], *, tz: str, now_ms: float, user: Doc | None, roles: list[str],
        collect: bool,
    ) -> tuple[list[Doc], list[ConfigCodeError]]: ...


class HasEmissionSource(Protocol):
    def emission_source(self, budget: Budget | None = None) -> EmissionSource: ...


@dataclass(frozen=True)
class User:
    """Who the tasks are for: CHT username, roles, and the user's contact with hydrated lineage."""

    name: str
    roles: Sequence[str] = ()
    contact: Doc | None = None

    @property
    def settings_id(self) -> str:
        """The user-settings doc id, part of every task doc id."""
        return f"org.couchdb.user:{self.name}"


@dataclass
class Result:
    """One computation: every emission, the task docs to write, and all task docs afterwards."""

    emissions: list[Doc]
    writes: list[Doc]
    task_docs: list[Doc]
    errors: list[ConfigCodeError] = field(default_factory=list)
    #: contact ids of the containers whose program code failed (their task documents were kept as they were);
    #: ``None`` among them: the computation failed as a whole and kept every task document
    failed: set[str | None] = field(default_factory=set)

    @property
    def ready(self) -> list[Doc]:
        """The Tasks tab: Ready docs, sorted as CHT sorts them."""
        return taskdocs.sort_for_tasks_tab([d for d in self.task_docs if d.get("state") == "Ready"])


def split_docs(docs: Iterable[Doc]) -> tuple[list[Doc], list[Doc], list[Doc]]:
    """(contacts, reports, task docs) of a mixed document list; other docs are ignored."""
    contacts: list[Doc] = []
    reports: list[Doc] = []
    tasks: list[Doc] = []
    for d in docs:
        t = d.get("type")
        if t == "task":
            tasks.append(d)
        elif t == "data_record":
            reports.append(d)
        elif is_contact(d):
            contacts.append(d)
    return contacts, reports, tasks


def emit(
    program: EmissionSource | HasEmissionSource, containers: list[Doc], *, user: User, now_ms: float, tz: str,
    collect_errors: bool = False, batch_size: int = DEFAULT_BATCH, budget: Budget | None = None,
) -> tuple[list[Doc], list[ConfigCodeError]]:
    """Emissions of containers (with local ``dueDate`` strings), batch by batch.

    With ``collect_errors`` a failure of the program as a whole (its top level, evaluated when a computation
    begins, or a spent ``budget``) is returned as an error that names no contact, and no later batch runs."""
    source: EmissionSource = (program.emission_source(budget) if hasattr(program, "emission_source")
                              else program)
    emissions: list[Doc] = []
    errors: list[ConfigCodeError] = []
    roles = list(user.roles)
    batches = [containers[i:i + batch_size] for i in range(0, len(containers), batch_size)]
    emit_many = getattr(source, "emit_many", None)
    if emit_many is not None:  # a source that can run batches concurrently (kazi.service.emission_pool)
        try:
            emissions, errors = emit_many(batches, tz=tz, now_ms=now_ms, user=user.contact, roles=roles,
                                          collect=collect_errors, budget=budget)
        except ConfigCodeError as exc:
            if not collect_errors:
                raise
            errors = [_whole(exc)]
        batches = []
    for batch in batches:
        try:
            out, errs = source.emit(batch, tz=tz, now_ms=now_ms, user=user.contact, roles=roles,
                                    collect=collect_errors)
        except ConfigCodeError as exc:
            if not collect_errors:
                raise
            errors.append(_whole(exc))
            break
        emissions.extend(out)
        errors.extend(errs)
        if any(e.contact_id is None for e in errs):
            break  # the computation failed as a whole: nothing of it is used
    for e in emissions:
        ms = e.get("dueDateMs")
        e["dueDate"] = None if ms is None or (isinstance(ms, float) and math.isnan(ms)) else \
            dates.local_date_str(float(ms), tz)
    return emissions, errors


def _whole(exc: ConfigCodeError) -> ConfigCodeError:
    """An error that stopped a whole batch (the program's top level): it names no container."""
    if exc.contact_id is not None:
        exc.details = {**exc.details, "contact_id": exc.contact_id}
        exc.contact_id = None
    return exc


def compute(
    program: EmissionSource | HasEmissionSource,
    *,
    docs: Iterable[Doc] = (),
    task_docs: Iterable[Doc] = (),
    user: User,
    now_ms: float,
    tz: str,
    subjects: Iterable[str] | None = None,
    untouched_task_docs: Iterable[Doc] = (),
    keyed_read: bool = False,
    collect_errors: bool = False,
    batch_size: int = DEFAULT_BATCH,
    budget: Budget | None = None,
) -> Result:
    """Run one refresh round for ``user`` at ``now_ms`` in zone ``tz``.

    ``docs`` are contacts and reports (task docs among them are treated as existing task docs too);
    ``task_docs`` are the user's existing task documents. With ``subjects``, only containers whose
    contact or subject id is listed are recomputed, and only their task docs are touched.
    ``untouched_task_docs`` are docs outside this round that only get the temporal update (CHT's
    ``fetchTasksFor`` does that for every open doc). ``keyed_read`` orders same-time reports as CHT's
    incremental refresh does (see :func:`kazi.engine.containers.marshal`).

    A container whose program code fails (``collect_errors``: a callback threw, overflowed the stack, or
    exceeded the time or memory limit) keeps its task documents as they were: its emissions are unknown, not
    empty, so nothing of it is cancelled, created or updated (only the calendar moves its documents'
    states, as for documents outside the round); ``Result.failed`` names those containers. An error that
    names no container (the program's top level failed, or ``budget`` was spent) keeps every document.
    """
    contacts, reports, tasks_in_docs = split_docs(docs)
    existing = list(task_docs) + tasks_in_docs
    existing = [t for t in existing if t.get("user") in (None, user.settings_id)] if existing else existing
    with _gc_paused():
        containers = marshal(contacts, reports, existing, keyed_read=keyed_read)
    if subjects is not None:
        wanted = set(subjects)
        containers = [c for c in containers if _container_ids(c) & wanted]
        existing = [t for c in containers for t in c["tasks"]]
    emissions, errors = emit(program, containers, user=user, now_ms=now_ms, tz=tz,
                             collect_errors=collect_errors, batch_size=batch_size, budget=budget)
    failed: set[str | None] = {e.contact_id for e in errors}
    kept: list[Doc] = []
    if None in failed:
        kept, existing, emissions = existing, [], []
    elif failed:
        held = {id(t) for c in containers if _container_key(c) in failed for t in c["tasks"]}
        kept = [t for t in existing if id(t) in held]
        existing = [t for t in existing if id(t) not in held]
        emissions = [e for e in emissions if _requester(e) not in failed]
    round_ = taskdocs.refresh(emissions, existing, user.settings_id, int(now_ms), tz)
    final, temporal = taskdocs.update_temporal_states([*round_.docs, *kept, *untouched_task_docs], int(now_ms), tz)
    writes = _merge_writes(round_.writes, temporal)
    return Result(emissions=emissions, writes=writes, task_docs=final, errors=errors, failed=failed)


def _container_key(c: Doc) -> Any:
    """What an error names a container by: its contact's ``_id`` (a headless container's subject)."""
    contact = c.get("contact")
    return contact.get("_id") if isinstance(contact, dict) else None


def _requester(emission: Doc) -> Any:
    return emission.get("requester")


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause automatic garbage collection while building containers.

    Marshalling a 50,000-household population allocates ~1M acyclic dicts and lists, which triggers
    repeated full collections over everything alive: half of the marshalling time (measured: 4.9 s ->
    2.1 s). Nothing built here is cyclic, so nothing is left for the collector; its state is restored.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _container_ids(c: Doc) -> set[str]:
    contact = c.get("contact")
    if not isinstance(contact, dict):
        return set()
    return set(contact_subject_ids(contact))


def _merge_writes(first: list[Doc], second: list[Doc]) -> list[Doc]:
    by_id: dict[str, Doc] = {}
    for d in first + second:
        by_id[d["_id"]] = d
    return list(by_id.values())
