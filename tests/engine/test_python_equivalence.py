"""A ``tasks.py`` program must compute exactly what its ``tasks.js`` twin computes.

``tests/fixtures/python_programs/<config>`` are line-by-line Python translations of the four conformance
configs: ``mnch``; ``engine-edges``, whose ``utils_probe`` records every ``Utils`` function;
``art-verification`` (``cht.v1`` permissions with ``!``); ``immunization-sms`` (a Python extension lib,
task schedules).
Every case of those configs (recorded from CHT's own code) is replayed through the Python program with the
suite's runner: emissions, task documents and the Tasks tab must match the recorded output, as they must for
the JavaScript original.  A second check compares the two programs' internal emissions directly (including
the raw ``resolvedIf`` values), step by step.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kazi.conformance import Runner, format_outcome, iter_cases
from kazi.engine.containers import marshal
from kazi.engine.engine import User, emit, split_docs
from kazi.program.loader import Program, load_program

TESTS = Path(__file__).resolve().parents[1]
SUITE = TESTS / "conformance_suite"
PROGRAMS = TESTS / "fixtures" / "python_programs"
# config folder name -> number of cases in the suite
TRANSLATED = {"mnch": 23, "engine-edges": 21, "art-verification": 18, "immunization-sms": 12}


def _cases(config: str) -> list[Path]:
    folder = SUITE / "cases" / config
    return list(iter_cases(folder)) if folder.is_dir() else []


CASES = [p for name in TRANSLATED for p in _cases(name)]

pytestmark = pytest.mark.skipif(not CASES, reason="conformance suite not vendored")


class PythonRunner(Runner):
    """The suite's runner, with each translated config replaced by its Python translation."""

    def __init__(self) -> None:
        super().__init__()
        self.python = {name: load_program(PROGRAMS / name) for name in TRANSLATED}

    def program(self, path: Path) -> Program:
        if path.name in self.python:
            return self.python[path.name]
        return super().program(path)


_runner: PythonRunner | None = None


def runner() -> PythonRunner:
    global _runner
    if _runner is None:
        _runner = PythonRunner()
    return _runner


@pytest.mark.parametrize("name", sorted(TRANSLATED))
def test_the_python_program_loads_as_python(name: str) -> None:
    program = runner().python[name]
    assert program.kind == "python"
    javascript = load_program(SUITE / "configs" / name)

    def located(p: Any) -> tuple[Any, ...]:
        return (p.rule, p.definition_index, p.definition_name, p.field)

    assert [located(w) for w in program.warnings] == [located(w) for w in javascript.warnings]
    js_settings = json.loads((SUITE / "configs" / name / "settings.json").read_text())
    assert program.settings == js_settings


@pytest.mark.parametrize("name", sorted(TRANSLATED))
def test_every_case_is_replayed(name: str) -> None:
    assert len(_cases(name)) == TRANSLATED[name]


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_case_through_the_python_program(path: Path) -> None:
    outcome = runner().run_case(path)
    assert outcome.steps, "no step ran"
    assert outcome.passed, format_outcome(outcome)


def _emissions(program: Program, db: dict[str, Any], case: dict[str, Any], now: int) -> list[Any]:
    contacts, reports, _ = split_docs(db.values())
    u = case["user"]
    user = User(u["name"], tuple(u["roles"]), u["contact"])
    out, errors = emit(program, marshal(contacts, reports, []), user=user, now_ms=now, tz=case["timezone"])
    assert not errors
    return sorted(out, key=lambda e: (e["_id"], json.dumps(e, sort_keys=True)))


@pytest.mark.parametrize("name", sorted(TRANSLATED))
def test_python_and_javascript_emissions_are_identical(name: str) -> None:
    """Internal emissions (``_k_resolved_raw`` included) of both programs, at every step of every case.

    Both programs get the same containers (built from the step's contacts and reports), so this compares the
    two emitters alone, independently of the refresh-scope details the runner reproduces.
    """
    python = runner().python[name]
    javascript = load_program(SUITE / "configs" / name)
    assert javascript.kind == "js"
    steps = 0
    for path in _cases(name):
        case = json.loads(path.read_text())
        db: dict[str, Any] = {}
        for step in case["steps"]:
            for doc_id in step.get("remove", []):
                db.pop(doc_id, None)
            db.update({d["_id"]: d for d in step.get("add", []) if d.get("type") != "task"})
            now = step["expected"]["now_ms"]
            got, want = _emissions(python, db, case, now), _emissions(javascript, db, case, now)
            assert got == want, f"{case['id']} at {step['now']}"
            steps += 1
    assert steps == sum(len(json.loads(p.read_text())["steps"]) for p in _cases(name))
