"""Accounts (``/api/v1/users``): listing, creating and changing them and issuing script tokens (administrators only)."""

import contextlib
from typing import Annotated, Any

from fastapi import APIRouter, Query

from kazi.server.deps import API, Admin, ApiError, Ctx, errors
from kazi.server.schemas import TokenOut, UserCreate, UserOut, UserUpdate
from kazi.store import UNSET

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
