"""Task items as the web app lists them: the task document plus whom it is about and where they live.

Shared by ``GET /api/v1/tasks`` (:mod:`kazi.server.tasks_api`) and the contact page (:mod:`kazi.server.app_api`),
so both give the same item shape. A row of the Tasks tab shows the contact's name and its place lineage
("Household Banda, Area 1"); the task document only carries the name the emission had, so the names come
from the store, for the whole page at once (:func:`kazi.store.contacts.placed_contacts`: one query).

Actions are hydrated as CHT hydrates a task document before opening its form: task documents are stored
minified, their actions' ``content`` without the ``contact`` that task code received (CHT's
``minifyEmission``; the emission keeps its id as ``forId``), and CHT puts the contact back
(``hydrateTaskDoc``) so a form reads ``inputs/contact/_id``. Kazi puts back ``{"_id", "name"}``, so a Kazi
form's hidden field ``"from": "contact._id"`` gets the task's contact.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from kazi.store import StoredUser, scope_of
from kazi.store.contacts import placed_contacts
from kazi.store.store import Store


def _emission(doc: dict[str, Any]) -> dict[str, Any]:
    emission = doc.get("emission")
    return emission if isinstance(emission, dict) else {}


def _emission_contact_name(doc: dict[str, Any]) -> str | None:
    contact = _emission(doc).get("contact")
    name = contact.get("name") if isinstance(contact, dict) else None
    return name if isinstance(name, str) else None


def _hydrated(emission: dict[str, Any], contact: dict[str, Any]) -> dict[str, Any]:
    """The emission with each action's ``content.contact`` restored (a copy: the stored doc is untouched)."""
    actions = emission.get("actions")
    if not isinstance(actions, list):
        return emission
    hydrated = []
    for action in actions:
        content = action.get("content") if isinstance(action, dict) else None
        if isinstance(content, dict) and "contact" not in content and contact["_id"] is not None:
            action = {**action, "content": {**content, "contact": contact}}
        hydrated.append(action)
    return {**emission, "actions": hydrated}


def task_items(store: Store, user: StoredUser, docs: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each task document with ``contact`` ``{"_id", "name"}`` (its owner; the name the emission had when the
    contact is not readable), ``lineage`` (the owner's ancestors within the caller's place, nearest first,
    each ``{"_id", "name", "contact_type"}``) and its actions' ``content.contact`` restored."""
    items = list(docs)
    owners = [d.get("owner") for d in items]
    placed = placed_contacts(store, [o for o in owners if isinstance(o, str)], scope_of(user))
    out: list[dict[str, Any]] = []
    for doc in items:
        owner = doc.get("owner")
        found = placed.get(owner) if isinstance(owner, str) else None
        name = found.contact.name if found is not None and found.contact.name else _emission_contact_name(doc)
        for_id = _emission(doc).get("forId")
        contact = {"_id": owner, "name": name}
        item = {**doc, "contact": contact,
                "lineage": [ref.to_dict() for ref in found.lineage] if found is not None else []}
        if isinstance(doc.get("emission"), dict):
            item["emission"] = _hydrated(doc["emission"], {"_id": for_id if isinstance(for_id, str) else owner,
                                                            "name": name})
        out.append(item)
    return out
