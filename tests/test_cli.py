"""The command-line contract, run as the README shows it (each documented example is executed here)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from kazi.cli.main import main
from kazi.demo import PROGRAM_DIR

SUITE = Path(__file__).resolve().parent / "conformance_suite"


def test_validate_the_demo_program(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(PROGRAM_DIR)]) == 0
    assert "valid" in capsys.readouterr().out


def test_validate_reports_every_error_located(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(SUITE / "schema-errors" / "32-several-errors")]) == 1
    out = capsys.readouterr().out
    assert out.count("error") >= 4
    assert "definition" in out and "fix:" in out


def test_validate_a_folder_without_tasks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(tmp_path)]) == 1
    assert "no tasks.js or tasks.py" in capsys.readouterr().out


def _population(tmp_path: Path) -> tuple[Path, dict[str, object]]:
    out = tmp_path / "pop.json"
    assert main(["population", "--households", "200", "--seed", "1", "--end-date", "2025-08-01",
                 "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    return out, data


def test_population_is_deterministic(tmp_path: Path) -> None:
    a, _ = _population(tmp_path)
    b = tmp_path / "again.json"
    assert main(["population", "--households", "200", "--seed", "1", "--end-date", "2025-08-01",
                 "--out", str(b)]) == 0
    assert a.read_bytes() == b.read_bytes()


def test_tasks_json_and_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path, data = _population(tmp_path)
    users = data["users"]
    assert isinstance(users, list)
    supervisor = next(u for u in users if "site_supervisor" in u["roles"])
    args = ["tasks", str(PROGRAM_DIR), "--docs", str(path), "--user", supervisor["contact_id"],
            "--username", supervisor["username"], "--roles", "site_supervisor",
            "--now", "2025-08-01T10:00:00+02:00", "--tz", "Africa/Blantyre"]
    capsys.readouterr()
    assert main(args) == 0
    ready = json.loads(capsys.readouterr().out)
    assert ready and all(d["state"] == "Ready" for d in ready)
    assert all(d["_id"].startswith(f"task~org.couchdb.user:{supervisor['username']}~") for d in ready)
    assert main([*args, "--format", "table"]) == 0
    table = capsys.readouterr().out
    assert "task.art.verify_missed_appointment.title" in table
    assert main([*args, "--workers", "2"]) == 0
    assert json.loads(capsys.readouterr().out) == ready
    assert main([*args, "--all"]) == 0
    everything = json.loads(capsys.readouterr().out)
    assert len(everything["task_docs"]) >= len(ready) and everything["emissions"]


def test_tasks_rejects_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("[{\"_id\": \"a\"},")
    base = ["tasks", str(PROGRAM_DIR), "--docs", str(bad), "--user", "a", "--now", "2025-08-01T10:00:00Z"]
    assert main([*base, "--tz", "Africa/Blantyre"]) == 1
    assert "invalid JSON at line 1" in capsys.readouterr().err
    bad.write_text("[]")
    assert main([*base, "--tz", "Mars/Olympus"]) == 1
    assert "not an IANA time zone" in capsys.readouterr().err
    assert main(["tasks", str(PROGRAM_DIR), "--docs", str(bad), "--user", "a", "--now", "2025-08-01T10:00",
                 "--tz", "UTC"]) == 1
    assert "offset" in capsys.readouterr().err


def test_conformance_command_ends_with_the_count(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["conformance", str(SUITE / "cases" / "mnch")]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == "23 passed, 0 failed"
    # A broken expectation fails with exit 1 and a diff.
    cases = tmp_path / "cases" / "mnch"
    cases.mkdir(parents=True)
    (tmp_path / "configs").symlink_to(SUITE / "configs")
    case = json.loads((SUITE / "cases" / "mnch" / "mnch.anc-60-day-limit.json").read_text())
    case["steps"][0]["expected"]["tasks_tab"] = ["nope"]
    (cases / "broken.json").write_text(json.dumps(case))
    shutil.copy(SUITE / "cases" / "mnch" / "mnch.delivery-then-pnc.json", cases)
    assert main(["conformance", str(tmp_path / "cases")]) == 1
    out = capsys.readouterr().out
    assert "tasks_tab differs" in out and out.strip().splitlines()[-1] == "1 passed, 1 failed"


def test_demo_print_runs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--print", "--households", "40", "--date", "2025-08-01"]) == 0
    out = capsys.readouterr().out
    assert "site_supervisor" in out and "online" in out and "tasks ready" in out
