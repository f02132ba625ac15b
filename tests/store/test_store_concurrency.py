"""Several processes writing at once: nothing lost, nothing half-written, sequence numbers without gaps.

Run on both backends; on SQLite it is the WAL + BEGIN IMMEDIATE + busy timeout design under real contention
between processes, on PostgreSQL the counter-row lock that keeps commits in sequence order.
"""

from __future__ import annotations

import multiprocessing
import time
from typing import Any

from sqlalchemy import func, select, text

from kazi.store import Store, open_store
from kazi.store.schema import changes, doc_ancestors, docs

WRITERS = 4
ROUNDS = 15
PER_BATCH = 10


def _writer(url: str, wid: int, start: Any) -> None:
    """One writer process (forked, so it starts at once; it opens its own connections)."""
    store = open_store(url)
    start.wait()
    for r in range(ROUNDS):
        # a pause between batches, as a client has: SQLite's lock is not fair, and a writer that retakes it
        # at once can keep the others sleeping in their busy handler until it is done
        time.sleep(0.003)
        batch: list[dict[str, object]] = [
            {"_id": f"w{wid}-{r}-{i}", "type": "person", "parent": {"_id": "hc"}, "patient_id": f"{wid}.{r}.{i}"}
            for i in range(PER_BATCH)]
        batch.append({"_id": "shared", "type": "clinic", "parent": {"_id": "hc"}, "last_writer": f"{wid}.{r}"})
        store.write_docs(batch)
    store.close()


def test_concurrent_writers_keep_the_store_whole(store: Store, store_url: str) -> None:
    store.write_doc({"_id": "hc", "type": "health_center"})
    fork = multiprocessing.get_context("fork")
    start = fork.Barrier(WRITERS)
    procs = [fork.Process(target=_writer, args=(store_url, w, start)) for w in range(WRITERS)]
    for p in procs:
        p.start()
    # meanwhile, a reader following the change log must see sequence numbers arrive in order, without gaps
    seen = [c.seq for c in store.changes_since(0)]
    deadline = time.monotonic() + 120
    while any(p.is_alive() for p in procs) and time.monotonic() < deadline:
        batch = store.changes_since(seen[-1], limit=10_000)
        assert [c.seq for c in batch] == list(range(seen[-1] + 1, seen[-1] + 1 + len(batch)))
        seen.extend(c.seq for c in batch)
        time.sleep(0.005)
    for p in procs:
        p.join(timeout=60)
    assert [p.exitcode for p in procs] == [0] * WRITERS

    writes = 1 + WRITERS * ROUNDS * (PER_BATCH + 1)
    log = store.changes_since(0, limit=10_000)
    assert [c.seq for c in log] == list(range(1, writes + 1))
    assert store.last_seq() == writes
    assert seen == [c.seq for c in log[:len(seen)]]
    writers = [c.id.split("-")[0] for c in log if c.id.startswith("w")]
    assert sum(a != b for a, b in zip(writers, writers[1:], strict=False)) > WRITERS, "the writers did not overlap"
    with store.engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(docs)) == 2 + WRITERS * ROUNDS * PER_BATCH
        assert conn.scalar(select(func.count()).select_from(changes)) == writes
        # every person and "shared" have exactly two lineage rows (itself, hc), hc has one
        contacts_below_hc = WRITERS * ROUNDS * PER_BATCH + 1
        assert conn.scalar(select(func.count()).select_from(doc_ancestors)) == 2 * contacts_below_hc + 1
        if store.backend == "sqlite":
            assert conn.execute(text("PRAGMA integrity_check")).scalar() == "ok"
            assert conn.execute(text("PRAGMA foreign_key_check")).all() == []
    shared = store.get_doc("shared")
    last_shared = max(c.seq for c in log if c.id == "shared")
    assert shared["_rev"] == next(c.rev for c in log if c.seq == last_shared)
    assert shared["_rev"].startswith(f"{WRITERS * ROUNDS}-")
    assert len(store.docs_for_subjects([f"{w}.{ROUNDS - 1}.0" for w in range(WRITERS)])) == WRITERS
