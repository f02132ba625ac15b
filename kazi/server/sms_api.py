"""SMS gateways over HTTP (docs/sms.md): medic-gateway's exchange, a plain JSON endpoint, and the messages' review.

* ``GET|POST /api/sms`` (CHT's path, so an unmodified medic-gateway works) and the same at
  ``/api/v1/sms/gateway``: medic-gateway's protocol (:mod:`kazi.sms.gateway`). A POST brings the SMS the
  phone received and the delivery states of the replies it was given; the answer lists the replies waiting
  to be sent, each returned again at every poll until the gateway reports a state for it (an answer lost on
  the way loses no reply; the app ignores ids it already has).
* ``POST /api/v1/sms/messages``: any other gateway or a script; the answer carries each message's outcome and
  reply at once, for the caller to send.
* ``GET /api/v1/sms/messages?status=``: every message kept, with its outcome, for review.

All need an account whose roles hold ``can_access_gateway_api`` (CHT's permission; administrators hold every
permission), authenticated like every route (HTTP Basic is what the gateway app sends). Processing is
:mod:`kazi.service.sms`; the guide is docs/sms.md.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any, Final, Literal

from fastapi import APIRouter, Body, Depends, Query
from pydantic import BaseModel, Field

from kazi.program.loader import Program
from kazi.server.deps import API, ApiContext, ApiError, Caller, Ctx, Limit, Offset, errors
from kazi.server.limits import checks_its_items
from kazi.service.sms import SmsProcessor
from kazi.sms import gateway as gw
from kazi.store import StoredUser, scope_of
from kazi.store import sms as stored

log = logging.getLogger("kazi.sms")

#: CHT's permission for SMS gateways
GATEWAY_PERMISSION: Final = "can_access_gateway_api"
MEDIC_GATEWAY: Final = "medic-gateway"
JSON_GATEWAY: Final = "json"


class GatewayAccess:
    """The caller and the active program, when the program grants the caller the gateway permission."""

    def __init__(self, user: StoredUser, program: Program) -> None:
        self.user = user
        self.program = program


def gateway_access(user: Caller, c: Ctx) -> GatewayAccess:
    program = c.program_granting(user, GATEWAY_PERMISSION, "SMS gateways only")
    return GatewayAccess(user, program)


Gateway = Annotated[GatewayAccess, Depends(gateway_access)]


def _processor(c: ApiContext, access: GatewayAccess) -> SmsProcessor:
    processor = SmsProcessor(c.store, access.program, access.user, c.service.clock)
    hook = getattr(c, "sms_ids", None)  # tests give deterministic ids and random draws
    if hook is not None:
        processor.new_id, processor.rng = hook
    return processor


def _wake(c: ApiContext, wrote: bool) -> None:
    if wrote and c.worker is not None:
        c.worker.wake()  # the tasks the new reports make follow without waiting for the next round


def _refused_log(problems: list[gw.WireProblem], gateway: str) -> None:
    for p in problems:
        log.warning("SMS gateway %s: %s refused: %s", gateway, p.field, p.message)


def _refuse(problems: list[gw.WireProblem]) -> ApiError:
    first = problems[0]
    return ApiError(422, f"{len(problems)} problem(s) in the request; nothing of it was processed: "
                         f"{first.field}: {first.message}", field=first.field if len(problems) == 1 else None,
                    problems=[p.to_dict() for p in problems])


# --------------------------------------------------------------------------------------------------------
# shapes


class MedicGatewayHello(BaseModel):
    medic_gateway: bool = Field(alias="medic-gateway", description="always true: this server speaks medic-gateway")


class OutgoingSms(BaseModel):
    id: str = Field(description="the reply's id, under which the gateway reports its delivery state")
    to: str
    content: str


class RefusedSms(BaseModel):
    index: int = Field(description="the message's (or state update's) position in its array")
    id: str | None = Field(None, description="its id, as sent (refused characters shown as U+FFFD)")
    field: str = Field(description="where the refused character is, e.g. `messages[2].content`")
    message: str


class MedicGatewayAnswer(BaseModel):
    messages: list[OutgoingSms] = Field(description="the replies for the phone to send")
    refused: list[RefusedSms] = Field(default_factory=list, description=(
        "messages and state updates refused one by one (a NUL character or a lone surrogate in a string): "
        "not stored, and not to be sent again; the others were processed (medic-gateway ignores this list)"))


class ReplyOut(BaseModel):
    to: str
    text: str


class SmsResult(BaseModel):
    id: str = Field(description="the message's id, as sent")
    status: Literal["processed", "error", "unknown_sender", "refused"] = Field(
        description="refused: the message holds a NUL character or a lone surrogate; it was not stored (the "
                    "others of the request were processed)")
    error: str | None = Field(None, description="the error code: unknown_form, missing_field, invalid_field, "
                                                "extra_text, unknown_patient, not_allowed, empty, unknown_sender, "
                                                "invalid_text (refused)")
    replayed: bool = Field(description="true: this message was already received; nothing new was done and this "
                                       "is the outcome of its first delivery")
    reply: ReplyOut | None = Field(None, description="the reply to send to the sender")
    report_id: str | None = None
    patient_id: str | None = Field(None, description="the subject's patient_id (a registration's new one)")


class SmsResults(BaseModel):
    results: list[SmsResult] = Field(description="one per message, in the order sent")


class SmsMessageOut(BaseModel):
    seq: int
    id: str
    sender: str
    text: str
    received_at: int
    stored_at: int
    gateway: str
    gateway_user: str
    status: str
    error: str | None
    form: str | None
    contact_id: str | None
    report_id: str | None
    patient_id: str | None
    reply_id: str | None
    reply_to: str | None
    reply_text: str | None


class SmsMessagePage(BaseModel):
    total: int
    limit: int
    offset: int
    items: list[SmsMessageOut]


# --------------------------------------------------------------------------------------------------------
# medic-gateway


sms_routes = APIRouter(tags=["sms"])

_MEDIC_EXAMPLE = {"messages": [{"id": "6f1f7a4e-1d2b-4c6a-9f00-3b5e2c1a0d11", "from": "+265888100001",
                                "content": "P 12 Mary Banda", "sms_sent": 1754036400000,
                                "sms_received": 1754036405000}],
                  "updates": [{"id": "0c5d7b9e-5a51-4f0e-8e7d-2b9a4c6d8e01", "status": "DELIVERED"}]}


def _hello(_access: Gateway) -> dict[str, bool]:
    """medic-gateway checks the server with a GET before it polls."""
    return {"medic-gateway": True}


@checks_its_items
def _exchange(body: Annotated[Any, Body(examples=[_MEDIC_EXAMPLE])], access: Gateway, c: Ctx) -> MedicGatewayAnswer:
    """medic-gateway's poll: `messages` the phone received (`id`, `from`, `content`, `sms_sent`,
    `sms_received`) are processed (each once, however often delivered); `updates` record the delivery states
    of replies (`UNSENT`, `PENDING`, `SENT`, `DELIVERED`, `FAILED` with a `reason`). The answer lists the
    replies to send: every reply not yet reported on, this request's included."""
    messages, updates, problems = gw.read_medic_gateway(body)
    if gw.refused_all(problems):
        raise _refuse(gw.refused_all(problems))
    refused = gw.refused_one(problems)
    _refused_log(refused, MEDIC_GATEWAY)
    now = c.service.clock()
    if updates:
        stored.set_states(c.store, [(u.id, u.state, u.reason) for u in updates], now)
    processor = _processor(c, access)
    wrote = False
    for msg in messages:
        _, changed = processor.receive(msg, gateway=MEDIC_GATEWAY, reply_gateway=MEDIC_GATEWAY,
                                       reply_state=gw.PENDING)
        wrote = wrote or changed
    _wake(c, wrote)
    out = stored.outgoing_to_send(c.store, MEDIC_GATEWAY, (gw.PENDING, gw.FORWARDED), mark=gw.FORWARDED, now=now)
    return MedicGatewayAnswer(messages=[OutgoingSms(id=i, to=to, content=text) for i, to, text in out],
                              refused=[RefusedSms(index=p.item or 0, id=p.item_id, field=p.field, message=p.message)
                                       for p in refused])


_GATEWAY_RESPONSES: dict[int | str, dict[str, Any]] = {**errors(401, 409, 422),
                                                       403: errors(403)[403] | {"description": "no gateway permission"}}
#: what the routes that take a JSON body answer besides (400: the body is not JSON)
_GATEWAY_POST_RESPONSES: dict[int | str, dict[str, Any]] = {**errors(400), **_GATEWAY_RESPONSES}
for _path in ("/api/sms", f"{API}/sms/gateway"):
    sms_routes.add_api_route(_path, _hello, methods=["GET"], summary="medic-gateway: the server check",
                             response_model=dict[str, bool], responses=_GATEWAY_RESPONSES)
    sms_routes.add_api_route(_path, _exchange, methods=["POST"],
                             summary="medic-gateway: received SMS and delivery states in, replies out",
                             response_model=MedicGatewayAnswer, responses=_GATEWAY_POST_RESPONSES)


# --------------------------------------------------------------------------------------------------------
# plain JSON


_PLAIN_EXAMPLE = {"messages": [{"id": "gw-1", "from": "+265888100001", "text": "P 12 Mary Banda",
                                "received_at": 1754036405000}]}


@sms_routes.post(f"{API}/sms/messages", summary="Received SMS in, outcomes and replies out (any gateway)",
                 response_model=SmsResults, responses=_GATEWAY_POST_RESPONSES)
@checks_its_items
def receive_messages(body: Annotated[Any, Body(examples=[_PLAIN_EXAMPLE])], access: Gateway, c: Ctx
                     ) -> SmsResults:
    """Each message (`id` unique per gateway, `from`, `text`, `received_at` epoch ms, default now) is
    processed once: sent again, it answers its first outcome with `replayed: true` and changes nothing. Each
    result says `processed` (a report stored: `report_id`, `patient_id`), `error` (`error` says which; the
    message is kept) or `unknown_sender`, with the `reply` for the caller to send."""
    messages, problems = gw.read_plain(body)
    if gw.refused_all(problems):
        raise _refuse(gw.refused_all(problems))
    refused = {p.item: p for p in gw.refused_one(problems)}
    _refused_log(list(refused.values()), JSON_GATEWAY)
    processor = _processor(c, access)
    results: list[SmsResult] = []
    wrote = False
    good = iter(messages)
    for index in range(len(messages) + len(refused)):
        if index in refused:
            results.append(SmsResult(id=refused[index].item_id or "", status="refused", error="invalid_text",
                                     replayed=False, reply=None, patient_id=None))
            continue
        msg = next(good)
        kept, changed = processor.receive(msg, gateway=JSON_GATEWAY, reply_gateway=JSON_GATEWAY,
                                          reply_state=gw.ANSWERED)
        wrote = wrote or changed
        reply = ReplyOut(to=kept.reply_to, text=kept.reply_text) if kept.reply_to and kept.reply_text else None
        results.append(SmsResult(id=kept.id, status=kept.status, error=kept.error,  # type: ignore[arg-type]
                                 replayed=kept.replayed, reply=reply, report_id=kept.report_id,
                                 patient_id=kept.patient_id))
    _wake(c, wrote)
    return SmsResults(results=results)


@sms_routes.get(f"{API}/sms/messages", summary="The SMS received, with their outcomes (review)",
                response_model=SmsMessagePage, responses=_GATEWAY_RESPONSES)
def list_messages(
    access: Gateway, c: Ctx,
    status: Annotated[Literal["processed", "error", "unknown_sender"] | None,
                      Query(description="only messages with this outcome")] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> SmsMessagePage:
    """Newest first. Confined to the caller's place: messages from senders in it, and the messages of
    unknown senders this account delivered (administrators see all)."""
    total, items = stored.list_messages(c.store, scope_of(access.user), gateway_user=access.user.username,
                                        status=status, limit=limit, offset=offset)
    return SmsMessagePage(total=total, limit=limit, offset=offset,
                          items=[SmsMessageOut(**m.to_dict()) for m in items])
