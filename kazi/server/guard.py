"""The API's input guard: a pure ASGI middleware that every request passes before any route reads it.

Why a middleware and not the routes: FastAPI reads and parses a route's JSON body *before* it solves the
route's dependencies, authentication included, so without it an anonymous client could make the server read
and parse 100 MB (and keep them in memory) to get a 401. Here, in this order:

1. **Refused characters** in the URL's path and query and in Basic credentials: 422
   (:func:`kazi.server.limits.refused_character`).
2. **Cross-site requests** (CSRF): an unsafe request (POST, PUT, PATCH, DELETE) authenticated by the session
   cookie alone must come from the server's own origin: its ``Origin`` (or, without one, its ``Referer``)
   must name this server, else 403. Basic and Bearer callers are not concerned: a browser never adds those
   to a request another site makes. Logging in with an ``Origin`` of another site is refused too, so that
   no site can log a visitor into an account of its choosing.
3. **Authentication before the body**: a request with a body to any route but logging in is authenticated
   from its headers first (:func:`kazi.server.deps.authenticate`); without an account the answer is 401 and
   not one byte of the body is read. The caller found is handed to the route, which does not authenticate
   again.
4. **JSON routes** (those that declare a body): the body must be sent as JSON (``Content-Type:
   application/json``; a form, multipart or text body is a 415); it is read while counting its bytes, so a
   chunked body without ``Content-Length`` cannot pass the limit either (413); it must be strict JSON
   without refused characters (422, located) and each document no larger than the per-document limit (413
   naming the document's index and ``_id``). Then the route gets the body as sent.

Routes that read their body themselves (the program upload: a zip, admin only, with its own limits) get
steps 1 to 3 only.
"""

from __future__ import annotations

import base64
import binascii
import email.message
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import parse_qsl, urlsplit

from fastapi import APIRouter
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.requests import HTTPConnection
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kazi.characters import printable, refused_character
from kazi.server.deps import AUTHENTICATED, ApiContext, ApiError, authenticate, error_response
from kazi.server.limits import (
    ITEMS_CHECKED,
    OPEN_BODY_BYTES,
    InputSettings,
    describe_size,
    oversized_documents,
    oversized_message,
    parse_strict,
)
from kazi.service.auth import SESSION_COOKIE

log = logging.getLogger("kazi.server")

UNSAFE_METHODS: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: the routes that take a body from a caller without an account (their bodies are limited to a few KB)
LOGIN_PATH: Final = "/api/v1/login"
LOGOUT_PATH: Final = "/api/v1/logout"
OPEN_PATHS: Final = frozenset({LOGIN_PATH, LOGOUT_PATH})
_DEFAULT_PORTS: Final = {"http": "80", "https": "443"}


@dataclass(frozen=True)
class _Route:
    """What the guard needs to know of a route: how to recognise it, and how it takes its body."""

    path: re.Pattern[str]
    methods: frozenset[str]
    json_body: bool  # False: the route reads its body itself (the program upload)
    items_checked: bool  # True: the route checks its items' characters and sizes itself


def api_routes(routers: Iterable[APIRouter]) -> list[_Route]:
    """The routes of ``routers`` as the guard sees them (the routers are included without a prefix)."""
    return [_Route(route.path_regex, frozenset(route.methods or ()), route.body_field is not None,
                   bool(getattr(route.endpoint, ITEMS_CHECKED, False)))
            for router in routers for route in router.routes if isinstance(route, APIRoute)]


class RequestGuard:
    """See the module's docstring. ``settings`` are the limits, ``routes`` the API's (:func:`api_routes`);
    the store and the authenticator are the application's (``app.state.kazi``), found through the scope."""

    def __init__(self, app: ASGIApp, settings: InputSettings, routes: list[_Route]) -> None:
        self.app = app
        self.settings = settings
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            refusal, receive = await self._check(scope, receive)
        except ApiError as exc:
            refusal = error_response(exc.status, exc.message, field=exc.field, problems=exc.problems,
                                     headers=exc.headers)
        except Exception as exc:  # a bug or the database: the same answer as a route's
            log.exception("internal error in the request guard", exc_info=exc)
            refusal = error_response(500, "internal error (the details are in the server's log)")
        if refusal is not None:
            await refusal(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _check(self, scope: Scope, receive: Receive) -> tuple[Response | None, Receive]:
        """The answer that refuses the request (or ``None``), and the ``receive`` to go on with: the body
        already read when it was checked here."""
        conn = HTTPConnection(scope)
        headers = conn.headers
        _check_characters(scope, headers)
        if scope["method"] in UNSAFE_METHODS:
            _check_origin(scope, headers, self.settings)
        if not _has_body(headers):
            return None, receive
        open_route = _route_path(scope) in OPEN_PATHS
        if not open_route:
            c: ApiContext = scope["app"].state.kazi
            user = await run_in_threadpool(authenticate, c, conn)
            scope.setdefault("state", {})[AUTHENTICATED] = user
        route = self._route(scope)
        if route is None or not route.json_body:
            return None, receive  # no such route (its 404 or 405 reads nothing), or one that reads its own body
        _check_json_type(headers)
        limit = OPEN_BODY_BYTES if open_route else self.settings.max_request_bytes
        declared = headers.get("content-length", "").strip()
        if declared.isdigit() and int(declared) > limit:
            return _too_large(limit), receive
        body = await _read(receive, limit)
        if body is None:
            return _too_large(limit), receive
        refusal = self._check_json(body, items_checked=route.items_checked)
        return refusal, _replay(body, receive)

    def _route(self, scope: Scope) -> _Route | None:
        """The API route that will answer the request, if any."""
        path, method = _route_path(scope), scope["method"]
        for route in self.routes:
            if method in route.methods and route.path.match(path):
                return route
        return None

    def _check_json(self, body: bytes, *, items_checked: bool) -> Response | None:
        if not body:
            return None
        parsed = parse_strict(body)
        if parsed is None:
            return None  # not JSON: the route answers 400 as for any malformed body
        value, problems = parsed
        if items_checked:
            problems = [p for p in problems if p.kind != "character"]
        if problems:
            first = problems[0]
            return error_response(422, f"{first.field}: {first.message}",
                                  field=first.field if len(problems) == 1 else None,
                                  problems=[{"field": p.field, "message": p.message} for p in problems])
        if items_checked:
            return None
        limit = self.settings.max_document_bytes
        oversized = oversized_documents(value, len(body), limit)
        if oversized:
            return error_response(413, oversized_message(oversized, limit),
                                  problems=[d.to_dict(limit) for d in oversized])
        return None


def _route_path(scope: Scope) -> str:
    """The path the routes see: without the prefix a proxy mounts the server under (``root_path``)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root):] if root and path.startswith(root) else path


def _too_large(limit: int) -> Response:
    return error_response(413, f"the request body is larger than {describe_size(limit)}: send fewer documents "
                               "per request")


def _has_body(headers: Headers) -> bool:
    length = headers.get("content-length")
    if length is not None and length.strip() not in ("", "0"):
        return True
    return "transfer-encoding" in headers


async def _read(receive: Receive, limit: int) -> bytes | None:
    """The whole body, or ``None`` as soon as it passes ``limit`` bytes (the rest is never read)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break  # the client went away: the route finds out when it listens
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives the body already read, then what the client sends next (a disconnect)."""
    given = False

    async def replay() -> Message:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


# --------------------------------------------------------------------------------------------------------
# the checks


def _check_characters(scope: Scope, headers: Headers) -> None:
    why = refused_character(scope["path"])
    if why is not None:
        raise ApiError(422, f"path: the URL's path {why}", field="path")
    query = scope.get("query_string", b"").decode("latin-1")
    if query:
        for name, value in parse_qsl(query, keep_blank_values=True):
            why = refused_character(name) or refused_character(value)
            if why is not None:
                field = f"query.{printable(name)}"
                raise ApiError(422, f"{field}: the query parameter {why}", field=field)
    header = headers.get("authorization", "")
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return  # malformed: authentication answers 401 with the reason
        why = refused_character(decoded)
        if why is not None:
            raise ApiError(422, f"authorization: the Basic credentials (username:password) {why}",
                           field="authorization")


def _check_json_type(headers: Headers) -> None:
    given = headers.get("content-type")
    if given:
        parsed = email.message.Message()
        parsed["content-type"] = given
        subtype = parsed.get_content_subtype()
        if parsed.get_content_maintype() == "application" and (subtype == "json" or subtype.endswith("+json")):
            return
    sent = f"it was sent as {given!r}" if given else "it was sent without a Content-Type"
    raise ApiError(415, f"this route takes a JSON body (Content-Type: application/json); {sent}",
                   field="content-type")


def _check_origin(scope: Scope, headers: Headers, settings: InputSettings) -> None:
    """The CSRF rule (see the module's docstring)."""
    if _route_path(scope) == LOGOUT_PATH:
        return  # it grants nothing and ends only the session its cookie names
    by_cookie = "authorization" not in headers and SESSION_COOKIE in HTTPConnection(scope).cookies
    login = _route_path(scope) == LOGIN_PATH
    if not by_cookie and not login:
        return
    origin = headers.get("origin")
    source = "Origin"
    if origin is None and headers.get("referer"):
        parts = urlsplit(headers["referer"])
        origin = f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else "null"
        source = "Referer"
    if origin is None:
        if login:
            return  # a script logging in: no browser, no other site
        raise ApiError(403, f"a {scope['method']} authenticated by the session cookie must carry an Origin or a "
                            "Referer header naming this server (browsers send one); scripts use HTTP Basic or a "
                            "bearer token", field="origin")
    if not _same_origin(origin, scope, headers, settings):
        raise ApiError(403, f"cross-site request refused: its {source} {printable(origin)!r} is not this server "
                            f"({scope['method']} with the session cookie, or logging in, only from the web app "
                            "this server serves)", field="origin")


def _same_origin(origin: str, scope: Scope, headers: Headers, settings: InputSettings) -> bool:
    """Whether ``origin`` is this server: its host and port are the request's ``Host``, or it is one of the
    trusted origins. The scheme is compared only for a request that came over HTTPS, since a proxy that
    ends TLS may forward a browser's ``https://`` request as plain HTTP."""
    wanted = origin.strip().rstrip("/").lower()
    if wanted in settings.trusted_origins:
        return True
    parts = urlsplit(wanted)
    if parts.scheme not in _DEFAULT_PORTS or not parts.netloc:
        return False  # "null" (a sandboxed page, a file) or nonsense
    scheme = scope.get("scheme", "http")
    if scheme == "https" and parts.scheme != "https":
        return False
    host = headers.get("host", "").strip().lower()
    return bool(host) and _netloc(parts.netloc, parts.scheme) == _netloc(host, scheme)


def _netloc(netloc: str, scheme: str) -> str:
    default = _DEFAULT_PORTS.get(scheme)
    return netloc.removesuffix(f":{default}") if default else netloc


# --------------------------------------------------------------------------------------------------------
# the OpenAPI document


def document_answers(routers: Iterable[APIRouter], responses: Callable[..., dict[int | str, dict[str, Any]]]
                     ) -> None:
    """Add the guard's answers to the OpenAPI document of every route they can concern: 422 (refused
    characters in the path or query) everywhere, 413 and 415 where a JSON body is taken, 403 (cross-site)
    on unsafe methods. ``responses`` is :func:`kazi.server.deps.errors`. Called before the app serves."""
    for route in (r for router in routers for r in router.routes):
        if not isinstance(route, APIRoute) or not route.include_in_schema:
            continue
        codes = [422]
        if route.body_field is not None:
            codes += [413, 415]
        if UNSAFE_METHODS & set(route.methods or ()) and route.path != LOGOUT_PATH:
            codes.append(403)
        for code, answer in responses(*codes).items():
            route.responses.setdefault(code, answer)
