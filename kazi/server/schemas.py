"""The API's request and response shapes, as pydantic models.

Why models rather than bare dicts: FastAPI turns them into the OpenAPI document (``/openapi.json``), so the
published contract and the code cannot drift apart, and requests are validated before a handler runs. CHT
documents and task documents stay free-form (``dict``): their shape belongs to CHT and to the program, and
the store validates what it needs.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ErrorBody(BaseModel):
    """What went wrong, for people and for programs."""

    status: int = Field(description="the HTTP status, repeated for clients that lose it")
    message: str = Field(description="one readable sentence (or several lines) saying what to fix")
    field: str | None = Field(default=None, description="the offending field, when one field is the cause")
    problems: list[dict[str, Any]] | None = Field(
        default=None, description="every problem found, each located (index, doc_id, field / file, definition, ...)")


class ErrorResponse(BaseModel):
    """Every error answer of the API: ``{"error": {...}}``."""

    error: ErrorBody


class LoginRequest(BaseModel):
    username: str
    password: str


class UserOut(BaseModel):
    """An account as an admin (or the user themselves) sees it; there is never a password in it."""

    id: int
    username: str
    roles: list[str]
    facility_id: str | None
    contact_id: str | None
    timezone: str | None
    national: bool
    disabled: bool
    created_at: int = Field(description="epoch milliseconds")
    updated_at: int = Field(description="epoch milliseconds")
    offline: bool | None = Field(default=None, description="CHT's offline rule under the loaded program's roles "
                                                   "(null when no program is loaded)")


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(description="lower-case letters, digits, '_', '-' and '.'")
    password: str = Field(description="at least 8 characters; stored as an Argon2id hash only")
    roles: list[str] = Field(description="role ids of the program (or admin, national_admin, mm-online)")
    facility_id: str | None = Field(default=None, description="the user's place: they see the contacts under it")
    contact_id: str | None = Field(default=None, description="the user's own person, within the place")
    timezone: str | None = Field(default=None, description="IANA zone, e.g. Africa/Blantyre")
    national: bool = Field(default=False, description="sees every place")


class UserUpdate(BaseModel):
    """Only the fields present change; ``null`` clears an optional one."""

    model_config = ConfigDict(extra="forbid")

    password: str | None = None
    roles: list[str] | None = None
    facility_id: str | None = None
    contact_id: str | None = None
    timezone: str | None = None
    national: bool | None = None
    disabled: bool | None = None


class TokenOut(BaseModel):
    token: str = Field(description="the secret token: shown once, stored only as a hash")
    id: str = Field(description="the token's public id (to revoke it)")
    username: str
    label: str
    created_at: int


class DocResult(BaseModel):
    id: str
    rev: str = Field(description="the stored revision (unchanged when the same content is sent again)")
    changed: bool = Field(description="false when the store already held exactly this content")


class DocsWritten(BaseModel):
    results: list[DocResult] = Field(description="one per document sent, in the order sent")


class TaskPageOut(BaseModel):
    total: int = Field(description="how many tasks match the filters (all pages)")
    limit: int
    offset: int
    items: list[dict[str, Any]] = Field(
        description="task documents in Tasks tab order, each with its `_id` and its `emission_id`")


class ProgramOut(BaseModel):
    loaded: bool
    version: int | None = Field(default=None, description="the active program version (each load adds one)")
    loaded_at: int | None = Field(default=None, description="epoch milliseconds")
    kind: str | None = Field(default=None, description="js (tasks.js) or python (tasks.py)")
    warnings: list[dict[str, Any]] = Field(default_factory=list, description="located validation warnings")


class ValidationOut(BaseModel):
    valid: bool
    warnings: list[dict[str, Any]] = Field(default_factory=list)


class LoggedIn(BaseModel):
    user: UserOut
    expires_at: int = Field(description="epoch milliseconds when the session cookie expires")


class Health(BaseModel):
    status: str
    program_loaded: bool
