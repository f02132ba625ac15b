"""The caller's tasks (``/api/v1/tasks``): the Tasks tab's list and one task with its history."""

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Response

from kazi.server.deps import API, ApiError, Caller, Ctx, Limit, Offset, errors
from kazi.server.schemas import TaskPageOut, TaskState
from kazi.server.views import task_items

#: the largest sequence number a client may pass back (a ``seq`` is a 64-bit database integer)
MAX_SEQ = 2**63 - 1


task_routes = APIRouter(prefix=API, tags=["tasks"])


@task_routes.get("/tasks", summary="The caller's Ready tasks, in Tasks tab order", response_model=TaskPageOut,
                 responses=errors(401, 409, 422, 500))
def list_tasks(
    user: Caller, c: Ctx,
    overdue: Annotated[bool | None, Query(description="true: only overdue tasks; false: only the others")] = None,
    task_type: Annotated[list[str] | None, Query(alias="type", description="task title key (repeatable)")] = None,
    place: Annotated[list[str] | None, Query(description="a place `_id`: tasks of contacts under it "
                                                         "(repeatable)")] = None,
    limit: Limit = 100,
    offset: Offset = 0,
    state: Annotated[list[TaskState] | None, Query(description="Ready (default) and/or Draft (repeatable): the "
                                                               "web app caches Draft tasks for offline midnights")
                     ] = None,
    since: Annotated[int | None, Query(ge=0, le=MAX_SEQ, description="the `seq` of an earlier answer: answer only "
                                                                     "the tasks that changed after it (a delta)")
                     ] = None,
) -> Response:
    """Sorted as CHT's Tasks tab (numeric priority, higher first, then due date). Each item is the task
    document (`_id`, `state`, `stateHistory`, `emission`, ...) plus `emission_id`, `contact` (`_id`, `name`:
    the task's owner) and `lineage` (the owner's ancestors within the caller's place, nearest first, each
    `_id`, `name`, `contact_type`). The caller's own writes are included (their tasks are brought up to
    date first). Pages are served from a cache while the caller's task documents are unchanged
    (`kazi.service.pages`).

    `seq` is the newest sequence number among the caller's task documents. A client that keeps the list (the
    web app does, for offline use) passes it back as `since` and gets a delta: `items` are the tasks in the
    asked states written after it, `removed` the ids of those that left the list. A `since` newer than the
    caller's task documents (a copy from another server) gets the whole list, `since` null. `since` does not
    combine with the `overdue`, `type` and `place` filters (they depend on more than the task document)."""
    if since is not None:
        for name, value in (("overdue", overdue), ("type", task_type), ("place", place)):
            if value is not None:
                raise ApiError(422, f"`since` (a delta) does not combine with the `{name}` filter: "
                                    "filter the list on the device", field=name)
    task_seq = c.service.refresh_user(user)
    if task_seq is None:
        c.program_or_409()
    seq = task_seq or 0
    if since is not None and since > seq:
        since = None  # not a sequence number of this server's for this user: the whole list
    states = state or ["Ready"]
    key = ("tasks", user.id, user.updated_at, c.service.local_day(user), seq, overdue,
           tuple(task_type or ()), tuple(place or ()), tuple(states), limit, offset)
    body = c.pages.get(key) if since is None else None
    if body is None:
        page = c.service.tasks(user, overdue=overdue, task_types=task_type, places=place, limit=limit,
                               offset=offset, states=states, since=since)
        body = orjson.dumps({"total": page.total, "limit": limit, "offset": offset, "seq": seq, "since": since,
                             "removed": page.removed, "items": task_items(c.store, user, page.items)})
        if since is None:
            c.pages.put(key, body)
    return Response(body, media_type="application/json")


@task_routes.get("/tasks/{task_id:path}", summary="One task document with its state history",
                 responses={200: {"description": "the task document (`stateHistory` inside)"},
                            **errors(401, 404, 500)})
def get_task(task_id: str, user: Caller, c: Ctx) -> dict[str, Any]:
    """The caller's own task documents only (admins and national users see all); another user's is a 404."""
    if c.service.program() is not None:
        c.service.refresh_user(user)
    return c.store.get_task_doc(task_id, user=user)
