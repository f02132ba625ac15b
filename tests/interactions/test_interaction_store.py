"""Interaction summaries in the store (kazi.store.interactions, migration 0004), on SQLite and PostgreSQL:
stored once however often they are sent, conflicting versions kept beside each other, batches all or none,
concurrent senders of one id safe, and analysts' reads confined to the users at or under their place."""

from __future__ import annotations

import copy
import threading
from typing import Any

import pytest
from interaction_builders import FORM, NOW, OTHER_DEVICE, SICK, WELCOME, simple
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from kazi.analytics.summary import SummaryInfo, Vocabulary, check_summary
from kazi.store import EVERYTHING, NOTHING, Scope, Store
from kazi.store.interactions import (
    InteractionLimits,
    TooManyConflicts,
    count_summaries,
    find_summaries,
    save_summaries,
)
from kazi.store.schema import interaction_summaries

VOCAB = Vocabulary(frozenset({SICK, WELCOME}), frozenset({FORM}))


def checked(*docs: dict[str, Any]) -> list[tuple[SummaryInfo, dict[str, Any]]]:
    out = []
    for doc in docs:
        info, problems = check_summary(doc, VOCAB, now_ms=NOW)
        assert problems == [] and info is not None
        out.append((info, doc))
    return out


def rows(store: Store) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(interaction_summaries)).scalar_one())


def other_content(doc: dict[str, Any], position: int = 1) -> dict[str, Any]:
    changed = copy.deepcopy(doc)
    changed["sessions"][0]["events"][2]["detail"] = position
    return changed


def statuses(store: Store, *docs: dict[str, Any], at: int = NOW) -> list[tuple[str, int]]:
    return [(s.status, s.conflict) for s in save_summaries(store, checked(*docs), received_at=at)]


def test_the_same_summary_twice_is_stored_once(store: Store) -> None:
    doc = simple()
    assert statuses(store, doc) == [("created", 0)]
    reordered = dict(reversed(list(copy.deepcopy(doc).items())))  # the same content in another key order
    assert statuses(store, reordered, at=NOW + 1000) == [("unchanged", 0)]
    assert rows(store) == 1
    (stored,) = find_summaries(store, EVERYTHING)
    assert stored.body == doc and stored.received_at == NOW  # the first arrival's
    assert (stored.username, stored.device_id, stored.day, stored.app_version, stored.events, stored.dropped) == (
        "mary", doc["metadata"]["deviceId"], "2025-07-31", "1.0.0", 7, 0)


def test_a_conflicting_summary_is_kept_beside_the_first_never_lost(store: Store) -> None:
    first, second, third = simple(), other_content(simple(), 1), other_content(simple(), 2)
    assert statuses(store, first) == [("created", 0)]
    assert statuses(store, second) == [("conflict", 1)]
    assert statuses(store, third, first, second) == [("conflict", 2), ("unchanged", 0), ("unchanged", 1)]
    kept = find_summaries(store, EVERYTHING)
    assert [(s.id, s.conflict) for s in kept] == [(first["_id"], 0), (first["_id"], 1), (first["_id"], 2)]
    assert [s.body for s in kept] == [first, second, third]
    assert kept[0].seq < kept[1].seq < kept[2].seq


def test_a_batch_with_the_same_summary_twice_stores_it_once(store: Store) -> None:
    doc, other_day = simple(), simple(day="2025-07-30")
    assert statuses(store, doc, other_day, doc) == [("created", 0), ("created", 0), ("unchanged", 0)]
    assert rows(store) == 2


def test_a_batch_is_stored_whole_or_not_at_all(store: Store) -> None:
    good = checked(simple(day="2025-07-29"))[0]
    (bad_info, bad_doc), = checked(simple(day="2025-07-30"))
    broken = SummaryInfo(bad_info.id, None, bad_info.device_id, bad_info.date, bad_info.version,  # type: ignore[arg-type]
                         bad_info.events, bad_info.dropped)
    with pytest.raises(IntegrityError):
        save_summaries(store, [good, (broken, bad_doc)], received_at=NOW)
    assert rows(store) == 0


def test_concurrent_senders_of_one_id_keep_every_version_once(make_store: Any) -> None:
    """Three processes' worth of connections racing on one id: each content stored once, numbered 0, 1, 2."""
    docs = [other_content(simple(), n) for n in range(3)]
    stores = [make_store() for _ in docs]
    barrier = threading.Barrier(len(docs))
    errors: list[BaseException] = []

    def send(s: Store, doc: dict[str, Any]) -> None:
        try:
            barrier.wait()
            for _ in range(3):  # retries of the same content on top of the race
                save_summaries(s, checked(doc), received_at=NOW)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(s, d)) for s, d in zip(stores, docs, strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    kept = find_summaries(stores[0], EVERYTHING)
    assert sorted(s.conflict for s in kept) == [0, 1, 2]
    assert sorted(s.body["sessions"][0]["events"][2]["detail"] for s in kept if s.body) == [0, 1, 2]


# --------------------------------------------------------------------------------------------------------
# reading within a scope


@pytest.fixture
def team(loaded: Store) -> Store:
    """mary (area a1, under hc1), ama (a2, under hc1), john (a3, under hc2), each with summaries; sam has no
    place. The district d1 is above them all."""
    for name, place in (("mary", "a1"), ("ama", "a2"), ("john", "a3"), ("sam", None)):
        loaded.users.create(name, password=f"{name}-password", roles=["chw"], facility_id=place)
    save_summaries(loaded, checked(
        simple("mary", "2025-07-29"), simple("mary", "2025-07-31"), simple("ama", "2025-07-30"),
        simple("john", "2025-07-31", device=OTHER_DEVICE), simple("sam", "2025-07-31"),
        other_content(simple("mary", "2025-07-31"))), received_at=NOW)
    return loaded


def who(store: Store, scope: Scope, **kw: Any) -> list[tuple[str, str, int]]:
    """(user, day, conflict) of what ``find_summaries`` lists; ``count_summaries`` agrees (without paging)."""
    found = find_summaries(store, scope, with_body=False, **kw)
    assert all(s.body is None for s in found)
    filters = {k: v for k, v in kw.items() if k not in ("limit", "offset")}
    assert count_summaries(store, scope, **filters) == len(find_summaries(store, scope, **filters))
    return [(s.username, s.day, s.conflict) for s in found]


def test_an_analyst_reads_the_summaries_of_users_at_or_under_their_place(team: Store) -> None:
    everyone = [("mary", "2025-07-29", 0), ("ama", "2025-07-30", 0), ("john", "2025-07-31", 0),
                ("mary", "2025-07-31", 0), ("mary", "2025-07-31", 1), ("sam", "2025-07-31", 0)]
    assert who(team, EVERYTHING) == everyone  # by day, user, device, then arrival
    assert who(team, Scope(places=("d1",))) == [r for r in everyone if r[0] != "sam"]  # sam has no place
    assert who(team, Scope(places=("hc1",))) == [r for r in everyone if r[0] in ("mary", "ama")]
    assert who(team, Scope(places=("a2",))) == [("ama", "2025-07-30", 0)]
    assert who(team, Scope(places=("hc2", "a2"))) == [("ama", "2025-07-30", 0), ("john", "2025-07-31", 0)]
    assert who(team, Scope(places=("p1",))) == []  # a person under a1 is not above mary's place
    assert who(team, NOTHING) == []


def test_filters_by_date_place_and_user_stay_within_the_scope(team: Store) -> None:
    hc1 = Scope(places=("hc1",))
    assert who(team, hc1, date_from="2025-07-30", date_to="2025-07-30") == [("ama", "2025-07-30", 0)]
    assert who(team, hc1, date_from="2025-07-31") == [("mary", "2025-07-31", 0), ("mary", "2025-07-31", 1)]
    assert who(team, hc1, date_to="2025-07-29") == [("mary", "2025-07-29", 0)]
    assert who(team, hc1, places=["a2"]) == [("ama", "2025-07-30", 0)]
    assert who(team, hc1, places=["hc2"]) == []  # another place: nothing, as for an empty one
    assert who(team, EVERYTHING, places=["hc2"]) == [("john", "2025-07-31", 0)]
    assert who(team, hc1, usernames=["john", "ama"]) == [("ama", "2025-07-30", 0)]
    assert who(team, EVERYTHING, limit=2, offset=1) == [("ama", "2025-07-30", 0), ("john", "2025-07-31", 0)]


def test_a_user_moved_to_another_place_moves_with_their_summaries(team: Store) -> None:
    team.users.update("ama", facility_id="a3")
    assert who(team, Scope(places=("hc2",))) == [("ama", "2025-07-30", 0), ("john", "2025-07-31", 0)]


def test_conflicting_versions_beyond_the_cap_refuse_the_batch(store: Store) -> None:
    """Endless variants of one summary would grow the table and every analyst's read without bound."""
    doc = simple()
    limits = InteractionLimits(max_conflicts=1)
    assert [(s.status, s.conflict) for s in save_summaries(store, checked(doc, other_content(doc, 1)),
                                                           received_at=NOW, limits=limits)] == [
        ("created", 0), ("conflict", 1)]
    new_day = simple(day="2025-07-30")
    with pytest.raises(TooManyConflicts) as caught:
        save_summaries(store, checked(new_day, other_content(doc, 2), other_content(doc, 3)), received_at=NOW,
                       limits=limits)
    assert caught.value.refused == [(1, doc["_id"]), (2, doc["_id"])] and caught.value.max_conflicts == 1
    assert "1 conflicting versions of this summary are already stored" in str(caught.value)
    assert rows(store) == 2  # nothing of the refused batch, not even the new day
    # the stored versions are still answered unchanged; the default cap (20) allows more
    assert statuses(store, doc, other_content(doc, 1)) == [("unchanged", 0), ("unchanged", 1)]
    assert statuses(store, other_content(doc, 2)) == [("conflict", 2)]


def test_the_conflict_cap_setting() -> None:
    assert InteractionLimits().max_conflicts == 20
    assert InteractionLimits.from_env({}) == InteractionLimits()
    assert InteractionLimits.from_env({"KAZI_INTERACTION_MAX_CONFLICTS": "3"}).max_conflicts == 3
    assert InteractionLimits.from_env({"KAZI_INTERACTION_MAX_CONFLICTS": "0"}).max_conflicts == 0
    for bad in ("-1", "many", "2.5"):
        with pytest.raises(ValueError, match="KAZI_INTERACTION_MAX_CONFLICTS"):
            InteractionLimits.from_env({"KAZI_INTERACTION_MAX_CONFLICTS": bad})
