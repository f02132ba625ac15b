"""`kazi serve --program DIR` (create_app(program_dir=...)) at every start: a new program version only when the
folder's files differ from the active version's; otherwise the active version stays and nobody is recomputed.
On SQLite and PostgreSQL."""

from __future__ import annotations

import shutil
from pathlib import Path

from fastapi.testclient import TestClient

from kazi.server.api import create_app
from kazi.service.tasks import TaskService
from kazi.store import Store
from kazi.store import tracking as tr

PROGRAM = Path(__file__).resolve().parent / "program"
NOW = 1_754_035_200_000  # 2025-08-01T08:00:00Z


def _start(store: Store, program_dir: Path) -> tuple[int, int]:
    """A server start with ``--program``: (the active version it serves, the computations of its first round)."""
    service = TaskService(store, clock=lambda: NOW)
    try:
        with TestClient(create_app(store=store, service=service, program_dir=program_dir)) as client:
            version = client.get("/api/v1/program", auth=("admin", "admin-password")).json()["version"]
        return version, service.process_changes()
    finally:
        service.close()


def test_serving_the_same_program_again_keeps_its_version(store: Store, tmp_path: Path) -> None:
    store.write_docs([{"_id": "hc", "type": "health_center", "name": "HC"}])
    store.users.create("admin", password="admin-password", roles=["admin"])
    store.users.create("mary", password="mary-password", roles=["chw"], facility_id="hc")
    assert _start(store, PROGRAM) == (1, 2)  # first start: stored, everyone computed
    states = tr.task_user_states(store)
    assert _start(store, PROGRAM) == (1, 0)  # a restart: same version, nothing recomputed
    assert tr.task_user_states(store) == states
    assert [p.version for p in tr.program_versions(store)] == [1]

    changed = tmp_path / "program"
    shutil.copytree(PROGRAM, changed)
    with (changed / "tasks.js").open("a") as f:
        f.write("\n// a comment is a change: the files differ\n")
    assert _start(store, changed) == (2, 2)
    assert _start(store, changed) == (2, 0)
    (changed / "targets.js").write_text("module.exports = [];\n")  # not a file the program runs with
    assert _start(store, changed) == (2, 0)

    # settings imported over the active version: the folder alone is another program, stored again
    service = TaskService(store, clock=lambda: NOW)
    assert service.import_settings({"permissions": {"can_view_tasks": ["chw"]}}).version == 3
    service.close()
    assert _start(store, changed) == (4, 2)
    active = tr.active_program(store)
    assert active is not None and active.settings_override is None

    # an explicit load (kazi program load, the API's upload) always makes a new version, as before
    service = TaskService(store, clock=lambda: NOW)
    assert service.load_program(changed).version == 5
    service.close()
