"""The task service: incremental processing equals a full recompute, programs, restarts, time, the CLI."""

from __future__ import annotations

import copy
import json
import shutil
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from kazi.cli.main import main
from kazi.demo import PROGRAM_DIR
from kazi.demo.population import generate
from kazi.engine.engine import compute
from kazi.errors import ProgramError
from kazi.service.tasks import TaskService
from kazi.store import Store, StoredUser
from kazi.store import tracking as tr

TZ = "Africa/Blantyre"


def _ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso).replace(tzinfo=ZoneInfo(TZ)).timestamp() * 1000)


class Clock:
    def __init__(self, iso: str) -> None:
        self.now = _ms(iso)

    def __call__(self) -> int:
        return self.now


def _no_rev(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {d["_id"]: {k: v for k, v in d.items() if k != "_rev"} for d in docs}


def _users(store: Store, pop_users: list[dict[str, Any]]) -> list[StoredUser]:
    return [store.users.create(u["username"], password="password1", roles=u["roles"], facility_id=u["facility_id"],
                               contact_id=u["contact_id"], timezone=TZ) for u in pop_users]


def test_incremental_processing_equals_a_full_recompute(store: Store) -> None:
    """Writes of every kind, processed incrementally; after each step every user's task documents are what
    a full recompute from the previous step's documents gives at the same instant."""
    pop = generate(24, 7, date(2025, 8, 1))
    store.write_docs(pop.contacts)
    store.write_docs(pop.reports)
    _users(store, pop.users)
    clock = Clock("2025-08-01T08:00:00")
    service = TaskService(store, clock=clock)
    service.load_program(PROGRAM_DIR)
    program = service.program()
    assert program is not None
    service.process_changes()
    assert any(store.task_docs(u) for u in store.users.list_all())

    contacts = {c["_id"]: c for c in pop.contacts}
    people = [c for c in pop.contacts if c.get("type") == "person" and c.get("patient_id")]
    areas = [c for c in pop.contacts if c.get("contact_type") == "chw_area"]
    households = [c for c in pop.contacts if c.get("type") == "clinic"]
    missed = [r for r in pop.reports if r["form"] == "missed_appointment"]
    pregnancies = [r for r in pop.reports if r["form"] in ("pregnancy", "P")]

    def check(step: str) -> None:
        before = {u.id: store.task_docs(u) for u in store.users.list_all()}
        service.process_changes()
        service.advance_time()
        for u in store.users.list_all():
            scope = store.docs_in_scope(u)
            full = compute(program, docs=[*scope.contacts, *scope.reports], task_docs=before[u.id],
                           user=store.engine_user(u), now_ms=clock.now, tz=TZ)
            assert _no_rev(store.task_docs(u)) == _no_rev(full.task_docs), f"{step}: user {u.username}"

    # a new missed appointment and a deleted pregnancy; then the new report re-addressed to another client
    new = copy.deepcopy(missed[-1])
    new.update(_id="missed-new", reported_date=clock.now - 3_600_000)
    new["fields"].update(patient_id=people[0]["patient_id"])
    store.write_docs([new, {"_id": pregnancies[-1]["_id"], "_deleted": True}])
    clock.now += 3_600_000
    check("reports")
    # (Only a report whose task docs are all open: when the winner of an emission id is a terminal doc of the
    # old requester and the emission's state differs, every FULL round creates one more doc for it, since the
    # engine merges the requesters' groups that CHT never loads together; a full recompute is then no fixed
    # point and cannot be the yardstick.)
    new["fields"]["patient_id"] = people[1]["patient_id"]
    store.write_doc(new)
    clock.now += 3_600_000
    check("re-addressed")

    # a verification of the new missed appointment, by the site supervisor
    sup = next(u for u in pop.users if u["roles"] == ["site_supervisor"])
    store.write_doc({"_id": "verif-new", "type": "data_record", "form": "appointment_verification",
                     "reported_date": clock.now - 60_000, "contact": {"_id": sup["contact_id"]},
                     "fields": {"patient_id": people[1]["patient_id"], "missed_appointment_id": "missed-new",
                                "outcome": "returned_to_care"}})
    clock.now += 3_600_000
    check("verification")
    assert any(d["emission"]["_id"].startswith("missed-new~") for u in store.users.list_all()
               for d in store.task_docs(u)), "the new report must give someone a task"

    # a person moved to another household, and a household moved to another CHW area
    house_ids = {h["_id"] for h in households}
    members = [p for p in people if p["parent"]["_id"] in house_ids]
    person = copy.deepcopy(members[2])
    target = next(h for h in households if h["_id"] != person["parent"]["_id"])
    person["parent"] = {"_id": target["_id"], "parent": copy.deepcopy(target["parent"])}
    house = copy.deepcopy(contacts[members[3]["parent"]["_id"]])
    other_area = next((a for a in areas if a["_id"] != house["parent"]["_id"]), None)
    if other_area is None:
        other_area = {"_id": "area-new", "type": "contact", "contact_type": "chw_area", "name": "New area",
                      "parent": copy.deepcopy(areas[0]["parent"]), "reported_date": clock.now - 10_000}
        store.write_doc(other_area)
    house["parent"] = {"_id": other_area["_id"], "parent": copy.deepcopy(other_area["parent"])}
    store.write_docs([person, house])
    clock.now += 3_600_000
    check("moves")

    # a user's place changed (the CHW now covers the whole health centre), and the next day
    chw = next(u for u in pop.users if u["roles"] == ["chw"])
    store.users.update(chw["username"], facility_id=contacts[chw["facility_id"]]["parent"]["_id"])
    clock.now += 3_600_000
    check("user place")
    clock.now = _ms("2025-08-02T07:00:00")
    check("next day")
    service.close()


def test_program_errors_keep_the_previous_program(store: Store, tmp_path: Path) -> None:
    service = TaskService(store, clock=lambda: _ms("2025-08-01T08:00:00"))
    first = service.load_program(PROGRAM_DIR)
    assert first.version == 1 and first.kind == "js"
    bad = tmp_path / "bad"
    shutil.copytree(PROGRAM_DIR, bad)
    (bad / "tasks.js").write_text("module.exports = [{ name: 'x', appliesTo: 'nothing' }];\n")
    with pytest.raises(ProgramError) as caught:
        service.load_program(bad)
    assert caught.value.problems and all(p.severity == "error" for p in caught.value.problems)
    info = service.program_info()
    assert info is not None and info.version == 1
    assert TaskService(store).program_info() == info  # another process sees the same active version
    again = service.load_program(PROGRAM_DIR)
    assert again.version == 2 and [p.version for p in tr.program_versions(store)] == [1, 2]
    service.close()


def test_a_restarted_service_resumes_and_a_new_program_recomputes_everyone(store: Store) -> None:
    pop = generate(6, 3, date(2025, 8, 1))
    store.write_docs([*pop.contacts, *pop.reports])
    users = _users(store, pop.users)
    clock = Clock("2025-08-01T08:00:00")
    service = TaskService(store, clock=clock)
    service.load_program(PROGRAM_DIR)
    assert service.process_changes() == len(users)  # first round: everyone in full
    service.close()

    restarted = TaskService(store, clock=clock)
    assert restarted.process_changes() == 0
    assert tr.get_state(store, tr.PROCESSED_SEQ) == store.last_seq()
    restarted.load_program(PROGRAM_DIR)
    assert restarted.process_changes() == len(users)
    assert {s.program_version for s in tr.task_user_states(store).values()} == {2}
    restarted.close()


def test_cli_program_load_and_import(store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad"
    shutil.copytree(PROGRAM_DIR, bad)
    (bad / "tasks.js").write_text("module.exports = [{ name: 'x' }];\n")
    assert main(["program", "load", str(bad), "--db", store_url]) == 1
    err = capsys.readouterr().err
    assert "not loaded" in err and "error:" in err
    assert main(["program", "load", str(PROGRAM_DIR), "--db", store_url]) == 0
    assert "program version 1 loaded" in capsys.readouterr().out

    docs = [{"_id": "hc", "type": "health_center", "name": "HC"},
            {"_id": "_design/medic", "views": {}},
            {"_id": "task~x", "type": "task"},
            {"type": "person", "name": "no id"},
            {"_id": "bad", "type": "person", "parent": "hc"},
            {"_id": "p1", "type": "person", "name": "P", "parent": {"_id": "hc"}}]
    export = tmp_path / "export.json"
    export.write_text(json.dumps({"total_rows": len(docs), "rows": [{"id": d.get("_id"), "doc": d} for d in docs]}))
    assert main(["import", str(export), "--db", store_url]) == 0
    out = capsys.readouterr().out
    assert "6 documents read: 2 stored" in out
    for reason in ("design document", "task document", "no _id", "invalid"):
        assert reason in out
    ndjson = tmp_path / "docs.ndjson"
    ndjson.write_text("\n".join(json.dumps(d) for d in docs[-1:] + [{"_id": "p2", "type": "person"}]) + "\n")
    assert main(["import", str(ndjson), "--db", store_url]) == 0
    assert "2 documents read: 1 stored, 1 unchanged" in capsys.readouterr().out

    # a batch the store refuses inside its transaction (a lineage loop) is reported, and the exit status is 1
    loop = tmp_path / "loop.json"
    loop.write_text(json.dumps([{"_id": "la", "type": "clinic", "parent": {"_id": "lb"}},
                                {"_id": "lb", "type": "clinic", "parent": {"_id": "la"}}]))
    assert main(["import", str(loop), "--db", store_url]) == 1
    out = capsys.readouterr().out
    assert "skipped 2: refused batch" in out and "lineage loop" in out

    settings = json.loads((PROGRAM_DIR / "app_settings.json").read_text())
    settings["permissions"]["can_verify_missed_appointments"] = ["site_supervisor", "chw"]
    path = tmp_path / "app_settings.json"
    path.write_text(json.dumps(settings))
    assert main(["import", str(path), "--db", store_url]) == 0
    assert "program version 2" in capsys.readouterr().out
    with _open(store_url) as s:
        active = tr.active_program(s)
        assert active is not None and active.settings_override is not None
        service = TaskService(s)
        program = service.program()
        assert program is not None
        assert "chw" in program.permissions["can_verify_missed_appointments"]
        service.close()


def _open(url: str) -> Store:
    from kazi.store import open_store

    return open_store(url)


def test_background_worker_follows_writes(store: Store) -> None:
    """The worker thread (its own connection and runtime) picks up writes and user changes by itself."""
    import time

    from kazi.service.worker import BackgroundWorker

    pop = generate(6, 3, date(2025, 8, 1))
    store.write_docs([*pop.contacts, *pop.reports])
    users = _users(store, pop.users)
    service = TaskService(store, clock=Clock("2025-08-01T08:00:00"))
    service.load_program(PROGRAM_DIR)
    worker = BackgroundWorker(service, interval_s=0.05)
    worker.start()
    try:
        deadline = time.monotonic() + 30
        while len(tr.task_user_states(store)) < len(users) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(tr.task_user_states(store)) == len(users)
        while tr.get_state(store, tr.PROCESSED_SEQ) < store.last_seq() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert tr.get_state(store, tr.PROCESSED_SEQ) == store.last_seq()
        assert worker.running and worker.last_error is None
    finally:
        worker.stop()
        service.close()
    assert not worker.running
