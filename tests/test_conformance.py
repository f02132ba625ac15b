"""Every vendored conformance case (computed by CHT's own code) must pass through Kazi."""

from __future__ import annotations

from pathlib import Path

import pytest

from kazi.conformance import Runner, format_outcome, iter_cases

SUITE = Path(__file__).resolve().parent / "conformance_suite"
CASES = list(iter_cases(SUITE / "cases"))
_runner = Runner()


def test_the_whole_suite_is_vendored() -> None:
    assert len(CASES) == 74


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_case(path: Path) -> None:
    outcome = _runner.run_case(path)
    assert outcome.passed, format_outcome(outcome)


def test_label_owner_fix_is_reported_not_hidden() -> None:
    outcome = _runner.run_case(SUITE / "cases" / "art-verification" / "art.supervisor-verification-list.json")
    assert outcome.passed
    assert any("#7677" in d for d in outcome.deviations)


def test_a_wrong_expectation_fails(tmp_path: Path) -> None:
    # The runner must be able to fail: corrupt one expected due date and expect a located diff.
    import json

    src = SUITE / "cases" / "mnch" / "mnch.anc-60-day-limit.json"
    case = json.loads(src.read_text())
    case["steps"][0]["expected"]["emissions"][0]["dueDate"] = "1999-01-01"
    target = tmp_path / "cases" / "mnch" / src.name
    target.parent.mkdir(parents=True)
    target.write_text(json.dumps(case))
    (tmp_path / "configs").symlink_to(SUITE / "configs")
    outcome = Runner().run_case(target)
    assert not outcome.passed
    assert "1999-01-01" in format_outcome(outcome)
