"""Emission across worker processes gives exactly the single-process result."""

from __future__ import annotations

from datetime import date

from kazi.demo import PROGRAM_DIR
from kazi.demo.population import generate
from kazi.engine.containers import hydrate_lineage
from kazi.engine.engine import User, compute
from kazi.program.loader import load_program
from kazi.service.emission_pool import ParallelEmissionSource, compute_parallel


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


def test_a_failing_contact_in_a_worker_is_reported_and_the_others_still_emit() -> None:
    from pathlib import Path

    import pytest

    from kazi.errors import ConfigCodeError

    program_dir = Path(__file__).resolve().parent / "fixtures" / "js_programs" / "sandbox"
    people = [{"_id": f"p{i}", "type": "person", "name": f"P{i}", "reported_date": 1754000000000}
              for i in range(6)]
    people[3]["behaviour"] = "throw"
    user = User("u", ("chw",), None)
    with ParallelEmissionSource(program_dir, workers=2) as source:
        result = compute(source, docs=people, user=user, now_ms=1754035200000, tz="UTC", batch_size=2,
                         collect_errors=True)
        assert [e.contact_id for e in result.errors] == ["p3"]
        assert "cannot resolve p3" in str(result.errors[0]) and result.errors[0].file.startswith("rules.js:")
        assert {e["requester"] for e in result.emissions} == {"p0", "p1", "p2", "p4", "p5"}
        with pytest.raises(ConfigCodeError, match="cannot resolve p3"):
            compute(source, docs=people, user=user, now_ms=1754035200000, tz="UTC", batch_size=2)
