"""Containers and the hydrated `user` global (CHT's contact container)."""

from __future__ import annotations

from kazi.engine.containers import hydrate_lineage, marshal


def test_hydrated_user_has_full_parents_and_place_contacts() -> None:
    docs = {
        "hc": {"_id": "hc", "_rev": "1-a", "type": "health_center", "name": "HC", "contact": {"_id": "nurse"},
               "parent": {"_id": "dh"}},
        "dh": {"_id": "dh", "type": "district_hospital", "name": "DH"},
        "nurse": {"_id": "nurse", "_rev": "3-c", "type": "person", "name": "Nurse", "parent": {"_id": "hc"}},
        "chw": {"_id": "chw", "_rev": "2-b", "type": "person", "name": "CHW",
                "parent": {"_id": "hc", "parent": {"_id": "dh"}}},
    }
    user = hydrate_lineage(docs["chw"], docs)
    assert user is not None and "_rev" not in user
    assert user["parent"]["name"] == "HC" and user["parent"]["parent"]["name"] == "DH"
    assert user["parent"]["contact"] == {"_id": "nurse", "type": "person", "name": "Nurse",
                                         "parent": {"_id": "hc"}}
    assert docs["hc"]["contact"] == {"_id": "nurse"}, "the stored docs are not modified"


def test_first_contact_wins_and_headless_containers() -> None:
    a = {"_id": "a", "type": "person", "patient_id": "123"}
    b = {"_id": "b", "type": "person", "patient_id": "123"}
    r1 = {"_id": "r1", "type": "data_record", "form": "f", "fields": {"patient_id": "123"}, "reported_date": 2}
    r2 = {"_id": "r2", "type": "data_record", "form": "f", "patient_id": "999", "reported_date": 1}
    r3 = {"_id": "r3", "type": "data_record", "fields": {"patient_id": "123"}}  # no form: not a task report
    containers = marshal([b, a], [r1, r2, r3])
    by_contact = {c["contact"]["_id"]: c for c in containers}
    assert [r["_id"] for r in by_contact["a"]["reports"]] == ["r1"]  # "a" sorts first in the view
    assert by_contact["b"]["reports"] == []
    assert by_contact["999"]["contact"] == {"_id": "999"} and by_contact["999"]["reports"] == [r2]
