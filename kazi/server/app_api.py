"""The web app's routes: the caller (with permissions and locale), forms, translations, contact pages and
form submissions, under ``/api/v1`` with the same rules as every route of :mod:`kazi.server.api`
(authentication, the caller's scope, JSON errors).

Why a module of their own: these routes serve the web app's Tasks tab (docs/webapp.md) and build on the API's
dependencies without touching its core routes. ``create_app`` includes :data:`app_routers`.

Submissions (``POST /api/v1/reports``) are what an offline phone sends when the connection returns, maybe
twice, maybe days late: the client generates the report's ``_id``, so the same submission again is answered
"unchanged" and never stored twice, while another submission under an ``_id`` already used is a 409 (a client
bug that must not overwrite anybody's report). The server, not the client, builds the CHT report: the
submitter and their lineage come from the account, the answers are checked against the program's form.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Response

from kazi.engine.containers import is_contact
from kazi.engine.permissions import has_permissions
from kazi.errors import DocumentExistsError, NotFoundError
from kazi.program import forms as kforms
from kazi.program import translations as ktr
from kazi.program.loader import Program
from kazi.server.deps import API, WRITE_REFUSALS, ApiContext, ApiError, Caller, Ctx, errors, require_write_permission
from kazi.server.schemas import (
    ContactPageOut,
    ContactRef,
    ErrorResponse,
    FormsOut,
    MeOut,
    ReportIn,
    ReportOut,
    TranslationsOut,
)
from kazi.server.views import task_items
from kazi.store import StoredUser, is_offline, scope_of
from kazi.store import contacts as store_contacts
from kazi.store.documents import check_id

#: reports shown on a contact's page
CONTACT_REPORTS = 50
#: tasks shown on a contact's page (a contact has a handful)
CONTACT_TASKS = 200


def _conflict(description: str) -> dict[int | str, dict[str, Any]]:
    return {409: {"model": ErrorResponse, "description": description}}


def _program(c: ApiContext) -> Program:
    c.program_or_409()
    program = c.service.program()
    assert program is not None
    return program


def _version(c: ApiContext) -> int | None:
    info = c.service.program_info()
    return info.version if info is not None else None


def user_locale(user: StoredUser, program: Program | None) -> str:
    """The language the user sees: theirs, else the program's default, else ``en``."""
    if user.locale:
        return user.locale
    return program.default_locale if program is not None else ktr.DEFAULT_LOCALE


# --------------------------------------------------------------------------------------------------------
# the caller


me_routes = APIRouter(prefix=API, tags=["session"])


@me_routes.get("/me", summary="The caller's account, permissions and locale", response_model=MeOut,
               responses=errors(401))
def me(user: Caller, c: Ctx) -> MeOut:
    """The account (as an admin sees it) plus what the web app sets itself up with: the program's
    `permissions` the caller holds (`can_view_tasks_group` enables the household group page), `offline`
    (CHT's rule), `locale` (the user's, else the program's default, else `en`; `user_locale` is the stored
    value) and the active `program_version`."""
    program = c.service.program()
    settings = program.settings if program is not None else None
    held = sorted(p for p in (program.permissions if program is not None else {})
                  if has_permissions(p, list(user.roles), settings))
    account = {k: v for k, v in user.to_dict().items() if k != "locale"}
    return MeOut(**account, offline=is_offline(user, settings), locale=user_locale(user, program),
                 user_locale=user.locale, permissions=held, program_version=_version(c))


# --------------------------------------------------------------------------------------------------------
# forms and translations


form_routes = APIRouter(prefix=API, tags=["forms"])


@form_routes.get("/forms", summary="Every form of the program, in full", response_model=FormsOut,
                 responses=errors(401, 409))
def list_forms(_user: Caller, c: Ctx) -> FormsOut:
    """The program's forms (`forms/<id>.json`, Kazi's form format) with the program version they belong to:
    the web app caches them all for offline use and fetches them again when the version changes."""
    program = _program(c)
    return FormsOut(program_version=_version(c),
                    forms=[dict(program.forms[i].definition) for i in sorted(program.forms)])


@form_routes.get("/forms/{form_id}", summary="One form", responses={
    200: {"description": "the form (Kazi's form format)"}, **errors(401, 404, 409)})
def get_form(form_id: str, _user: Caller, c: Ctx) -> dict[str, Any]:
    form = _program(c).forms.get(form_id)
    if form is None:
        raise NotFoundError("form", form_id)
    return dict(form.definition)


@form_routes.get("/translations", summary="The program's messages in a locale (with fallback)",
                 response_model=TranslationsOut, responses=errors(401, 409, 422))
def get_translations(
    user: Caller, c: Ctx,
    locale: Annotated[str | None, Query(description="e.g. en, ny, pt-BR (default: the caller's locale)")] = None,
) -> TranslationsOut:
    """The messages of `translations/messages-<locale>.properties`, over those of the locale's language
    (`pt` for `pt-BR`), over the program's default locale's. A key missing from all is absent: the app shows
    the key itself, as CHT does."""
    program = _program(c)
    if locale is not None and not ktr.is_locale(locale):
        raise ApiError(422, f"query.locale: {locale!r} is not a locale (use e.g. en, ny or pt-BR)",
                       field="query.locale")
    chosen = locale or user_locale(user, program)
    return TranslationsOut(locale=chosen, default_locale=program.default_locale,
                           locales=sorted(program.translations), program_version=_version(c),
                           messages=ktr.messages_for(program.translations, chosen, program.default_locale))


# --------------------------------------------------------------------------------------------------------
# contacts


contact_routes = APIRouter(prefix=API, tags=["contacts"])


@contact_routes.get("/contacts/{contact_id:path}", summary="A contact's page: lineage, children, reports, tasks",
                    response_model=ContactPageOut, responses=errors(401, 404, 500))
def contact_page(contact_id: str, user: Caller, c: Ctx) -> ContactPageOut:
    """The contact, its ancestors within the caller's place (nearest first), the contacts directly under
    it, the newest reports about it (at most 50) and the caller's Ready tasks for it (the items of
    `GET /api/v1/tasks`). A contact outside the caller's place is a 404, like a missing one."""
    found = c.store.get_docs([contact_id], user=user)
    if not found or not is_contact(found[0]):
        raise NotFoundError("contact", contact_id)
    doc = found[0]
    scope = scope_of(user)
    placed = store_contacts.placed_contacts(c.store, [contact_id], scope).get(contact_id)
    tasks: list[dict[str, Any]] = []
    if c.service.program() is not None:
        c.service.refresh_user(user)
        page = c.service.tasks(user, owners=[contact_id], limit=CONTACT_TASKS)
        tasks = task_items(c.store, user, page.items)
    return ContactPageOut(
        contact=doc,
        lineage=[ContactRef.model_validate(ref.to_dict()) for ref in (placed.lineage if placed is not None else [])],
        children=[ContactRef.model_validate(ref.to_dict())
                  for ref in store_contacts.children(c.store, contact_id, scope)],
        reports=store_contacts.reports_about(c.store, doc, scope, limit=CONTACT_REPORTS),
        tasks=tasks,
    )


# --------------------------------------------------------------------------------------------------------
# submissions


report_routes = APIRouter(prefix=API, tags=["reports"])

_REPORT_EXAMPLE = {"_id": "0b6c8a52-6f0e-4c55-9d0e-2f3a5c1e7d11", "form": "appointment_verification",
                   "fields": {"patient_id": "C0042", "missed_appointment_id": "missed-42",
                              "verified_by": "phone", "outcome": "returned_to_care"},
                   "reported_date": 1754036400000}


def _submitter(doc: dict[str, Any]) -> Any:
    contact = doc.get("contact")
    return contact.get("_id") if isinstance(contact, dict) else None


def _same_submission(stored: dict[str, Any], report: dict[str, Any], reported_date_given: bool) -> bool:
    """Whether a stored report is this submission again: same form, answers and submitter (the time the
    server gave it when the client sent none, and the submitter's lineage, may have changed since)."""
    keys = ("type", "form", "fields") + (("reported_date",) if reported_date_given else ())
    return all(stored.get(k) == report.get(k) for k in keys) and _submitter(stored) == _submitter(report)


@report_routes.post(
    "/reports", summary="Submit a form: the server builds and stores the CHT report", status_code=201,
    response_model=ReportOut,
    responses={200: {"model": ReportOut, "description": "this submission was already stored (status unchanged)"},
               **errors(400, 401, 404, 422), 403: WRITE_REFUSALS[403],
               **_conflict("another submission was stored under this `_id`, or no program is loaded")})
def submit_report(body: Annotated[ReportIn, Body(examples=[_REPORT_EXAMPLE])], user: Caller, c: Ctx,
                  response: Response) -> ReportOut:
    """Checks `fields` against the form (every problem listed, each with its `field`: unknown fields,
    required answers, types, choices; irrelevant fields are dropped), then stores
    `{"_id", "type": "data_record", "form", "reported_date", "contact": {"_id": <the caller's contact>,
    "parent": <its lineage>}, "fields"}`. The subject is what the hidden fields `patient_id`, `patient_uuid`
    or `place_id` name; a subject outside the caller's place is refused (404). Idempotent by `_id`: the same
    submission again answers 200 `unchanged`; a different one with that `_id` is a 409. The caller's next
    `GET /api/v1/tasks` reflects the report. Submitting needs the program's `can_edit` permission (403)."""
    program = _program(c)
    require_write_permission(c, user)
    checked_id = check_id(body.id, 0)
    if not isinstance(checked_id, str):
        raise ApiError(422, str(checked_id), field="_id")
    form = program.forms.get(body.form)
    if form is None:
        known = ", ".join(sorted(program.forms)) or "none"
        raise ApiError(422, f"form: the program has no form {body.form!r} (forms: {known})", field="form")
    fields, problems = kforms.check_answers(form, body.fields)
    if problems:
        raise ApiError(422, f"{len(problems)} problem(s) with the answers to {form.id}: "
                            + "; ".join(f"{p.field}: {p.message}" for p in problems),
                       field=problems[0].field if len(problems) == 1 else None,
                       problems=[p.to_dict() for p in problems])
    if not user.contact_id:
        raise ApiError(422, "the caller's account has no contact (contact_id): a report needs its submitter "
                            "(an admin sets it: PATCH /api/v1/users/{username})", field="contact_id")
    subjects = kforms.subject_ids(fields)
    outside = store_contacts.subjects_outside(c.store, [s for _, s in subjects], scope_of(user))
    for name, subject in subjects:
        if subject in outside:
            raise ApiError(404, f"the report's subject {subject!r} (fields.{name}) is not a contact in your place",
                           field=f"fields.{name}")
    report: dict[str, Any] = {
        "_id": checked_id, "type": "data_record", "form": form.id,
        "reported_date": body.reported_date if body.reported_date is not None else c.service.clock(),
        "contact": store_contacts.minified_lineage(c.store, user.contact_id), "fields": fields,
    }
    try:
        # created only if the _id is free, checked in the write's transaction: two deliveries of one submission
        # racing each other store it once, and the second gets the answer below
        written = c.store.write_doc(report, user=user, create_only=True)
    except DocumentExistsError:
        existing = c.store.get_docs([checked_id], include_deleted=True)  # any place: an _id is never reused
        stored = existing[0] if existing else {}
        if stored and not stored.get("_deleted") and _same_submission(stored, report, body.reported_date is not None):
            response.status_code = 200
            return ReportOut(id=checked_id, status="unchanged", rev=stored["_rev"], doc=stored)
        raise ApiError(409, f"_id: {checked_id!r} is already used by another document: generate a new _id for a "
                            "new submission", field="_id") from None
    c.service.note_write(user)  # the caller's next Tasks list waits for this report (read-your-writes)
    return ReportOut(id=checked_id, status="created", rev=written.rev, doc={**report, "_rev": written.rev})


app_routers = (me_routes, form_routes, contact_routes, report_routes)
