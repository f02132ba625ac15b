"""Logging in and out of the web app (``/api/v1/login``, ``/api/v1/logout``): the session cookie."""

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from kazi.server.deps import API, ApiError, Ctx, caller_address, cookie_scheme, errors
from kazi.server.schemas import LoggedIn, LoginRequest
from kazi.service.auth import SESSION_COOKIE, AuthError

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
