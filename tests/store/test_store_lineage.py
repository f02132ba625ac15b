"""The contact hierarchy: lineage from stubs, parents arriving late, moves, loops."""

from __future__ import annotations

import pytest

from kazi.errors import DocumentBatchError
from kazi.store import Store


def _ids(docs: list[dict[str, object]]) -> set[object]:
    return {d["_id"] for d in docs}


def test_lineage_and_subtrees(loaded: Store) -> None:
    assert loaded.lineage("p1") == ["a1", "hc1", "d1"]
    assert loaded.lineage("d1") == []
    assert _ids(loaded.contacts_under("hc1")) == {"hc1", "a1", "a2", "chw1", "p1", "p2"}
    assert _ids(loaded.contacts_under("a3")) == {"a3", "p3", "chw3"}
    assert len(loaded.contacts_under("d1")) == 11
    assert loaded.contacts_under("nowhere") == []


def test_a_parent_written_after_its_children_completes_their_lineage(store: Store) -> None:
    # children first, each naming only its parent (as a client that does not minify lineage would)
    store.write_docs([{"_id": "kid", "type": "person", "parent": {"_id": "home"}}])
    store.write_docs([{"_id": "home", "type": "clinic", "parent": {"_id": "hc"}}])
    assert store.lineage("kid") == ["home", "hc"]  # hc is not stored: its own parent is unknown yet
    store.write_docs([{"_id": "hc", "type": "health_center", "parent": {"_id": "district"}}])
    assert store.lineage("kid") == ["home", "hc", "district"]
    assert _ids(store.contacts_under("district")) == {"hc", "home", "kid"}


def test_child_before_parent_in_one_batch(store: Store) -> None:
    store.write_docs([{"_id": "grandkid", "type": "person", "parent": {"_id": "kid"}},
                      {"_id": "kid", "type": "clinic", "parent": {"_id": "top"}},
                      {"_id": "top", "type": "health_center", "parent": {"_id": "root"}}])
    assert store.lineage("grandkid") == ["kid", "top", "root"]


def test_stored_hierarchy_wins_over_stale_stubs(loaded: Store) -> None:
    # a new person whose stubs still say a1 is under hc2: the stored a1 is under hc1
    loaded.write_doc({"_id": "p9", "type": "person", "parent": {"_id": "a1", "parent": {"_id": "hc2"}}})
    assert loaded.lineage("p9") == ["a1", "hc1", "d1"]


def test_moving_a_place_moves_everything_below_it(loaded: Store) -> None:
    seq = loaded.last_seq()
    loaded.write_doc({"_id": "a1", "type": "clinic", "parent": {"_id": "hc2", "parent": {"_id": "d1"}},
                      "place_id": "A1"})
    assert loaded.lineage("p1") == ["a1", "hc2", "d1"]
    assert _ids(loaded.contacts_under("hc1")) == {"hc1", "a2", "p2"}
    assert {"a1", "p1", "chw1"} <= _ids(loaded.contacts_under("hc2"))
    [change] = loaded.changes_since(seq)
    assert set(change.lineage) == {"hc1", "hc2", "d1"}  # both the old and the new places' users are affected


def test_moving_a_place_under_its_own_descendant_is_refused(loaded: Store) -> None:
    with pytest.raises(DocumentBatchError, match="lineage loop") as caught:
        loaded.write_doc({"_id": "hc1", "type": "contact", "contact_type": "health_centre",
                          "parent": {"_id": "a1"}})
    assert caught.value.problems[0].field == "parent"
    assert loaded.lineage("p1") == ["a1", "hc1", "d1"]


def test_a_loop_through_an_unknown_stub_is_refused(store: Store) -> None:
    store.write_doc({"_id": "low", "type": "person", "parent": {"_id": "ghost", "parent": {"_id": "top"}}})
    with pytest.raises(DocumentBatchError, match="lineage loop"):
        store.write_doc({"_id": "top", "type": "clinic", "parent": {"_id": "ghost"}})
    assert store.lineage("low") == ["ghost", "top"]


def test_stub_chains_that_loop_or_go_too_deep_are_refused(store: Store) -> None:
    with pytest.raises(DocumentBatchError, match="loops back"):
        store.write_doc({"_id": "x", "type": "clinic", "parent": {"_id": "y", "parent": {"_id": "x"}}})
    deep: dict[str, object] = {"_id": "n0"}
    for i in range(1, 60):
        deep = {"_id": f"n{i}", "parent": deep}
    with pytest.raises(DocumentBatchError, match="deeper than 50"):
        store.write_doc({"_id": "x", "type": "clinic", "parent": deep})


def test_a_place_is_deleted_only_once_nothing_is_under_it(loaded: Store) -> None:
    """Deleting a place that still has contacts under it is refused, for every writer (system callers too):
    its subtree would hang from nothing. Emptied in the same batch, it goes."""
    seq = loaded.last_seq()
    with pytest.raises(DocumentBatchError) as caught:
        loaded.delete_docs(["a2"])
    assert [(p.doc_id, p.field) for p in caught.value.problems] == [("a2", "_deleted")]
    assert "1 contact(s) are still under it" in str(caught.value)
    assert loaded.last_seq() == seq and loaded.lineage("p2") == ["a2", "hc1", "d1"]
    # rewriting it as something that is not a contact removes it from the hierarchy just as well
    with pytest.raises(DocumentBatchError, match="still under it"):
        loaded.write_docs([{"_id": "a2", "type": "data_record", "form": "x"}])
    # moved out (p2 to a1) or deleted in the same batch, the place can go
    loaded.write_docs([{"_id": "p2", "type": "person", "parent": {"_id": "a1"}}, {"_id": "a2", "_deleted": True}])
    assert loaded.lineage("p2") == ["a1", "hc1", "d1"] and "a2" not in _ids(loaded.contacts_under("hc1"))
    loaded.delete_docs(["p3", "chw3", "a3"])
    assert _ids(loaded.contacts_under("hc2")) == {"hc2"}


def test_hydrated_contact_and_engine_user(loaded: Store) -> None:
    contact = loaded.hydrated_contact("chw1")
    assert contact is not None
    assert contact["parent"]["type"] == "clinic" and contact["parent"]["parent"]["contact_type"] == "health_centre"
    assert contact["parent"]["parent"]["parent"]["name"] == "District"
    assert "_rev" not in contact
    user = loaded.users.create("chw.one", password="long enough", roles=["chw"], facility_id="a1",
                               contact_id="chw1")
    engine_user = loaded.engine_user(user)
    assert engine_user.name == "chw.one" and engine_user.roles == ("chw",) and engine_user.contact == contact
    assert loaded.hydrated_contact("nobody") is None
