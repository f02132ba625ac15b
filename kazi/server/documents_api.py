"""Writing and reading contacts and reports (``/api/v1/docs``), within the caller's place."""

from typing import Annotated, Any

from fastapi import APIRouter, Body

from kazi.server.deps import API, WRITE_REFUSALS, ApiError, Caller, Ctx, errors, require_write_permission
from kazi.server.schemas import DocResult, DocsWritten, ErrorResponse
from kazi.sms.phones import country_code_of

#: documents per POST: a batch is one transaction, and a huge one would hold the write lock for long
MAX_BATCH = 5000

doc_routes = APIRouter(prefix=API, tags=["documents"])

_DOCS_EXAMPLE = [{"_id": "report-1", "type": "data_record", "form": "pregnancy", "reported_date": 1754036400000,
                  "contact": {"_id": "chw-person-id"}, "fields": {"patient_id": "1234567", "lmp_date": "2025-05-01"}}]


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
