"""Document writes: bodies kept as given, all-or-nothing batches, idempotent rewrites, the change log."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import func, select

from kazi.epoch import EARLIEST_MS, LATEST_MS
from kazi.errors import DocumentBatchError, DocumentExistsError, NotFoundError
from kazi.store import Store
from kazi.store.schema import changes, doc_subjects, docs


def _snapshot(store: Store) -> dict[str, Any]:
    with store.engine.connect() as conn:
        return {
            "docs": sorted(conn.execute(select(docs)).all()),
            "subjects": sorted(conn.execute(select(doc_subjects)).all()),
            "changes": conn.execute(select(func.count()).select_from(changes)).scalar(),
            "seq": store.last_seq(),
        }


def test_body_is_kept_exactly_and_rev_is_the_stores(store: Store) -> None:
    doc = {"_id": "p", "type": "person", "zeta": 1, "alpha": {"y": [1, "two", None], "x": True},
           "name": "Ünïcode ✓", "_rev": "99-client"}
    result = store.write_doc(doc)
    got = store.get_doc("p")
    assert list(got) == ["_id", "type", "zeta", "alpha", "name", "_rev"]  # key order kept, _rev last
    assert {k: v for k, v in got.items() if k != "_rev"} == {k: v for k, v in doc.items() if k != "_rev"}
    assert got["_rev"] == result.rev and result.rev.startswith("1-") and len(result.rev) == 34
    assert result.seq == 1 and result.changed


def test_nan_becomes_null_as_json_stringify_does(store: Store) -> None:
    store.write_doc({"_id": "n", "type": "clinic", "x": math.nan, "y": [math.inf]})
    assert store.get_doc("n")["x"] is None and store.get_doc("n")["y"] == [None]


def test_same_content_is_not_a_change(store: Store) -> None:
    first = store.write_doc({"_id": "c", "type": "clinic", "name": "A", "n": 1})
    again = store.write_doc({"n": 1, "name": "A", "type": "clinic", "_id": "c", "_rev": "whatever"})
    assert again == type(first)(first.id, first.rev, first.seq, False)
    assert store.last_seq() == 1 and len(store.changes_since(0)) == 1
    edited = store.write_doc({"_id": "c", "type": "clinic", "name": "B", "n": 1})
    assert edited.changed and edited.rev.startswith("2-") and edited.seq == 2
    assert store.get_doc("c")["name"] == "B"


def test_a_bad_doc_refuses_the_whole_batch_and_names_every_problem(store: Store) -> None:
    store.write_docs([{"_id": "keep", "type": "clinic", "name": "before"}])
    before = _snapshot(store)
    batch: list[Any] = [
        {"_id": "keep", "type": "clinic", "name": "after"},  # good, but must not be kept
        {"_id": "new", "type": "person"},  # good, but must not be kept
        "not a doc",
        {"type": "person"},
        {"_id": "_design/x"},
        {"_id": "c", "type": "contact"},
        {"_id": "q", "type": "person", "parent": {"name": "no id"}},
        {"_id": "t", "type": "task"},
        {"_id": "new", "type": "person"},
        {"_id": "k", "type": 7},
        {"_id": "z", "type": "clinic", "bad": {1: "non-string key"}},
    ]
    with pytest.raises(DocumentBatchError) as caught:
        store.write_docs(batch)
    err = caught.value
    found = {(p.index, p.field) for p in err.problems}
    assert found == {(2, None), (3, "_id"), (4, "_id"), (5, "contact_type"), (6, "parent._id"), (7, "type"),
                     (8, "_id"), (9, "type"), (10, None)}
    assert "9 of 11 documents refused, none stored" in str(err)
    assert err.problems[0].to_dict()["index"] == 2
    assert _snapshot(store) == before


def test_a_problem_found_inside_the_transaction_rolls_everything_back(store: Store) -> None:
    store.write_docs([{"_id": "top", "type": "district_hospital"},
                      {"_id": "mid", "type": "health_center", "parent": {"_id": "top"}}])
    before = _snapshot(store)
    with pytest.raises(DocumentBatchError, match="lineage loop"):
        store.write_docs([{"_id": "other", "type": "clinic", "parent": {"_id": "mid"}},
                          {"_id": "top", "type": "district_hospital", "parent": {"_id": "mid"}}])
    assert _snapshot(store) == before


def test_a_reported_date_outside_the_calendar_refuses_the_batch(store: Store) -> None:
    """-1 and 2**62 used to be stored, then broke every report, export and JavaScript date that met them."""
    store.write_docs([{"_id": "hc", "type": "health_center", "reported_date": EARLIEST_MS}])
    before = _snapshot(store)
    batch: list[Any] = [
        {"_id": "ok", "type": "clinic", "parent": {"_id": "hc"}, "reported_date": LATEST_MS - 1},
        {"_id": "neg", "type": "clinic", "reported_date": -1},
        {"_id": "huge", "type": "data_record", "form": "f", "reported_date": 2**62},
        {"_id": "zero", "type": "person", "reported_date": 0},
        {"_id": "late", "type": "person", "reported_date": float(LATEST_MS)},
        {"_id": "early", "type": "person", "reported_date": EARLIEST_MS - 1},
    ]
    with pytest.raises(DocumentBatchError) as caught:
        store.write_docs(batch)
    assert [(p.index, p.doc_id, p.field) for p in caught.value.problems] == [
        (1, "neg", "reported_date"), (2, "huge", "reported_date"), (3, "zero", "reported_date"),
        (4, "late", "reported_date"), (5, "early", "reported_date")]
    assert "between 2000-01-01 and 2099-12-31" in str(caught.value.problems[0])
    assert _snapshot(store) == before
    # the range's ends, a missing or non-numeric reported_date (CHT allows them) and deleting are accepted
    store.write_docs([batch[0], {"_id": "none", "type": "person"}, {"_id": "text", "type": "person",
                                                                    "reported_date": "yesterday"}])
    assert store.get_doc("ok")["reported_date"] == LATEST_MS - 1


def test_a_tombstone_is_not_checked_for_its_reported_date(store: Store) -> None:
    """Whatever a deletion carries (CHT's tombstones keep the old body), deleting is never refused for it."""
    store.write_doc({"_id": "old", "type": "person", "reported_date": EARLIEST_MS})
    result = store.write_doc({"_id": "old", "type": "person", "reported_date": -1, "_deleted": True})
    assert result.changed and store.get_docs(["old"]) == []


def test_query_columns(store: Store) -> None:
    store.write_docs([
        {"_id": "hc", "type": "contact", "contact_type": "facility", "contact": {"_id": "boss"}},
        {"_id": "p", "type": "person", "parent": {"_id": "hc"}, "patient_id": "777",
         "reported_date": 1754036400000.9},
        {"_id": "r", "type": "data_record", "form": "visit", "fields": {"patient_id": "777", "place_id": "x"},
         "contact": {"_id": "p", "parent": {"_id": "hc"}}, "reported_date": "not a number"},
        {"_id": "s", "type": "user-settings"},
    ])
    with store.engine.connect() as conn:
        rows = {r.id: r for r in conn.execute(select(docs))}
        subjects = sorted(conn.execute(select(doc_subjects.c.doc_id, doc_subjects.c.subject_id, doc_subjects.c.kind)))
    assert (rows["hc"].kind, rows["hc"].type, rows["hc"].contact_type, rows["hc"].contact_id) == \
        ("contact", "contact", "facility", "boss")
    assert (rows["p"].kind, rows["p"].contact_type, rows["p"].parent_id, rows["p"].reported_date) == \
        ("contact", "person", "hc", 1754036400000)
    assert (rows["r"].kind, rows["r"].form, rows["r"].subject, rows["r"].contact_id, rows["r"].reported_date) == \
        ("report", "visit", "777", "p", None)
    assert rows["s"].kind == "other"
    assert subjects == [("hc", "hc", "contact"), ("p", "777", "contact"), ("p", "p", "contact"),
                        ("r", "777", "report"), ("r", "x", "report")]


def test_delete_leaves_a_tombstone_and_the_change_names_the_old_subjects(store: Store) -> None:
    store.write_docs([{"_id": "p", "type": "person", "patient_id": "55"},
                      {"_id": "r", "type": "data_record", "form": "f", "patient_id": "55"}])
    seq = store.last_seq()
    deleted = store.delete_docs(["r"])
    assert deleted[0].rev.startswith("2-")
    with pytest.raises(NotFoundError, match="document 'r' not found"):
        store.get_doc("r")
    assert store.get_docs(["r"], include_deleted=True)[0]["_deleted"] is True
    assert [d["_id"] for d in store.docs_for_subjects(["55"])] == ["p"]
    [change] = store.changes_since(seq)
    assert (change.id, change.deleted, change.kind, change.subjects) == ("r", True, "report", ("55",))
    with pytest.raises(DocumentBatchError, match="not found"):
        store.delete_docs(["r"])  # already gone
    again = store.write_doc({"_id": "r", "type": "data_record", "form": "f", "patient_id": "55"})
    assert again.rev.startswith("3-") and store.get_doc("r")["form"] == "f"


def test_moving_a_report_names_both_subjects(store: Store) -> None:
    store.write_doc({"_id": "r", "type": "data_record", "form": "f", "fields": {"patient_id": "A"}})
    seq = store.last_seq()
    store.write_doc({"_id": "r", "type": "data_record", "form": "f", "fields": {"patient_id": "B"}})
    assert store.changes_since(seq)[0].subjects == ("A", "B")


def test_changes_since_pages_in_order(store: Store) -> None:
    store.write_docs([{"_id": f"c{i}", "type": "clinic"} for i in range(5)])
    store.write_doc({"_id": "c0", "type": "clinic", "name": "renamed"})
    first = store.changes_since(0, limit=4)
    rest = store.changes_since(first[-1].seq)
    assert [c.seq for c in first + rest] == [1, 2, 3, 4, 5, 6]
    assert [c.id for c in first + rest] == ["c0", "c1", "c2", "c3", "c4", "c0"]
    assert store.last_seq() == 6


def test_get_docs_keeps_the_order_asked_and_skips_missing(store: Store) -> None:
    store.write_docs([{"_id": i, "type": "clinic"} for i in ("a", "b", "c")])
    assert [d["_id"] for d in store.get_docs(["c", "x", "a", "c"])] == ["c", "a"]


def test_big_batches_cross_the_parameter_chunks(store: Store) -> None:
    batch = [{"_id": f"p{i:04d}", "type": "person", "patient_id": f"{i}", "parent": {"_id": "hc"}}
             for i in range(1200)]
    store.write_docs([{"_id": "hc", "type": "health_center"}, *batch])
    assert len(store.contacts_under("hc")) == 1201
    assert len(store.docs_for_subjects([f"{i}" for i in range(1200)])) == 1200
    assert all(r.changed is False for r in store.write_docs(batch))


def test_create_only_refuses_a_taken_id_even_a_deleted_one(store: Store) -> None:
    store.write_doc({"_id": "r1", "type": "data_record", "form": "f"})
    store.write_doc({"_id": "gone", "type": "clinic"})
    store.delete_docs(["gone"])
    before = _snapshot(store)
    for taken in ("r1", "gone"):
        with pytest.raises(DocumentExistsError) as err:
            store.write_docs([{"_id": "fresh", "type": "clinic"}, {"_id": taken, "type": "clinic"}], create_only=True)
        assert err.value.doc_ids == [taken]
    assert _snapshot(store) == before  # nothing of either batch
    assert store.write_doc({"_id": "fresh", "type": "clinic"}, create_only=True).changed


def test_two_creations_racing_for_one_id_store_one(make_store: Callable[[], Store]) -> None:
    """Two server processes get the same new `_id` at the same moment (a phone's retry): the check and the
    write are one transaction, so exactly one is stored and the other is told the `_id` is taken."""
    stores = [make_store(), make_store()]
    outcomes: list[str] = []
    barrier = threading.Barrier(2)

    def submit(i: int) -> None:
        barrier.wait()
        try:
            stores[i].write_doc({"_id": "same", "type": "data_record", "form": "f", "n": i}, create_only=True)
            outcomes.append("created")
        except DocumentExistsError:
            outcomes.append("taken")

    for _round in range(5):
        outcomes.clear()
        threads = [threading.Thread(target=submit, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert sorted(outcomes) == ["created", "taken"]
        stores[0].write_docs([{"_id": "same", "_deleted": True}])
        with stores[0].engine.begin() as conn:  # make the _id free again for the next round
            conn.execute(docs.delete().where(docs.c.id == "same"))
