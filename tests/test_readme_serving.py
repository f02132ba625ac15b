"""The README's "Serving" commands, run in order on a fresh store (kazi serve itself is tested in tests/server)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kazi.cli.main import main
from kazi.demo import PROGRAM_DIR
from kazi.service.tasks import TaskService
from kazi.store import open_store


def test_serving_commands_of_the_readme(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = f"sqlite:///{tmp_path / 'kazi.sqlite3'}"
    population = tmp_path / "population.json"
    assert main(["population", "--households", "120", "--seed", "2", "--end-date", "2025-08-01",
                 "--out", str(population)]) == 0
    assert main(["program", "load", str(PROGRAM_DIR), "--db", db]) == 0
    assert main(["import", str(population), "--db", db]) == 0
    users = json.loads(population.read_text())["users"]
    supervisor = next(u for u in users if "site_supervisor" in u["roles"])
    assert main(["users", "add", "mary", "--password", "correct horse battery", "--roles", "site_supervisor",
                 "--place", supervisor["facility_id"], "--contact", supervisor["contact_id"],
                 "--tz", "Africa/Blantyre", "--db", db]) == 0
    capsys.readouterr()
    store = open_store(db)
    try:
        service = TaskService(store, clock=lambda: 1754035200000)
        service.process_changes()
        mary = store.users.authenticate("mary", "correct horse battery")
        page = service.tasks(mary)
        assert page.total > 0
        assert {d["emission"]["title"] for d in page.items} == {"task.art.verify_missed_appointment.title"}
        service.close()
    finally:
        store.close()
