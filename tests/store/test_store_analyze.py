"""Planner statistics: `Store.analyze` gives SQLite the numbers that make it pick the selective index."""

from __future__ import annotations

import time

from sqlalchemy import select

from kazi.store import Store
from kazi.store.schema import docs


def _reports(n: int) -> list[dict[str, object]]:
    return [{"_id": f"r{i}", "type": "data_record", "form": "visit", "reported_date": 1_700_000_000_000 + i,
             "fields": {"patient_id": f"p{i % 500}"}} for i in range(n)]


def test_analyze_runs_and_sqlite_then_finds_a_subjects_reports_by_subject(store: Store) -> None:
    store.write_docs(_reports(2000))
    # the shape of an incremental round's read: several subjects, and a `kind` condition that SQLite, without
    # statistics, serves from the `kind` index (every report) rather than `subject` (a few)
    query = select(docs.c.id).where(docs.c.kind == "report", docs.c.subject.in_(["p7", "p8"]),
                                    docs.c.deleted.is_(False))
    t0 = time.perf_counter()
    store.analyze()
    assert time.perf_counter() - t0 < 10
    with store.engine.connect() as conn:
        assert len(conn.execute(query).all()) == 8
        if store.backend == "sqlite":
            assert conn.exec_driver_sql("SELECT count(*) FROM sqlite_stat1").scalar_one() > 0
            sql = str(query.compile(store.engine, compile_kwargs={"literal_binds": True}))
            plan = " ".join(str(r[-1]) for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql))
            assert "ix_docs_subject" in plan, plan
    store.analyze()  # again: harmless
