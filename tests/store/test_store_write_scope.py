"""Who may write what, where (kazi.store.write_rules), on SQLite and PostgreSQL.

The hierarchy of tests/conftest.py: district d1 > health centres hc1, hc2 > areas a1 (short code A1), a2
under hc1 and a3 under hc2; CHW chw1 and patient p1 (1001) in a1, p2 (1002) in a2, p3 (1003) and CHW chw3
in a3. A CHW of a1 must not reach a3's patients, however she writes.
"""

from __future__ import annotations

from typing import Any

import pytest

from kazi.errors import DocumentBatchError
from kazi.store import Scope, Store, StoredUser


def _user(store: Store, name: str, place: str | None, *, roles: tuple[str, ...] = ("chw",),
          contact: str | None = None) -> StoredUser:
    return store.users.create(name, password="password1", roles=list(roles), facility_id=place, contact_id=contact)


def _refused(store: Store, user: StoredUser | Scope | None, batch: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """(doc_id, field, message) of every problem of a refused batch; checks nothing was stored."""
    seq = store.last_seq()
    with pytest.raises(DocumentBatchError) as caught:
        store.write_docs(batch, user=user)
    assert store.last_seq() == seq
    return [(p.doc_id, p.field, str(p)) for p in caught.value.problems]


def _fields(problems: list[tuple[Any, ...]]) -> list[tuple[Any, Any]]:
    return [(doc_id, field) for doc_id, field, _ in problems]


def _stub(*chain: str) -> dict[str, Any] | None:
    node: dict[str, Any] | None = None
    for cid in reversed(chain):
        node = {"_id": cid, **({"parent": node} if node else {})}
    return node


def _report(doc_id: str, by: str = "chw1", **subjects: Any) -> dict[str, Any]:
    fields = {k.removeprefix("f_"): v for k, v in subjects.items() if k.startswith("f_")}
    top = {k: v for k, v in subjects.items() if not k.startswith("f_")}
    return {"_id": doc_id, "type": "data_record", "form": "visit", "reported_date": 1_700_000_000_000,
            "contact": _stub(by, "a1", "hc1", "d1"), **top, "fields": fields}


# --------------------------------------------------------------------------------------------------------
# a user's own place and the moves of contacts


def test_a_chw_may_not_move_or_delete_her_own_place(loaded: Store) -> None:
    chw = _user(loaded, "chw", "a1", contact="chw1")
    a1 = loaded.get_doc("a1")
    moved = {k: v for k, v in a1.items() if k != "_rev"} | {"parent": _stub("hc2", "d1")}
    assert _fields(_refused(loaded, chw, [moved])) == [("a1", "parent")]
    problems = _refused(loaded, chw, [{"_id": "a1", "_deleted": True}])
    assert ("a1", "_deleted") in _fields(problems) and any("own place" in m for _, _, m in problems)
    assert _fields(_refused(loaded, chw, [{**moved, "parent": ""}])) == [("a1", "parent")]  # made top level
    # hc1 and d1, above her place, are not hers at all
    for above in ("hc1", "d1"):
        assert _fields(_refused(loaded, chw, [{"_id": above, "_deleted": True}])) == [(above, "_id")]
    # nothing moved: the other health centre's supervisor still does not see her patients
    assert loaded.lineage("p1") == ["a1", "hc1", "d1"]
    other = _user(loaded, "sup2", "hc2", roles=("site_supervisor",))
    assert loaded.get_docs(["a1", "p1"], user=other) == []
    # editing her place where it is stays allowed
    renamed = {k: v for k, v in a1.items() if k != "_rev"} | {"name": "Area one"}
    assert loaded.write_docs([renamed], user=chw)[0].changed


def test_a_restricted_writer_may_not_create_her_own_place(store: Store) -> None:
    assert _fields(_refused(store, Scope(places=("area",)), [{"_id": "area", "type": "clinic"}])) == [("area", "_id")]


def test_moving_a_contact_needs_a_place_holding_both_parents(loaded: Store) -> None:
    loaded.write_docs([{"_id": "hh1", "type": "clinic", "parent": _stub("a1", "hc1", "d1")},
                       {"_id": "hh2", "type": "clinic", "parent": _stub("a1", "hc1", "d1")},
                       {"_id": "kid", "type": "person", "parent": _stub("hh1", "a1", "hc1", "d1")}])
    chw = _user(loaded, "chw", "a1", contact="chw1")
    sup = _user(loaded, "sup", "hc1", roles=("site_supervisor",))
    kid = {"_id": "kid", "type": "person"}
    # another household of her area: legitimate
    loaded.write_docs([{**kid, "parent": _stub("hh2", "a1", "hc1", "d1")}], user=chw)
    assert loaded.lineage("kid") == ["hh2", "a1", "hc1", "d1"]
    # a household of her area not stored yet (it arrives in a later batch), as a new contact's parent may be
    loaded.write_docs([{**kid, "parent": _stub("hh9", "a1", "hc1", "d1")}], user=chw)
    loaded.write_docs([{**kid, "parent": _stub("hh2", "a1", "hc1", "d1")}], user=chw)
    # another area of her health centre is not hers; it is her supervisor's
    assert _fields(_refused(loaded, chw, [{**kid, "parent": _stub("a2", "hc1", "d1")}])) == [("kid", "_id")]
    loaded.write_docs([{**kid, "parent": _stub("a2", "hc1", "d1")}], user=sup)
    # the supervisor moves a place within her health centre, but not out of it, nor her own
    loaded.write_docs([{"_id": "hh1", "type": "clinic", "parent": _stub("a2", "hc1", "d1")}], user=sup)
    assert loaded.lineage("hh1") == ["a2", "hc1", "d1"]
    assert _fields(_refused(loaded, sup, [{"_id": "a2", "type": "clinic", "parent": _stub("hc2", "d1")}])) == [
        ("a2", "_id")]
    assert _fields(_refused(loaded, sup, [{"_id": "hc1", "type": "health_center", "parent": ""}])) == [
        ("hc1", "parent")]
    # a writer of several places moves a contact between them, but not from or to elsewhere
    two = Scope(places=("a1", "a3"))
    loaded.write_docs([{"_id": "chw1", "type": "person", "parent": _stub("a3", "hc2", "d1")}], user=two)
    problems = _refused(loaded, two, [{"_id": "a3", "type": "clinic", "parent": _stub("a1", "hc1", "d1")}])
    assert problems == [("a3", "parent", "a user may not move her own place (nor any place above it): an "
                                         "administrator does")]
    # an administrator moves anything
    admin = _user(loaded, "admin", None, roles=("admin",))
    loaded.write_docs([{"_id": "a1", "type": "clinic", "parent": _stub("hc2", "d1")}], user=admin)
    assert loaded.lineage("p1") == ["a1", "hc2", "d1"]


def test_a_place_with_contacts_under_it_is_not_deleted_by_anyone(loaded: Store) -> None:
    loaded.write_docs([{"_id": "hh1", "type": "clinic", "parent": _stub("a1", "hc1", "d1")},
                       {"_id": "kid", "type": "person", "parent": _stub("hh1", "a1", "hc1", "d1")}])
    chw = _user(loaded, "chw", "a1", contact="chw1")
    admin = _user(loaded, "admin", None, roles=("admin",))
    for writer in (chw, admin, None):
        problems = _refused(loaded, writer, [{"_id": "hh1", "_deleted": True}])
        assert problems == [("hh1", "_deleted", "1 contact(s) are still under it: move or delete them first "
                                                "(in this batch or before)")]
    loaded.write_docs([{"_id": "kid", "_deleted": True}, {"_id": "hh1", "_deleted": True}], user=chw)
    assert loaded.get_docs(["hh1", "kid"]) == []


# --------------------------------------------------------------------------------------------------------
# the references a report makes


@pytest.mark.parametrize(("subjects", "field"), [
    ({"f_patient_id": "1003", "f_patient_uuid": "p1"}, "fields.patient_id"),  # another area's short code first
    ({"f_patient_uuid": "p3", "f_patient_id": "1001"}, "fields.patient_uuid"),  # ...or last
    ({"patient_id": "1003", "f_patient_uuid": "p1"}, "patient_id"),
    ({"patient_uuid": "p1", "f_patient_uuid": "p3"}, "fields.patient_uuid"),
    ({"place_id": "A1", "place_uuid": "a3"}, "place_uuid"),
    ({"f_place_id": "A1", "f_place_uuid": "hc2"}, "fields.place_uuid"),
])
def test_every_subject_of_a_report_must_be_in_the_writers_place(
        loaded: Store, subjects: dict[str, Any], field: str) -> None:
    chw = _user(loaded, "chw", "a1", contact="chw1")
    problems = _refused(loaded, chw, [_report("r-x", **subjects)])
    assert _fields(problems) == [("r-x", field)]
    assert "outside the user's place" in problems[0][2]
    assert loaded.get_docs(["r-x"]) == []


def test_the_submitter_must_be_in_the_writers_place(loaded: Store) -> None:
    chw = _user(loaded, "chw", "a1", contact="chw1")
    assert _fields(_refused(loaded, chw, [_report("r-x", by="chw3", f_patient_id="1001")])) == [("r-x", "contact._id")]


def test_references_inside_the_place_or_to_nothing_stored_are_accepted(loaded: Store) -> None:
    """A reference naming no stored contact is kept (a patient not synced yet, or registered elsewhere): the
    report goes with its submitter's place until the contact arrives."""
    chw = _user(loaded, "chw", "a1", contact="chw1")
    loaded.write_docs([_report("r-in", f_patient_id="1001", f_patient_uuid="p1", place_id="A1"),
                       _report("r-unknown", f_patient_id="5555"),
                       _report("r-mixed", f_patient_id="1001", f_patient_uuid="not-synced-yet"),
                       # a patient written in the same batch as its first report
                       {"_id": "p9", "type": "person", "patient_id": "9009", "parent": _stub("a1", "hc1", "d1")},
                       _report("r-new", f_patient_id="9009")], user=chw)
    assert {d["_id"] for d in loaded.get_docs(["r-in", "r-unknown", "r-mixed", "r-new"], user=chw)} == {
        "r-in", "r-unknown", "r-mixed", "r-new"}
    # a supervisor's place holds both areas
    sup = _user(loaded, "sup", "hc1", roles=("site_supervisor",))
    loaded.write_docs([_report("r-both", f_patient_id="1001", f_patient_uuid="p2")], user=sup)


def test_a_contact_may_not_take_another_places_subject_ids(loaded: Store) -> None:
    """A contact of hers carrying a3's patient's short code (or _id as a code) would make that patient's reports
    hers; so would a code that only a report submitted elsewhere names so far."""
    loaded.write_docs([_report("r-elsewhere", by="chw3", f_patient_id="7777") | {"contact": _stub("chw3", "a3")}])
    chw = _user(loaded, "chw", "a1", contact="chw1")
    person = {"_id": "p9", "type": "person", "parent": _stub("a1", "hc1", "d1")}
    assert _fields(_refused(loaded, chw, [{**person, "patient_id": "1003"}])) == [("p9", "patient_id")]
    assert _fields(_refused(loaded, chw, [{**person, "patient_id": "p3"}])) == [("p9", "patient_id")]
    assert _fields(_refused(loaded, chw, [{**person, "patient_id": "7777"}])) == [("p9", "patient_id")]
    assert _fields(_refused(loaded, chw, [{"_id": "a1", "type": "clinic", "parent": _stub("hc1", "d1"),
                                            "place_id": "1003"}])) == [("a1", "place_id")]
    assert loaded.get_docs(["r3", "r6", "r-elsewhere"], user=chw) == []
    # her own codes, and codes of reports submitted in her place, are fine
    loaded.write_docs([{**person, "patient_id": "9999"}, {"_id": "p1", "type": "person", "patient_id": "1001",
                                                          "parent": _stub("a1", "hc1", "d1"), "name": "P1"}],
                      user=chw)


def test_administrators_and_system_callers_write_any_reference(loaded: Store) -> None:
    admin = _user(loaded, "admin", None, roles=("admin",))
    loaded.write_docs([_report("r-admin", f_patient_id="1003", f_patient_uuid="p1")], user=admin)
    loaded.write_docs([{"_id": "p8", "type": "person", "patient_id": "1003", "parent": _stub("a1")}])
