"""Emission across worker processes gives exactly the single-process result."""

from __future__ import annotations

from datetime import date

from kazi.demo import PROGRAM_DIR
from kazi.engine.containers import hydrate_lineage
from kazi.engine.engine import User, compute
from kazi.population import generate
from kazi.program.loader import load_program
from kazi.workers import ParallelEmissionSource, compute_parallel


def test_parallel_equals_single_process() -> None:
    pop = generate(60, 3, date(2025, 8, 1))
    docs = [*pop.contacts, *pop.reports]
    by_id = {d["_id"]: d for d in pop.contacts}
    supervisor = next(u for u in pop.users if "site_supervisor" in u["roles"])
    user = User(supervisor["username"], tuple(supervisor["roles"]),
                hydrate_lineage(by_id[supervisor["contact_id"]], by_id))
    now = 1754035200000
    program = load_program(PROGRAM_DIR)
    single = compute(program, docs=docs, user=user, now_ms=now, tz="Africa/Blantyre")
    assert single.task_docs, "the fixture must produce tasks, or the comparison proves nothing"
    with ParallelEmissionSource(PROGRAM_DIR, workers=2) as source:
        parallel = compute(source, docs=docs, user=user, now_ms=now, tz="Africa/Blantyre", batch_size=50)
    assert parallel.emissions == single.emissions
    assert parallel.task_docs == single.task_docs
    again = compute_parallel(program, workers=2, batch_size=100, docs=docs, user=user, now_ms=now,
                             tz="Africa/Blantyre")
    assert again.task_docs == single.task_docs
