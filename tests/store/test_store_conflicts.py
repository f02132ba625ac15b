"""The checks of a client's document write (``Store.write_docs(check_rev=..., check_phones=...)``), on SQLite
and PostgreSQL: an update must carry the stored ``_rev`` (CouchDB's rule), and a contact may not be given the
phone number of another user's contact. A refused batch stores nothing and names every document with what is
stored; the store's own writers (import, demo, SMS), which do not ask for the checks, replace as before."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from kazi.errors import DocumentBatchError, DocumentConflict, DocumentConflictError
from kazi.store import Store
from kazi.store.schema import changes, docs

PLACES = [
    {"_id": "hc", "type": "health_center", "name": "HC"},
    {"_id": "area-1", "type": "clinic", "name": "Area 1", "parent": {"_id": "hc"}},
    {"_id": "area-2", "type": "clinic", "name": "Area 2", "parent": {"_id": "hc"}},
]
ALICE_PHONE = "+265888100001"
BOB_PHONE = "+265999200002"


def person(doc_id: str, area: str, **extra: Any) -> dict[str, Any]:
    return {"_id": doc_id, "type": "person", "name": doc_id, "parent": {"_id": area, "parent": {"_id": "hc"}},
            **extra}


def _snapshot(store: Store) -> tuple[Any, ...]:
    with store.engine.connect() as conn:
        return (sorted(conn.execute(select(docs.c.id, docs.c.rev, docs.c.body)).all()),
                conn.execute(select(func.count()).select_from(changes)).scalar(), store.last_seq())


def _conflicts(caught: pytest.ExceptionInfo[DocumentBatchError]) -> list[dict[str, Any]]:
    return [p.to_dict() for p in caught.value.problems]


# --------------------------------------------------------------------------------------------------------
# _rev


def test_an_update_needs_the_current_rev(store: Store) -> None:
    first = store.write_doc(person("ann", "area-1", patient_id="11111"))
    before = _snapshot(store)
    lost = person("ann", "area-1")  # an old copy without her patient_id, written back without _rev
    with pytest.raises(DocumentConflictError) as caught:
        store.write_doc(lost, check_rev=True)
    [problem] = _conflicts(caught)
    assert problem["doc_id"] == "ann" and problem["field"] == "_rev" and problem["index"] == 0
    assert problem["current_rev"] == first.rev and "_rev missing" in problem["message"]
    assert _snapshot(store) == before and store.get_doc("ann")["patient_id"] == "11111"

    # the current _rev: written, a new revision; the one before it is stale from then on
    second = store.write_doc({**person("ann", "area-1", patient_id="11111", name="Ann B"), "_rev": first.rev},
                             check_rev=True)
    assert second.changed and second.rev.startswith("2-")
    before = _snapshot(store)
    with pytest.raises(DocumentConflictError) as caught:
        store.write_doc({**lost, "_rev": first.rev}, check_rev=True)
    [problem] = _conflicts(caught)
    assert problem["current_rev"] == second.rev and f"stale _rev {first.rev!r}" in problem["message"]
    assert _snapshot(store) == before


def test_the_same_content_again_is_never_a_conflict(store: Store) -> None:
    """Retry safety: a write whose answer was lost, sent again, finds its content stored and answers its rev."""
    doc = person("ann", "area-1", patient_id="11111")
    first = store.write_doc(doc, check_rev=True)
    for rev in (None, "1-stale", first.rev):
        again = store.write_doc(doc if rev is None else {**doc, "_rev": rev}, check_rev=True)
        assert again == type(first)(first.id, first.rev, first.seq, False)
    update = {**doc, "name": "Ann B", "_rev": first.rev}
    second = store.write_doc(update, check_rev=True)
    assert store.write_doc(update, check_rev=True) == type(second)(second.id, second.rev, second.seq, False)


def test_new_ids_take_no_rev_and_deleted_ones_are_created_again(store: Store) -> None:
    with pytest.raises(DocumentConflictError) as caught:
        store.write_doc({**person("new", "area-1"), "_rev": "1-abc"}, check_rev=True)
    [problem] = _conflicts(caught)
    assert problem["doc_id"] == "new" and "current_rev" not in problem and "no document" in problem["message"]
    assert store.get_docs(["new"], include_deleted=True) == []

    first = store.write_doc(person("new", "area-1"), check_rev=True)
    with pytest.raises(DocumentConflictError):  # a deletion needs the current _rev too
        store.write_doc({"_id": "new", "_deleted": True}, check_rev=True)
    gone = store.write_doc({"_id": "new", "_deleted": True, "_rev": first.rev}, check_rev=True)
    assert gone.rev.startswith("2-")
    # created again after its deletion: without _rev (CouchDB's rule), or with the deletion's; not an older one
    # (and the deletion's revision is not told: the deleted document may have been another place's)
    with pytest.raises(DocumentConflictError) as caught:
        store.write_doc({**person("new", "area-1"), "_rev": first.rev}, check_rev=True)
    assert "current_rev" not in _conflicts(caught)[0] and "deleted" in _conflicts(caught)[0]["message"]
    assert store.write_doc({**person("new", "area-1"), "_rev": gone.rev}, check_rev=True).rev.startswith("3-")
    store.write_doc({"_id": "new", "_deleted": True}, check_rev=False)
    again = store.write_doc(person("new", "area-1", name="New again"), check_rev=True)
    assert again.changed and again.rev.startswith("5-") and store.get_doc("new")["name"] == "New again"


def test_one_stale_document_refuses_the_whole_batch(store: Store) -> None:
    written = store.write_docs([*PLACES, person("ann", "area-1"), person("bea", "area-2")])
    revs = {r.id: r.rev for r in written}
    before = _snapshot(store)
    batch = [person("cat", "area-1"),  # new: fine
             {**person("ann", "area-1", name="Ann B"), "_rev": revs["ann"]},  # current: fine
             {**person("bea", "area-2", name="Bea B"), "_rev": "1-0123"}]  # stale
    with pytest.raises(DocumentConflictError) as caught:
        store.write_docs(batch, check_rev=True)
    assert [(p["index"], p["doc_id"], p["current_rev"]) for p in _conflicts(caught)] == [(2, "bea", revs["bea"])]
    assert "1 of 3 documents refused, none stored" in str(caught.value)
    assert _snapshot(store) == before


def test_conflicts_mixed_with_other_problems_are_listed_with_them_and_hide_no_revision(store: Store) -> None:
    """A 422-kind problem makes the batch an ordinary refusal (conflicts listed too); a document of another
    place is refused as such, never with its revision."""
    store.write_docs([*PLACES, person("chw-1", "area-1"), person("ann", "area-1"), person("bea", "area-2")])
    alice = store.users.create("alice", password="alice-password", roles=["chw"], facility_id="area-1",
                               contact_id="chw-1")
    before = _snapshot(store)
    batch = [{**person("ann", "area-1", name="Ann B"), "_rev": "1-0123"},
             {**person("bea", "area-2", name="Bea B"), "_rev": "1-0123"}]
    with pytest.raises(DocumentBatchError) as caught:
        store.write_docs(batch, user=alice, check_rev=True)
    assert not isinstance(caught.value, DocumentConflictError)
    problems = _conflicts(caught)
    assert [(p["doc_id"], p["field"]) for p in problems] == [("ann", "_rev"), ("bea", "_id")]
    assert "current_rev" in problems[0] and "current_rev" not in problems[1]
    assert isinstance(caught.value.problems[0], DocumentConflict)
    assert _snapshot(store) == before


def test_a_document_refused_for_its_place_is_refused_for_that_alone(store: Store) -> None:
    """Its conflict would tell what the refusal hides: that its _id is used (or was, by a deleted document)
    by another place, and at which revision. Another place's stored, deleted and never used _ids read alike."""
    store.write_docs([*PLACES, person("chw-1", "area-1"), person("bea", "area-2"), person("gone", "area-2")])
    store.write_doc({"_id": "gone", "_deleted": True})
    alice = store.users.create("alice", password="alice-password", roles=["chw"], facility_id="area-1",
                               contact_id="chw-1")
    answers = []
    for doc_id in ("bea", "gone", "never-used"):
        for rev in (None, "1-0123"):
            doc = person(doc_id, "area-2") if rev is None else {**person(doc_id, "area-2"), "_rev": rev}
            with pytest.raises(DocumentBatchError) as caught:
                store.write_doc(doc, user=alice, check_rev=True)
            assert not isinstance(caught.value, DocumentConflictError)
            answers.append([{k: v for k, v in p.items() if k != "doc_id"} for p in _conflicts(caught)])
    assert answers == [[{"message": "outside the user's place", "index": 0, "field": "_id"}]] * 6


def test_the_stores_own_writers_replace_without_the_check(store: Store) -> None:
    """``kazi import`` loads CHT exports whose _rev are CouchDB's, the demo rewrites its population."""
    store.write_doc(person("ann", "area-1"))
    written = store.write_doc({**person("ann", "area-1", name="Ann B"), "_rev": "7-couchdbrevisionhash"})
    assert written.changed and written.rev.startswith("2-") and store.get_doc("ann")["name"] == "Ann B"


# --------------------------------------------------------------------------------------------------------
# phones


@pytest.fixture
def two_chws(store: Store) -> Store:
    """alice (area-1, contact chw-a) and bob (area-2, contact chw-b) with their phones, and a client of each."""
    store.write_docs([*PLACES, person("chw-a", "area-1", phone=ALICE_PHONE), person("chw-b", "area-2", phone=BOB_PHONE),
                      person("client-a", "area-1"), person("client-b", "area-2")])
    store.users.create("alice", password="alice-password", roles=["chw"], facility_id="area-1", contact_id="chw-a")
    store.users.create("bob", password="bob-password", roles=["chw"], facility_id="area-2", contact_id="chw-b")
    return store


@pytest.mark.parametrize("written", ["0888 100 001", "+265 888-100-001", "00265888100001"])
@pytest.mark.parametrize("country", ["265", None])
def test_another_users_number_cannot_be_given_to_a_contact(two_chws: Store, written: str, country: str | None
                                                           ) -> None:
    store = two_chws
    bob = store.users.get("bob")
    before = _snapshot(store)
    for doc in (person("chw-b", "area-2", phone=written), person("client-b", "area-2", phone=written),
                person("new-b", "area-2", phone=written)):
        with pytest.raises(DocumentConflictError) as caught:
            store.write_doc(doc, user=bob, check_phones=True, country_code=country)
        [problem] = _conflicts(caught)
        assert problem["doc_id"] == doc["_id"] and problem["field"] == "phone"
        assert "another user's contact" in problem["message"]
        assert "chw-a" not in problem["message"]  # alice's contact is outside bob's place: not named
    assert _snapshot(store) == before
    # an administrator (who sees everything) is refused too, and told whose number it is
    with pytest.raises(DocumentConflictError) as caught:
        store.write_doc(person("client-b", "area-2", phone=written), check_phones=True, country_code=country)
    assert "'chw-a'" in _conflicts(caught)[0]["message"]


def test_numbers_that_are_no_other_users_may_be_given(two_chws: Store) -> None:
    store = two_chws
    alice, bob = store.users.get("alice"), store.users.get("bob")

    def write(doc: dict[str, Any], user: Any = None) -> None:
        store.write_doc(doc, user=user, check_phones=True, country_code="265")

    write(person("client-a", "area-1", phone="0888 100 001"), alice)  # the writer's own number: a shared phone
    write(person("client-b", "area-2", phone="0777 300 003"), bob)  # nobody's
    write(person("client-b2", "area-2", phone="+265777300003"), bob)  # a client's, no account's: a family phone
    write(person("chw-b", "area-2", phone=BOB_PHONE, name="Bob P"), bob)  # his own contact keeps his number
    write(person("client-b3", "area-2", phone="+260888100001"), bob)  # alice's digits, another country's number
    # a disabled account's number is free again (the gateway matches enabled accounts only)
    store.users.disable("alice")
    write(person("client-b", "area-2", phone="0888 100 001"), bob)
    store.users.enable("alice")
    # a contact that already shared the number (stored before the rule) may still be edited, keeping it
    write(person("client-b", "area-2", phone="0888100001", name="Renamed"), bob)
    # numbers as they are after the batch: two users' contacts may swap numbers in one write
    store.write_docs([person("chw-a", "area-1", phone=BOB_PHONE), person("chw-b", "area-2", phone=ALICE_PHONE),
                      person("client-b", "area-2")], check_phones=True, country_code="265")
    assert store.get_doc("chw-a")["phone"] == BOB_PHONE and store.get_doc("chw-b")["phone"] == ALICE_PHONE
    # ... but not both end up with one
    with pytest.raises(DocumentConflictError) as caught:
        store.write_docs([person("chw-a", "area-1", phone="0999200002"),
                          person("chw-b", "area-2", phone="0999 200 002")], check_phones=True, country_code="265")
    assert {p["doc_id"] for p in _conflicts(caught)} == {"chw-b"}


def test_without_the_check_numbers_are_stored_as_given(two_chws: Store) -> None:
    """``kazi import`` and the demo load deployments as they are, shared numbers included."""
    two_chws.write_doc(person("client-b", "area-2", phone=ALICE_PHONE))
    assert two_chws.get_doc("client-b")["phone"] == ALICE_PHONE
