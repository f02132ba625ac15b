"""Contact containers ``c = {contact, reports, tasks}``: which documents task code sees together.

CHT's rule: a report belongs to exactly one subject (the first truthy of ``patient_id``,
``patient_uuid``, ``place_id``, ``place_uuid``, each top-level then in ``fields``); a subject id
maps to the first contact (in CHT's ``contacts_by_type`` view order) whose ``_id``, ``patient_id``
or ``place_id`` equals it; an unknown subject gets a headless container ``{contact: {_id}}``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

Doc = dict[str, Any]

LEGACY_CONTACT_TYPES = ("district_hospital", "health_center", "clinic", "person")
_SUBJECT_KEYS = ("patient_id", "patient_uuid", "place_id", "place_uuid")
# reports_by_subject indexes these (top-level patient_uuid/place_uuid are NOT indexed).
_INDEXED_TOP = ("patient_id", "place_id", "case_id")
_INDEXED_FIELDS = ("patient_id", "place_id", "case_id", "patient_uuid", "place_uuid")


def is_contact(doc: Doc) -> bool:
    """Docs CHT's ``contacts_by_type`` view lists (``national_office`` and others are not contacts)."""
    t = doc.get("type")
    return t == "contact" or t in LEGACY_CONTACT_TYPES


def contact_type(doc: Doc) -> Any:
    """Configurable hierarchies use ``type: contact`` + ``contact_type``."""
    return doc.get("contact_type") if doc.get("type") == "contact" else doc.get("type")


def is_task_report(doc: Doc) -> bool:
    """Reports that reach the rules: ``data_record`` with a form and a subject key the view indexes."""
    if doc.get("type") != "data_record" or not doc.get("form"):
        return False
    if any(doc.get(k) for k in _INDEXED_TOP):
        return True
    fields = doc.get("fields")
    return isinstance(fields, dict) and any(fields.get(k) for k in _INDEXED_FIELDS)


def contact_subject_ids(doc: Doc) -> list[str]:
    """``_id``, ``patient_id``, ``place_id`` (truthy, de-duplicated, in that order)."""
    get = doc.get
    i, p, pl = get("_id"), get("patient_id"), get("place_id")
    out: list[str] = [i] if i else []
    if p and p != i:
        out.append(p)
    if pl and pl != i and pl != p:
        out.append(pl)
    return out


def report_subject_id(doc: Doc) -> Any:
    """The single subject of a report (``getSubjectId``); ``None`` when it has none."""
    fields = doc.get("fields")
    fields = fields if isinstance(fields, dict) else {}
    for k in _SUBJECT_KEYS:
        v = doc.get(k)
        if v:
            return v
        v = fields.get(k)
        if v:
            return v
    return None


def report_subject_ids(doc: Doc) -> list[Any]:
    """Every subject id a report names (top-level then ``fields``), for change tracking."""
    fields = doc.get("fields")
    fields = fields if isinstance(fields, dict) else {}
    out: list[Any] = []
    for k in _SUBJECT_KEYS:
        for v in (doc.get(k), fields.get(k)):
            if v and v not in out:
                out.append(v)
    return out


def _contact_order(doc: Doc) -> tuple[str, str]:
    t = doc.get("contact_type") if doc.get("type") == "contact" else doc.get("type")
    return (t if isinstance(t, str) else str(t or ""), doc.get("_id") or "")


def _collation_key(v: Any) -> tuple[int, Any]:
    # CouchDB/PouchDB view collation: numbers before strings, strings by code unit.
    if isinstance(v, bool):
        return (0, v)
    if isinstance(v, (int, float)):
        return (1, v)
    if isinstance(v, str):
        return (2, v)
    return (3, str(v))


def _view_order(doc: Doc) -> tuple[tuple[int, Any], str]:
    """Position of a report in a full read of ``reports_by_subject``: its smallest key, then ``_id``."""
    fields = doc.get("fields")
    fields = fields if isinstance(fields, dict) else {}
    keys = [doc.get(k) for k in _INDEXED_TOP] + [fields.get(k) for k in _INDEXED_FIELDS]
    return min(_collation_key(k) for k in keys if k), str(doc.get("_id", ""))


def _reported(doc: Doc) -> float:
    v = doc.get("reported_date")
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return 0.0
    return float(v)


def _keyed_order(contact: Any) -> Any:
    """Tie order of a read of ``reports_by_subject`` by keys (CHT's incremental refresh): the keys
    list holds the contact ids before their short codes, and rows come in key order, then ``_id``."""
    ranked = contact_subject_ids(contact) if isinstance(contact, dict) else []

    def key(doc: Doc) -> tuple[int, str]:
        fields = doc.get("fields")
        fields = fields if isinstance(fields, dict) else {}
        keys = [doc.get(k) for k in _INDEXED_TOP] + [fields.get(k) for k in _INDEXED_FIELDS]
        rank = min((ranked.index(k) if k in ranked else len(ranked)) for k in keys if k)
        return rank, str(doc.get("_id", ""))

    return key


def marshal(
    contacts: Iterable[Doc], reports: Iterable[Doc], task_docs: Iterable[Doc] = (), *,
    keyed_read: bool = False,
) -> list[Doc]:
    """Build containers from contacts, task reports and existing task documents.

    A subject id shared by two contacts belongs to the first in CHT's ``contacts_by_type`` view order
    (type, then ``_id``). A container's reports are sorted by ``reported_date``; ties keep the order of
    CHT's read of ``reports_by_subject`` (smallest subject key, then ``_id``), or with ``keyed_read`` the
    order of its incremental refresh, which reads the view by keys. Containers come in input order
    (contacts, then headless ones); no result depends on it, since an emission id belongs to one container.
    Sorting only within containers keeps this linear: it runs over every contact of a 50,000-household
    population.
    """
    containers: list[Doc] = []
    by_subject: dict[Any, Doc] = {}

    def container_for(subject: Any) -> Doc:
        found = by_subject.get(subject)
        if found is None:  # headless: reports (or task docs) about a subject that is not a contact here
            found = {"contact": {"_id": subject}, "reports": [], "tasks": []}
            by_subject[subject] = found
            containers.append(found)
        return found

    for doc in contacts:
        t = doc.get("type")
        if t != "contact" and t not in LEGACY_CONTACT_TYPES:
            continue
        c: Doc = {"contact": doc, "reports": [], "tasks": []}
        containers.append(c)
        for sid in contact_subject_ids(doc):
            held = by_subject.get(sid)
            if held is None:
                by_subject[sid] = c
            elif _contact_order(doc) < _contact_order(held["contact"]):
                by_subject[sid] = c  # first contact (in view order) wins
    no_subject: Doc | None = None
    for r in reports:
        if not is_task_report(r):
            continue
        sid = report_subject_id(r)
        if sid is None:
            if no_subject is None:
                no_subject = {"contact": None, "reports": [], "tasks": []}
                containers.append(no_subject)
            no_subject["reports"].append(r)
        else:
            container_for(sid)["reports"].append(r)
    for task in task_docs:
        req = task.get("requester")
        if req:
            container_for(req)["tasks"].append(task)
    for c in containers:
        found = c["reports"]
        if len(found) > 1:
            tie = _keyed_order(c["contact"]) if keyed_read else _view_order
            found.sort(key=lambda r: (_reported(r), tie(r)))
    return containers


def hydrate_lineage(doc: Doc | None, by_id: dict[str, Doc], max_depth: int = 50) -> Doc | None:
    """The ``user`` global: a contact with every ``parent`` replaced by the full parent doc, and the
    primary ``contact`` of the doc and of each parent place replaced by that contact's doc, as CHT's
    ``lineage.fetchHydratedDoc`` does (PouchDB ``_rev`` members removed)."""
    if doc is None:
        return None

    def fill_contact(node: Doc) -> None:
        ref = node.get("contact")
        cid = ref.get("_id") if isinstance(ref, dict) else None
        full = by_id.get(cid) if isinstance(cid, str) else None
        if full is not None:
            filled = dict(full)
            filled.pop("_rev", None)
            node["contact"] = filled

    out = dict(doc)
    out.pop("_rev", None)
    fill_contact(out)
    node = out
    depth = 0
    while isinstance(node.get("parent"), dict) and depth < max_depth:
        pid = node["parent"].get("_id")
        full = by_id.get(pid) if pid else None
        if full is None:
            break
        parent = dict(full)
        parent.pop("_rev", None)
        fill_contact(parent)
        node["parent"] = parent
        node = parent
        depth += 1
    return out
