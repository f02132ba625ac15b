"""The wire formats SMS gateways speak with Kazi, to and from internal messages. Pure: no I/O, no clock.

**medic-gateway** (CHT's Android gateway app) polls one URL: ``GET`` answers ``{"medic-gateway": true}`` (how the
app checks it talks to a CHT-compatible server), and ``POST`` carries, in one body, the SMS the phone received
and the delivery states of the messages it was given to send::

    {"messages": [{"id": "<uuid>", "from": "+265888123456", "content": "P 12 Mary Banda",
                   "sms_sent": 1754036400000, "sms_received": 1754036405000}],
     "updates": [{"id": "<outgoing id>", "status": "SENT"}, {"id": "...", "status": "FAILED", "reason": "..."}]}

and the answer lists the messages for the phone to send, ``{"messages": [{"id", "to", "content"}]}``. The
states the app reports (``UNSENT``, ``PENDING``, ``SENT``, ``DELIVERED``, ``FAILED``) are stored under CHT's
names for them (:data:`GATEWAY_STATES`).

**Plain JSON** (any other gateway, or a script): ``{"messages": [{"id", "from", "text", "received_at"?}]}``,
answered with the outcome and the reply of each message at once (kazi.server.sms_api).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from kazi.characters import printable, refused_character
from kazi.epoch import out_of_range


def epoch_ms(value: object) -> int | None:
    """A time in epoch milliseconds (a finite number, integral part), else ``None``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or abs(value) > 2**62:
        return None
    return int(value)


#: medic-gateway's states of an outgoing message -> the state CHT (and Kazi) stores
GATEWAY_STATES: Final[dict[str, str]] = {
    "UNSENT": "received-by-gateway",
    "PENDING": "forwarded-by-gateway",
    "SENT": "sent",
    "DELIVERED": "delivered",
    "FAILED": "failed",
}
#: a reply waiting for medic-gateway to fetch it, and one it was given but has not reported on yet
PENDING: Final = "pending"
FORWARDED: Final = "forwarded-to-gateway"
#: a reply handed over in the answer of the plain JSON endpoint
ANSWERED: Final = "answered"
#: the longest text and the most messages accepted in one request
MAX_TEXT: Final = 1600
MAX_MESSAGES: Final = 500


@dataclass(frozen=True)
class Incoming:
    """One SMS a gateway received: its id (the gateway's), the sender's number, the text, when."""

    id: str
    sender: str
    text: str
    received_at: int | None  # epoch ms; None: when Kazi receives it
    sent_at: int | None = None


@dataclass(frozen=True)
class StateUpdate:
    """A delivery state medic-gateway reports for a message it was given (``state`` in CHT's names)."""

    id: str
    state: str
    reason: str | None = None


@dataclass(frozen=True)
class WireProblem:
    """A part of a request that cannot be used, located by its path in the body.

    ``item`` is set when the problem refuses one message (or one state update) only: a string of it holds a
    character no text may hold (:mod:`kazi.characters`). The rest of the request goes on, so that a gateway,
    which sends its batch again until it is accepted, does not hold its good messages back forever behind
    one it cannot change. Any other problem refuses the whole request: it is the gateway's bug."""

    field: str
    message: str
    item: int | None = None
    item_id: str | None = None  # the message's or update's id, printable

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"field": self.field, "message": self.message}
        if self.item is not None:
            out["index"] = self.item
        if self.item_id is not None:
            out["id"] = self.item_id
        return out


def refused_one(problems: list[WireProblem]) -> list[WireProblem]:
    """The problems that refuse one item only (see :class:`WireProblem`)."""
    return [p for p in problems if p.item is not None]


def refused_all(problems: list[WireProblem]) -> list[WireProblem]:
    """The problems that refuse the whole request."""
    return [p for p in problems if p.item is None]


def _characters(item: dict[str, Any], keys: tuple[str, ...], path: str, index: int) -> WireProblem | None:
    """The first string of ``item`` (among ``keys``) holding a refused character, as a one-item problem."""
    for key in keys:
        value = item.get(key)
        why = refused_character(value) if isinstance(value, str) else None
        if why is not None:
            raw_id = item.get("id")
            return WireProblem(f"{path}.{key}", f"{why}: this one is refused, the others are processed",
                               index, printable(raw_id) if isinstance(raw_id, str) else None)
    return None


def _text(item: dict[str, Any], key: str, path: str, problems: list[WireProblem], *, limit: int = 200,
          empty_ok: bool = False) -> str | None:
    value = item.get(key)
    if not isinstance(value, str) or (not value.strip() and not empty_ok):
        problems.append(WireProblem(f"{path}.{key}", f"must be a {'' if empty_ok else 'non-empty '}string"))
        return None
    if len(value) > limit:
        problems.append(WireProblem(f"{path}.{key}", f"longer than {limit} characters"))
        return None
    return value


def _messages(body: Any, text_key: str, time_keys: tuple[str, str | None],
              problems: list[WireProblem]) -> list[Incoming]:
    raw = body.get("messages", []) if isinstance(body, dict) else None
    if not isinstance(raw, list):
        problems.append(WireProblem("messages", "must be an array"))
        return []
    if len(raw) > MAX_MESSAGES:
        problems.append(WireProblem("messages", f"{len(raw)} messages; send at most {MAX_MESSAGES} per request"))
        return []
    out: list[Incoming] = []
    for i, item in enumerate(raw):
        path = f"messages[{i}]"
        if not isinstance(item, dict):
            problems.append(WireProblem(path, "must be an object"))
            continue
        before = len(problems)
        msg_id = _text(item, "id", path, problems)
        sender = _text(item, "from", path, problems, limit=64)
        text = _text(item, text_key, path, problems, limit=MAX_TEXT, empty_ok=True)
        received_key, sent_key = time_keys
        received = item.get(received_key)
        if received is not None and epoch_ms(received) is None:
            problems.append(WireProblem(f"{path}.{received_key}", "must be epoch milliseconds"))
        elif received is not None and (reason := out_of_range(received)) is not None:
            problems.append(WireProblem(f"{path}.{received_key}", reason))
        sent = item.get(sent_key) if sent_key else None
        if sent is not None and out_of_range(sent) is not None:
            sent = None  # the sending phone's clock, only kept for reference: a wrong one is dropped, not stored
        if len(problems) > before:
            continue
        refused = _characters(item, ("id", "from", text_key), path, i)
        if refused is not None:
            problems.append(refused)
            continue
        assert msg_id is not None and sender is not None and text is not None
        out.append(Incoming(msg_id, sender.strip(), text, epoch_ms(received), epoch_ms(sent)))
    return out


def read_medic_gateway(body: Any) -> tuple[list[Incoming], list[StateUpdate], list[WireProblem]]:
    """A medic-gateway POST body: its messages and state updates, or the problems that refuse it."""
    problems: list[WireProblem] = []
    if not isinstance(body, dict):
        return [], [], [WireProblem("body", 'must be an object {"messages": [...], "updates": [...]}')]
    messages = _messages(body, "content", ("sms_received", "sms_sent"), problems)
    raw = body.get("updates", [])
    updates: list[StateUpdate] = []
    if not isinstance(raw, list):
        problems.append(WireProblem("updates", "must be an array"))
        raw = []
    for i, item in enumerate(raw):
        path = f"updates[{i}]"
        if not isinstance(item, dict):
            problems.append(WireProblem(path, "must be an object"))
            continue
        up_id = _text(item, "id", path, problems)
        status = item.get("status")
        if not isinstance(status, str) or status not in GATEWAY_STATES:
            problems.append(WireProblem(f"{path}.status", f"{status!r} is not one of {', '.join(GATEWAY_STATES)}"))
            continue
        reason = item.get("reason")
        refused = _characters(item, ("id", "reason"), path, i)
        if refused is not None:
            problems.append(refused)
            continue
        if up_id is not None:
            updates.append(StateUpdate(up_id, GATEWAY_STATES[status], reason if isinstance(reason, str) else None))
    return messages, updates, problems


def read_plain(body: Any) -> tuple[list[Incoming], list[WireProblem]]:
    """A plain JSON body ``{"messages": [{"id", "from", "text", "received_at"?}]}``."""
    problems: list[WireProblem] = []
    if not isinstance(body, dict) or "messages" not in body:
        return [], [WireProblem("body", 'must be an object {"messages": [...]}')]
    return _messages(body, "text", ("received_at", None), problems), problems


def medic_gateway_answer(outgoing: list[tuple[str, str, str]]) -> dict[str, Any]:
    """The answer medic-gateway reads: ``(id, to, text)`` of each message it is to send."""
    return {"messages": [{"id": i, "to": to, "content": text} for i, to, text in outgoing]}
