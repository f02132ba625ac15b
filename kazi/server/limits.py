"""What the HTTP API accepts as input: size limits, refused characters and strict JSON. Pure: no I/O.

The rules, and why each matters:

* **Size.** A request body is at most ``max_request_bytes`` (default 32 MiB) and each document a client sends
  (an element of a JSON array body, or the body itself when it is an object) at most ``max_document_bytes``
  (default 1 MiB) of JSON. One huge document costs every worker round that reads it, for every user whose
  tasks it touches, until someone deletes it; a huge body costs the server's memory before anything is
  checked. Both are refused with 413.
* **Characters.** PostgreSQL cannot store NUL (U+0000) in text, and a lone UTF-16 surrogate (U+D800 to
  U+DFFF without its pair) cannot be encoded as UTF-8, which SQLite, the logs and every client need. Neither
  can be part of a sensible id, name or text, so both are refused with 422 wherever a client can put a
  string: the URL's path and query, Basic credentials and JSON bodies.
* **Strict JSON.** ``NaN``, ``Infinity`` and ``-Infinity`` are not JSON (RFC 8259); Python's parser accepts
  them and they were stored as ``null``, silently changing the data. They are refused with 422.

The middleware that applies these rules to every request is :mod:`kazi.server.guard`; the settings below are
what ``create_app`` and ``kazi serve`` take.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Final, ParamSpec, TypeVar

import orjson

from kazi.characters import printable, refused_character

P = ParamSpec("P")
R = TypeVar("R")

MIB: Final = 1024 * 1024
DEFAULT_MAX_REQUEST_BYTES: Final = 32 * MIB
DEFAULT_MAX_DOCUMENT_BYTES: Final = 1 * MIB
#: the body of a request that needs no account (logging in): a username and a password, nothing more
OPEN_BODY_BYTES: Final = 64 * 1024

ENV_MAX_REQUEST: Final = "KAZI_MAX_REQUEST_BYTES"
ENV_MAX_DOCUMENT: Final = "KAZI_MAX_DOCUMENT_BYTES"
ENV_TRUSTED_ORIGINS: Final = "KAZI_TRUSTED_ORIGINS"

_SIZE = re.compile(r"^\s*(\d+)\s*([kmg]i?b?|b)?\s*$", re.IGNORECASE)
_UNITS: Final = {"": 1, "b": 1, "k": 1024, "m": MIB, "g": 1024 * MIB}


def parse_size(text: str) -> int:
    """A size in bytes from ``1048576``, ``1MB``, ``1M``, ``1MiB``, ``64k`` (units are binary: 1 MB = 1024 KB)."""
    found = _SIZE.match(text)
    if found is None:
        raise ValueError(f"{text!r} is not a size (e.g. 1048576, 64KB, 32MB)")
    unit = (found.group(2) or "").lower()[:1]
    return int(found.group(1)) * _UNITS[unit]


def describe_size(n: int) -> str:
    """``32 MB``, ``64 KB`` or ``1000 bytes``: how a refusal names a limit."""
    for unit, size in (("GB", 1024 * MIB), ("MB", MIB), ("KB", 1024)):
        if n >= size and n % size == 0:
            return f"{n // size} {unit}"
    return f"{n} bytes"


@dataclass(frozen=True)
class InputSettings:
    """The input limits of the HTTP API (each a setting of ``kazi serve`` and an environment variable)."""

    #: the largest request body accepted (KAZI_MAX_REQUEST_BYTES); program uploads have their own limits
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    #: the largest document, as JSON, a client may send (KAZI_MAX_DOCUMENT_BYTES)
    max_document_bytes: int = DEFAULT_MAX_DOCUMENT_BYTES
    #: origins besides the server's own that the web app may be served from (KAZI_TRUSTED_ORIGINS,
    #: comma-separated, e.g. ``https://kazi.example.org``): for a proxy that does not pass the Host header on
    trusted_origins: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.max_request_bytes < 1 or self.max_document_bytes < 1:
            raise ValueError("the request and document limits must be at least 1 byte")
        object.__setattr__(self, "trusted_origins", tuple(o.strip().rstrip("/").lower()
                                                          for o in self.trusted_origins if o.strip()))

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> InputSettings:
        """The defaults, overridden by ``KAZI_MAX_REQUEST_BYTES``, ``KAZI_MAX_DOCUMENT_BYTES`` (sizes as
        :func:`parse_size` reads them) and ``KAZI_TRUSTED_ORIGINS``."""
        env = os.environ if environ is None else environ
        request = env.get(ENV_MAX_REQUEST, "").strip()
        document = env.get(ENV_MAX_DOCUMENT, "").strip()
        return cls(max_request_bytes=parse_size(request) if request else DEFAULT_MAX_REQUEST_BYTES,
                   max_document_bytes=parse_size(document) if document else DEFAULT_MAX_DOCUMENT_BYTES,
                   trusted_origins=tuple(env.get(ENV_TRUSTED_ORIGINS, "").split(",")))


#: the attribute that marks a route whose body holds items it checks one by one (:func:`checks_its_items`)
ITEMS_CHECKED: Final = "kazi_checks_its_items"


def checks_its_items(endpoint: Callable[P, R]) -> Callable[P, R]:
    """Mark a route that checks the characters and sizes of its body's items itself, so that one bad item
    is refused alone rather than with the whole request (an SMS gateway's batch: the good messages of a
    poll must not wait behind a bad one). The request size limit and strict JSON still apply."""
    setattr(endpoint, ITEMS_CHECKED, True)
    return endpoint


# --------------------------------------------------------------------------------------------------------
# strict JSON


class _NotANumber:
    """What ``NaN``, ``Infinity`` and ``-Infinity`` parse to, so that the check can say where they were."""

    def __init__(self, literal: str) -> None:
        self.literal = literal


@dataclass(frozen=True)
class JsonProblem:
    """Why a JSON body is refused: where (``body[2].fields.name``) and what."""

    field: str
    message: str
    kind: str = "character"  # or "number"


def _at(path: str, key: object) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}"


def _walk(value: Any, path: str) -> Iterator[JsonProblem]:
    """Every refused string, key and number in ``value``, located (depth-first, in document order)."""
    stack: list[tuple[Any, str]] = [(value, path)]
    while stack:
        node, where = stack.pop()
        if isinstance(node, str):
            why = refused_character(node)
            if why is not None:
                yield JsonProblem(where, f"the string {why}")
        elif isinstance(node, dict):
            children: list[tuple[Any, str]] = []
            for key, child in node.items():
                where_key = _at(where, printable(key))
                why = refused_character(key)
                if why is not None:
                    yield JsonProblem(where_key, f"the key {why}")
                children.append((child, where_key))
            stack.extend(reversed(children))
        elif isinstance(node, list):
            stack.extend((child, _at(where, i)) for i, child in reversed(list(enumerate(node))))
        elif isinstance(node, _NotANumber):
            yield JsonProblem(where, f"{node.literal} is not a JSON number (send a number, or null)", "number")
        elif isinstance(node, float) and not math.isfinite(node):
            yield JsonProblem(where, "a number too large for a double is not accepted", "number")


def parse_strict(body: bytes, *, max_problems: int = 50) -> tuple[Any, list[JsonProblem]] | None:
    """Parse a JSON body and find what the API refuses in it: ``(value, problems)``, or ``None`` when the body
    is not JSON at all (the caller answers as for any malformed body).

    orjson parses fast and refuses ``NaN``, ``Infinity`` and lone surrogates by itself; a body it accepts
    needs a second look only when it holds an escaped NUL. Anything else it refuses (a lone surrogate, a
    ``NaN``, an integer beyond 64 bits) is parsed again by Python's parser, which accepts all of them, and
    walked, so that the answer says where each problem is."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    else:
        if b"\\u0000" not in body:
            return value, []
        return value, list(_first(_walk(value, "body"), max_problems))
    try:
        value = json.loads(body, parse_constant=_NotANumber)
    except (ValueError, RecursionError):
        return None
    return value, list(_first(_walk(value, "body"), max_problems))


def _first(items: Iterator[JsonProblem], n: int) -> Iterator[JsonProblem]:
    for i, item in enumerate(items):
        if i >= n:
            return
        yield item


def json_size(value: Any) -> int:
    """The size of ``value`` as compact JSON, in bytes (as the store would hold it)."""
    try:
        return len(orjson.dumps(value))
    except TypeError:  # an integer beyond 64 bits: Python's encoder takes it
        return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "replace"))


@dataclass(frozen=True)
class OversizedDocument:
    index: int
    doc_id: str | None
    size: int

    def to_dict(self, limit: int) -> dict[str, Any]:
        out: dict[str, Any] = {"index": self.index}
        if self.doc_id is not None:
            out["doc_id"] = self.doc_id
        out["message"] = (f"document {self.index}{_id_text(self.doc_id)} is {self.size} bytes of JSON; at most "
                          f"{describe_size(limit)} per document")
        return out


def _id_text(doc_id: str | None) -> str:
    return f" (_id {doc_id!r})" if doc_id is not None else ""


def oversized_documents(value: Any, body_size: int, limit: int) -> list[OversizedDocument]:
    """The documents of a JSON body larger than ``limit``: the elements of an array body, or the body itself.
    A body no larger than the limit holds no oversized document, so most requests cost nothing here."""
    if body_size <= limit:
        return []
    documents = value if isinstance(value, list) else [value]
    out: list[OversizedDocument] = []
    for i, doc in enumerate(documents):
        size = json_size(doc)
        if size > limit:
            doc_id = doc.get("_id") if isinstance(doc, dict) else None
            out.append(OversizedDocument(i, printable(doc_id) if isinstance(doc_id, str) else None, size))
    return out


def oversized_message(found: list[OversizedDocument], limit: int) -> str:
    first = found[0]
    more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
    return (f"document {first.index}{_id_text(first.doc_id)} is {first.size} bytes of JSON{more}: at most "
            f"{describe_size(limit)} per document; nothing of this request was stored")
