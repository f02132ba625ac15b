"""The synthetic population generator (``kazi.demo.population``) and ``kazi population``.

What matters to the people using the population: it is reproducible byte for byte, it scales with the
number of households, and it is internally consistent the way a CHT database is (every report's subject
exists, every lineage stub matches its parents, users point at real contacts and places), so that the
engine computes meaningful tasks from it -- in every state, for a CHW and for a site supervisor -- and every
demo user has a realistic queue at the end date: a CHW several kinds of visits, some overdue, some due; a
site supervisor a verification list that grows with the facility; the supervisors and the program officer
a few tasks each.
"""

from __future__ import annotations

import collections
import io
import json
import statistics
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from kazi.cli.main import main
from kazi.demo import PROGRAM_DIR
from kazi.demo.population import Population, generate, write_population
from kazi.engine.containers import hydrate_lineage
from kazi.engine.dates import make_local
from kazi.engine.engine import User, compute
from kazi.program.loader import load_program

END = date(2025, 8, 1)
TZ = "Africa/Blantyre"
Doc = dict[str, Any]

# The forms tasks.js reads or resolves with, plus the ones the population adds around them.
KNOWN_FORMS = {
    "pregnancy", "P", "anc_visit", "pregnancy_loss", "delivery", "D", "pnc_visit", "newborn_check",
    "danger_sign", "danger_sign_follow_up", "supervisor_case_review", "missed_appointment",
    "appointment_verification", "client_tracing",
}


@pytest.fixture(scope="module")
def pop() -> Population:
    return generate(800, seed=11, end_date=END, tz=TZ)


@pytest.fixture(scope="module")
def facility_pop() -> Population:
    """One health facility of 5,000 households (seed 2 puts them all in the first facility)."""
    return generate(5000, seed=2, end_date=END, tz=TZ)


def _written(households: int, seed: int, end: date = END, tz: str = TZ) -> str:
    buf = io.StringIO()
    write_population(buf, households, seed, end, tz)
    return buf.getvalue()


def _subject_id(report: Doc) -> Any:
    """CHT's getSubjectId: the first truthy patient_id, patient_uuid, place_id, place_uuid (top, fields)."""
    fields = report.get("fields") or {}
    for key in ("patient_id", "patient_uuid", "place_id", "place_uuid"):
        value = report.get(key) or fields.get(key)
        if value:
            return value
    return None


def _type(doc: Doc) -> str:
    return str(doc["contact_type"] if doc["type"] == "contact" else doc["type"])


def _chain(stub: Doc | None) -> list[str]:
    ids = []
    while stub:
        ids.append(stub["_id"])
        stub = stub.get("parent")
    return ids


# --- determinism -------------------------------------------------------------------------------------
def test_same_arguments_give_identical_bytes() -> None:
    assert _written(300, 4) == _written(300, 4)


def test_different_seed_end_date_or_zone_give_different_output() -> None:
    base = _written(300, 4)
    assert _written(300, 5) != base
    assert _written(300, 4, end=date(2025, 9, 1)) != base
    assert _written(300, 4, tz="America/New_York") != base


def test_in_memory_population_writes_the_same_bytes_as_the_streaming_writer() -> None:
    buf = io.StringIO()
    generate(300, 4, END, TZ).write_json(buf)
    assert buf.getvalue() == _written(300, 4)


def test_output_is_json_with_one_document_per_line() -> None:
    text = _written(120, 2)
    data = json.loads(text)
    assert set(data) == {"contacts", "reports", "users"}
    lines = text.splitlines()
    assert len(lines) == len(data["contacts"]) + len(data["reports"]) + len(data["users"]) + 4


# --- scale --------------------------------------------------------------------------------------------
def test_counts_scale_with_households() -> None:
    small, large = generate(400, 3, END, TZ), generate(1600, 3, END, TZ)
    for p, n in ((small, 400), (large, 1600)):
        types = collections.Counter(_type(c) for c in p.contacts)
        assert types["clinic"] == n
        assert types["district_hospital"] == 1
        assert 5.5 <= len(p.contacts) / n <= 7.0  # ~6 contacts per household, places included
        assert 4.5 <= types["person"] / n <= 6.0
    assert 3.3 <= len(large.contacts) / len(small.contacts) <= 4.7
    assert 3.0 <= len(large.reports) / len(small.reports) <= 5.0
    assert len(large.users) > len(small.users)


def test_structure_has_20_to_40_areas_per_facility_except_the_last() -> None:
    p = generate(12_000, 8, END, TZ)
    areas = collections.Counter(c["parent"]["_id"] for c in p.contacts if _type(c) == "chw_area")
    facilities = [c["_id"] for c in p.contacts if _type(c) == "health_center"]
    assert len(facilities) >= 2
    for facility in facilities[:-1]:
        assert 20 <= areas[facility] <= 40


# --- consistency --------------------------------------------------------------------------------------
def test_every_report_subject_exists(pop: Population) -> None:
    known: dict[str, Doc] = {}
    for c in pop.contacts:
        for key in ("_id", "patient_id", "place_id"):
            if c.get(key):
                known.setdefault(c[key], c)
    for r in pop.reports:
        subject = _subject_id(r)
        assert subject in known, r
        assert r["reported_date"] > known[subject]["reported_date"], "a report cannot predate its subject"
        fields = r["fields"]
        if "patient_uuid" in fields:
            assert known[fields["patient_uuid"]] is known[fields["patient_id"]]


def test_lineages_are_consistent(pop: Population) -> None:
    by_id = {c["_id"]: c for c in pop.contacts}
    assert len(by_id) == len(pop.contacts)
    allowed_parent = {"district_hospital": None, "health_center": "district_hospital",
                      "chw_area": "health_center", "clinic": "chw_area"}
    seen: set[str] = set()
    for c in pop.contacts:
        parent = c.get("parent")
        kind = _type(c)
        if kind == "person":
            assert parent and _type(by_id[parent["_id"]]) != "person"
        else:
            expected = allowed_parent[kind]
            assert (parent and _type(by_id[parent["_id"]])) == (expected or None)
        if parent:
            assert parent["_id"] in seen, "parents come before their children"
            assert _chain(parent) == [parent["_id"], *_chain(by_id[parent["_id"]].get("parent"))]
        if kind != "person":
            head = by_id[c["contact"]["_id"]]
            assert _chain(c["contact"]) == [head["_id"], *_chain(head["parent"])]
            assert head["parent"]["_id"] == c["_id"], "a place's primary contact lives there"
        seen.add(c["_id"])
    for r in pop.reports:
        submitter = by_id[r["contact"]["_id"]]
        assert _type(submitter) == "person"
        assert _chain(r["contact"]) == [submitter["_id"], *_chain(submitter["parent"])]


def test_documents_have_cht_shapes(pop: Population) -> None:
    codes: collections.Counter[str] = collections.Counter()
    for c in pop.contacts:
        assert isinstance(c["reported_date"], int)
        if c["type"] == "person":
            assert c["sex"] in ("female", "male")
            date.fromisoformat(c["date_of_birth"])
            assert c["phone"] == "" or c["phone"].startswith("+265")
            codes[c["patient_id"]] += 1
        else:
            codes[c["place_id"]] += 1
    assert max(codes.values()) == 1, "short codes are unique"
    zone = ZoneInfo(TZ)
    start_ms = datetime(2024, 8, 1, tzinfo=zone).timestamp() * 1000
    end_ms = datetime(2025, 8, 1, tzinfo=zone).timestamp() * 1000
    dates = [r["reported_date"] for r in pop.reports]
    assert dates == sorted(dates)
    for r in pop.reports:
        assert r["type"] == "data_record" and r["form"] in KNOWN_FORMS
        assert start_ms <= r["reported_date"] < end_ms
        if r["form"] in ("P", "D"):
            assert r["sms_message"]["form"] == r["form"] and r["from"]


def test_app_and_sms_registrations_carry_what_tasks_js_reads(pop: Population) -> None:
    forms = collections.Counter(r["form"] for r in pop.reports)
    assert forms["pregnancy"] and forms["P"] and forms["delivery"] and forms["D"]
    for r in pop.reports:
        if r["form"] == "pregnancy":
            date.fromisoformat(r["fields"]["lmp_date"])
        elif r["form"] == "P":
            assert isinstance(r["fields"]["last_menstrual_period"], int)
        elif r["form"] == "missed_appointment":
            assert {"patient_id", "appointment_date", "days_missed", "facility_id"} <= set(r["fields"])


def test_users_point_at_their_contacts_and_places(pop: Population) -> None:
    by_id = {c["_id"]: c for c in pop.contacts}
    settings = json.loads((PROGRAM_DIR / "app_settings.json").read_text())
    roles = collections.Counter(u["roles"][0] for u in pop.users)
    places = collections.Counter(_type(c) for c in pop.contacts)
    assert roles["chw"] == places["chw_area"]
    assert roles["site_supervisor"] == roles["chw_supervisor"] == places["health_center"]
    assert roles["program_officer"] == roles["admin"] == 1
    assert len({u["username"] for u in pop.users}) == len(pop.users)
    for u in pop.users:
        person = by_id[u["contact_id"]]
        assert person["type"] == "person" and u["tz"] == TZ
        assert u["facility_id"] in _chain(person["parent"])
        assert all(role in settings["roles"] or role == "admin" for role in u["roles"])
        if u["roles"] == ["chw"]:
            assert person["parent"]["_id"] == u["facility_id"]
            assert _type(by_id[u["facility_id"]]) == "chw_area"


def test_proportions_are_plausible(facility_pop: Population) -> None:
    p = facility_pop
    by_code = {c["patient_id"]: c["_id"] for c in p.contacts if c["type"] == "person"}
    reports_of: dict[str, list[Doc]] = collections.defaultdict(list)
    for r in p.reports:
        reports_of[by_code[r["fields"]["patient_id"]]].append(r)
    pregnant = 0
    for reports in reports_of.values():
        registrations = [r for r in reports if r["form"] in ("pregnancy", "P")]
        if registrations:
            last = registrations[-1]["reported_date"]
            ended = any(r["form"] in ("delivery", "D", "pregnancy_loss") and r["reported_date"] > last
                        for r in reports)
            pregnant += not ended
    assert 0.055 <= pregnant / 5000 <= 0.09  # ~7% of households have an ongoing registered pregnancy
    forms = collections.defaultdict(list)
    for r in p.reports:
        forms[r["form"]].append(r)
    persons = sum(c["type"] == "person" for c in p.contacts)
    assert 25 <= 1000 * (len(forms["delivery"]) + len(forms["D"])) / persons <= 38  # births per 1,000 a year
    verified = {r["fields"]["missed_appointment_id"] for r in forms["appointment_verification"]}
    missed = forms["missed_appointment"]
    assert len(verified) > 0.8 * len(missed)  # most are verified...
    end = END.toordinal()
    late = collections.defaultdict(list)  # days since the appointment -> verified?
    for r in missed:
        late[end - date.fromisoformat(r["fields"]["appointment_date"]).toordinal()].append(r["_id"] in verified)
    older = [v for days, vs in late.items() if days > 60 for v in vs]
    open_now = [v for days, vs in late.items() if 7 <= days <= 35 for v in vs]
    assert sum(older) > 0.9 * len(older)
    assert 100 <= open_now.count(False) <= 160  # ...but the site supervisor has fallen behind lately
    assert open_now.count(False) > 0.8 * len(open_now)


# --- the CLI --------------------------------------------------------------------------------------------
def test_cli_writes_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "population.json"
    rc = main(["population", "--households", "150", "--seed", "9", "--end-date", "2025-08-01",
               "--out", str(out)])
    assert rc == 0
    assert out.read_text(encoding="utf-8") == _written(150, 9)
    assert "contacts" in capsys.readouterr().out
    assert not (tmp_path / "population.json.part").exists()


def test_cli_rejects_bad_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = str(tmp_path / "p.json")
    with pytest.raises(SystemExit):
        main(["population", "--households", "0", "--seed", "1", "--end-date", "2025-08-01", "--out", out])
    with pytest.raises(SystemExit):
        main(["population", "--households", "5", "--seed", "1", "--end-date", "2025-13-01", "--out", out])
    rc = main(["population", "--households", "5", "--seed", "1", "--end-date", "2025-08-01", "--out", out,
               "--tz", "Mars/Olympus"])
    assert rc == 1 and "time zone" in capsys.readouterr().err
    assert not Path(out).exists()


# --- with the engine: the demo program finds tasks in every state ---------------------------------------
@pytest.mark.parametrize("role", ["chw", "site_supervisor"])
def test_demo_program_yields_tasks_in_every_state(
    role: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    docs = tmp_path / "population.json"
    docs.write_text(_written(500, 3), encoding="utf-8")
    user = next(u for u in json.loads(docs.read_text())["users"] if u["roles"] == [role])
    capsys.readouterr()
    rc = main(["tasks", str(PROGRAM_DIR), "--docs", str(docs), "--user", user["contact_id"],
               "--username", user["username"], "--now", "2025-08-01T10:00:00+02:00", "--tz", TZ,
               "--roles", role, "--format", "json", "--all"])
    assert rc == 0
    result = json.loads(capsys.readouterr().out)
    states = collections.Counter(doc["state"] for doc in result["task_docs"])
    assert {"Draft", "Ready", "Completed", "Failed"} <= set(states), states


# --- with the engine: every demo user has work in progress at the end date --------------------------------
@pytest.fixture(scope="module")
def program() -> Any:
    return load_program(PROGRAM_DIR)


@pytest.fixture(scope="module")
def demo_pop() -> Population:
    """What ``kazi demo`` shows by default: 500 households, seed 1."""
    return generate(500, seed=1, end_date=END, tz=TZ)


def _first_user(p: Population, role: str) -> Doc:
    """The user ``kazi demo`` shows for ``role``: the first one."""
    return next(u for u in p.users if role in u["roles"])


def _docs_below(p: Population, place_id: str) -> list[Doc]:
    """What a user of ``place_id`` synchronises: the contacts below it and the reports about them."""
    below = [c for c in p.contacts if place_id in _chain(c.get("parent"))]
    codes = {c["patient_id"] for c in below if c["type"] == "person"}
    return below + [r for r in p.reports if r["fields"]["patient_id"] in codes]


def _task_docs(program: Any, p: Population, u: Doc, docs: list[Doc] | None = None) -> list[Doc]:
    """The user's task docs at 10:00 on the end date (as ``kazi demo --date`` computes them)."""
    by_id = {c["_id"]: c for c in p.contacts}
    user = User(u["username"], tuple(u["roles"]), hydrate_lineage(by_id[u["contact_id"]], by_id))
    now = make_local(END.year, END.month - 1, END.day, 10, tz=TZ)
    docs = [*p.contacts, *p.reports] if docs is None else docs
    return compute(program, docs=docs, user=user, now_ms=now, tz=TZ).task_docs


def _ready_kinds(task_docs: list[Doc]) -> collections.Counter[str]:
    """Ready tasks by task name (``task.<name>.title``)."""
    return collections.Counter(d["emission"]["title"].removeprefix("task.").removesuffix(".title")
                               for d in task_docs if d["state"] == "Ready")


def test_the_demo_chw_has_a_queue_of_several_kinds_with_a_history(program: Any, demo_pop: Population) -> None:
    docs = _task_docs(program, demo_pop, _first_user(demo_pop, "chw"))
    kinds = _ready_kinds(docs)
    assert 5 <= sum(kinds.values()) <= 25 and len(kinds) >= 3, kinds
    assert set(kinds) <= {"anc.visit", "anc.delivery_reminder", "pnc.home_visit", "newborn.home_check",
                          "danger_sign.follow_up", "art.trace_client"}
    due = [d["emission"]["dueDate"] for d in docs if d["state"] == "Ready"]
    assert any(day < END.isoformat() for day in due), "some are overdue"
    assert any(day >= END.isoformat() for day in due), "some are due today or in the next days"
    states = collections.Counter(d["state"] for d in docs)
    assert states["Draft"] >= 5, "visits to come"
    assert states["Completed"] > 2 * states["Failed"] > 0, "most past work done, some missed"


def test_the_demo_supervisors_and_program_officer_have_a_few_tasks(program: Any, demo_pop: Population) -> None:
    expected = {"site_supervisor": ("art.verify_missed_appointment", 5, 40),
                "chw_supervisor": ("supervision.danger_sign_review", 1, 15),
                "program_officer": ("art.escalate_unverified", 1, 15)}
    for role, (kind, low, high) in expected.items():
        kinds = _ready_kinds(_task_docs(program, demo_pop, _first_user(demo_pop, role)))
        assert set(kinds) == {kind} and low <= kinds[kind] <= high, (role, kinds)


def test_chws_generally_have_a_queue(program: Any) -> None:
    p = generate(2000, seed=2, end_date=END, tz=TZ)
    ready, kinds, states = [], [], collections.Counter[str]()
    for u in p.users:
        if u["roles"] == ["chw"]:
            docs = _task_docs(program, p, u, _docs_below(p, u["facility_id"]))  # the CHW's area
            ready.append(sum(_ready_kinds(docs).values()))
            kinds.append(len(_ready_kinds(docs)))
            states.update(d["state"] for d in docs)
    assert len(ready) >= 8
    assert 5 <= statistics.median(ready) <= 25 and max(ready) <= 40, ready
    assert sorted(ready)[len(ready) // 4] >= 4, ready  # three quarters of the CHWs have at least 4
    assert statistics.median(kinds) >= 3, kinds
    assert states["Completed"] > 1.5 * states["Failed"] > 0 and states["Draft"] > 0


def test_a_site_supervisor_verification_list_grows_with_the_facility(
    program: Any, facility_pop: Population
) -> None:
    """The supervisor story: 'verify these 100+ missed appointments so that none is skipped' (~10 s)."""
    supervisor = _first_user(facility_pop, "site_supervisor")
    households = sum(_type(c) == "clinic" for c in _docs_below(facility_pop, supervisor["facility_id"]))
    assert households == 5000
    docs = _task_docs(program, facility_pop, supervisor)
    kinds = _ready_kinds(docs)
    assert set(kinds) == {"art.verify_missed_appointment"}
    assert 100 <= kinds["art.verify_missed_appointment"] <= 160, kinds
    states = collections.Counter(d["state"] for d in docs)
    assert states["Completed"] > states["Failed"] > 0
