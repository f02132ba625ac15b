"""Supervisor tasks driven by workers' performance (docs/supervision.md, "Supervisor tasks"), pure: indicator
values in, emissions out.

A program rule (``supervision.supervisor_tasks``, :class:`~kazi.supervision.definitions.SupervisorTask`) says:
when a worker's indicator over the last ``window_days`` is above / below a threshold, the supervisors holding
``permission`` get a task about that worker, whose action opens ``form``. This module builds those tasks as
emissions in the engine's format (``docs/architecture.md``), so :func:`kazi.engine.taskdocs.refresh` turns them
into task documents with states and histories like any other task; the values come in as arguments (the
server reads them from the store), which keeps this module, like the engine, free of I/O and clocks.

Each rule works in cycles of ``window_days`` local days counted from 1970-01-01: within a cycle a worker gets
at most one task per rule, due on the cycle's first day and open until its last (then Failed, as any task
whose window closed). The task resolves (Completed) when a report of the rule's form about the worker's
contact is submitted after the task appeared. A worker whose value is no longer past the threshold has their
open task cancelled (the emission is gone), as CHT does for any task whose ``appliesIf`` stopped holding.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from kazi.supervision.definitions import SupervisorTask
from kazi.supervision.report import local_date, local_midnight_ms

_EPOCH = date(1970, 1, 1)


@dataclass(frozen=True)
class Worker:
    """A worker as a rule sees them: their contact (the task's subject) and their values over the window."""

    username: str
    contact_id: str
    contact_name: str | None
    values: Mapping[str, float | None] = field(default_factory=dict)  # indicator id (or overdue_tasks) -> value


def cycle_start(today: date, window_days: int) -> date:
    """The first day of the ``window_days``-long cycle ``today`` is in."""
    return _EPOCH + timedelta(days=(today - _EPOCH).days // window_days * window_days)


def emission_id(rule: SupervisorTask, contact_id: str, start: date) -> str:
    """``<worker contact>~<cycle start>~supervisor:<rule id>``: the engine's shape, the task name last."""
    return f"{contact_id}~{start.isoformat()}~{rule.task_name}"


def emissions(
    rules: Sequence[SupervisorTask], workers: Mapping[str, Sequence[Worker]], followups: Mapping[str, Sequence[
        tuple[str, int]]], existing: Sequence[Mapping[str, Any]], *, now_ms: int, tz: str,
) -> list[dict[str, Any]]:
    """The supervisor's emissions at ``now_ms`` in zone ``tz``.

    ``workers``: by rule id, the workers with their values over that rule's window; ``followups``: by worker
    contact id, ``(form, reported_date ms)`` of the reports about them; ``existing``: the supervisor's task
    documents of supervisor tasks (a task resolves with a follow-up submitted after its document's
    ``authoredOn``).
    """
    authored: dict[str, float] = {}
    for doc in existing:
        em = doc.get("emission")
        eid = em.get("_id") if isinstance(em, Mapping) else None
        when = doc.get("authoredOn")
        if isinstance(eid, str) and isinstance(when, (int, float)):
            authored[eid] = max(authored.get(eid, when), when)  # the newest document of the emission
    today = local_date(now_ms, tz)
    out: list[dict[str, Any]] = []
    for rule in rules:
        start = cycle_start(today, rule.window_days)
        due_ms = local_midnight_ms(start, tz)
        for w in workers.get(rule.id, ()):
            value = w.values.get(rule.indicator)
            if not rule.crossed(value):
                continue
            eid = emission_id(rule, w.contact_id, start)
            since = authored.get(eid)
            resolved = since is not None and any(form == rule.form and at >= since
                                                 for form, at in followups.get(w.contact_id, ()))
            content = {"source": "task", "source_id": w.contact_id, "worker": w.username,
                       "indicator": rule.indicator, "value": "" if value is None else f"{value:g}",
                       "contact": w.contact_id}
            emission: dict[str, Any] = {
                "_id": eid, "requester": w.contact_id,
                "contact": {"_id": w.contact_id, **({"name": w.contact_name} if w.contact_name else {})},
                "title": rule.title, "dueDate": start.isoformat(), "dueDateMs": due_ms,
                "readyStart": 0, "readyEnd": rule.window_days - 1, "resolved": resolved, "deleted": False,
                "actions": [{"type": "report", "form": rule.form, "label": rule.action_label or rule.title,
                             "content": content}],
                "_k_resolved_raw": resolved,
            }
            if rule.priority:
                emission["priority"] = rule.priority
                if rule.priority_label:
                    emission["priorityLabel"] = rule.priority_label
            out.append(emission)
    return out
