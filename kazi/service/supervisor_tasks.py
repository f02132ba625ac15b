"""Supervisor tasks in the server's task computation (docs/supervision.md, "Supervisor tasks"): read the values,
emit, refresh.

:class:`~kazi.service.tasks.TaskService` calls :func:`refresh_supervisor_tasks` after it computed a user
(a full recompute, an incremental round, a new day) whenever the program defines supervisor tasks. The
rules' emissions (:mod:`kazi.supervision.tasks`, pure) go through the same
:func:`kazi.engine.taskdocs.refresh` as every task, against the user's supervisor-task documents only (task
name ``supervisor:<rule>``): their emission ids never mix with the program's, so the groups refresh works
on are complete, and the engine's own rounds leave these documents out (:func:`is_supervisor_doc`).

When it runs, hence its latency: a supervisor is computed when a change under their place concerns them
(a worker's report about a client under the supervisor's place, the follow-up report they submit) and at
their local midnight; the values are read from the store as it is then. A worker's task that turns Failed
at midnight is counted at the supervisor's next computation (the supervisor's own midnight round, or the
next change under their place): at most a day. A worker's tasks written in the same round after the
supervisor's computation are counted at the next one.

Which workers a rule looks at: the health workers of the supervisor's place (as the reports define them)
who do not hold the rule's permission themselves (supervisors are not each other's subjects), with a
contact (the task's subject).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from kazi.engine import taskdocs
from kazi.engine.permissions import has_permissions
from kazi.program.loader import Program
from kazi.store import Store, StoredUser
from kazi.store import supervision as stored
from kazi.supervision import report as rep
from kazi.supervision.definitions import MAX_WINDOW_DAYS, OVERDUE, SUPERVISOR_TASK_PREFIX, SupervisorTask, task_name_of
from kazi.supervision.tasks import Worker, emissions

DAY_MS = 86_400_000


def is_supervisor_doc(doc: Mapping[str, Any]) -> bool:
    """A task document of a supervisor task (kept out of the engine's rounds)."""
    emission = doc.get("emission")
    name = task_name_of(emission.get("_id")) if isinstance(emission, Mapping) else None
    return name is not None and name.startswith(SUPERVISOR_TASK_PREFIX)


def rules_for(program: Program, user: StoredUser) -> list[SupervisorTask]:
    """The program's supervisor-task rules whose permission the user's roles hold."""
    return [r for r in program.supervision.supervisor_tasks
            if has_permissions(r.permission, list(user.roles), program.settings)]


def refresh_supervisor_tasks(store: Store, program: Program, user: StoredUser, *, now_ms: int, tz: str,
                             tz_of: Callable[[StoredUser], str]) -> list[dict[str, Any]]:
    """The task documents to write for ``user``'s supervisor tasks at ``now_ms`` (an empty list when the
    program has no rule for them and they hold no open supervisor task)."""
    existing = stored.supervisor_task_docs(store, user.settings_id)
    rules = rules_for(program, user) if user.facility_id else []
    if not rules and not any(not taskdocs.is_terminal(d.get("state")) for d in existing):
        return []
    workers: dict[str, list[Worker]] = {}
    contacts: list[str] = []
    if rules:
        assert user.facility_id is not None
        team = [w for w in stored.health_workers(store, user.facility_id, exclude=user.username) if w.contact_id]
        names = stored.doc_names(store, [w.contact_id or "" for w in team])
        overdue = (stored.overdue_counts(store, team, {w.username: rep.local_date(now_ms, tz_of(w)).isoformat()
                                                       for w in team})
                   if any(r.indicator == OVERDUE for r in rules) else {})
        for window in sorted({r.window_days for r in rules}):
            bounds = [now_ms - window * DAY_MS, now_ms + 1]
            counts = stored.count_indicators(store, program.supervision, team, bounds, ["window"])
            for rule in (r for r in rules if r.window_days == window):
                subjects = [w for w in team if not has_permissions(rule.permission, list(w.roles), program.settings)]
                workers[rule.id] = []
                for w in subjects:
                    values: dict[str, float | None] = {
                        iid: v[rep.TOTAL] for iid, v in rep.values_of(program.supervision, counts[w.username],
                                                                     [rep.TOTAL]).items()}
                    values[OVERDUE] = float(overdue.get(w.username, 0))
                    assert w.contact_id is not None
                    workers[rule.id].append(Worker(w.username, w.contact_id, names.get(w.contact_id), values))
        contacts = sorted({w.contact_id for ws in workers.values() for w in ws})
    # a follow-up counts for the documents of the current cycles only (at most MAX_WINDOW_DAYS old)
    horizon = now_ms - (MAX_WINDOW_DAYS + 1) * DAY_MS
    recent = [int(d["authoredOn"]) for d in existing if isinstance(d.get("authoredOn"), int)
              and d["authoredOn"] >= horizon]
    found = stored.followups(store, contacts, sorted({r.form for r in rules}), min(recent, default=now_ms))
    out = emissions(rules, workers, found, existing, now_ms=now_ms, tz=tz)
    # a task of a past cycle is no longer emitted: it fails when its window has closed (the temporal update,
    # first) rather than being cancelled by the refresh as an emission that vanished
    aged, failed = taskdocs.update_temporal_states(existing, now_ms, tz)
    writes = {d["_id"]: d for d in failed}
    writes.update((d["_id"], d) for d in taskdocs.refresh(out, aged, user.settings_id, now_ms, tz).writes)
    return list(writes.values())
