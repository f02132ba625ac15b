"""Supervision reports over HTTP (docs/supervision.md): health workers' indicators by month, the team's, a comparison,
a CSV download and a drill-down to a worker's overdue and failed tasks.

* ``GET /api/v1/supervision/report``: for a place (default: the caller's) and a range of months (default: the
  last three complete months and the current one, in the caller's zone), every indicator the program defines
  (``supervision`` in its settings), per worker and month, the team's, and the comparison of workers (median,
  quartiles, ranking) over the whole range;
* ``GET /api/v1/supervision/report.csv``: the same as rows ``place_id,worker,worker_name,indicator,period,value``;
* ``GET /api/v1/supervision/workers/{username}/tasks``: a worker's overdue and/or failed task documents.

Callers need ``can_view_supervisor_reports`` (403 otherwise) and see only their place: a place or a worker
outside it is a 404, as everywhere in the API. The counting is :mod:`kazi.store.supervision`, the arithmetic
:mod:`kazi.supervision.report`; the guide is ``docs/supervision.md``.
"""

from __future__ import annotations

import csv
import io
from datetime import date
from typing import Annotated, Any, Final, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from kazi import csvcells
from kazi.engine.permissions import has_permissions
from kazi.epoch import EARLIEST_DATE, LATEST_DATE
from kazi.errors import NotFoundError
from kazi.program.loader import Program
from kazi.server.deps import API, ApiContext, ApiError, Caller, Ctx, errors
from kazi.store import StoredUser
from kazi.store import supervision as stored
from kazi.supervision import report as rep
from kazi.supervision.definitions import task_name_of

#: the permission to read supervision reports (the program grants it to roles)
VIEW: Final = "can_view_supervisor_reports"

supervision_routes = APIRouter(prefix=f"{API}/supervision", tags=["supervision"])

Values = dict[str, dict[str, float | None]]


class PlaceOut(BaseModel):
    id: str | None = Field(alias="_id")
    name: str | None


class PeriodOut(BaseModel):
    key: str = Field(description="YYYY-MM")
    start: str = Field(description="the month's first local day")
    end: str = Field(description="the month's last local day")
    partial: bool = Field(description="the current month, not over yet")


class IndicatorOut(BaseModel):
    id: str
    label: str
    kind: Literal["count", "rate"]
    format: Literal["number", "percent"]
    higher_is_better: bool


class WorkerOut(BaseModel):
    user: str
    name: str
    place: PlaceOut
    values: Values = Field(description="indicator id -> period key or `total` -> value (rates: 0..1, null "
                                       "without denominator)")


class TeamOut(BaseModel):
    values: Values


class RankOut(BaseModel):
    user: str
    value: float | None
    rank: int


class ComparisonOut(BaseModel):
    median: float | None
    q1: float | None
    q3: float | None
    ranking: list[RankOut] = Field(description="best first by higher_is_better, nulls last; ties share a rank")


class ReportOut(BaseModel):
    place: PlaceOut
    periods: list[PeriodOut]
    indicators: list[IndicatorOut]
    workers: list[WorkerOut]
    team: TeamOut
    comparison: dict[str, ComparisonOut]


class WorkerTaskOut(BaseModel):
    id: str = Field(alias="_id")
    emission_id: str | None
    title: Any = Field(description="the emission's title (a translation key in most programs)")
    name: str | None = Field(description="the task definition's name")
    state: str | None
    due_date: str | None
    contact: PlaceOut
    state_history: list[dict[str, Any]]


PlaceQ = Annotated[str | None, Query(description="a place `_id` within the caller's place; default: the caller's")]
StartQ = Annotated[str | None, Query(description="first month, YYYY-MM (2000-01 to 2099-12); default: three "
                                                 "complete months back")]
EndQ = Annotated[str | None, Query(description="last month, YYYY-MM (2000-01 to 2099-12); default: the current month")]


def _program(c: ApiContext, user: StoredUser) -> Program:
    return c.program_granting(user, VIEW, "you may not read supervision reports")


def _tz(c: ApiContext, user: StoredUser) -> str:
    return user.timezone or c.service.default_tz


def _month(value: str | None, name: str) -> date | None:
    if value is None:
        return None
    try:
        month = rep.parse_month(value)
    except ValueError:
        raise ApiError(422, f"query.{name}: {value!r} is not a month YYYY-MM", field=f"query.{name}") from None
    if not EARLIEST_DATE <= month <= LATEST_DATE:
        # e.g. 0001-01: its local midnight would fall before the calendar's first day (was a 500)
        raise ApiError(422, f"query.{name}: {value} is outside the months Kazi accepts "
                            f"({EARLIEST_DATE:%Y-%m} to {LATEST_DATE:%Y-%m})", field=f"query.{name}")
    return month


def _periods(c: ApiContext, user: StoredUser, start: str | None, end: str | None) -> list[rep.Period]:
    now, tz = c.service.clock(), _tz(c, user)
    default_start, default_end = rep.default_months(now, tz)
    first = _month(start, "start") or default_start
    last = _month(end, "end") or (default_end if end is None and start is None else max(first, default_end))
    try:
        return rep.periods(first, last, now, tz)
    except ValueError as exc:
        raise ApiError(422, f"query.start: {exc}", field="query.start") from None


def _place(c: ApiContext, user: StoredUser, place: str | None) -> dict[str, Any]:
    """The report's place: stored and within the caller's place (else 404, as a missing one)."""
    place_id = place or user.facility_id
    if not place_id:
        raise ApiError(422, "query.place: you have no place of your own: name one", field="query.place")
    doc = c.store.get_doc(place_id, user=user)  # NotFoundError (404) outside the caller's place
    name = doc.get("name")
    return {"_id": place_id, "name": name if isinstance(name, str) else None}


def build(c: ApiContext, user: StoredUser, place: str | None, start: str | None, end: str | None
          ) -> dict[str, Any]:
    """The report as the API serves it (JSON and CSV alike)."""
    program = _program(c, user)
    where = _place(c, user, place)
    months = _periods(c, user, start, end)
    # supervisors placed under the report's place (a site supervisor at the health centre) are not the
    # health workers it compares: whoever may read these reports supervises, and is left out
    workers = [w for w in stored.health_workers(c.store, where["_id"], exclude=user.username)
               if not has_permissions(VIEW, list(w.roles), program.settings)]
    names = stored.doc_names(c.store, [w.contact_id or "" for w in workers] + [w.facility_id or "" for w in workers])
    infos = [rep.WorkerInfo(w.username, names.get(w.contact_id or "") or w.username, w.facility_id,
                            names.get(w.facility_id or "")) for w in workers]
    bounds = [p.start_ms for p in months] + [months[-1].end_ms]
    counts = stored.count_indicators(c.store, program.supervision, workers, bounds, [p.key for p in months])
    return rep.build_report(program.supervision, where, months, infos, counts)


@supervision_routes.get("/report", summary="Health workers' indicators by month, the team's and a comparison",
                        response_model=ReportOut, response_model_by_alias=True,
                        responses=errors(401, 403, 404, 409, 422))
def get_report(user: Caller, c: Ctx, place: PlaceQ = None, start: StartQ = None, end: EndQ = None) -> Any:
    """The program's indicators (settings `supervision`) for each health worker of the place (enabled users
    placed at or under it who hold task documents, the caller excepted), per month and over the whole range
    (`total`), the team's (their sum; rates of the sums) and, per indicator, the median, quartiles (linear
    interpolation) and ranking of the workers' totals. Months are the caller's local months."""
    return build(c, user, place, start, end)


@supervision_routes.get("/report.csv", summary="The supervision report as CSV",
                        responses={200: {"content": {"text/csv": {}}, "description": "one row per worker, "
                                         "indicator and period (and `total`), then the team's rows"},
                                   **errors(401, 403, 404, 409, 422)})
def get_report_csv(user: Caller, c: Ctx, place: PlaceQ = None, start: StartQ = None, end: EndQ = None
                   ) -> Response:
    """Columns `place_id,worker,worker_name,indicator,period,value`; the team's rows have worker `team`; a rate
    without denominator is an empty value. A text cell that a spreadsheet would read as a formula (starting
    with `=`, `+`, `-`, `@`, a tab or a carriage return, and not a plain number) starts with `'`."""
    report = build(c, user, place, start, end)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(rep.CSV_COLUMNS)
    writer.writerows(csvcells.row(r) for r in rep.csv_rows(report))  # names are users' text: never formulas
    periods = report["periods"]
    name = f"supervision-{report['place']['_id']}-{periods[0]['key']}-{periods[-1]['key']}.csv"
    return Response(content=out.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


def _worker_in_place(c: ApiContext, user: StoredUser, username: str) -> StoredUser:
    """The account ``username`` when its place is within the caller's; else a 404 whose words are the same
    for "no such user", "no place" and "not yours", naming nothing but the username the caller sent (the
    worker's place is not the caller's to learn)."""
    try:
        worker = c.store.users.get(username)
        if not worker.facility_id:
            raise NotFoundError("user", username)
        c.store.get_doc(worker.facility_id, user=user)
    except NotFoundError:
        raise ApiError(404, f"no health worker {username!r} in your place") from None
    return worker


@supervision_routes.get("/workers/{username}/tasks", summary="A health worker's overdue and failed tasks",
                        response_model=list[WorkerTaskOut], response_model_by_alias=True,
                        responses=errors(401, 403, 404, 409, 422))
def get_worker_tasks(
    username: str, user: Caller, c: Ctx,
    state: Annotated[list[Literal["overdue", "failed"]] | None,
                     Query(description="overdue and/or failed (repeatable; default both)")] = None,
    start: StartQ = None, end: EndQ = None,
) -> Any:
    """Overdue: Ready with a due date before the caller's today. Failed: every Failed task, or those that
    failed within the months `start`..`end` when given. Newest due date first. A worker outside the caller's
    place is a 404."""
    _program(c, user)
    worker = _worker_in_place(c, user, username)
    wanted = set(state or ["overdue", "failed"])
    closed_from = closed_to = None
    if start is not None or end is not None:
        months = _periods(c, user, start, end)
        closed_from, closed_to = months[0].start_ms, months[-1].end_ms
    today = rep.local_date(c.service.clock(), _tz(c, user)).isoformat()
    docs = stored.worker_tasks(c.store, worker, overdue_before=today if "overdue" in wanted else None,
                               failed="failed" in wanted, closed_from=closed_from, closed_to=closed_to)
    names = stored.doc_names(c.store, [d.get("owner") or "" for d in docs])
    items = []
    for d in docs:
        emission: dict[str, Any] = d["emission"] if isinstance(d.get("emission"), dict) else {}
        owner = d.get("owner")
        items.append({"_id": d["_id"], "emission_id": emission.get("_id"), "title": emission.get("title"),
                      "name": task_name_of(emission.get("_id")), "state": d.get("state"),
                      "due_date": emission.get("dueDate"),
                      "contact": {"_id": owner, "name": names.get(owner) if isinstance(owner, str) else None},
                      "state_history": d.get("stateHistory") or []})
    return items
