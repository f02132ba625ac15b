"""Scopes: a user sees the contacts under their place and the reports about them, nothing else."""

from __future__ import annotations

from datetime import date

import pytest

from kazi.demo.population import generate
from kazi.engine.containers import contact_subject_ids, report_subject_ids
from kazi.errors import DocumentBatchError, NotFoundError
from kazi.store import EVERYTHING, NOTHING, Scope, Store, StoredUser, scope_of

HC1_CONTACTS = {"hc1", "a1", "a2", "chw1", "p1", "p2"}
HC1_REPORTS = {"r1", "r2", "r4", "r5", "r7"}


def _user(store: Store, name: str, **kw: object) -> StoredUser:
    kw.setdefault("roles", ["chw"])
    return store.users.create(name, password="password1", **kw)  # type: ignore[arg-type]


def _ids(docs: list[dict[str, object]]) -> set[object]:
    return {d["_id"] for d in docs}


def test_scope_rules(loaded: Store) -> None:
    assert scope_of(_user(loaded, "chw", facility_id="a1")) == Scope(places=("a1",))
    assert scope_of(_user(loaded, "adm", roles=["admin"])) == EVERYTHING
    assert scope_of(_user(loaded, "sys", roles=["_admin"])) == EVERYTHING
    assert scope_of(_user(loaded, "nat", roles=["program_officer"], national=True)) == EVERYTHING
    assert scope_of(_user(loaded, "nat2", roles=["national_admin"])) == EVERYTHING
    assert scope_of(_user(loaded, "lost", roles=["site_supervisor"])) == NOTHING  # no place: nothing
    off = loaded.users.disable("adm")
    assert scope_of(off) == NOTHING


def test_a_place_sees_its_subtree_and_the_reports_about_it(loaded: Store) -> None:
    sup = _user(loaded, "sup", roles=["site_supervisor"], facility_id="hc1")
    contacts, reports = loaded.docs_in_scope(sup)
    assert _ids(contacts) == HC1_CONTACTS
    # r1 by short code, r2 by _id, r4 headless and r5 subject-less by their submitter, r7 by place short code;
    # r6 was submitted here but is about hc2's patient, so it is hc2's
    assert _ids(reports) == HC1_REPORTS
    other = _user(loaded, "sup2", roles=["site_supervisor"], facility_id="hc2")
    contacts2, reports2 = loaded.docs_in_scope(other)
    assert _ids(contacts2) == {"hc2", "a3", "p3", "chw3"}
    assert _ids(reports2) == {"r3", "r6"}
    admin = _user(loaded, "admin1", roles=["admin"])
    everything = loaded.docs_in_scope(admin)
    assert len(everything.contacts) == 11 and len(everything.reports) == 7
    assert loaded.docs_in_scope(NOTHING) == ([], [])


def test_another_places_docs_are_not_found(loaded: Store) -> None:
    chw = _user(loaded, "chw", facility_id="a1", contact_id="chw1")
    assert loaded.get_doc("p1", user=chw)["_id"] == "p1"
    for hidden in ("p2", "p3", "hc1", "d1", "r3", "r6"):
        with pytest.raises(NotFoundError) as caught:
            loaded.get_doc(hidden, user=chw)
        with pytest.raises(NotFoundError) as missing:
            loaded.get_doc("no-such-doc", user=chw)
        assert str(caught.value).replace(hidden, "X") == str(missing.value).replace("no-such-doc", "X")
    assert _ids(loaded.get_docs(["p1", "p2", "r1", "r3", "r4"], user=chw)) == {"p1", "r1", "r4"}
    assert _ids(loaded.contacts_under("hc1", user=chw)) == {"a1", "chw1", "p1"}
    assert _ids(loaded.docs_for_subjects(["1001", "1003", "p2"], user=chw)) == {"p1", "r1"}
    assert loaded.hydrated_contact("p2", user=chw) is None


def test_writes_are_confined_too(loaded: Store) -> None:
    chw = _user(loaded, "chw", facility_id="a1", contact_id="chw1")
    seq = loaded.last_seq()
    with pytest.raises(DocumentBatchError, match="outside the user's place"):  # new doc placed elsewhere
        loaded.write_docs([{"_id": "p9", "type": "person", "parent": {"_id": "a3"}}], user=chw)
    with pytest.raises(DocumentBatchError, match="outside the user's place"):  # overwrite another place's doc
        loaded.write_docs([{"_id": "p3", "type": "person", "parent": {"_id": "a1"}}], user=chw)
    with pytest.raises(DocumentBatchError, match="not found"):
        loaded.delete_docs(["p3"], user=chw)
    with pytest.raises(DocumentBatchError, match="outside the user's place"):  # settings-like docs
        loaded.write_docs([{"_id": "settings", "type": "app_settings"}], user=chw)
    assert loaded.last_seq() == seq and loaded.get_doc("p3")["parent"]["_id"] == "a3"
    # inside the place all is well, including a report about a patient of the batch
    loaded.write_docs([{"_id": "p9", "type": "person", "patient_id": "9009", "parent": {"_id": "a1"}},
                       {"_id": "r9", "type": "data_record", "form": "f", "fields": {"patient_id": "9009"}}],
                      user=chw)
    assert _ids(loaded.get_docs(["p9", "r9"], user=chw)) == {"p9", "r9"}


def _refusal(store: Store, user: StoredUser, batch: list[dict[str, object]], hidden: str) -> list[dict[str, object]]:
    """The problems a refused batch reports, with ``hidden`` written as X (to compare two batches)."""
    with pytest.raises(DocumentBatchError) as caught:
        store.write_docs(batch, user=user)
    return [{k: (v.replace(hidden, "X") if isinstance(v, str) else v) for k, v in p.to_dict().items()}
            for p in caught.value.problems]


def test_a_refused_write_does_not_tell_whether_the_id_exists_elsewhere(loaded: Store) -> None:
    """Writing over another place's document (p3, under a3) is refused in the same words, for the same
    documents of the batch and in the same order, as writing a new id placed elsewhere: the answer does not
    reveal that p3 exists. The residual (docs/api.md): placed inside the writer's place, or deleted, a taken id
    is refused where a fresh one is stored."""
    chw = _user(loaded, "chw", facility_id="a1", contact_id="chw1")
    seq = loaded.last_seq()
    elsewhere = {"type": "person", "parent": {"_id": "a3"}}
    inside = {"type": "person", "parent": {"_id": "a1"}}
    for batch_of in (
        lambda i: [{"_id": i, **elsewhere}],
        lambda i: [{"_id": "p8", **inside}, {"_id": "p9", **elsewhere}, {"_id": i, **elsewhere}],
        lambda i: [{"_id": i, **elsewhere}, {"_id": "p9", **elsewhere}, {"_id": "p8", **inside}],
    ):
        taken = _refusal(loaded, chw, batch_of("p3"), "p3")
        fresh = _refusal(loaded, chw, batch_of("no-such-id"), "no-such-id")
        assert taken == fresh
        assert all(p["message"] == "outside the user's place" and p["field"] == "_id" for p in taken)
        assert [p["index"] for p in taken] == sorted(p["index"] for p in taken)  # batch order, whatever the check
    # the index is the document's position in the batch
    assert _refusal(loaded, chw, [{"_id": "p8", **inside}, {"_id": "p3", **inside}], "p3") == [
        {"message": "outside the user's place", "index": 1, "doc_id": "X", "field": "_id"}]
    assert loaded.last_seq() == seq and loaded.get_doc("p3")["parent"]["_id"] == "a3"
    # the residual: inside the place (or deleted), a fresh id is stored where the taken one was refused
    assert loaded.write_docs([{"_id": "fresh", **inside}], user=chw)[0].changed
    assert loaded.write_docs([{"_id": "fresh2", "_deleted": True}], user=chw)[0].changed
    assert _refusal(loaded, chw, [{"_id": "p3", "_deleted": True}], "p3") == [
        {"message": "outside the user's place", "index": 0, "doc_id": "X", "field": "_id"}]


def test_task_docs_are_their_users_own(loaded: Store) -> None:
    chw = _user(loaded, "chw", facility_id="a1")
    other = _user(loaded, "chw.b", facility_id="a3")
    admin = _user(loaded, "boss", roles=["admin"])
    loaded.write_task_docs([{"_id": "task~org.couchdb.user:chw~x", "type": "task", "user": chw.settings_id,
                             "requester": "p1", "state": "Ready"}])
    assert loaded.get_task_doc("task~org.couchdb.user:chw~x", user=chw)["state"] == "Ready"
    assert loaded.get_task_doc("task~org.couchdb.user:chw~x", user=admin)["state"] == "Ready"
    with pytest.raises(NotFoundError, match="task"):
        loaded.get_task_doc("task~org.couchdb.user:chw~x", user=other)


def test_population_scopes_match_the_hierarchy(store: Store) -> None:
    """On a generated population, each user's scope is exactly what walking the documents gives."""
    pop = generate(12, 7, date(2025, 8, 1))
    store.write_docs(pop.contacts)
    store.write_docs(pop.reports)
    by_id = {c["_id"]: c for c in pop.contacts}

    def ancestors(doc: dict[str, object]) -> list[str]:
        out, node = [], doc.get("parent")
        while isinstance(node, dict):
            out.append(node["_id"])
            node = node.get("parent")
        return out

    for u in pop.users:
        user = store.users.create(u["username"], password="password1", roles=u["roles"],
                                  facility_id=u["facility_id"], contact_id=u["contact_id"])
        if user.sees_everything:
            continue
        place = u["facility_id"]
        want_contacts = {cid for cid, c in by_id.items() if cid == place or place in ancestors(c)}
        subjects = {s for cid in want_contacts for s in contact_subject_ids(by_id[cid])}
        want_reports = {r["_id"] for r in pop.reports if set(report_subject_ids(r)) & subjects}
        contacts, reports = store.docs_in_scope(user)
        assert _ids(contacts) == want_contacts
        assert _ids(reports) == want_reports
        assert want_reports or u["roles"] != ["site_supervisor"]
