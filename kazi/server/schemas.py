"""The API's request and response shapes, as pydantic models.

Why models rather than bare dicts: FastAPI turns them into the OpenAPI document (``/openapi.json``), so the
published contract and the code cannot drift apart, and requests are validated before a handler runs. CHT
documents and task documents stay free-form (``dict``): their shape belongs to CHT and to the program, and
the store validates what it needs.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from kazi.epoch import EARLIEST_MS, LATEST_MS, RANGE_TEXT


class ErrorBody(BaseModel):
    """What went wrong, for people and for programs."""

    status: int = Field(description="the HTTP status, repeated for clients that lose it")
    message: str = Field(description="one readable sentence (or several lines) saying what to fix")
    field: str | None = Field(default=None, description="the offending field, when one field is the cause")
    problems: list[dict[str, Any]] | None = Field(
        default=None, description="every problem found, each located (index, doc_id, field, current_rev / file, "
                                  "definition, ...)")


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
    locale: str | None = Field(default=None, description="the web app's language (en, ny, pt-BR); null: the "
                                                         "program's default locale")


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(description="lower-case letters, digits, '_', '-' and '.'")
    password: str = Field(description="at least 8 characters; stored as an Argon2id hash only")
    roles: list[str] = Field(description="role ids of the program (or admin, national_admin, mm-online)")
    facility_id: str | None = Field(default=None, description="the user's place: they see the contacts under it")
    contact_id: str | None = Field(default=None, description="the user's own person, within the place")
    timezone: str | None = Field(default=None, description="IANA zone, e.g. Africa/Blantyre")
    national: bool = Field(default=False, description="sees every place")
    locale: str | None = Field(default=None, description="the web app's language (en, ny, pt-BR); null: the "
                                                         "program's default locale")


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
    locale: str | None = None


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
    total: int = Field(description="how many tasks match the filters (all pages); in a delta, how many of the "
                                   "changed tasks are in the list")
    limit: int
    offset: int
    items: list[dict[str, Any]] = Field(
        description="task documents in Tasks tab order, each with its `_id` and its `emission_id`")
    seq: int = Field(description="the newest sequence number among the caller's task documents: pass it as "
                                 "`since` to get only what changes after this answer")
    since: int | None = Field(default=None, description="set when the answer is a delta: the `since` asked for")
    removed: list[str] = Field(default_factory=list, description="in a delta, the `_id`s of task documents that "
                                                                 "changed and are no longer in the list")


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


# --------------------------------------------------------------------------------------------------------
# the web app's routes (kazi.server.app_api)


TaskState = Literal["Ready", "Draft"]


class MeOut(UserOut):
    """The caller's account with what the web app needs to set itself up."""

    offline: bool = Field(description="CHT's offline rule under the loaded program's roles")
    locale: str = Field(description="the language to show: the user's locale, else the program's "
                                    "default (app_settings.locale), else en")
    user_locale: str | None = Field(default=None, description="the locale stored for the user (null: none)")
    permissions: list[str] = Field(description="the program's permissions the caller holds (e.g. "
                                               "can_view_tasks_group), sorted")
    program_version: int | None = Field(description="the active program version (null: none is loaded)")


class FormsOut(BaseModel):
    program_version: int | None = Field(description="the program version the forms belong to")
    forms: list[dict[str, Any]] = Field(description="every form of the program, in full (Kazi's form format, "
                                                    "docs/api.md), by id")


class TranslationsOut(BaseModel):
    locale: str = Field(description="the locale asked for (or the caller's)")
    default_locale: str = Field(description="the program's default locale, the fallback")
    locales: list[str] = Field(description="the locales the program has a translation file for")
    program_version: int | None
    messages: dict[str, str] = Field(description="key -> text: the locale's messages over its language's over the "
                                                 "default locale's; a key missing from all is absent")


class ContactRef(BaseModel):
    """A contact as lists show it."""

    id: str = Field(alias="_id")
    name: str | None = None
    contact_type: str | None = Field(default=None, description="contact_type, or the legacy type (person, clinic)")

    model_config = ConfigDict(populate_by_name=True)


class ContactPageOut(BaseModel):
    contact: dict[str, Any] = Field(description="the contact document")
    lineage: list[ContactRef] = Field(description="its ancestors within the caller's place, nearest first")
    children: list[ContactRef] = Field(description="the contacts directly under it, by name")
    reports: list[dict[str, Any]] = Field(description="reports about it, newest first (at most 50)")
    tasks: list[dict[str, Any]] = Field(description="the caller's Ready tasks for it, in Tasks tab order (the "
                                                    "items of GET /api/v1/tasks)")


class ReportIn(BaseModel):
    """A form submitted by the web app (also offline, later): the server builds the CHT report."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(alias="_id", description="generated by the client (a UUID): resubmitting is harmless")
    form: str = Field(description="a form id of GET /api/v1/forms")
    fields: dict[str, Any] = Field(description="answers by field name, hidden fields included; irrelevant "
                                               "fields are left out")
    reported_date: int | None = Field(default=None, ge=EARLIEST_MS, lt=LATEST_MS,
                                      description="epoch ms when the form was filled in (default: when the server "
                                                  f"receives it), {RANGE_TEXT}")


class ReportOut(BaseModel):
    id: str
    status: Literal["created", "unchanged"] = Field(description="unchanged: this report was already stored")
    rev: str
    doc: dict[str, Any] = Field(description="the CHT report as stored")
