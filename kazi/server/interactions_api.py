"""Task interaction tracking over HTTP (docs/interactions.md): devices send their daily summaries, analysts read
numbers.

* ``POST /api/v1/interactions``: a tracked user's device sends its summaries (one or an array). Only users
  whose roles hold ``can_track_task_interactions`` under the active program, and only their own summaries
  (``metadata.user`` is the caller): anything else is a 403 that says why. Each summary is validated
  (:mod:`kazi.analytics.summary`); one bad summary refuses the request with every problem located (422) and
  nothing stored, so a device can drop exactly the refused ones and send the rest again. Stored
  idempotently (:mod:`kazi.store.interactions`): 200 when every summary was already there, 201 otherwise.
* ``GET /api/v1/interactions/metrics|events|summaries``: for users holding
  ``can_view_interaction_analytics``, confined to the summaries of users at or under the analyst's place;
  filtered by date range, place and user; metrics grouped by day, user, device and task type; tables also as
  CSV or Parquet (``format=``).

Why a module of its own: the routes share nothing with the task routes but the API's dependencies
(authentication, errors), and keeping them here keeps ``kazi.server.tasks_api`` about tasks. ``create_app``
includes :data:`interaction_routes`. The guide is ``docs/interactions.md``.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Final, Literal

from fastapi import APIRouter, Body, Query, Response
from pydantic import BaseModel, Field

from kazi.analytics import export
from kazi.analytics import metrics as m
from kazi.analytics.summary import SummaryInfo, SummaryProblem, check_summary
from kazi.analytics.vocabulary import program_vocabulary
from kazi.epoch import EARLIEST_DATE, LATEST_DATE
from kazi.server.deps import API, ApiContext, ApiError, Caller, Ctx, Limit, Offset, errors
from kazi.store import StoredUser, scope_of
from kazi.store import interactions as stored

#: the permission that turns tracking on for a role (CHT's; granted to no role by default)
TRACK: Final = "can_track_task_interactions"
#: the permission to read the analytics (Kazi's)
ANALYSE: Final = "can_view_interaction_analytics"
#: summaries per POST: a device holds a few days' worth; a backlog goes in several requests
MAX_SUMMARIES: Final = 100
#: problems listed in a 422 (the message says how many there were)
MAX_PROBLEMS: Final = 200
#: the longest date range an analyst may ask for at once, and the default one (ending today)
MAX_RANGE_DAYS: Final = 366
DEFAULT_RANGE_DAYS: Final = 30

Format = Literal["json", "csv", "parquet"]
Group = Literal["day", "user", "device", "task_type"]


# --------------------------------------------------------------------------------------------------------
# shapes


class SavedOut(BaseModel):
    index: int = Field(description="the summary's position in the request")
    id: str = Field(description="the summary's `_id`")
    status: Literal["created", "unchanged", "conflict"] = Field(
        description="created: new; unchanged: this content was already stored; conflict: other content was "
                    "stored under this `_id`, and this one is kept beside it")
    conflict: int = Field(description="0 for the first summary stored under this `_id`, n for the n-th "
                                      "conflicting one")


class SummariesSaved(BaseModel):
    results: list[SavedOut] = Field(description="one per summary sent, in the order sent")


class ColumnOut(BaseModel):
    name: str
    type: Literal["str", "int", "float"]
    description: str


class Window(BaseModel):
    date_from: str = Field(alias="from", description="first local date included (YYYY-MM-DD)")
    date_to: str = Field(alias="to", description="last local date included (YYYY-MM-DD)")
    places: list[str] = Field(description="the place filter (users at or under these places); empty: all")
    users: list[str] = Field(description="the user filter; empty: all")


class MetricsOut(BaseModel):
    window: Window
    group_by: list[Group]
    columns: list[ColumnOut] = Field(description="the columns of `rows`, in order, with their meaning")
    rows: list[dict[str, Any]] = Field(description="one per group, sorted by the group's key")
    totals: dict[str, Any] = Field(description="the metric columns over everything selected")
    summaries: int = Field(description="summary versions selected, conflicting ones included")
    conflicts: int = Field(description="conflicting versions among them (metrics read one version per `_id`: "
                                       "the one with the most events)")


class EventsOut(BaseModel):
    window: Window
    columns: list[ColumnOut]
    rows: list[dict[str, Any]] = Field(description="one per event of every summary version selected")


class SummariesOut(BaseModel):
    window: Window
    total: int = Field(description="summary versions selected (all pages)")
    limit: int
    offset: int
    items: list[dict[str, Any]] = Field(
        description="stored versions: id, conflict, username, device_id, day, app_version, events, dropped, "
                    "received_at (epoch ms), seq and the `summary` as sent")


# --------------------------------------------------------------------------------------------------------
# permissions and parameters


class _Selection:
    """An analyst's selection: the validated date window and filters, confined to the analyst's scope."""

    def __init__(self, c: ApiContext, user: StoredUser, date_from: date | None, date_to: date | None,
                 places: list[str] | None, users: list[str] | None) -> None:
        c.program_granting(user, ANALYSE, "you may not read interaction analytics")
        for name, given in (("from", date_from), ("to", date_to)):
            if given is not None and not EARLIEST_DATE <= given <= LATEST_DATE:
                # e.g. 0001-01-01: the default window before it would underflow the calendar (was a 500)
                raise ApiError(422, f"query.{name}: {given} is outside the dates Kazi accepts ({EARLIEST_DATE} to "
                                    f"{LATEST_DATE})", field=f"query.{name}")
        today = datetime.fromtimestamp(c.service.clock() / 1000, UTC).date()
        self.to = date_to or today
        self.start = date_from or self.to - timedelta(days=DEFAULT_RANGE_DAYS - 1)
        if self.start > self.to:
            raise ApiError(422, f"query.from: {self.start} is after query.to ({self.to})", field="query.from")
        if (self.to - self.start).days + 1 > MAX_RANGE_DAYS:
            raise ApiError(422, f"query.from: at most {MAX_RANGE_DAYS} days at once (asked "
                                f"{(self.to - self.start).days + 1}): split the range", field="query.from")
        self.c = c
        self.scope = scope_of(user)
        self.places = places or []
        self.users = users or []

    def window(self) -> Window:
        return Window.model_validate({"from": self.start.isoformat(), "to": self.to.isoformat(),
                                      "places": self.places, "users": self.users})

    def _filters(self) -> dict[str, Any]:
        return {"date_from": self.start.isoformat(), "date_to": self.to.isoformat(), "places": self.places,
                "usernames": self.users}

    def find(self, *, limit: int | None = None, offset: int = 0) -> list[stored.StoredSummary]:
        return stored.find_summaries(self.c.store, self.scope, limit=limit, offset=offset, **self._filters())

    def count(self) -> int:
        return stored.count_summaries(self.c.store, self.scope, **self._filters())

    def file(self, what: str, fmt: str, columns: list[m.Column], rows: list[dict[str, Any]]) -> Response:
        name = f"interaction-{what}-{self.start.isoformat()}-{self.to.isoformat()}.{fmt}"
        return Response(content=export.encode(fmt, columns, rows), media_type=export.MEDIA_TYPES[fmt],
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})


_DATES = f"{EARLIEST_DATE} to {LATEST_DATE}"
DateFrom = Annotated[date | None, Query(alias="from", description="first local date (YYYY-MM-DD, "
                                                                 f"{_DATES}); default: {DEFAULT_RANGE_DAYS - 1} "
                                                                 "days before `to`")]
DateTo = Annotated[date | None, Query(alias="to", description=f"last local date (YYYY-MM-DD, {_DATES}); default: "
                                                             "today (UTC)")]
Places = Annotated[list[str] | None, Query(alias="place", description="a place `_id`: summaries of users whose "
                                                                     "place is at or under it (repeatable)")]
Users = Annotated[list[str] | None, Query(alias="user", description="a username (repeatable)")]
Fmt = Annotated[Format, Query(alias="format", description="json (default), csv or parquet")]


def _columns(columns: list[m.Column]) -> list[ColumnOut]:
    return [ColumnOut.model_validate(c.to_dict()) for c in columns]


_FILES: dict[int | str, dict[str, Any]] = {200: {"content": {
    "application/json": {}, "text/csv": {}, "application/vnd.apache.parquet": {}},
    "description": "JSON, or with `format=csv|parquet` a file to download"}}


# --------------------------------------------------------------------------------------------------------
# routes


interaction_routes = APIRouter(prefix=f"{API}/interactions", tags=["interactions"])

_SUMMARY_EXAMPLE = {
    "_id": "interaction-2025-07-31-mary-0f8e2c4a-6b1d-4e0f-9a3c-5d7e8f901234", "type": "interaction-log",
    "metadata": {"user": "mary", "deviceId": "0f8e2c4a-6b1d-4e0f-9a3c-5d7e8f901234", "date": "2025-07-31",
                 "version": "1.0.0"},
    "sessions": [{"session": "5b1e7d2c-3a4f-4b6e-8c9d-0e1f2a3b4c5d", "startedAt": 1753945200000, "events": [
        {"action": "task_list:open", "offset": 0},
        {"action": "task_list:loaded", "detail": 3, "offset": 400},
        {"action": "task:open", "ref": "task.sick_followup", "detail": 0, "offset": 5000},
        {"action": "task:form_open", "ref": "followup", "offset": 7000},
        {"action": "task:form_save", "offset": 60000},
        {"action": "task:complete", "offset": 61000},
        {"action": "task_list:leave", "offset": 65000}]}],
    "dropped": 0}


@interaction_routes.post(
    "", summary="Send task interaction summaries (tracked users, their own)", status_code=201,
    response_model=SummariesSaved,
    responses={200: {"model": SummariesSaved, "description": "every summary was already stored (unchanged)"},
               **errors(400, 401, 403, 409, 413, 422)})
def post_summaries(payload: Annotated[Any, Body(examples=[_SUMMARY_EXAMPLE])], user: Caller, c: Ctx,
                   response: Response) -> SummariesSaved:
    """One summary or an array (at most 100), each `interaction-<date>-<user>-<deviceId>` of the caller
    (docs/interactions.md has the format). A summary already stored answers `unchanged`; other content
    under a stored `_id` is kept beside it (`conflict`), up to a cap of conflicting versions per `_id`
    (`KAZI_INTERACTION_MAX_CONFLICTS`, default 20). Any invalid summary, or one beyond the cap, refuses the
    whole request (422, every problem with its `index` and JSON path `field`); nothing is stored then."""
    program = c.program_granting(user, TRACK, "task interaction tracking is off for you, nothing was stored")
    batch = payload if isinstance(payload, list) else [payload]
    if not batch:
        raise ApiError(422, "send one summary or an array of summaries, not an empty array")
    if len(batch) > MAX_SUMMARIES:
        raise ApiError(413, f"{len(batch)} summaries in one request; send at most {MAX_SUMMARIES} per request")
    _only_own(batch, user)
    vocabulary = program_vocabulary(program)
    now = c.service.clock()
    good: list[tuple[SummaryInfo, dict[str, Any]]] = []
    problems: list[SummaryProblem] = []
    for index, summary in enumerate(batch):
        info, found = check_summary(summary, vocabulary, now_ms=now, index=index)
        problems.extend(found)
        if info is not None:
            good.append((info, summary))
    if problems:
        bad = len({p.index for p in problems})
        shown = "" if len(problems) <= MAX_PROBLEMS else f" (the first {MAX_PROBLEMS} of {len(problems)} listed)"
        first = problems[0]
        raise ApiError(422, f"{bad} of {len(batch)} summaries refused, nothing of this request was stored: "
                            f"[{first.index}].{first.field or '(summary)'}: {first.message}{shown}",
                       field=first.field if len(problems) == 1 else None,
                       problems=[p.to_dict() for p in problems[:MAX_PROBLEMS]])
    try:
        saved = stored.save_summaries(c.store, good, received_at=now, limits=c.interaction_limits)
    except stored.TooManyConflicts as exc:
        # 422, not 409: the device drops what is refused for good (the problems' indexes) and sends the rest
        raise ApiError(422, f"{len(exc.refused)} of {len(batch)} summaries refused, nothing of this request was "
                            f"stored: {exc}", field="_id" if len(exc.refused) == 1 else None,
                       problems=[{"index": i, "id": doc_id, "field": "_id",
                                  "message": f"{exc.max_conflicts} conflicting versions of this summary are "
                                             "already stored, the most kept"} for i, doc_id in exc.refused]) from None
    if all(s.status == "unchanged" for s in saved):
        response.status_code = 200
    return SummariesSaved(results=[SavedOut(index=i, id=s.id, status=s.status, conflict=s.conflict)
                                   for i, s in enumerate(saved)])


def _only_own(batch: list[Any], user: StoredUser) -> None:
    """403 for summaries that name another user: a device sends only its own user's days."""
    others = [(i, s["metadata"]["user"]) for i, s in enumerate(batch)
              if isinstance(s, dict) and isinstance(s.get("metadata"), dict)
              and isinstance(s["metadata"].get("user"), str) and s["metadata"]["user"] != user.username]
    if others:
        listed = ", ".join(f"[{i}] is {name!r}'s" for i, name in others[:10])
        raise ApiError(403, f"you may only send your own summaries (metadata.user {user.username!r}): {listed}; "
                            "nothing was stored", problems=[{"index": i, "field": "metadata.user",
                                                             "message": "not the caller"} for i, _ in others])


@interaction_routes.get(
    "/metrics", summary="Interaction metrics by day, user, device and task type (analysts)",
    response_model=MetricsOut, responses={**_FILES, **errors(401, 403, 409, 422)})
def get_metrics(
    user: Caller, c: Ctx, date_from: DateFrom = None, date_to: DateTo = None, place: Places = None,
    username: Users = None, fmt: Fmt = "json",
    group_by: Annotated[list[Group] | None, Query(description="day, user, device and/or task_type "
                                                              "(repeatable; none: only the totals)")] = None,
) -> Any:
    """Sessions per user-day, tasks opened / completed / cancelled, back-outs, time from opening the list to
    opening a task and to completing it, position of the opened task, scrolls before an open, filter and group
    use, for the summaries of users at or under the caller's place (docs/interactions.md defines each).
    Grouped by task type, rows hold only the per-task numbers. `format=csv|parquet` downloads `rows`."""
    sel = _Selection(c, user, date_from, date_to, place, username)
    versions = sel.find()
    chosen = m.pick_versions((s.id, s.conflict, s.body) for s in versions if s.body is not None)
    days = [m.read_summary(s) for s in chosen]
    order: list[Group] = sorted(set(group_by or []), key=m.GROUPS.index)  # always in the same order
    rows = m.metric_rows(days, order)
    columns = m.columns_for(order)
    if fmt != "json":
        return sel.file("metrics", fmt, columns, rows)
    return MetricsOut(window=sel.window(), group_by=order, columns=_columns(columns), rows=rows,
                      totals=m.metric_rows(days)[0], summaries=len(versions),
                      conflicts=sum(1 for s in versions if s.conflict))


@interaction_routes.get(
    "/events", summary="Every event of the selected summaries, one row each (analysts)",
    response_model=EventsOut, responses={**_FILES, **errors(401, 403, 409, 422)})
def get_events(user: Caller, c: Ctx, date_from: DateFrom = None, date_to: DateTo = None, place: Places = None,
               username: Users = None, fmt: Fmt = "json") -> Any:
    """For analyses of one's own (pandas, R, DuckDB): each event with its summary, session, action, ref,
    detail and time. Every stored version is listed, with its `conflict` number."""
    sel = _Selection(c, user, date_from, date_to, place, username)
    rows = [row for s in sel.find() if s.body is not None for row in m.event_rows(s.body, conflict=s.conflict)]
    columns = list(m.EVENT_COLUMNS)
    if fmt != "json":
        return sel.file("events", fmt, columns, rows)
    return EventsOut(window=sel.window(), columns=_columns(columns), rows=rows)


@interaction_routes.get(
    "/summaries", summary="The stored summaries as sent, conflicting versions included (analysts)",
    response_model=SummariesOut, responses=errors(401, 403, 409, 422))
def get_summaries(
    user: Caller, c: Ctx, date_from: DateFrom = None, date_to: DateTo = None, place: Places = None,
    username: Users = None, limit: Limit = 100, offset: Offset = 0,
) -> SummariesOut:
    """Ordered by day, user, device, then arrival; each with its `conflict` number (0: the first received)."""
    sel = _Selection(c, user, date_from, date_to, place, username)
    return SummariesOut(window=sel.window(), total=sel.count(), limit=limit, offset=offset,
                        items=[s.to_dict() for s in sel.find(limit=limit, offset=offset)])

