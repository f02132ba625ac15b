"""The request plumbing every route module shares: the JSON error type and its handlers, the application's
state (:class:`ApiContext`) and the dependencies that authenticate the caller.

Route modules (``*_api.py``) import this module, and the app factory (:mod:`kazi.server.api`) imports them:
nothing here imports a route module or the factory, so the imports run one way."""

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Annotated, Any, cast

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyCookie, HTTPBasic, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import HTTPConnection

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
from kazi.program.loader import Program
from kazi.server.schemas import ErrorResponse, UserOut
from kazi.service.auth import SESSION_COOKIE, Authenticator, AuthError, Throttled, client_address
from kazi.service.pages import PageCache
from kazi.service.tasks import TaskService
from kazi.service.worker import BackgroundWorker
from kazi.store import Store, StoredUser, is_offline
from kazi.store.interactions import InteractionLimits

log = logging.getLogger("kazi.server")

API = "/api/v1"
#: the largest ``offset`` a paged route takes: beyond any real list, far inside the 64-bit integers SQL's
#: OFFSET takes (a larger one was a 500 from the database instead of a 422)
MAX_OFFSET = 1_000_000_000

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


def problem_dicts(items: Iterable[object]) -> list[dict[str, Any]]:
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


def install_error_handlers(app: FastAPI) -> None:
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
            field=next(iter(fields)) if len(fields) == 1 else None, problems=problem_dicts(e.problems))

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
                              problems=problem_dicts(e.problems))

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
# writing documents: who may


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
