"""Runner for the conformance suite: cases computed by CHT's own code, replayed through Kazi.

A case is a device database replayed step by step (docs added and removed, the clock set, one
refresh round). To compare with CHT, the runner reproduces what CHT's device loads in each round
(:class:`DeviceScope`): after the first, full, round CHT refreshes only "dirty" or expired ids and
loads only the task docs of those requesters, which is observable (a report that moves from a
headless subject to a contact leaves the old doc untouched until the old id expires).

Two deliberate deviations from CHT are accepted as passes and reported as such: a task doc whose
emission had a ``contactLabel`` keeps ``owner`` (fix of CHT bug #7677), and a contact task on a
``deleted`` contact does not crash.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kazi.engine.containers import (
    contact_subject_ids,
    is_contact,
    report_subject_id,
)
from kazi.engine.dates import local_fields, make_local
from kazi.engine.engine import User, compute
from kazi.errors import KaziError
from kazi.program.loader import Program, load_program

Doc = dict[str, Any]
EXPIRE_AFTER_MS = 7 * 24 * 60 * 60 * 1000  # rules-state-store EXPIRE_CALCULATION_AFTER_MS


class DeviceScope:
    """Which ids a CHT device refreshes in a round (rules-state-store freshness, reference 7.8)."""

    def __init__(self, tz: str) -> None:
        self.tz = tz
        self.tracked: dict[Any, tuple[float, float]] = {}  # id -> (calculatedAt, expireAt)

    def _interval_end(self, now: float) -> float:
        # The reporting interval with the default month start: the end of the local calendar month.
        y, m0, *_ = local_fields(now, self.tz)
        return make_local(y, m0 + 1, 1, tz=self.tz) - 1

    def round_ids(self, now: float, dirty: set[Any]) -> set[Any] | None:
        """Ids refreshed at ``now`` (``None``: the first round, a full refresh), then marked fresh."""
        if not self.tracked:
            refreshed: set[Any] | None = None
            fresh = dirty
        else:
            stale = {i for i, (calc, expire) in self.tracked.items() if calc > now or expire < now}
            refreshed = fresh = dirty | stale
        expire_at = min(self._interval_end(now), now + EXPIRE_AFTER_MS)
        for i in fresh:
            self.tracked[i] = (now, expire_at)
        return refreshed


def dirty_ids(db: dict[str, Doc], removed: list[Doc]) -> set[Any]:
    """What the case driver marks dirty: every contact and report subject (short codes resolved to
    contact ids), those of docs removed in this step included."""
    contacts = [d for d in db.values() if is_contact(d)]
    ids: set[Any] = {c["_id"] for c in contacts}
    ids.update(d["_id"] for d in removed if is_contact(d))
    by_code: dict[Any, str] = {}
    for c in contacts:
        for sid in contact_subject_ids(c)[1:]:
            by_code.setdefault(sid, c["_id"])
    for d in [*db.values(), *removed]:
        if d.get("type") == "data_record" and d.get("form"):
            subject = report_subject_id(d)
            if subject:
                ids.add(subject if subject in ids else by_code.get(subject, subject))
    return ids


@dataclass
class StepOutcome:
    index: int
    now: str
    problems: list[str] = field(default_factory=list)
    deviations: list[str] = field(default_factory=list)


@dataclass
class CaseOutcome:
    id: str
    path: Path
    steps: list[StepOutcome] = field(default_factory=list)
    error: str | None = None

    @property
    def passed(self) -> bool:
        return self.error is None and all(not s.problems for s in self.steps)

    @property
    def deviations(self) -> list[str]:
        return [d for s in self.steps for d in s.deviations]


def find_config(case_path: Path, config: str) -> Path:
    """The case's config folder: ``config`` is relative to the suite root, the nearest ancestor of
    the case file that holds it."""
    for parent in case_path.resolve().parents:
        candidate = parent / config
        if candidate.is_dir():
            return candidate
    raise KaziError(f"{case_path}: config {config!r} not found in any parent folder")


def iter_cases(cases_dir: Path) -> Iterator[Path]:
    """Case files under a folder (or the file itself), in name order; index.json is not a case."""
    if cases_dir.is_file():
        yield cases_dir
        return
    for p in sorted(cases_dir.rglob("*.json")):
        if p.name != "index.json":
            yield p


def _canon(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _public(emission: Doc) -> Doc:
    return {k: v for k, v in emission.items() if not k.startswith("_k_")}


def _compare_docs(got: dict[str, Doc], want: dict[str, Doc], step: StepOutcome) -> None:
    for doc_id in sorted(set(got) | set(want)):
        g, w = got.get(doc_id), want.get(doc_id)
        if g is None:
            step.problems.append(f"  task doc missing: {doc_id}\n    expected {_canon(w)}")
            continue
        if w is None:
            step.problems.append(f"  unexpected task doc: {doc_id}\n    got      {_canon(g)}")
            continue
        if g == w:
            continue
        if "owner" not in w and "owner" in g and {**g, "owner": None} == {**w, "owner": None} and \
                "_id" not in (w.get("emission", {}).get("contact") or {}) and g["owner"] == g.get("requester"):
            step.deviations.append(f"{doc_id}: owner kept beside contactLabel (Kazi fix of CHT bug #7677)")
            continue
        keys = sorted(k for k in set(g) | set(w) if g.get(k) != w.get(k))
        lines = [f"  task doc differs: {doc_id}"]
        for k in keys:
            lines.append(f"    {k}: got {_canon(g.get(k))}\n    {' ' * len(k)}  exp {_canon(w.get(k))}")
        step.problems.append("\n".join(lines))


def _compare_emissions(got: list[Doc], want: list[Doc], step: StepOutcome) -> None:
    g_by: dict[str, list[str]] = {}
    w_by: dict[str, list[str]] = {}
    for e in got:
        g_by.setdefault(str(e.get("_id")), []).append(_canon(_public(e)))
    for e in want:
        w_by.setdefault(str(e.get("_id")), []).append(_canon(e))
    for eid in sorted(set(g_by) | set(w_by)):
        g, w = sorted(g_by.get(eid, [])), sorted(w_by.get(eid, []))
        if g != w:
            step.problems.append(f"  emission differs: {eid}\n    got {g}\n    exp {w}")


class Runner:
    """Replays case files; programs are loaded once per config folder."""

    def __init__(self) -> None:
        self._programs: dict[Path, Program] = {}

    def program(self, path: Path) -> Program:
        if path not in self._programs:
            self._programs[path] = load_program(path)
        return self._programs[path]

    def run_case(self, path: Path) -> CaseOutcome:
        case = json.loads(path.read_text(encoding="utf-8"))
        outcome = CaseOutcome(id=str(case.get("id", path.stem)), path=path)
        try:
            program = self.program(find_config(path, case["config"]))
        except KaziError as exc:
            outcome.error = str(exc)
            return outcome
        tz = case["timezone"]
        u = case["user"]
        user = User(name=u["name"], roles=tuple(u.get("roles", [])), contact=u.get("contact"))
        db: dict[str, Doc] = {}
        tasks: dict[str, Doc] = {}
        scope = DeviceScope(tz)
        for index, step in enumerate(case["steps"]):
            expected = step["expected"]
            now = expected["now_ms"]
            so = StepOutcome(index + 1, step["now"])
            outcome.steps.append(so)
            gone = [db.pop(i) for i in step.get("remove", []) if i in db]
            for i in step.get("remove", []):
                tasks.pop(i, None)
            for d in step.get("add", []):
                (tasks if d.get("type") == "task" else db)[d["_id"]] = d
            docs = list(db.values())
            refreshed = scope.round_ids(now, dirty_ids(db, gone))
            in_scope = [t for _, t in sorted(tasks.items())
                        if refreshed is None or t.get("requester") in refreshed]
            untouched = [t for t in tasks.values() if refreshed is not None and t.get("requester") not in refreshed]
            try:
                result = compute(program, docs=docs, task_docs=in_scope, untouched_task_docs=untouched,
                                 user=user, now_ms=now, tz=tz, subjects=refreshed, keyed_read=index > 0)
            except KaziError as exc:
                so.problems.append(f"  error: {exc}")
                break
            tasks = {d["_id"]: d for d in result.task_docs}
            _compare_emissions(result.emissions, expected["emissions"], so)
            _compare_docs(tasks, {d["_id"]: d for d in expected["task_docs"]}, so)
            tab = sorted(d["_id"] for d in result.task_docs if d.get("state") == "Ready")
            if tab != expected["tasks_tab"]:
                so.problems.append(f"  tasks_tab differs:\n    got {tab}\n    exp {expected['tasks_tab']}")
        return outcome


def format_outcome(o: CaseOutcome) -> str:
    """A readable report of one failing case."""
    lines = [f"FAIL {o.id} ({o.path})"]
    if o.error:
        lines.append(f"  {o.error}")
    for s in o.steps:
        if s.problems:
            lines.append(f" step {s.index} at {s.now}:")
            lines.extend(s.problems)
    return "\n".join(lines)
