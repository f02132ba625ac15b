"""Task documents in the store, and the incremental recompute the store's subject lookups make possible."""

from __future__ import annotations

import copy
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from kazi.demo import PROGRAM_DIR
from kazi.demo.population import generate
from kazi.engine.containers import contact_subject_ids
from kazi.engine.engine import compute
from kazi.errors import DocumentBatchError
from kazi.program.loader import load_program
from kazi.store import Store

TZ = "Africa/Blantyre"


def _task(tid: str, user: str = "chw", **kw: Any) -> dict[str, Any]:
    doc = {"_id": tid, "type": "task", "user": f"org.couchdb.user:{user}", "requester": "p1", "owner": "p1",
           "state": "Ready", "authoredOn": 1000, "stateHistory": [{"state": "Ready", "timestamp": 1000}],
           "emission": {"_id": f"{tid}~e", "title": "t", "dueDate": "2025-08-01"}}
    doc.update(kw)
    return doc


def _no_rev(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {d["_id"]: {k: v for k, v in d.items() if k != "_rev"} for d in docs}


def test_task_docs_per_user_state_requester_owner(store: Store) -> None:
    store.write_task_docs([
        _task("t1"), _task("t2", state="Draft", requester="p2"), _task("t3", state="Completed", owner="p9"),
        _task("t4", user="other"),
    ])

    def ids(docs: list[dict[str, Any]]) -> list[str]:
        return [d["_id"] for d in docs]

    assert ids(store.task_docs("chw")) == ["t1", "t2", "t3"]
    assert ids(store.task_docs("chw", states=["Ready", "Draft"])) == ["t1", "t2"]
    assert ids(store.task_docs("chw", requesters=["p2"])) == ["t2"]
    assert ids(store.task_docs("chw", owners=["p9"])) == ["t3"]
    assert ids(store.task_docs("chw", states=["Failed"])) == []
    assert ids(store.task_docs("other")) == ["t4"]
    assert store.task_docs("chw")[0]["stateHistory"] == [{"state": "Ready", "timestamp": 1000}]
    assert ids(store.task_docs("chw", requesters=[f"x{i}" for i in range(600)] + ["p1"])) == ["t1", "t3"]


def test_task_writes_are_idempotent_and_keep_the_history(store: Store) -> None:
    [first] = store.write_task_docs([_task("t1")])
    [again] = store.write_task_docs([{**_task("t1"), "_rev": first.rev}])
    assert again == type(first)(first.id, first.rev, first.seq, False)
    done = _task("t1", state="Completed",
                 stateHistory=[{"state": "Ready", "timestamp": 1000}, {"state": "Completed", "timestamp": 2000}])
    [written] = store.write_task_docs([done])
    assert written.changed and written.rev.startswith("2-")
    stored = store.get_task_doc("t1")
    assert stored["state"] == "Completed" and len(stored["stateHistory"]) == 2
    assert [(c.id, c.state) for c in store.task_changes_since(0)] == [("t1", "Completed")]
    assert store.task_changes_since(written.seq) == []
    assert store.last_task_seq() == written.seq


def test_bad_task_batches_store_nothing(store: Store) -> None:
    with pytest.raises(DocumentBatchError) as caught:
        store.write_task_docs([_task("ok"), {"_id": "x", "type": "data_record"}, {**_task("y"), "user": None}, [1]])
    assert [(p.index, p.field) for p in caught.value.problems] == [(1, "type"), (2, "user"), (3, None)]
    assert store.task_docs("chw") == [] and store.last_task_seq() == 0


def _ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso).replace(tzinfo=ZoneInfo(TZ)).timestamp() * 1000)


def test_incremental_recompute_from_the_store_equals_a_full_one(store: Store) -> None:
    """The subjects of the change log + docs_for_subjects + the task docs of those requesters are all an
    incremental recompute needs: its task documents are those of a full recompute of the user's scope."""
    pop = generate(30, 5, date(2025, 8, 1))
    store.write_docs(pop.contacts)
    store.write_docs(pop.reports)
    u = next(x for x in pop.users if x["roles"] == ["site_supervisor"])
    user = store.users.create(u["username"], password="password1", roles=u["roles"], facility_id=u["facility_id"],
                              contact_id=u["contact_id"], timezone=TZ)
    program = load_program(PROGRAM_DIR)
    who = store.engine_user(user)
    now0 = _ms("2025-08-01T08:00:00")
    first = compute(program, docs=[*store.docs_in_scope(user).contacts, *store.docs_in_scope(user).reports],
                    user=who, now_ms=now0, tz=TZ)
    store.write_task_docs(first.writes)
    assert _no_rev(store.task_docs(user)) == _no_rev(first.task_docs)
    assert any(d["state"] == "Ready" for d in first.task_docs), "the fixture must give the supervisor tasks"

    # one new missed appointment, and an old one re-addressed to another client
    seq = store.last_seq()
    contacts, reports = store.docs_in_scope(user)
    missed = [r for r in reports if r["form"] == "missed_appointment"
              and r["fields"].get("facility_id") == u["facility_id"]]
    people = [c for c in contacts if c.get("type") == "person" and c.get("patient_id")]
    open_reports = {d["emission"]["_id"].split("~")[0] for d in first.task_docs if d["state"] in ("Ready", "Draft")}
    to_move = next(r for r in missed if r["_id"] in open_reports)
    new = copy.deepcopy(next(r for r in missed if r is not to_move))
    new.update(_id="missed-new", reported_date=now0 - 3_600_000)
    new["fields"].update(patient_id=people[0]["patient_id"], appointment_date="2025-07-22")
    moved = copy.deepcopy(to_move)
    moved["fields"]["patient_id"] = next(p["patient_id"] for p in people[1:]
                                         if p["patient_id"] != to_move["fields"]["patient_id"])
    store.write_docs([new, moved])

    now1 = now0 + 3_600_000
    changed = {s for c in store.changes_since(seq) for s in c.subjects}
    docs = store.docs_for_subjects(changed, user=user)
    subjects = changed | {s for d in docs if d.get("type") != "data_record" for s in contact_subject_ids(d)}
    before = store.task_docs(user)
    # the re-addressed report had an open task under its old client: only the change log's old subjects
    # bring that task document into the incremental round (else a duplicate would be created)
    assert any(d["emission"]["_id"].startswith(f"{moved['_id']}~") and d["state"] in ("Ready", "Draft")
               for d in before)
    incremental = compute(program, docs=docs, task_docs=store.task_docs(user, requesters=subjects), user=who,
                          now_ms=now1, tz=TZ, subjects=subjects)
    after = store.docs_in_scope(user)
    full = compute(program, docs=[*after.contacts, *after.reports], task_docs=before, user=who, now_ms=now1, tz=TZ)
    store.write_task_docs(incremental.writes)

    full_here = [d for d in full.task_docs if d.get("requester") in subjects]
    assert _no_rev(incremental.task_docs) == _no_rev(full_here)
    assert any(d["emission"]["_id"].startswith("missed-new~") and d["state"] == "Ready"
               for d in incremental.task_docs)
    stored = _no_rev(store.task_docs(user, requesters=subjects))
    assert {k: v for k, v in stored.items()} == _no_rev(full_here)
