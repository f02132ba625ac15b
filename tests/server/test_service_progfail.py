"""Program code that fails: what it may cost, and what it may not.

A callback that throws, overflows the stack, runs out of memory or loops costs the containers it fails for
(they keep their task documents, the error is stored for admins) and a bounded time; it never cancels real
tasks, never stops anyone else's round, never blocks a read or a program change, and a new version that
fails on the stored population is refused before it goes live. The programs are small ``tasks.js`` files
written by each test: ``misbehave`` does what a contact's ``behaviour`` field says, when ``BEHAVE`` is on.
"""

from __future__ import annotations

import io
import signal
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from kazi.program.limits import ProgramLimits
from kazi.server.api import create_app
from kazi.service.tasks import TaskService
from kazi.store import Store, open_store
from kazi.store import tracking as tr
from kazi.store.schema import task_stats

TZ = "Africa/Blantyre"
NOW = int(datetime(2025, 8, 1, 8, tzinfo=ZoneInfo(TZ)).timestamp() * 1000)
NO_PREFLIGHT = ProgramLimits(preflight_containers=0)

TASKS_JS = """
function misbehave(contact) {
  if (!BEHAVE) { return; }
  var b = contact.behaviour;
  if (b === 'throw') { throw new Error('cannot visit ' + contact._id); }
  if (b === 'stack') { var f = function (n) { return f(n + 1) + 1; }; f(0); }
  if (b === 'memory') { var chunks = []; for (;;) { chunks.push(new Array(1e6).fill(chunks.length)); } }
  if (b === 'loop' || BEHAVE === 'loop') { for (;;) { /* runaway */ } }
}
module.exports = [{
  name: 'visit', title: 'TITLE', appliesTo: 'contacts', appliesToType: ['person'],
  appliesIf: function (c) { misbehave(c.contact); return c.contact.role !== 'chw'; },
  resolvedIf: function () { return false; },
  events: [{ id: 'e', start: 30, end: 30, dueDate: function () { return Utils.now(); } }],
  actions: [{ form: 'visit' }],
}];
"""


def program(root: Path, name: str, *, title: str, behave: str = "false") -> Path:
    """A one-definition program: a visit task for every person but the CHW, titled ``title``."""
    folder = root / name
    folder.mkdir()
    (folder / "tasks.js").write_text(TASKS_JS.replace("TITLE", title).replace("BEHAVE", behave))
    return folder


def zipped(folder: Path) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for p in sorted(folder.rglob("*")):
            zf.write(p, p.relative_to(folder).as_posix())
    return buf.getvalue()


def _stub(*chain: str) -> dict[str, Any] | None:
    node: dict[str, Any] | None = None
    for cid in reversed(chain):
        node = {"_id": cid, **({"parent": node} if node else {})}
    return node


def population(store: Store, behaviours: dict[str, str], *, areas: int = 1) -> None:
    """Health centre ``hc`` with ``areas`` areas (area0, area1...), each with a CHW (user ``chw<i>``) and the
    persons of ``behaviours`` (id -> behaviour; in every area, ids suffixed ``-a<i>`` beyond the first)."""
    docs: list[dict[str, Any]] = [{"_id": "hc", "type": "health_center", "name": "HC"}]
    for a in range(areas):
        area = f"area{a}"
        docs.append({"_id": area, "type": "clinic", "name": area, "parent": _stub("hc")})
        docs.append({"_id": f"chw{a}-person", "type": "person", "role": "chw", "name": f"CHW {a}",
                     "parent": _stub(area, "hc")})
        for pid, behaviour in behaviours.items():
            docs.append({"_id": pid if a == 0 else f"{pid}-a{a}", "type": "person", "name": pid,
                         "behaviour": behaviour, "parent": _stub(area, "hc"), "reported_date": NOW - 86_400_000})
    store.write_docs(docs)
    for a in range(areas):
        store.users.create(f"chw{a}", password="password1", roles=["chw"], facility_id=f"area{a}",
                           contact_id=f"chw{a}-person", timezone=TZ)
    store.users.create("admin", password="admin-password", roles=["admin"])


def stats(store: Store) -> list[tuple[Any, ...]]:
    with store.engine.connect() as conn:
        return sorted(tuple(r) for r in conn.execute(select(task_stats)))


def by_owner(store: Store, username: str) -> dict[str, list[dict[str, Any]]]:
    user = store.users.get(username)
    out: dict[str, list[dict[str, Any]]] = {}
    for d in store.task_docs(user):
        out.setdefault(str(d["owner"]), []).append(d)
    return out


# -- a container whose code fails keeps its task documents --------------------------------------------------


@pytest.mark.parametrize("behaviour,kind,limits", [
    ("throw", "exception", NO_PREFLIGHT),
    ("stack", "exception", NO_PREFLIGHT),
    ("memory", "memory", ProgramLimits(preflight_containers=0, memory_mb=64, time_limit_s=10)),
])
def test_failing_containers_keep_their_tasks_and_stats_while_the_others_update(
        store: Store, tmp_path: Path, behaviour: str, kind: str, limits: ProgramLimits) -> None:
    population(store, {"p0": "ok", "p1": behaviour, "p2": "ok", "p3": behaviour if behaviour == "throw" else "ok"})
    service = TaskService(store, clock=lambda: NOW, limits=limits)
    service.load_program(program(tmp_path, "v1", title="task.v1"))
    service.process_changes()
    before = by_owner(store, "chw0")
    assert sorted(before) == ["p0", "p1", "p2", "p3"]
    counted = stats(store)

    service.load_program(program(tmp_path, "v2", title="task.v2", behave="true"))
    service.process_changes()
    after = by_owner(store, "chw0")
    failing = ["p1", "p3"] if behaviour == "throw" else ["p1"]
    for pid in failing:  # untouched: not Cancelled, not rewritten
        assert after[pid] == before[pid]
    for pid in sorted(set(before) - set(failing)):  # the others follow the new version
        assert [d["emission"]["title"] for d in after[pid]] == ["task.v2"]
        assert [d["state"] for d in after[pid]] == ["Ready"]
    # nothing was cancelled: the supervision counts hold the same tasks (the others' under their new title)
    assert [row[-1] for row in stats(store)] == [0] * len(stats(store))
    assert sum(row[4] for row in stats(store)) == sum(row[4] for row in counted)
    assert [row for row in stats(store) if row[3] == "task.v1"] == [
        (*row[:4], len(failing), *row[5:]) for row in counted]

    errors = service.errors()
    assert sorted((e["contact_id"], e["kind"], e["count"]) for e in errors) == [(p, kind, 1) for p in failing]
    assert all(e["definition_name"] == "visit" and e["program_version"] == 2 for e in errors)
    if behaviour == "stack":
        assert all("Maximum call stack size exceeded" in e["message"] for e in errors)
    # the same error again (the contact changes, and still fails) is counted, not listed twice
    store.write_docs([{**store.get_doc("p1"), "notes": "edited"}])
    service.process_changes()
    assert {e["contact_id"]: e["count"] for e in service.errors()}["p1"] == 2
    assert by_owner(store, "chw0")["p1"] == before["p1"]
    service.close()


def test_a_huge_container_is_isolated_without_failing_the_round(store: Store, tmp_path: Path) -> None:
    """A contact stored before size limits existed, larger than a container may be: never sent to V8, its
    tasks kept, an error stored; every other contact and user is computed."""
    population(store, {"p0": "ok", "p1": "ok"}, areas=2)
    limits = ProgramLimits(preflight_containers=0, max_container_mb=0.5)
    service = TaskService(store, clock=lambda: NOW, limits=limits)
    service.load_program(program(tmp_path, "v1", title="task.v1"))
    service.process_changes()
    before = by_owner(store, "chw0")
    store.write_docs([{**store.get_doc("p1"), "notes": "x" * 1_000_000}])
    service.load_program(program(tmp_path, "v2", title="task.v2"))
    service.process_changes()
    after = by_owner(store, "chw0")
    assert after["p1"] == before["p1"]
    assert [d["emission"]["title"] for d in after["p0"]] == ["task.v2"]
    assert [d["emission"]["title"] for d in by_owner(store, "chw1")["p0-a1"]] == ["task.v2"]
    assert [(e["contact_id"], e["kind"]) for e in service.errors()] == [("p1", "size")]
    service.close()


# -- the pre-flight --------------------------------------------------------------------------------------------


def test_a_version_that_fails_on_the_stored_population_is_refused(store: Store, tmp_path: Path) -> None:
    population(store, {"p0": "ok", "p1": "throw", "p2": "ok"})
    app = create_app(store=store, now=NOW)
    admin = ("admin", "admin-password")
    with TestClient(app) as client:
        good = client.post("/api/v1/program", content=zipped(program(tmp_path, "v1", title="task.v1")), auth=admin)
        assert good.status_code == 200 and good.json()["version"] == 1
        bad = client.post("/api/v1/program", content=zipped(program(tmp_path, "v2", title="task.v2", behave="true")),
                          auth=admin)
        assert bad.status_code == 422, bad.text
        error = bad.json()["error"]
        assert "the previous one keeps running" in error["message"]
        assert [(p["contact_id"], p["definition_name"], p["rule"]) for p in error["problems"]] == [
            ("p1", "visit", "preflight")]
        assert "cannot visit p1" in error["problems"][0]["message"]
        assert client.get("/api/v1/program", auth=admin).json()["version"] == 1
        # a program that loops is refused within the pre-flight's time, not after every contact's time limit
        started = time.monotonic()
        looping = client.post("/api/v1/program", auth=admin,
                              content=zipped(program(tmp_path, "v3", title="task.v3", behave="'loop'")))
        assert looping.status_code == 422 and time.monotonic() - started < 15
        stuck = looping.json()["error"]["problems"][0]
        assert stuck["contact_id"] in {"p0", "p1", "p2", "chw0-person"} and stuck["definition_name"] == "visit"
        assert client.get("/api/v1/program", auth=admin).json()["version"] == 1
        assert [t["emission"]["title"] for t in client.get("/api/v1/tasks", auth=("chw0", "password1")).json()[
            "items"]] == ["task.v1"] * 3


def test_kazi_program_load_refuses_a_version_that_fails_on_the_stored_population(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from kazi.cli.main import main

    url = f"sqlite:///{tmp_path / 'kazi.sqlite3'}"
    with open_store(url) as store:
        population(store, {"p0": "ok", "p1": "throw"})
    assert main(["program", "load", str(program(tmp_path, "v1", title="task.v1")), "--db", url]) == 0
    assert main(["program", "load", str(program(tmp_path, "v2", title="task.v2", behave="true")), "--db", url]) == 1
    err = capsys.readouterr().err
    assert "not loaded, the previous program stays active" in err
    assert 'tasks.js:5, definition 0 ("visit"), contact p1' in err and "cannot visit p1" in err
    with open_store(url) as store:
        assert tr.active_program_version(store) == 1


# -- stuck computations --------------------------------------------------------------------------------------


def test_code_that_loops_for_every_contact_blocks_no_read_and_no_program_change(store: Store, tmp_path: Path) -> None:
    population(store, {f"p{i}": "ok" for i in range(12)}, areas=3)
    limits = ProgramLimits(preflight_containers=0, time_limit_s=1.0, max_aborts=1, read_compute_s=1.5)
    admin = ("admin", "admin-password")
    app = create_app(store=store, now=NOW, background_interval_s=0.2, limits=limits)
    with TestClient(app) as client:
        assert client.post("/api/v1/program", auth=admin,
                           content=zipped(program(tmp_path, "v1", title="task.v1"))).status_code == 200
        assert client.post("/api/v1/program", auth=admin,
                           content=zipped(program(tmp_path, "v2", title="task.v2", behave="'loop'"))).status_code == 200
        for _ in range(2):
            started = time.monotonic()
            page = client.get("/api/v1/tasks", auth=("chw0", "password1"))
            assert page.status_code == 200
            assert time.monotonic() - started < 4.0  # the read gave up computing: the stored list
        started = time.monotonic()
        assert client.post("/api/v1/program", auth=admin,
                           content=zipped(program(tmp_path, "v3", title="task.v3"))).status_code == 200
        assert time.monotonic() - started < 4.0
        # the worker drops the stuck version and recomputes everyone with the new one, without a restart
        chw2 = store.users.get("chw2")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            state = tr.task_user_state(store, chw2.id)
            if state is not None and state.program_version == 3:
                break
            time.sleep(0.2)
        assert state is not None and state.program_version == 3
        titles = {d["emission"]["title"] for d in store.task_docs(chw2, states=["Ready"])}
        assert titles == {"task.v3"}
        items = client.get("/api/v1/tasks", auth=("chw0", "password1")).json()["items"]
        assert {t["emission"]["title"] for t in items} == {"task.v3"}


def test_errors_of_the_worker_are_listed_by_the_api(store: Store, tmp_path: Path) -> None:
    population(store, {"p0": "ok", "p1": "throw"})
    service = TaskService(store, clock=lambda: NOW, limits=NO_PREFLIGHT)
    service.load_program(program(tmp_path, "v1", title="task.v1", behave="true"))
    service.close()
    app = create_app(store=store, now=NOW, background_interval_s=0.2, limits=NO_PREFLIGHT)
    with TestClient(app) as client:
        deadline = time.monotonic() + 20
        listed: list[dict[str, Any]] = []
        while time.monotonic() < deadline and not listed:
            listed = client.get("/api/v1/program/errors", auth=("admin", "admin-password")).json()
            time.sleep(0.2)
        assert [(e["contact_id"], e["last_process"], e["kind"]) for e in listed] == [("p1", "worker", "exception")]
        assert listed[0]["first_seen"] <= listed[0]["last_seen"] and "cannot visit p1" in listed[0]["text"]
        assert client.get("/api/v1/program/errors", auth=("chw0", "password1")).status_code == 403


# -- stopping ----------------------------------------------------------------------------------------------


@pytest.fixture
def looping_db(tmp_path: Path) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'kazi.sqlite3'}"
    with open_store(url) as store:
        population(store, {f"p{i}": "ok" for i in range(6)}, areas=2)
        service = TaskService(store, clock=lambda: NOW, limits=NO_PREFLIGHT)
        service.load_program(program(tmp_path, "v1", title="task.v1", behave="'loop'"))
        service.close()
    yield url


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True, check=False)
    return [int(x) for x in out.stdout.split()]


def test_kazi_serve_stops_within_5_s_of_sigterm_mid_computation(looping_db: str, tmp_path: Path) -> None:
    import os
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    # every call into V8 may run 60 s, and so may a read: only the stop can end them
    env = {**os.environ, "KAZI_PROGRAM_TIME_LIMIT_S": "60", "KAZI_READ_COMPUTE_S": "60"}
    proc = subprocess.Popen([sys.executable, "-m", "kazi.cli.main", "serve", "--port", str(port), "--db", looping_db],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/healthz", timeout=2, trust_env=False).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        workers = _children(proc.pid)
        assert workers, "kazi serve started no worker process"
        # a read that computes (stuck in the program's loop) and the worker's round, both mid-computation
        reading = threading.Thread(target=lambda: httpx.get(f"{base}/api/v1/tasks", auth=("chw0", "password1"),
                                                            timeout=90, trust_env=False), daemon=True)
        reading.start()
        time.sleep(3.0)
        assert proc.poll() is None
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
        took = time.monotonic() - started
        assert took < 5.0, f"kazi serve took {took:.1f} s to stop"
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline and any(Path(f"/proc/{w}").exists() for w in workers):
            time.sleep(0.1)
        alive = [w for w in workers if Path(f"/proc/{w}").exists()
                 and "Z" not in Path(f"/proc/{w}/stat").read_text().split()[2]]
        assert not alive, "the worker process outlived the server"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for w in _children(proc.pid):
            os.kill(w, signal.SIGKILL)
