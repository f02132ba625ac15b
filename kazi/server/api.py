"""Kazi's HTTP API (FastAPI): documents, the caller's tasks, the program and the users, under ``/api/v1``.

Rules every route follows, so clients can rely on them without reading each route:

* **Authenticated** (:mod:`kazi.service.auth`): HTTP Basic, a bearer token or the web app's session cookie;
  401 otherwise. Only ``POST /api/v1/login``, ``/healthz`` and the documentation are open. Password checks
  are throttled per account and per client address: 429 with ``Retry-After`` on any route a password
  reaches (every authenticated route, through Basic, and the login).
* **Input checked before any route reads it** (:mod:`kazi.server.guard`): a body only after authentication,
  within the size limits (413), as JSON (415), strict and without NUL or lone surrogates anywhere (422);
  writes with the session cookie from the server's own origin only (403).
* **Confined to the caller's scope**: every store call passes the caller, so a document or task outside
  their place is a 404 with the same words as a missing one (never a 403, which would say it exists).
* **JSON errors**: ``{"error": {"status", "message", "field"?, "problems"?}}`` for every failure, unknown
  routes and bad parameters included; a bug gives a 500 with no stack trace (the trace goes to the log).
* **Read-your-writes**: a write returns once it is committed; the next ``GET /api/v1/tasks`` of the same
  user first brings that user's tasks up to date (``TaskService.refresh_user``), so writes stay fast and a
  user never sees tasks older than their own last write. Other users' tasks follow through the background
  worker.

Handlers are plain ``def`` functions where they call the store or the engine: FastAPI runs them in its
thread pool, so a slow Argon2 check or a recompute never blocks the event loop.
"""

import contextlib
import dataclasses
import errno
import io
import logging
import tempfile
import zipfile
import zlib
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, cast

import orjson
from fastapi import APIRouter, Body, Depends, FastAPI, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.security import APIKeyCookie, HTTPBasic, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import HTTPConnection

from kazi import web
from kazi.engine.permissions import has_permissions
from kazi.errors import (
    ConfigCodeError,
    DocumentBatchError,
    DocumentConflictError,
    KaziError,
    NotFoundError,
    ProgramError,
    UserError,
)
from kazi.program.limits import ProgramLimits
from kazi.program.loader import Program, inspect_tasks
from kazi.server.limits import InputSettings
from kazi.server.schemas import (
    DocResult,
    DocsWritten,
    ErrorResponse,
    Health,
    LoggedIn,
    LoginRequest,
    ProgramOut,
    TaskPageOut,
    TaskState,
    TokenOut,
    UserCreate,
    UserOut,
    UserUpdate,
    ValidationOut,
)
from kazi.server.views import task_items
from kazi.service.auth import SESSION_COOKIE, Authenticator, AuthError, AuthSettings, Throttled, client_address
from kazi.service.pages import PageCache
from kazi.service.tasks import TaskService
from kazi.service.worker import BackgroundWorker
from kazi.sms.phones import country_code_of
from kazi.store import UNSET, Store, StoredUser, is_offline, open_store
from kazi.store.interactions import InteractionLimits

log = logging.getLogger("kazi.server")

API = "/api/v1"
#: documents per POST: a batch is one transaction, and a huge one would hold the write lock for long
MAX_BATCH = 5000
#: a program upload (the zip as sent) and what it may unpack to
MAX_PROGRAM_ZIP = 50 * 1024 * 1024
MAX_PROGRAM_UNPACKED = 200 * 1024 * 1024
MAX_PROGRAM_FILES = 20_000
#: the largest ``offset`` a paged route takes: beyond any real list, far inside the 64-bit integers SQL's
#: OFFSET takes (a larger one was a 500 from the database instead of a 422)
MAX_OFFSET = 1_000_000_000
#: the largest sequence number a client may pass back (a ``seq`` is a 64-bit database integer)
MAX_SEQ = 2**63 - 1

#: the paging parameters every listing shares, bounded in the OpenAPI so a client learns them there
Limit = Annotated[int, Query(ge=1, le=1000, description="items per page (1 to 1000)")]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description=f"items skipped (0 to {MAX_OFFSET:,})")]


# --------------------------------------------------------------------------------------------------------
# errors


class ApiError(Exception):
    """A client error with its HTTP status, rendered as ``{"error": {...}}``."""

    def __init__(self, status: int, message: str, *, field: str | None = None,
                 problems: list[dict[str, Any]] | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.problems = problems
        self.headers = headers


def error_response(status: int, message: str, *, field: str | None = None,
                   problems: list[dict[str, Any]] | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"status": status, "message": message}
    if field is not None:
        body["field"] = field
    if problems is not None:
        body["problems"] = problems
    return JSONResponse({"error": body}, status_code=status, headers=headers)


_ERROR_TEXT = {
    400: "Malformed request (not JSON, not a zip, ...)",
    401: "No credentials, wrong ones, or a disabled account",
    403: "Not allowed: the caller is not an administrator or lacks the program's permission, or a cross-site "
         "request with the session cookie",
    404: "Not found, or outside the caller's place (the same answer on purpose)",
    409: "No program is loaded yet",
    413: "Too large: the request body or a document passes its limit",
    415: "The body is not JSON (this route takes Content-Type: application/json)",
    422: "Validation failed (a NUL character or a lone surrogate in the path, query or body, NaN, ...): every "
         "problem is listed, located",
    429: "Too many failed password checks for the account or from the client's address, or too many at "
         "once: `Retry-After` says when to try again",
    500: "The program's task code failed",
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The error answers a route documents in OpenAPI. A route that authenticates (401) may also answer 429:
    Basic credentials are a password check, throttled like a login."""
    if 401 in codes and 429 not in codes:
        codes = (*codes, 429)
    return {code: {"model": ErrorResponse, "description": _ERROR_TEXT[code]} for code in sorted(codes)}


def _problem_dicts(items: Iterable[object]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for item in items:
        to_dict = getattr(item, "to_dict", None)
        if callable(to_dict):
            out.append(cast(dict[str, Any], to_dict()))
        elif isinstance(item, dict):
            out.append(item)
        else:
            out.append({"message": str(item)})
    return out


def _install_error_handlers(app: FastAPI) -> None:
    async def api_error(_request: Request, exc: Exception) -> JSONResponse:
        e = cast(ApiError, exc)
        return error_response(e.status, e.message, field=e.field, problems=e.problems, headers=e.headers)

    async def throttled(_request: Request, exc: Exception) -> JSONResponse:
        return error_response(429, str(exc), headers={"Retry-After": str(cast(Throttled, exc).retry_after_s)})

    async def not_found(_request: Request, exc: Exception) -> JSONResponse:
        return error_response(404, str(exc))

    async def user_error(_request: Request, exc: Exception) -> JSONResponse:
        return error_response(422, str(exc), field=cast(UserError, exc).field)

    def batch_response(status: int, e: DocumentBatchError, what: str, fix: str) -> JSONResponse:
        bad = len({(p.index, p.doc_id) for p in e.problems})
        fields = {p.field for p in e.problems}
        return error_response(
            status, f"{bad} of {e.total} document(s) {what}; nothing of this batch was stored: {fix}",
            field=next(iter(fields)) if len(fields) == 1 else None, problems=_problem_dicts(e.problems))

    async def batch_error(_request: Request, exc: Exception) -> JSONResponse:
        return batch_response(422, cast(DocumentBatchError, exc), "refused",
                              "fix every problem listed and send the whole batch again")

    async def conflict_error(_request: Request, exc: Exception) -> JSONResponse:
        return batch_response(409, cast(DocumentConflictError, exc), "conflict with what is stored",
                              "read each document named again (its `current_rev` is given), apply your change to "
                              "it and send the whole batch again")

    async def program_error(_request: Request, exc: Exception) -> JSONResponse:
        e = cast(ProgramError, exc)
        first = str(e).splitlines()[0]
        return error_response(422, f"{first}; the program was not loaded (the previous one keeps running)",
                              problems=_problem_dicts(e.problems))

    async def code_error(_request: Request, exc: Exception) -> JSONResponse:
        log.error("program code failed: %s", exc)
        return error_response(500, f"the program's task code failed: {exc}")

    async def kazi_error(_request: Request, exc: Exception) -> JSONResponse:
        return error_response(400, str(exc))

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        e = cast(StarletteHTTPException, exc)
        message = str(e.detail)
        if e.status_code == 404 and message == "Not Found":
            message = f"no route {request.method} {request.url.path} (see /docs)"
        elif e.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path} (see /docs)"
        return error_response(e.status_code, message, headers=getattr(e, "headers", None))

    async def validation_error(_request: Request, exc: Exception) -> JSONResponse:
        e = cast(RequestValidationError, exc)
        problems: list[dict[str, Any]] = []
        for err in e.errors():
            loc = [str(p) for p in err.get("loc", ())]
            problems.append({"field": ".".join(loc), "message": str(err.get("msg", "invalid"))})
        if any(err.get("type") == "json_invalid" for err in e.errors()):
            return error_response(400, "the request body is not valid JSON", problems=problems)
        first = problems[0] if problems else {"field": None, "message": "invalid request"}
        return error_response(422, f"{first['field']}: {first['message']}" if first["field"] else first["message"],
                              field=first["field"], problems=problems)

    async def internal_error(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error", exc_info=exc)
        return error_response(500, "internal error (the details are in the server's log)")

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(Throttled, throttled)
    app.add_exception_handler(NotFoundError, not_found)
    app.add_exception_handler(UserError, user_error)
    app.add_exception_handler(DocumentBatchError, batch_error)
    app.add_exception_handler(DocumentConflictError, conflict_error)
    app.add_exception_handler(ProgramError, program_error)
    app.add_exception_handler(ConfigCodeError, code_error)
    app.add_exception_handler(KaziError, kazi_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(Exception, internal_error)


# --------------------------------------------------------------------------------------------------------
# the application's state and the dependencies handlers take


@dataclass
class ApiContext:
    """Everything the handlers share: the store, the compute service, the authenticator."""

    store: Store
    service: TaskService
    auth: Authenticator
    worker: BackgroundWorker | None = None
    pages: PageCache = field(default_factory=PageCache)  # rendered task pages (kazi.service.pages)
    interaction_limits: InteractionLimits = field(default_factory=InteractionLimits)  # kazi.store.interactions

    def program_or_409(self) -> None:
        if self.service.program() is None:
            raise ApiError(409, "no program is loaded: an administrator must upload one (POST /api/v1/program "
                                "or `kazi serve --program DIR`)")

    def program_granting(self, user: StoredUser, permission: str, refusal: str) -> Program:
        """The active program, when it grants ``permission`` to one of the caller's roles (admins hold every
        permission, as in CHT); 409 without a program, 403 (``refusal``: what the caller may not do) otherwise."""
        self.program_or_409()
        program = self.service.program()
        assert program is not None
        if not has_permissions(permission, list(user.roles), program.settings):
            roles = ", ".join(user.roles) or "none"
            raise ApiError(403, f"{refusal}: the program grants {permission} to none of your roles ({roles})")
        return program

    def user_out(self, user: StoredUser) -> UserOut:
        program = self.service.program()
        offline = is_offline(user, program.settings) if program is not None else None
        return UserOut(**user.to_dict(), offline=offline)

    def known_roles(self) -> list[str] | None:
        program = self.service.program()
        return list(program.roles) if program is not None else None


def context(request: Request) -> ApiContext:
    return cast(ApiContext, request.app.state.kazi)


Ctx = Annotated[ApiContext, Depends(context)]

class _DocumentedBasic(HTTPBasic):
    """HTTP Basic as OpenAPI shows it; :func:`current_user` parses the header itself (FastAPI's parser
    refuses non-ASCII passwords and answers in its own error format)."""

    async def __call__(self, request: HTTPConnection) -> None:
        return None


class _DocumentedBearer(HTTPBearer):
    """Bearer tokens as OpenAPI shows them; parsed by :func:`current_user`."""

    async def __call__(self, request: HTTPConnection) -> None:
        return None


basic_scheme = _DocumentedBasic(auto_error=False, description="username and password (scripts)")
bearer_scheme = _DocumentedBearer(auto_error=False, description="a token from `kazi users token NAME` (scripts)")
cookie_scheme = APIKeyCookie(name=SESSION_COOKIE, auto_error=False,
                             description="the session cookie POST /api/v1/login sets (the web app)")


def _unauthorized(conn: HTTPConnection, message: str, retry_after_s: int | None = None) -> ApiError:
    # Browsers pop up a password dialog on `WWW-Authenticate: Basic`; the web app marks its requests with
    # X-Requested-With to get a plain 401 it can handle itself.
    headers = {} if conn.headers.get("x-requested-with") else {"WWW-Authenticate": 'Basic realm="kazi"'}
    if retry_after_s is not None:
        headers["Retry-After"] = str(retry_after_s)  # this failure made the account or the address wait
    return ApiError(401, message, headers=headers or None)


def caller_address(conn: HTTPConnection, c: ApiContext) -> str | None:
    """The client's address failed password checks are counted under (:func:`kazi.service.auth.client_address`)."""
    peer = conn.client.host if conn.client is not None else None
    return client_address(peer, conn.headers, c.auth.settings)


def authenticate(c: ApiContext, conn: HTTPConnection) -> StoredUser:
    """The caller, from the Authorization header (Basic or Bearer) or else the session cookie; a 401
    :class:`ApiError` otherwise. Runs before a request's body is read (:mod:`kazi.server.guard`), so that no
    body is read, let alone parsed, for a caller without an account."""
    header = conn.headers.get("authorization")
    try:
        if header:
            scheme, _, value = header.strip().partition(" ")
            if scheme.lower() == "basic":
                return c.auth.basic(value, caller_address(conn, c))
            if scheme.lower() == "bearer":
                return c.auth.token(value)
            raise AuthError(f"unsupported Authorization scheme {scheme!r}: use Basic or Bearer")
        cookie = conn.cookies.get(SESSION_COOKIE)
        if cookie:
            return c.auth.session(cookie)
    except AuthError as exc:
        raise _unauthorized(conn, str(exc), exc.retry_after_s) from exc
    except Throttled as exc:  # as an ApiError, so that the guard, which runs before any route, answers it too
        raise ApiError(429, str(exc), headers={"Retry-After": str(exc.retry_after_s)}) from exc
    raise _unauthorized(conn, "authentication required: HTTP Basic, a bearer token or a session cookie "
                              "(POST /api/v1/login)")


#: where :mod:`kazi.server.guard` leaves the caller it authenticated before reading the body
AUTHENTICATED = "kazi_user"


def current_user(
    request: Request, c: Ctx,
    _basic: Annotated[None, Depends(basic_scheme)],
    _bearer: Annotated[None, Depends(bearer_scheme)],
    _cookie: Annotated[str | None, Depends(cookie_scheme)],
) -> StoredUser:
    """The caller (see :func:`authenticate`), authenticated once per request."""
    known = request.scope.get("state", {}).get(AUTHENTICATED)
    if isinstance(known, StoredUser):
        return known
    return authenticate(c, request)


Caller = Annotated[StoredUser, Depends(current_user)]


def admin_user(user: Caller) -> StoredUser:
    if not user.is_admin:
        raise ApiError(403, "only administrators may do this")
    return user


Admin = Annotated[StoredUser, Depends(admin_user)]


# --------------------------------------------------------------------------------------------------------
# routes: session


session_routes = APIRouter(prefix=API, tags=["session"])


@session_routes.post("/login", summary="Log in (web app): sets the session cookie", response_model=LoggedIn,
                     responses=errors(400, 401, 422))
def login(body: LoginRequest, request: Request, response: Response, c: Ctx) -> LoggedIn:
    """Checks the username and password and sets an HttpOnly, SameSite=Lax cookie holding a server-side
    session, valid until ``expires_at``, logout, a password change or the account's disabling.

    Failed logins are throttled per account and per client address: after a few failures the next check
    waits (429 with `Retry-After`, longer after every further failure, at most 15 minutes by default), the
    right password included; a success clears the account's count."""
    try:
        token, user, expires = c.auth.open_session(body.username, body.password, caller_address(request, c))
    except AuthError as exc:
        headers = {"Retry-After": str(exc.retry_after_s)} if exc.retry_after_s is not None else None
        raise ApiError(401, str(exc), headers=headers) from exc
    response.set_cookie(SESSION_COOKIE, token, max_age=c.auth.max_age_s, httponly=True, samesite="lax",
                        secure=request.url.scheme == "https", path="/")
    return LoggedIn(user=c.user_out(user), expires_at=expires)


@session_routes.post("/logout", summary="Log out (web app): ends the session", status_code=204)
def logout(c: Ctx, cookie: Annotated[str | None, Depends(cookie_scheme)]) -> Response:
    """Revokes the session the cookie names and clears the cookie; harmless without one."""
    if cookie:
        c.auth.close_session(cookie)
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


# GET /api/v1/me, with what the web app needs (permissions, locale), is in kazi.server.app_api


# --------------------------------------------------------------------------------------------------------
# routes: documents


doc_routes = APIRouter(prefix=API, tags=["documents"])

_DOCS_EXAMPLE = [{"_id": "report-1", "type": "data_record", "form": "pregnancy", "reported_date": 1754036400000,
                  "contact": {"_id": "chw-person-id"}, "fields": {"patient_id": "1234567", "lmp_date": "2025-05-01"}}]


#: the program permission that writing documents needs, whatever the place (CHT's API refuses document writes
#: without it): a gateway or read-only account of a national scope must not write anywhere
WRITE_PERMISSION = "can_edit"
#: what the OpenAPI says of the answers :func:`require_write_permission` gives
WRITE_REFUSALS: dict[int | str, dict[str, Any]] = {
    403: {"model": ErrorResponse, "description": f"The program grants {WRITE_PERMISSION} to none of the caller's "
                                                  "roles"},
    409: {"model": ErrorResponse, "description": "No program is loaded: only administrators may write until one "
                                                  "is"},
}


def require_write_permission(c: ApiContext, user: StoredUser) -> None:
    """Refuse a document write by a caller the program does not let write (403).

    Administrators hold every permission, as in CHT. Without a program no role holds any permission, so only
    administrators write (loading the contacts before the program is an administrator's job); anyone else
    gets a 409 that says what is missing.
    """
    if user.is_admin:
        return
    program = c.service.program()
    if program is None:
        raise ApiError(409, f"no program is loaded, so no role holds {WRITE_PERMISSION} yet: until an "
                            "administrator loads one, only administrators may write documents")
    if not has_permissions(WRITE_PERMISSION, list(user.roles), program.settings):
        roles = ", ".join(user.roles) or "none"
        raise ApiError(403, f"you may not write documents: the program grants {WRITE_PERMISSION} to none of your "
                            f"roles ({roles})")


@doc_routes.post(
    "/docs", summary="Write contacts and reports (one document or an array), all or none",
    response_model=DocsWritten,
    responses={**errors(400, 401, 413, 422), **WRITE_REFUSALS,
               409: {"model": ErrorResponse, "description": "A document's `_rev` is not the stored one, or a "
                     "contact's phone is another user's: each problem names the document (and `current_rev`); "
                     "or no program is loaded and the caller is not an administrator"}})
def write_docs(payload: Annotated[Any, Body(examples=[_DOCS_EXAMPLE])], user: Caller, c: Ctx) -> DocsWritten:
    """CHT documents as CHT stores them. A new `_id` is created; replacing a stored document needs its current
    `_rev`, as in CouchDB (a deleted one is created again without one): a missing or stale `_rev` is a 409 whose
    `problems` name each document with its `current_rev`. Sending the same content again is never a conflict:
    it changes nothing and answers the stored `rev`, so a write whose answer was lost may be retried. A
    contact may not be given the phone number of another user's contact (409, field `phone`). The whole batch
    is checked first: any problem (not an object, no `_id`, an unknown `type`, outside the caller's place, a
    report naming a contact of another place, moving or deleting the caller's own place, deleting a place with
    contacts under it, ...) refuses the whole batch with a 422 listing every problem (index, doc_id, field,
    message), and nothing of it is stored. `_deleted: true` deletes. Writing needs the program's `can_edit`
    permission (403 without it; administrators hold every permission; without a program only they write: 409).
    The caller's tasks reflect the write on their next `GET /api/v1/tasks`."""
    require_write_permission(c, user)
    batch = payload if isinstance(payload, list) else [payload]
    if len(batch) > MAX_BATCH:
        raise ApiError(413, f"{len(batch)} documents in one request; send at most {MAX_BATCH} per request")
    program = c.service.program()
    results = c.store.write_docs(batch, user=user, check_rev=True, check_phones=True,
                                 country_code=country_code_of(program.settings) if program is not None else None)
    if any(r.changed for r in results):
        c.service.note_write(user)  # the caller's next read waits for these (read-your-writes)
    if c.worker is not None and any(r.changed for r in results):
        c.worker.wake()  # other users' tasks follow without waiting for the next round
    return DocsWritten(results=[DocResult(id=r.id, rev=r.rev, changed=r.changed) for r in results])


@doc_routes.get("/docs/{doc_id:path}", summary="Read one contact or report (within the caller's place)",
                responses={200: {"description": "the document, with its `_rev`"}, **errors(401, 404)})
def get_doc(doc_id: str, user: Caller, c: Ctx) -> dict[str, Any]:
    return c.store.get_doc(doc_id, user=user)


# --------------------------------------------------------------------------------------------------------
# routes: tasks


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


# --------------------------------------------------------------------------------------------------------
# routes: program


program_routes = APIRouter(prefix=API, tags=["program"])

_ZIP_BODY: dict[str, Any] = {"requestBody": {"required": True, "description": "a zip of the program folder "
                                             "(tasks.js or tasks.py at its root or in its single top folder)",
                                             "content": {"application/zip": {"schema": {"type": "string",
                                                                                        "format": "binary"}}}}}


def _program_out(c: ApiContext) -> ProgramOut:
    info = c.service.program_info()
    if info is None:
        return ProgramOut(loaded=False)
    return ProgramOut(loaded=True, version=info.version, loaded_at=info.loaded_at, kind=info.kind,
                      warnings=_problem_dicts(info.warnings))


@program_routes.get("/program", summary="The loaded program: version, load time, warnings",
                    response_model=ProgramOut, responses=errors(401))
def get_program(_user: Caller, c: Ctx) -> ProgramOut:
    return _program_out(c)


async def _zip_body(request: Request) -> bytes:
    if request.headers.get("content-type", "").startswith("multipart/"):
        raise ApiError(400, "send the zip as the raw request body (curl --data-binary @program.zip "
                            "-H 'Content-Type: application/zip'), not as a form")
    data = bytearray()
    async for chunk in request.stream():
        data.extend(chunk)
        if len(data) > MAX_PROGRAM_ZIP:
            raise ApiError(413, f"the program zip is larger than {MAX_PROGRAM_ZIP // (1024 * 1024)} MB")
    if not data:
        raise ApiError(400, "empty body: send a zip of the program folder")
    return bytes(data)


def unpack_program(data: bytes, dest: Path) -> Path:
    """Unpack a program zip into ``dest`` and return the program folder (the zip's root, or its single top
    folder, as zipping a folder gives).

    Whatever the zip holds, the answer is the program folder or a 4xx saying which entry is wrong, never a
    500: paths that would land outside ``dest`` (zip slip), an entry that is both a file and a folder (or
    twice a file), an entry whose data does not match its header (a lying size or checksum, a damaged or
    encrypted entry) and zip bombs (the declared sizes are summed first; the bytes really written are
    counted too, so a header that under-declares gains nothing)."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError) as exc:
        raise ApiError(400, "the body is not a zip file") from exc
    with archive:
        infos = [i for i in archive.infolist() if not i.filename.startswith("__MACOSX/")]
        if len(infos) > MAX_PROGRAM_FILES:
            raise ApiError(413, f"the zip holds {len(infos)} entries; at most {MAX_PROGRAM_FILES} are accepted")
        if sum(i.file_size for i in infos) > MAX_PROGRAM_UNPACKED:
            raise ApiError(413, f"the zip unpacks to more than {MAX_PROGRAM_UNPACKED // (1024 * 1024)} MB")
        root = dest.resolve()
        targets = _zip_targets(infos, root)
        written = 0
        for info, target in zip(infos, targets, strict=True):
            written += _extract_entry(archive, info, target, MAX_PROGRAM_UNPACKED - written)
    entries = [p for p in root.iterdir() if p.name != "__MACOSX"]
    if len(entries) == 1 and entries[0].is_dir() and not (root / "tasks.js").exists():
        return entries[0]
    return root


def _zip_targets(infos: list[zipfile.ZipInfo], root: Path) -> list[Path]:
    """Where each entry lands under ``root``; 400 for an entry outside it, a path that is both a file and a
    folder (``a`` and ``a/b``, or ``a`` and ``a/``), and a file that appears twice."""
    targets: list[Path] = []
    files: dict[Path, str] = {}
    folders: dict[Path, str] = {}
    for info in infos:
        target = (root / info.filename).resolve()
        if not target.is_relative_to(root) or (target == root and not info.is_dir()):
            raise ApiError(400, f"zip entry {info.filename!r} would be written outside the program folder")
        targets.append(target)
        if info.is_dir():
            folders.setdefault(target, info.filename)
        elif target in files:
            raise ApiError(400, f"zip entry {info.filename!r} appears twice: a zip of a folder holds each file once")
        else:
            files[target] = info.filename
        for parent in target.parents if target != root else ():
            if parent == root:
                break
            folders.setdefault(parent, info.filename)
    for target, name in files.items():
        if target in folders:
            raise ApiError(400, f"zip entry {name!r} is both a file and a folder (see {folders[target]!r}): "
                                "a folder cannot hold a file and a folder of one name")
    return targets


#: what the file system answers for a name it cannot hold (too long, not a valid name): the zip's fault, a 400
_NAME_ERRNOS = frozenset({errno.ENAMETOOLONG, errno.EISDIR, errno.ENOTDIR, errno.EEXIST, errno.EINVAL, errno.EILSEQ})


def _extract_entry(archive: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, budget: int) -> int:
    """Write one entry to ``target``, at most ``budget`` bytes; the bytes written. 400 for an entry that
    cannot be read as its header says, 413 past the budget."""
    try:
        if info.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            return 0
        target.parent.mkdir(parents=True, exist_ok=True)
        written = 0
        with archive.open(info) as src, target.open("wb") as out:
            while chunk := src.read(1024 * 1024):
                written += len(chunk)
                if written > budget:
                    raise ApiError(413, f"the zip unpacks to more than {MAX_PROGRAM_UNPACKED // (1024 * 1024)} MB")
                out.write(chunk)
        return written
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, ValueError) as exc:
        # BadZipFile: a checksum or size that does not match the data (bytes beyond the declared size are
        # cut by zipfile, so the checksum fails); RuntimeError: encrypted; NotImplementedError: an unknown
        # compression method
        raise ApiError(400, f"zip entry {info.filename!r} cannot be read: {exc}") from exc
    except OSError as exc:
        if exc.errno not in _NAME_ERRNOS:
            raise
        raise ApiError(400, f"zip entry {info.filename!r} cannot be unpacked: {exc.strerror}") from exc


@program_routes.post("/program/validate", summary="Validate a program zip without loading it (admin)",
                     response_model=ValidationOut, responses=errors(400, 401, 403, 413, 422),
                     openapi_extra=_ZIP_BODY)
async def validate_program(request: Request, _admin: Admin) -> ValidationOut:
    """Every problem at once: a 422 lists the errors, each located (file, definition, field, fix); a valid
    program answers `valid: true` with its warnings."""
    data = await _zip_body(request)

    def check() -> ValidationOut:
        with tempfile.TemporaryDirectory(prefix="kazi-validate-") as tmp:
            problems = inspect_tasks(unpack_program(data, Path(tmp)))
        errs = [p for p in problems if p.severity == "error"]
        if errs:
            raise ProgramError(f"the program has {len(errs)} error(s)", problems)
        return ValidationOut(valid=True, warnings=_problem_dicts(problems))

    return await run_in_threadpool(check)


@program_routes.post("/program", summary="Upload and load a program zip (admin)", response_model=ProgramOut,
                     responses=errors(400, 401, 403, 413, 422), openapi_extra=_ZIP_BODY)
async def upload_program(request: Request, _admin: Admin, c: Ctx) -> ProgramOut:
    """Validates, loads and starts using the program (every user's tasks are recomputed). With any error,
    a 422 lists them all and the previous program keeps running."""
    data = await _zip_body(request)

    def load() -> ProgramOut:
        # The service keeps the program's files in the store, so the upload only needs a scratch folder.
        with tempfile.TemporaryDirectory(prefix="kazi-upload-") as tmp:
            c.service.load_program(unpack_program(data, Path(tmp)))
        return _program_out(c)

    return await run_in_threadpool(load)


@program_routes.get("/program/errors", summary="Errors of the program's task code, from every process (admin)",
                    responses={200: {"description": "the stored errors, most recently seen first"},
                               **errors(401, 403, 422)})
def program_errors(_admin: Admin, c: Ctx, limit: Annotated[int, Query(ge=1, le=1000)] = 200,
                   offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0) -> list[dict[str, Any]]:
    """A callback that throws, overflows the stack, runs too long or eats memory never stops the service:
    the containers it failed for keep their task documents, and its errors land here, whichever process
    (API, worker, compute process) saw them. One entry per program version, definition, contact or report
    and message, with ``count``, ``first_seen`` and ``last_seen`` (epoch ms), the most recently seen first."""
    return c.service.errors(limit, offset)


# --------------------------------------------------------------------------------------------------------
# routes: users


user_routes = APIRouter(prefix=API, tags=["users"])


@user_routes.get("/users", summary="List accounts (admin)", response_model=list[UserOut],
                 responses=errors(401, 403))
def list_users(_admin: Admin, c: Ctx) -> list[UserOut]:
    return [c.user_out(u) for u in c.store.users.list_all()]


@user_routes.post("/users", summary="Create an account (admin)", status_code=201, response_model=UserOut,
                  responses=errors(400, 401, 403, 422))
def create_user(body: UserCreate, _admin: Admin, c: Ctx) -> UserOut:
    """Roles are checked against the loaded program's; the place and contact must be stored contacts."""
    with c.auth.hashing():  # the password's Argon2 hash takes a slot of the bounded hashing pool
        user = c.store.users.create(
            body.username, password=body.password, roles=body.roles, facility_id=body.facility_id,
            contact_id=body.contact_id, timezone=body.timezone, national=body.national,
            known_roles=c.known_roles(), locale=body.locale)
    return c.user_out(user)


@user_routes.get("/users/{username}", summary="One account (admin)", response_model=UserOut,
                 responses=errors(401, 403, 404))
def get_user(username: str, _admin: Admin, c: Ctx) -> UserOut:
    return c.user_out(c.store.users.get(username))


@user_routes.patch("/users/{username}", summary="Change an account (admin)", response_model=UserOut,
                   responses=errors(400, 401, 403, 404, 422))
def update_user(username: str, body: UserUpdate, _admin: Admin, c: Ctx) -> UserOut:
    """Only the fields sent change (`null` clears facility_id, contact_id, timezone or locale). A new
    `password` or `disabled: true` revokes every session and token of the account (enabling it again later
    revives none of them)."""
    given = body.model_fields_set
    changes: dict[str, Any] = {name: getattr(body, name) for name in given}
    if not changes:
        raise ApiError(422, "nothing to change: send at least one field")
    with c.auth.hashing() if "password" in changes else contextlib.nullcontext():
        user = c.store.users.update(
            username, known_roles=c.known_roles(),
            **{name: changes.get(name, UNSET) for name in ("password", "roles", "facility_id", "contact_id",
                                                              "timezone", "national", "disabled", "locale")})
    c.auth.forget(username)
    return c.user_out(user)


@user_routes.post("/users/{username}/disable", summary="Disable an account (admin)", response_model=UserOut,
                  responses=errors(401, 403, 404))
def disable_user(username: str, _admin: Admin, c: Ctx) -> UserOut:
    """The password stops working at once and every token and session is revoked for good (enabling the
    account again revives none of them); the account's data stays."""
    user = c.store.users.disable(username)
    c.auth.forget(username)
    return c.user_out(user)


@user_routes.post("/users/{username}/tokens", summary="Issue a token for scripts (admin); shown only here",
                  status_code=201, response_model=TokenOut, responses=errors(401, 403, 404))
def create_token(username: str, _admin: Admin, c: Ctx, label: Annotated[str, Query(max_length=200)] = "") -> TokenOut:
    """Send it as `Authorization: Bearer <token>`; `kazi users revoke-token ID` ends it."""
    token, info = c.store.users.create_token(username, label)
    return TokenOut(token=token, id=info.id, username=info.username, label=info.label, created_at=info.created_at)


@user_routes.post("/users/{username}/enable", summary="Enable a disabled account (admin)",
                  response_model=UserOut, responses=errors(401, 403, 404))
def enable_user(username: str, _admin: Admin, c: Ctx) -> UserOut:
    """The password works again; the sessions and tokens revoked when it was disabled stay revoked."""
    return c.user_out(c.store.users.enable(username))


# --------------------------------------------------------------------------------------------------------
# routes: outside the API


meta_routes = APIRouter(tags=["server"])


@meta_routes.get("/healthz", summary="Liveness (no authentication)", response_model=Health)
def health(c: Ctx) -> Health:
    return Health(status="ok", program_loaded=c.service.program() is not None)


@meta_routes.get("/", include_in_schema=False)
def root() -> RedirectResponse:
    return RedirectResponse("/app/")


# --------------------------------------------------------------------------------------------------------
# the factory


def create_app(
    store_url: str | None = None, *, now: int | None = None, service: TaskService | None = None,
    store: Store | None = None, program_dir: Path | None = None,
    workers: int = 0, background_interval_s: float | None = None, basic_ttl_s: float | None = None,
    others_to_worker: bool | None = None, interaction_limits: InteractionLimits | None = None,
    auth_settings: AuthSettings | None = None, auth_clock: Callable[[], int] | None = None,
    limits: ProgramLimits | None = None,
    inputs: InputSettings | None = None,
) -> FastAPI:
    """The API application.

    ``store_url`` opens a store (default: the embedded SQLite file) unless ``store`` or ``service`` gives one;
    ``now`` (epoch ms) freezes the server's clock (tests, demos, replaying a past day); ``program_dir`` loads
    a program before serving, as a new version only when its files differ from the active version's (a
    restart with the same folder recomputes nothing); ``background_interval_s`` runs the recompute worker
    while the app is up (what ``kazi serve --compute thread`` does; tests drive the service themselves).
    ``others_to_worker`` (default: when ``background_interval_s`` is given) says that a worker, this app's or
    another process's, keeps everyone's tasks up to date, so a read computes only the caller's own writes
    (``TaskService.refresh_user``). ``interaction_limits`` caps what the interaction routes store (default:
    :meth:`InteractionLimits.from_env`). ``auth_settings`` are the authentication limits (default: from the
    ``KAZI_...`` environment, :meth:`AuthSettings.from_env`; ``basic_ttl_s`` overrides theirs); ``auth_clock``
    (epoch ms) times sessions and failed logins (tests; never the frozen ``now``, which would make a wait
    last forever).
    ``limits``: what program code may cost (default: the ``KAZI_PROGRAM_...`` environment,
    :meth:`ProgramLimits.from_env`).
    ``inputs`` are the limits on what clients send (default: from the environment,
    :meth:`InputSettings.from_env`), applied by :mod:`kazi.server.guard`. The app closes only a store it opened.
    """
    owns_store = False
    if store is None and service is not None:
        found = getattr(service, "store", None)
        if not isinstance(found, Store):
            raise TypeError("create_app(service=...) needs store= too: the service does not expose its store")
        store = found
    if store is None:
        store = open_store(store_url)
        owns_store = True
    owns_service = service is None
    if service is None:
        clock: Callable[[], int] | None = (lambda: now) if now is not None else None
        service = TaskService(store, clock=clock, workers=workers, limits=limits)
    if others_to_worker is None:
        others_to_worker = bool(background_interval_s)
    if others_to_worker:
        service.others_to_worker = True
    if program_dir is not None:
        service.load_program(Path(program_dir), if_changed=True)
    settings = auth_settings if auth_settings is not None else AuthSettings.from_env()
    if basic_ttl_s is not None:
        settings = dataclasses.replace(settings, basic_ttl_s=basic_ttl_s)
    auth = (Authenticator(store, settings) if auth_clock is None
            else Authenticator(store, settings, clock=auth_clock))
    ctx = ApiContext(store=store, service=service, auth=auth,
                     interaction_limits=interaction_limits or InteractionLimits.from_env())

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        def maintenance() -> None:
            ctx.auth.housekeeping()
            ctx.store.analyze()

        worker = (BackgroundWorker(ctx.service, background_interval_s, maintenance=maintenance)
                  if background_interval_s else None)
        if worker is not None:
            worker.start()
        ctx.worker = worker
        try:
            yield
        finally:
            ctx.worker = None
            if worker is not None:
                worker.stop()
            if owns_service:
                ctx.service.interrupt()  # a read still computing (its client gone) must not hold the shutdown
                ctx.service.close()
            if owns_store:
                ctx.store.close()

    app = FastAPI(
        title="Kazi", version="1", lifespan=lifespan,
        summary="CHT-compatible tasks for every user, offline CHWs and online supervisors alike",
        description="Authenticate with HTTP Basic, a bearer token (`kazi users token NAME`) or the session "
                    "cookie `POST /api/v1/login` sets. Every call is confined to the caller's place: what is "
                    "outside it is a 404. Errors are `{\"error\": {\"status\", \"message\", \"field\"?, "
                    "\"problems\"?}}`. Guide with curl examples: docs/api.md.",
    )
    app.state.kazi = ctx
    _install_error_handlers(app)
    from kazi.server.app_api import app_routers  # routes of the web app, built on this module's dependencies
    from kazi.server.guard import RequestGuard, api_routes, document_answers  # built on this module's auth
    from kazi.server.interactions_api import interaction_routes  # task interaction tracking (issue 5)
    from kazi.server.sms_api import sms_routes  # SMS gateways (issue 7)
    from kazi.server.supervision_api import supervision_routes  # supervision reports (issue 6)

    routers = (session_routes, doc_routes, task_routes, program_routes, user_routes, meta_routes, *app_routers,
               interaction_routes, sms_routes, supervision_routes)
    document_answers(routers, errors)
    for router in routers:
        app.include_router(router)
    web.mount(app)  # the web app at /app/ (kazi/web)
    app.add_middleware(RequestGuard, settings=inputs if inputs is not None else InputSettings.from_env(),
                       routes=api_routes(routers))
    return app
