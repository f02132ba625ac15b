"""The CHT documents an SMS becomes: the report, and for a registration the new person. Pure.

Shaped as CHT's gateway and Sentinel store them (and as ``kazi.demo.population`` generates them), so a program's
``tasks.js`` treats a report from Kazi's gateway exactly like one from CHT: ``type: data_record``, ``form`` the
code, ``from`` the sender's number, ``contact`` the sender with their lineage (minified), ``fields`` the
values, ``sms_message`` the text as received, ``reported_date`` when the gateway received it. A registration's
``fields`` also carry the new ``patient_id`` and the person's ``_id`` (``patient_uuid``); the person is a
contact under the sender's place with that ``patient_id`` and ``created_by_doc``, the report's ``_id``, as
CHT's registration transition writes it.
"""

from __future__ import annotations

from typing import Any, Final

Doc = dict[str, Any]

#: CHT's contact types that keep their id as ``type`` (the others are ``type: contact`` + ``contact_type``)
LEGACY_TYPES: Final = ("district_hospital", "health_center", "clinic", "person")


def person_doc(*, person_id: str, name: str, patient_id: str, contact_type: str, parent: Doc | None,
               reported_date: int, created_by_doc: str, phone: str | None = None) -> Doc:
    """A person registered by SMS."""
    doc: Doc = {"_id": person_id}
    if contact_type in LEGACY_TYPES:
        doc["type"] = contact_type
    else:
        doc.update(type="contact", contact_type=contact_type)
    doc.update(name=name, patient_id=patient_id, reported_date=reported_date, created_by_doc=created_by_doc)
    if parent is not None:
        doc["parent"] = parent
    if phone:
        doc["phone"] = phone
    return doc


def sms_report(*, report_id: str, form: str, sender_phone: str, contact: Doc | None, fields: Doc, text: str,
               locale: str, reported_date: int, gateway_ref: str) -> Doc:
    """The report of an SMS (``contact``: the sender's minified lineage stub)."""
    doc: Doc = {
        "_id": report_id, "type": "data_record", "form": form, "reported_date": reported_date,
        "from": sender_phone,
    }
    if contact is not None:
        doc["contact"] = contact
    doc.update(fields=fields, sms_message={"message": text, "from": sender_phone, "form": form, "locale": locale,
                                           "type": "sms_message", "gateway_ref": gateway_ref},
               locale=locale, errors=[])
    return doc
