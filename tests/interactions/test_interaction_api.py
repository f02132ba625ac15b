"""Task interaction tracking over HTTP (kazi.server.interactions_api), on SQLite and PostgreSQL: who may send
summaries and whose, what a refusal says, idempotence and conflicts as a device sees them, the analysts'
permission and scope, and the metrics, events and exports analysts get.

The program is the API tests' (tests/server/program) with tracking granted to ``chw`` and analytics to
``supervisor``. Places: district d1 > hc-north (mary, chw; nurse, supervisor) and hc-south (john, chw);
officer is a supervisor at d1; admin has no place (administrators see everything)."""

from __future__ import annotations

import csv
import io
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from interaction_builders import ALL, JOHN_31, MARY_30, MARY_31, NOW, OTHER_DEVICE, simple

from kazi.server.api import create_app
from kazi.server.deps import MAX_OFFSET
from kazi.server.interactions_api import ANALYSE, TRACK
from kazi.service.tasks import TaskService
from kazi.store import Store
from kazi.store.interactions import InteractionLimits

TEST_PROGRAM = Path(__file__).resolve().parents[1] / "server" / "program"
URL = "/api/v1/interactions"
PLACES = [
    {"_id": "d1", "type": "district_hospital", "name": "District"},
    {"_id": "hc-north", "type": "health_center", "name": "North", "parent": {"_id": "d1"}},
    {"_id": "hc-south", "type": "health_center", "name": "South", "parent": {"_id": "d1"}},
]
ACCOUNTS = {"mary": ("chw", "hc-north"), "john": ("chw", "hc-south"), "nurse": ("supervisor", "hc-north"),
            "officer": ("supervisor", "d1"), "admin": ("admin", None)}


@dataclass
class Env:
    client: TestClient
    store: Store
    service: TaskService
    program: Path

    def post(self, who: str, body: Any) -> httpx.Response:
        return self.client.post(URL, auth=(who, f"{who}-password"), json=body)

    def get(self, who: str, path: str = "/metrics", **params: Any) -> httpx.Response:
        return self.client.get(URL + path, auth=(who, f"{who}-password"), params=params)

    def ok(self, who: str, path: str = "/metrics", **params: Any) -> Any:
        resp = self.get(who, path, **params)
        assert resp.status_code == 200, resp.text
        return resp.json()


def error(resp: httpx.Response, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    return resp.json()["error"]  # type: ignore[no-any-return]


def program_granting(dest: Path, permissions: dict[str, list[str]]) -> Path:
    """The API tests' program with ``permissions`` added to its settings."""
    shutil.copytree(TEST_PROGRAM, dest)
    settings = json.loads((dest / "app_settings.json").read_text())
    settings["permissions"].update(permissions)
    (dest / "app_settings.json").write_text(json.dumps(settings))
    return dest


def _env(store: Store, program: Path, load: bool, limits: InteractionLimits | None = None) -> Iterator[Env]:
    store.write_docs(PLACES)
    for name, (role, place) in ACCOUNTS.items():
        store.users.create(name, password=f"{name}-password", roles=[role], facility_id=place)
    service = TaskService(store, clock=lambda: NOW)
    try:
        if load:
            service.load_program(program)
        with TestClient(create_app(store=store, service=service, interaction_limits=limits)) as client:
            yield Env(client, store, service, program)
    finally:
        service.close()


@pytest.fixture
def env(store: Store, tmp_path: Path) -> Iterator[Env]:
    yield from _env(store, program_granting(tmp_path / "program", {TRACK: ["chw"], ANALYSE: ["supervisor"]}), True)


@pytest.fixture
def unloaded(store: Store, tmp_path: Path) -> Iterator[Env]:
    yield from _env(store, tmp_path, False)


def stored(env: Env, **params: Any) -> list[tuple[str, int]]:
    """(id, conflict) of every stored version, as the admin lists them."""
    return [(s["id"], s["conflict"]) for s in env.ok("admin", "/summaries", **params)["items"]]


# --------------------------------------------------------------------------------------------------------
# sending


def test_a_device_sends_its_summary_again_and_again(env: Env) -> None:
    doc = simple()
    resp = env.post("mary", doc)
    assert resp.status_code == 201, resp.text
    assert resp.json() == {"results": [{"index": 0, "id": doc["_id"], "status": "created", "conflict": 0}]}
    again = env.post("mary", doc)
    assert again.status_code == 200
    assert again.json()["results"][0]["status"] == "unchanged"
    assert stored(env) == [(doc["_id"], 0)]


def test_a_conflicting_summary_is_kept_beside_the_first(env: Env) -> None:
    doc = simple()
    other = simple()
    other["sessions"][0]["events"][2]["detail"] = 2
    assert env.post("mary", doc).status_code == 201
    resp = env.post("mary", other)
    assert resp.status_code == 201
    assert resp.json()["results"] == [{"index": 0, "id": doc["_id"], "status": "conflict", "conflict": 1}]
    both = env.post("mary", [doc, simple(day="2025-07-30"), other])
    assert both.status_code == 201  # one of them is new
    assert [(r["status"], r["conflict"]) for r in both.json()["results"]] == [
        ("unchanged", 0), ("created", 0), ("unchanged", 1)]
    items = env.ok("admin", "/summaries")["items"]
    assert [(i["day"], i["conflict"]) for i in items] == [("2025-07-30", 0), ("2025-07-31", 0), ("2025-07-31", 1)]
    assert items[1]["summary"] == doc and items[2]["summary"] == other
    assert set(items[0]) == {"seq", "id", "conflict", "username", "device_id", "day", "app_version", "events",
                             "dropped", "received_at", "summary"}
    assert items[0]["received_at"] == NOW


def test_invalid_summaries_are_refused_whole_with_every_problem_located(env: Env) -> None:
    good, named, unknown = simple(day="2025-07-29"), simple(day="2025-07-30"), simple()
    named["sessions"][0]["events"][2]["ref"] = "Follow up Grace Banda"
    unknown["sessions"][0]["events"][3]["ref"] = "register"
    unknown["sessions"][0]["events"][1]["action"] = "task_list:refresh"
    err = error(env.post("mary", [good, named, unknown]), 422)
    assert err["problems"] == [
        {"index": 1, "field": "sessions[0].events[2].ref",
         "message": "'Follow up Grace Banda' is not a task title key of the program"},
        {"index": 2, "field": "sessions[0].events[1].action", "message": err["problems"][1]["message"]},
        {"index": 2, "field": "sessions[0].events[3].ref", "message": "'register' is not a form id of the program"},
    ]
    assert err["problems"][1]["message"].startswith("unknown action 'task_list:refresh' (known: task_list:open, ")
    assert err["message"] == ("2 of 3 summaries refused, nothing of this request was stored: "
                              "[1].sessions[0].events[2].ref: 'Follow up Grace Banda' is not a task title key of "
                              "the program")
    assert stored(env) == []  # not even the good one
    single = error(env.post("mary", {**good, "notes": "x"}), 422)
    assert single["field"] == "notes" and len(single["problems"]) == 1
    assert error(env.post("mary", []), 422)["message"] == "send one summary or an array of summaries, not an " \
                                                          "empty array"
    assert error(env.post("mary", "interaction"), 422)["problems"][0]["field"] == ""


def test_at_most_100_summaries_per_request(env: Env) -> None:
    err = error(env.post("mary", [simple()] * 101), 413)
    assert err["message"] == "101 summaries in one request; send at most 100 per request"


def test_untracked_users_send_nothing(env: Env) -> None:
    err = error(env.post("nurse", simple("nurse")), 403)
    assert err["message"] == ("task interaction tracking is off for you, nothing was stored: the program grants "
                              "can_track_task_interactions to none of your roles (supervisor)")
    assert stored(env) == []


def test_a_user_sends_only_their_own_summaries(env: Env) -> None:
    err = error(env.post("mary", [simple("mary"), simple("john", device=OTHER_DEVICE)]), 403)
    assert err["message"] == ("you may only send your own summaries (metadata.user 'mary'): [1] is 'john''s; "
                              "nothing was stored")
    assert err["problems"] == [{"index": 1, "field": "metadata.user", "message": "not the caller"}]
    assert stored(env) == []


def test_tracking_is_turned_on_by_the_programs_settings(env: Env) -> None:
    """What docs/interactions.md tells a program manager: grant the permission to a role, load the settings."""
    assert env.post("nurse", simple("nurse")).status_code == 403
    settings = json.loads((env.program / "app_settings.json").read_text())
    settings["permissions"][TRACK] = ["chw", "supervisor"]
    env.service.import_settings({"permissions": settings["permissions"]})
    assert env.post("nurse", simple("nurse")).status_code == 201
    settings["permissions"][TRACK] = []
    env.service.import_settings({"permissions": settings["permissions"]})
    assert env.post("mary", simple()).status_code == 403  # and off again, for everyone


def test_without_a_program_there_is_nothing_to_check_against(unloaded: Env) -> None:
    assert "no program is loaded" in error(unloaded.post("mary", simple()), 409)["message"]
    assert error(unloaded.get("officer"), 409)


@pytest.fixture
def capped(store: Store, tmp_path: Path) -> Iterator[Env]:
    """``env`` keeping at most two conflicting versions of a summary."""
    yield from _env(store, program_granting(tmp_path / "program", {TRACK: ["chw"], ANALYSE: ["supervisor"]}), True,
                    InteractionLimits(max_conflicts=2))


def test_conflicting_versions_of_a_summary_are_capped(capped: Env) -> None:
    doc = simple()
    versions = [doc]
    for detail in (1, 2, 3):
        other = simple()
        other["sessions"][0]["events"][2]["detail"] = detail
        versions.append(other)
    assert [capped.post("mary", v).json()["results"][0]["conflict"] for v in versions[:3]] == [0, 1, 2]
    err = error(capped.post("mary", [simple(day="2025-07-30"), versions[3]]), 422)
    assert err["message"].startswith("1 of 2 summaries refused, nothing of this request was stored: [1] ")
    assert err["problems"] == [{"index": 1, "id": doc["_id"], "field": "_id",
                                "message": "2 conflicting versions of this summary are already stored, the most kept"}]
    assert stored(capped) == [(doc["_id"], 0), (doc["_id"], 1), (doc["_id"], 2)]  # the other day was not stored
    # what is stored is still answered `unchanged`, and other ids are not limited by this one's versions
    again = capped.post("mary", [versions[2], doc, simple(day="2025-07-30")])
    assert again.status_code == 201, again.text
    assert [r["status"] for r in again.json()["results"]] == ["unchanged", "unchanged", "created"]


def test_the_conflict_cap_defaults_to_the_environment(store: Store, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAZI_INTERACTION_MAX_CONFLICTS", "0")
    envs = _env(store, program_granting(tmp_path / "program", {TRACK: ["chw"], ANALYSE: ["supervisor"]}), True)
    env = next(envs)
    try:
        other = simple()
        other["sessions"][0]["events"][2]["detail"] = 5
        assert env.post("mary", simple()).status_code == 201
        assert error(env.post("mary", other), 422)["field"] == "_id"
    finally:
        envs.close()


def test_credentials_are_required(env: Env) -> None:
    assert env.client.post(URL, json=simple()).status_code == 401
    assert env.client.get(URL + "/metrics").status_code == 401


# --------------------------------------------------------------------------------------------------------
# analysts


@pytest.fixture
def sent(env: Env) -> Env:
    """The scenario of test_interaction_metrics, sent by mary (hc-north) and john (hc-south)."""
    for doc in ALL:
        resp = env.post(doc["metadata"]["user"], doc)
        assert resp.status_code == 201, resp.text
    return env


def test_analytics_need_their_permission(sent: Env) -> None:
    err = error(sent.get("mary"), 403)
    assert err["message"] == ("you may not read interaction analytics: the program grants "
                              "can_view_interaction_analytics to none of your roles (chw)")
    for path in ("/events", "/summaries"):
        assert sent.get("john", path).status_code == 403


def test_an_analyst_sees_the_users_at_or_under_their_place(sent: Env) -> None:
    def users(who: str, **params: Any) -> set[str]:
        return {i["username"] for i in sent.ok(who, "/summaries", **params)["items"]}

    assert users("nurse") == {"mary"}  # hc-north
    assert users("officer") == {"mary", "john"}  # the district
    assert users("admin") == {"mary", "john"}  # no place, but administrators see everything
    assert users("officer", place="hc-south") == {"john"}
    assert users("nurse", place="hc-south") == set()  # outside her place: nothing
    assert users("officer", user="mary") == {"mary"}
    nurse_events = sent.ok("nurse", "/events")["rows"]
    assert {r["user"] for r in nurse_events} == {"mary"} and len(nurse_events) == 19 + 7 + 5


def test_metrics_known_answers(sent: Env) -> None:
    """The numbers worked out by hand in test_interaction_metrics, through the API."""
    body = sent.ok("officer")
    assert body["window"] == {"from": "2025-07-03", "to": "2025-08-01", "places": [], "users": []}
    assert body["group_by"] == [] and body["rows"] == [body["totals"]]
    totals = body["totals"]
    assert (totals["summaries"], totals["sessions"], totals["sessions_per_day"]) == (3, 4, 1.333)
    assert (totals["tasks_opened"], totals["tasks_completed"], totals["tasks_cancelled"],
            totals["back_outs"]) == (6, 3, 1, 3)
    assert (totals["open_ms_median"], totals["complete_ms_mean"], totals["position_mean"]) == (6000.0, 45500.0, 1.667)
    assert body["summaries"] == 3 and body["conflicts"] == 0
    assert [c["name"] for c in body["columns"]][:2] == ["summaries", "user_days"]

    # the nurse sees Mary's visits 1-5 only: 5 opened, 2 completed, 1 cancelled, 3 back-outs
    nurse = sent.ok("nurse")["totals"]
    assert (nurse["tasks_opened"], nurse["tasks_completed"], nurse["tasks_cancelled"], nurse["back_outs"]) == (
        5, 2, 1, 3)
    assert (nurse["sessions"], nurse["user_days"], nurse["sessions_per_day"]) == (3, 2, 1.5)

    by = sent.ok("officer", group_by=["task_type", "day"])
    assert by["group_by"] == ["day", "task_type"]
    assert [(r["day"], r["task_type"], r["tasks_opened"], r["sessions"]) for r in by["rows"]] == [
        ("2025-07-30", "task.person_welcome", 1, None), ("2025-07-30", "task.sick_followup", 3, None),
        ("2025-07-31", "task.person_welcome", 1, None), ("2025-07-31", "task.sick_followup", 1, None)]
    only_31 = sent.ok("officer", **{"from": "2025-07-31", "to": "2025-07-31"})
    assert only_31["totals"]["tasks_opened"] == 2 and only_31["summaries"] == 2


def test_metrics_read_the_fullest_version_of_a_conflict(sent: Env) -> None:
    shorter = json.loads(json.dumps(MARY_31))
    shorter["sessions"][0]["events"] = shorter["sessions"][0]["events"][:1]
    assert sent.post("mary", shorter).json()["results"][0]["status"] == "conflict"
    body = sent.ok("nurse", **{"from": "2025-07-31"})
    assert (body["summaries"], body["conflicts"]) == (2, 1)
    assert body["totals"]["events"] == 5 and body["totals"]["tasks_opened"] == 1  # MARY_31's, not the shorter


@pytest.mark.parametrize("path, group_by", [("/metrics", ["user", "day"]), ("/metrics", []), ("/events", [])])
def test_exports_as_csv_and_parquet_hold_the_json_rows(sent: Env, path: str, group_by: list[str]) -> None:
    rows = sent.ok("officer", path, group_by=group_by)["rows"]
    parquet = sent.get("officer", path, group_by=group_by, format="parquet")
    assert parquet.status_code == 200
    assert parquet.headers["content-type"] == "application/vnd.apache.parquet"
    what = path.strip("/")
    assert parquet.headers["content-disposition"] == (
        f'attachment; filename="interaction-{what}-2025-07-03-2025-08-01.parquet"')
    assert pq.read_table(io.BytesIO(parquet.content)).to_pylist() == rows
    text = sent.get("officer", path, group_by=group_by, format="csv")
    assert text.headers["content-type"] == "text/csv; charset=utf-8"
    read = list(csv.DictReader(io.StringIO(text.text)))
    assert read == [{k: "" if v is None else str(v) for k, v in row.items()} for row in rows]


def test_csv_cells_never_start_a_formula_and_parquet_keeps_the_values(env: Env) -> None:
    """A username may start with '-': in a spreadsheet it must stay text (CSV injection), a number a number."""
    env.store.users.create("-cmd", password="-cmd-password", roles=["chw"], facility_id="hc-north")
    assert env.post("-cmd", simple(user="-cmd")).status_code == 201
    rows = list(csv.DictReader(io.StringIO(env.get("admin", "/events", format="csv").text)))
    assert {r["user"] for r in rows} == {"'-cmd"}
    assert {r["offset_ms"] for r in rows} >= {"0", "400"}  # numbers as they are
    parquet = pq.read_table(io.BytesIO(env.get("admin", "/events", format="parquet").content)).to_pylist()
    assert {r["user"] for r in parquet} == {"-cmd"} == {r["user"] for r in env.ok("admin", "/events")["rows"]}


def test_bad_analyst_parameters(sent: Env) -> None:
    err = error(sent.get("officer", **{"from": "2025-08-01", "to": "2025-07-01"}), 422)
    assert err["message"] == "query.from: 2025-08-01 is after query.to (2025-07-01)"
    err = error(sent.get("officer", **{"from": "2024-01-01", "to": "2025-07-01"}), 422)
    assert err["message"] == "query.from: at most 366 days at once (asked 548): split the range"
    assert error(sent.get("officer", **{"from": "2025-13-01"}), 422)["field"] == "query.from"
    assert error(sent.get("officer", group_by="place"), 422)["field"] == "query.group_by.0"
    assert error(sent.get("officer", format="xlsx"), 422)["field"] == "query.format"
    assert error(sent.get("officer", "/summaries", limit=0), 422)["field"] == "query.limit"


def test_extreme_dates_and_offsets_are_422_not_500(sent: Env) -> None:
    """0001-01-01 made the default window underflow the calendar; an offset of 2**63 overflowed SQL's
    64-bit OFFSET: both were 500s."""
    for path in ("/metrics", "/events", "/summaries"):
        for name, value in (("to", "0001-01-01"), ("from", "0001-01-01"), ("to", "9999-12-31"),
                            ("from", "1999-12-31"), ("to", "2100-01-01")):
            err = error(sent.get("officer", path, **{name: value}), 422)
            assert err["field"] == f"query.{name}" and "2000-01-01 to 2099-12-31" in err["message"], err
    for offset in (2**63, 2**64 + 1, MAX_OFFSET + 1):
        assert error(sent.get("officer", "/summaries", offset=offset), 422)["field"] == "query.offset"
    page = sent.ok("officer", "/summaries", offset=MAX_OFFSET, **{"from": "2025-07-01", "to": "2025-07-31"})
    assert (page["total"], page["items"]) == (3, [])
    assert sent.ok("officer", "/summaries", **{"from": "2000-01-01", "to": "2000-01-31"})["total"] == 0


def test_summaries_are_paged(sent: Env) -> None:
    page = sent.ok("officer", "/summaries", limit=2, offset=1)
    assert (page["total"], page["limit"], page["offset"]) == (3, 2, 1)
    assert [(i["username"], i["day"]) for i in page["items"]] == [("john", "2025-07-31"), ("mary", "2025-07-31")]
    assert [i["summary"] for i in page["items"]] == [JOHN_31, MARY_31]
    assert sent.ok("officer", "/summaries", **{"to": "2025-07-30"})["items"][0]["summary"] == MARY_30
