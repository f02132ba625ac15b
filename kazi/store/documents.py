"""Checking a CHT document and deriving what the store indexes about it, without touching the database.

Kept pure so a whole batch is checked before its transaction starts, every problem of every document is
reported at once, and a refused batch costs the database nothing.

The store keeps the body exactly as given (key order included) except ``_rev``, which is the store's own:
``<generation>-<hash of the content>``, the shape of CouchDB's revisions. Content is compared by a hash of
its canonical JSON (keys sorted), so re-sending the same document in another key order is not a change.
JSON is written with orjson, which turns ``NaN`` and infinities into ``null`` exactly as ``JSON.stringify``
does in CHT's apps (and refuses what JSON cannot hold: non-string keys, integers beyond 64 bits).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from kazi.engine.containers import contact_subject_ids, contact_type, is_contact, report_subject_id, report_subject_ids
from kazi.epoch import out_of_range
from kazi.errors import DocumentError
from kazi.sms.phones import phone_key
from kazi.store.schema import CONTACT, OTHER, REPORT

Doc = dict[str, Any]

#: deeper parent chains are refused: CHT's own lineage code stops at 50 levels, real ones have under 10
MAX_LINEAGE_DEPTH: Final = 50
_DUMPS_OPTIONS: Final = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
_CANONICAL_OPTIONS: Final = _DUMPS_OPTIONS | orjson.OPT_SORT_KEYS


@dataclass
class Prepared:
    """A checked document with everything the store writes about it."""

    index: int
    id: str
    body: str  # JSON text as given, without _rev
    content_hash: str
    kind: str
    deleted: bool
    type: str | None = None
    contact_type: str | None = None
    form: str | None = None
    parent_id: str | None = None
    contact_id: str | None = None
    subject: str | None = None
    reported_date: int | None = None
    phone: str | None = None  # a contact's phone key, how SMS senders are found (kazi.sms.phones)
    subjects: list[str] = field(default_factory=list)
    stub_chain: list[str] = field(default_factory=list)  # parent stub ids in the body, nearest first
    sent_rev: object = None  # the `_rev` the writer sent (not stored): what a checked update must match

    def rev(self, generation: int) -> str:
        """The revision this content gets as the ``generation``-th version of the document."""
        return f"{generation}-{self.content_hash}"


def rev_generation(rev: str) -> int:
    """The generation number of a revision string (``"3-ab12..."`` -> 3)."""
    head, _, _ = rev.partition("-")
    return int(head) if head.isdigit() else 0


def rev_hash(rev: str) -> str:
    """The content hash part of a revision string."""
    return rev.partition("-")[2]


def encode(body: Doc) -> str:
    """JSON text of a body (key order kept)."""
    return orjson.dumps(body, option=_DUMPS_OPTIONS).decode()


def decode(text: str, rev: str) -> Doc:
    """A stored body with its ``_rev``."""
    doc: Doc = orjson.loads(text)
    doc["_rev"] = rev
    return doc


def content_hash(body: Doc) -> str:
    """Hash of the canonical JSON of a body (keys sorted), so key order does not count as a change."""
    canonical = orjson.dumps(body, option=_CANONICAL_OPTIONS)
    return hashlib.blake2b(canonical, digest_size=16).hexdigest()


def check_id(value: object, index: int) -> str | DocumentError:
    """A usable ``_id``: a non-empty string not starting with ``_`` (CouchDB reserves those)."""
    if not isinstance(value, str) or not value:
        return DocumentError("_id must be a non-empty string", field="_id", index=index)
    if value.startswith("_"):
        return DocumentError("_id must not start with '_' (reserved by CouchDB: _design/, _local/)",
                             doc_id=value, field="_id", index=index)
    return value


def prepare(doc: object, index: int) -> Prepared | list[DocumentError]:
    """Check one document of a batch (position ``index``) and derive its columns, or list its problems."""
    if not isinstance(doc, dict):
        return [DocumentError(f"a document must be a JSON object, got {type(doc).__name__}", index=index)]
    checked = check_id(doc.get("_id"), index)
    if isinstance(checked, DocumentError):
        return [checked]
    doc_id = checked
    problems: list[DocumentError] = []

    def problem(message: str, field_name: str | None) -> None:
        problems.append(DocumentError(message, doc_id=doc_id, field=field_name, index=index))

    body = {k: v for k, v in doc.items() if k != "_rev"}
    deleted = body.get("_deleted", False)
    if not isinstance(deleted, bool):
        problem("_deleted must be true or false", "_deleted")
    doc_type = body.get("type")
    if doc_type is not None and not isinstance(doc_type, str):
        problem("type must be a string", "type")
    if doc_type == "task":
        problem("task documents are stored per user: write them with write_task_docs", "type")
    if doc_type == "contact" and not deleted and not (isinstance(body.get("contact_type"), str)
                                                      and body.get("contact_type")):
        problem("a document of type 'contact' needs a non-empty string contact_type", "contact_type")
    date_problem = reported_date_problem(body, deleted is True)
    if date_problem is not None:
        problem(date_problem, "reported_date")
    try:
        text = encode(body)
    except (orjson.JSONEncodeError, TypeError) as exc:
        problem(f"not representable as JSON: {exc}", None)
        text = ""
    if problems:
        return problems

    kind = CONTACT if is_contact(body) else REPORT if doc_type == "data_record" else OTHER
    out = Prepared(index=index, id=doc_id, body=text, content_hash=content_hash(body), kind=kind,
                   deleted=bool(deleted), type=doc_type if isinstance(doc_type, str) else None)
    out.sent_rev = doc.get("_rev")
    if deleted:
        return out  # a tombstone: no subjects, no lineage, whatever else it carries
    out.contact_id = _stub_id(body.get("contact"))
    out.reported_date = epoch_ms(body.get("reported_date"))
    if kind == CONTACT:
        ctype = contact_type(body)
        out.contact_type = ctype if isinstance(ctype, str) else None
        out.phone = phone_key(body.get("phone"))
        out.subjects = [s for s in contact_subject_ids(body) if isinstance(s, str)]
        chain = _stub_chain(body.get("parent"), doc_id, index)
        if isinstance(chain, DocumentError):
            return [chain]
        out.stub_chain = chain
        out.parent_id = chain[0] if chain else None
    elif kind == REPORT:
        form = body.get("form")
        out.form = form if isinstance(form, str) else None
        main = report_subject_id(body)
        out.subject = main if isinstance(main, str) else None
        out.subjects = [s for s in report_subject_ids(body) if isinstance(s, str)]
    return out


def reported_date_problem(body: Doc, deleted: bool) -> str | None:
    """Why a document's ``reported_date`` is refused (``None``: it is not).

    A numeric ``reported_date`` must be a time within :data:`kazi.epoch.RANGE_TEXT`: one far outside the
    calendar (``-1``, ``2**62``) is stored fine but later breaks every report, export and task computation
    that reads it (JavaScript dates, month buckets). A tombstone is not checked, so a document stored before
    this rule can still be deleted; a missing or non-numeric ``reported_date`` stays as CHT allows it."""
    if deleted:
        return None
    return out_of_range(body.get("reported_date"))


def _stub_id(value: object) -> str | None:
    if isinstance(value, dict):
        vid = value.get("_id")
        if isinstance(vid, str) and vid:
            return vid
    return None


def epoch_ms(value: object) -> int | None:
    """An epoch-ms column value: integral part of a finite number in the 64-bit range, else ``None``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    ms = int(value)
    return ms if -(2**63) <= ms < 2**63 else None


def _stub_chain(parent: object, doc_id: str, index: int) -> list[str] | DocumentError:
    """Ids of the ``parent`` stubs, nearest first (CHT contacts carry their whole lineage minified)."""
    chain: list[str] = []
    path = "parent"
    node = parent
    while node:  # CHT writes top-level places with no parent, `parent: ""` or `parent: {}`
        if not isinstance(node, dict):
            return DocumentError("must be an object {_id, parent?}", doc_id=doc_id, field=path, index=index)
        pid = node.get("_id")
        if not isinstance(pid, str) or not pid:
            return DocumentError("must be a non-empty string", doc_id=doc_id, field=f"{path}._id", index=index)
        if pid == doc_id or pid in chain:
            return DocumentError(f"lineage loops back to {pid!r}", doc_id=doc_id, field=f"{path}._id",
                                 index=index)
        chain.append(pid)
        if len(chain) > MAX_LINEAGE_DEPTH:
            return DocumentError(f"lineage deeper than {MAX_LINEAGE_DEPTH} levels", doc_id=doc_id, field=path,
                                 index=index)
        node = node.get("parent")
        path += ".parent"
    return chain
