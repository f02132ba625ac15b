"""Crash safety of `kazi serve`, on SQLite and PostgreSQL: writes go on while the API process and the worker
process are killed with SIGKILL and restarted, and afterwards the store holds exactly what was acknowledged.

A real `kazi serve` (which starts `kazi worker` as its own process) runs on a fresh store holding the demo
program, a small demo population and the demo accounts. Three client threads write all along, as a phone and a
gateway do:

* the CHW posts batches of documents (``POST /api/v1/docs``: a new person with her pregnancy registration, a
  danger sign about a patient of her area) and now and then reads her Tasks list (the API computes it:
  read-your-writes);
* the CHW and the site supervisor submit forms (``POST /api/v1/reports``: deliveries and ANC visits for the
  pregnancies registered above, verifications of missed appointments);
* the SMS gateway account posts messages (``POST /api/v1/sms/messages``: pregnancies registered by SMS,
  deliveries of SMS-registered patients, clients' visit requests, messages from unknown numbers).

Meanwhile the test kills the worker (``kazi serve`` starts it again), the server (the test starts it again:
its worker ends by itself), or both at once. A client whose answer is lost (connection reset, refused, timed
out) sends the same request again, same ``_id`` and same gateway id, as a real client does, until it gets an
answer; a share of the acknowledged writes is sent again on purpose, and must be answered as the first was.
Just before each server kill the CHW registers a pregnancy due for a visit today, and her first read after the
restart must list its task (read-your-writes across a crash). Then, once the worker has caught up:

* every acknowledged write is stored exactly once: a document under its ``_id`` with the content sent and
  revision 1 (a retry stored nothing again); an SMS message once under its gateway id, with the outcome the
  client was told, its report once and, for a registration, its person once;
* nothing is stored that no client sent: every document is the population's, one a client sent, or one of a
  stored message; every batch is stored whole or not at all; the population is untouched;
* every user's task documents are what a computation from scratch over the stored documents gives at the same
  instant (the server's clock is frozen), compared without ``_rev`` (how often a document was written) and
  ``stateHistory`` (a stored document remembers the states it went through, e.g. Ready then Completed; one
  computed from scratch starts in its present state), and without the stored Cancelled documents (the trace
  of emissions that ended; from scratch no document is created for them). A recompute over the stored task
  documents writes nothing, no emission has two open documents, and the supervision statistics
  (``task_stats``) equal the counts of the task documents. Supervisor-task documents are checked for
  duplicates only: they are computed from the workers' tasks as they stood at the supervisor's last
  computation, which may precede the workers' last one (documented latency, kazi.service.supervisor_tasks).

The numbers of writes, retries and kills are printed (``pytest -s``).
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from worker_processes import worker_pids

from kazi.demo.load import DemoUser, load_demo
from kazi.demo.population import DEFAULT_TZ, generate
from kazi.engine import taskdocs
from kazi.engine.engine import compute
from kazi.program.loader import Program
from kazi.service.supervisor_tasks import is_supervisor_doc
from kazi.service.tasks import TaskService, task_scope
from kazi.store import Store, StoredUser, documents
from kazi.store import contacts as store_contacts
from kazi.store import task_stats as stats
from kazi.store import tracking as tr
from kazi.store.schema import docs as docs_table
from kazi.store.schema import sms_messages, task_docs, task_stats
from kazi.store.scope import Scope

NOW_ISO = "2025-08-01T10:00:00+02:00"
NOW = int(datetime.fromisoformat(NOW_ISO).timestamp() * 1000)
DAY = date(2025, 8, 1)
HOUSEHOLDS = 40
#: seconds of client traffic before each kill, counted from the moment everything is up again, and after the
#: last one
GAP_S = 3.0
#: acknowledged writes of each kind (documents, reports, SMS) the traffic goes on for at least, for at most
#: ``MIN_EXTRA_S`` after the last gap (a loaded machine serves fewer)
MIN_ACKED = 40
MIN_EXTRA_S = 30.0
#: what is killed, in order: the worker alone (`kazi serve` restarts it), the server alone (its worker ends
#: with it; the test restarts the server), both at once
KILLS = ("worker", "server", "worker", "both", "server")
#: requests per client thread at most (the traffic is bounded in count as well as in time)
MAX_REQUESTS = 3000
#: the share of acknowledged writes a client sends once more, as a client that lost the answer would (the
#: kills lose only the answers in flight at that instant: a few per kill)
ECHO = 0.15
#: one request's timeout, and how long a client keeps sending one write whose answer it did not get
REQUEST_TIMEOUT_S = 10.0
RETRY_FOR_S = 45.0
#: how long the server may take to answer after a start, and the worker to catch up at the end
START_TIMEOUT_S = 40.0
CATCH_UP_TIMEOUT_S = 60.0
#: task-document members that legitimately differ from a computation from scratch (module docstring)
VOLATILE = ("_rev", "stateHistory")
#: a second account of the demo CHW (her contact, her place): its writes and reads before and after each server
#: kill check read-your-writes, with no other client's request of that account in the way (a read waits at
#: most REFRESH_WAIT_S for a computation of the same user in progress, then answers what is stored)
PROBE = DemoUser("chw-probe", "probe-password-1", ["chw"], False)
NAMES = ["Mary", "Grace", "Chisomo", "Esther", "Agnes", "Tiwonge", "Thoko", "Alinafe", "Mphatso", "Tamara"]
SURNAMES = ["Banda", "Phiri", "Mwale", "Zulu", "Kamanga", "Moyo", "Nkhoma", "Chirwa"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------------------------------------
# the server and its worker, as processes


class Server:
    """`kazi serve` on one port and one database, started, killed and started again (each start logs to a
    file of its own in ``workdir``)."""

    def __init__(self, db_url: str, workdir: Path) -> None:
        self.db_url = db_url
        self.workdir = workdir
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.start_s: list[float] = []  # how long each start took to answer

    def start(self) -> None:
        self.starts += 1
        log = (self.workdir / f"serve-{self.starts}.log").open("wb")
        cmd = [sys.executable, "-m", "kazi.cli.main", "serve", "--port", str(self.port), "--db", self.db_url,
               "--now", NOW_ISO]
        self.proc = subprocess.Popen(cmd, cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        began = time.monotonic()
        while time.monotonic() < began + START_TIMEOUT_S:
            if self.proc.poll() is not None:
                break
            try:
                if httpx.get(f"{self.base}/healthz", timeout=2, trust_env=False).status_code == 200:
                    self.start_s.append(round(time.monotonic() - began, 1))
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        pytest.fail(f"kazi serve did not answer (start {self.starts}):\n{self.logs()[-3000:]}")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        """SIGINT (a clean stop, its worker with it), SIGKILL if that takes too long; then any worker left."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        deadline = time.monotonic() + 10
        while self.worker_pids() and time.monotonic() < deadline:
            time.sleep(0.1)
        for pid in self.worker_pids():
            os.kill(pid, signal.SIGKILL)

    def worker_pids(self, *, current: bool = False) -> list[int]:
        """The `kazi worker` processes on this database; ``current``: only the running server's."""
        return worker_pids(self.db_url, self.proc.pid if current and self.proc is not None else None)

    def wait_worker(self, other_than: set[int], timeout: float = 20.0) -> int:
        """The pid of the running server's worker, when it is not among ``other_than`` (a new one, after a
        kill)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            fresh = [p for p in self.worker_pids(current=True) if p not in other_than]
            if fresh:
                return fresh[0]
            time.sleep(0.05)
        pytest.fail(f"no new kazi worker within {timeout} s:\n{self.logs()[-3000:]}")

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.workdir.glob("serve-*.log")))


# --------------------------------------------------------------------------------------------------------
# what the clients sent and what they were told


@dataclass
class Ledger:
    """Every write the clients sent and every acknowledgement they got (shared by the client threads)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    docs_sent: dict[str, dict[str, Any]] = field(default_factory=dict)  # POST /docs: _id -> document
    batches: list[list[str]] = field(default_factory=list)
    docs_acked: dict[str, str] = field(default_factory=dict)  # _id -> the rev answered
    reports_sent: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)  # _id -> (user, body)
    reports_acked: dict[str, dict[str, Any]] = field(default_factory=dict)  # _id -> answer
    sms_sent: dict[str, dict[str, Any]] = field(default_factory=dict)  # gateway id -> message
    sms_acked: dict[str, dict[str, Any]] = field(default_factory=dict)  # gateway id -> result
    pregnancies: list[tuple[str, str]] = field(default_factory=list)  # acked (person _id, registration _id)
    sms_patients: list[str] = field(default_factory=list)  # patient_id of acked SMS registrations
    requests: int = 0
    refused: int = 0  # connection refused or reset before an answer: the server was down
    lost: int = 0  # sent, answer lost (read error, timeout): the write may or may not be stored
    resent: int = 0  # requests sent again after an attempt without an answer, then answered
    found_stored: int = 0  # of those, writes the retry found stored: the kill came after the commit
    reads: int = 0
    echoes: int = 0  # acknowledged writes sent once more (ECHO)
    unexpected: list[str] = field(default_factory=list)
    throttled: list[str] = field(default_factory=list)  # 429 answers to the clients' (right) passwords
    _thread: threading.local = field(default_factory=threading.local)  # the calling thread's last delivery

    def deliver(self, http: httpx.Client, method: str, path: str, auth: tuple[str, str],
                body: Any = None) -> httpx.Response | None:
        """Send one request until it gets an answer (at most ``RETRY_FOR_S``); a 5xx is recorded as unexpected
        and sent again too. None when no answer came in time."""
        until = time.monotonic() + RETRY_FOR_S
        attempts = 0
        self._thread.lost = False
        while time.monotonic() < until:
            attempts += 1
            with self.lock:
                self.requests += 1
            try:
                resp = http.request(method, path, json=body, auth=auth)
            except httpx.ConnectError:
                with self.lock:
                    self.refused += 1
                time.sleep(0.05)
                continue
            except httpx.TransportError:
                self._thread.lost = True
                with self.lock:
                    self.lost += 1
                time.sleep(0.05)
                continue
            if resp.status_code == 429:
                # a real client waits as told and sends again; the right password must never be throttled,
                # which the test checks last, after the durability checks this wait lets run
                with self.lock:
                    self.throttled.append(f"{method} {path}: {resp.text[:200]}")
                time.sleep(min(5.0, float(resp.headers.get("Retry-After") or 1)))
                continue
            if resp.status_code >= 500:
                with self.lock:
                    self.unexpected.append(f"{method} {path}: HTTP {resp.status_code} {resp.text[:300]}")
                time.sleep(0.1)
                continue
            if attempts > 1:
                with self.lock:
                    self.resent += 1
            return resp
        return None

    def note_retry(self, already_stored: bool) -> None:
        """After a write's answer: when an earlier attempt of it lost its answer, count whether the retry found
        it stored (the kill came after the commit) or not."""
        if getattr(self._thread, "lost", False) and already_stored:
            with self.lock:
                self.found_stored += 1

    def acked(self) -> tuple[int, int, int]:
        """Acknowledged documents, reports and SMS so far."""
        with self.lock:
            return len(self.docs_acked), len(self.reports_acked), len(self.sms_acked)

    def echo(self, http: httpx.Client, path: str, auth: tuple[str, str], body: Any) -> httpx.Response | None:
        """An acknowledged write sent once more (``ECHO``); None unless answered 200."""
        with self.lock:
            self.echoes += 1
        resp = self.deliver(http, "POST", path, auth, body)
        return resp if resp is not None and resp.status_code == 200 else None

    def fail(self, what: str, resp: httpx.Response | None) -> None:
        with self.lock:
            answer = "no answer" if resp is None else f"HTTP {resp.status_code} {resp.text[:300]}"
            self.unexpected.append(f"{what}: {answer}")


# --------------------------------------------------------------------------------------------------------
# the population and the clients


@dataclass
class World:
    """The accounts and the contacts the clients write about."""

    users: dict[str, DemoUser]  # by first role
    chw: StoredUser
    supervisor: StoredUser
    chw_lineage: dict[str, Any]  # the CHW's minified lineage (a report's `contact`)
    households: list[dict[str, Any]]  # of the CHW's area
    patients: list[dict[str, Any]]  # people of the CHW's area with a patient_id
    chw_phone: str
    client_phone: str  # a person of the CHW's area with a phone and no account
    missed: list[dict[str, Any]]  # missed appointments whose patient is in the supervisor's place

    def auth(self, role: str) -> tuple[str, str]:
        return (self.users[role].username, self.users[role].password)


def _stub(doc: dict[str, Any]) -> dict[str, Any]:
    """A contact's minified lineage from its own document (``parent`` already minified)."""
    out: dict[str, Any] = {"_id": doc["_id"]}
    if isinstance(doc.get("parent"), dict):
        out["parent"] = doc["parent"]
    return out


def _world(store: Store, users: list[DemoUser]) -> World:
    by_role = {u.roles[0]: u for u in users if u is not PROBE} | {"probe": PROBE}
    chw = store.users.get(by_role["chw"].username)
    supervisor = store.users.get(by_role["site_supervisor"].username)
    assert chw.facility_id and chw.contact_id and supervisor.facility_id
    contacts, reports = store.docs_in_scope(Scope(places=(chw.facility_id,)))
    accounts = {u.contact_id for u in store.users.list_all() if u.contact_id}
    households = [c for c in contacts if c.get("type") == "clinic"]
    people = [c for c in contacts if c.get("type") == "person" and c["_id"] not in accounts]
    client = next(c for c in people if c.get("phone"))
    chw_contact = store.get_doc(chw.contact_id)
    _, sup_reports = store.docs_in_scope(Scope(places=(supervisor.facility_id,)))
    missed = [r for r in sup_reports if r.get("form") == "missed_appointment"]
    outside = store_contacts.subjects_outside(store, [r["fields"]["patient_id"] for r in missed],
                                              Scope(places=(supervisor.facility_id,)))
    missed = [r for r in missed if r["fields"]["patient_id"] not in outside]
    assert households and people and missed
    return World(by_role, chw, supervisor, store_contacts.minified_lineage(store, chw.contact_id), households,
                 [p for p in people if p.get("patient_id")], chw_contact["phone"], client["phone"], missed)


def doc_client(base: str, world: World, ledger: Ledger, stop: threading.Event, seed: int) -> None:
    """The CHW's phone syncing documents: new pregnancies (a person and her registration, one batch) and
    danger signs, with a read of her Tasks list every few writes."""
    rng = random.Random(seed)
    auth = world.auth("chw")
    with httpx.Client(base_url=base, timeout=REQUEST_TIMEOUT_S, trust_env=False) as http:
        for n in range(MAX_REQUESTS):
            if stop.is_set():
                return
            if n % 12 == 11:
                resp = ledger.deliver(http, "GET", "/api/v1/tasks", auth)
                if resp is None or resp.status_code != 200:
                    ledger.fail("GET /api/v1/tasks", resp)
                with ledger.lock:
                    ledger.reads += 1
                continue
            reported = NOW - rng.randrange(60_000, 20 * 86_400_000)
            batch: list[dict[str, Any]]
            if rng.random() < 0.6:
                house = rng.choice(world.households)
                person_id, code = f"crash-person-{seed}-{n}", f"9{seed}{n:07d}"
                name = f"{rng.choice(NAMES)} {rng.choice(SURNAMES)}"
                weeks = rng.randrange(6, 30)
                lmp = datetime.fromtimestamp((NOW - weeks * 7 * 86_400_000) / 1000, UTC).date().isoformat()
                person = {"_id": person_id, "type": "person", "name": name, "sex": "female",
                          "date_of_birth": "1998-03-02", "patient_id": code, "parent": _stub(house),
                          "reported_date": reported}
                pregnancy = {"_id": f"crash-pregnancy-{seed}-{n}", "type": "data_record", "form": "pregnancy",
                             "content_type": "xml", "reported_date": reported + 1000, "contact": world.chw_lineage,
                             "fields": {"patient_id": code, "patient_uuid": person_id, "patient_name": name,
                                        "lmp_date": lmp, "gravida": 1, "risk_factors": "none"}}
                batch = [person, pregnancy]
            else:
                patient = rng.choice(world.patients)
                batch = [{"_id": f"crash-danger-{seed}-{n}", "type": "data_record", "form": "danger_sign",
                          "content_type": "xml", "reported_date": reported, "contact": world.chw_lineage,
                          "fields": {"patient_id": patient["patient_id"], "patient_uuid": patient["_id"],
                                     "patient_name": patient.get("name", ""), "danger_signs": "fever",
                                     "referred_to_facility": "no"}}]
            with ledger.lock:
                ledger.docs_sent.update((d["_id"], d) for d in batch)
                ledger.batches.append([d["_id"] for d in batch])
            resp = ledger.deliver(http, "POST", "/api/v1/docs", auth, batch)
            if resp is None or resp.status_code != 200:
                ledger.fail("POST /api/v1/docs", resp)
                continue
            results = resp.json()["results"]
            assert [r["id"] for r in results] == [d["_id"] for d in batch]
            ledger.note_retry(not any(r["changed"] for r in results))
            if rng.random() < ECHO:
                again = ledger.echo(http, "/api/v1/docs", auth, batch)
                if again is None or again.json()["results"] != [{**r, "changed": False} for r in results]:
                    ledger.fail(f"POST /api/v1/docs again after {results}", again)
            with ledger.lock:
                ledger.docs_acked.update((r["id"], r["rev"]) for r in results)
                if len(batch) == 2:
                    ledger.pregnancies.append((batch[0]["_id"], batch[1]["_id"]))


def report_client(base: str, world: World, ledger: Ledger, stop: threading.Event, seed: int) -> None:
    """The web app: the CHW's deliveries and ANC visits for the pregnancies registered (acknowledged) above,
    the site supervisor's verifications of missed appointments."""
    rng = random.Random(seed)
    with httpx.Client(base_url=base, timeout=REQUEST_TIMEOUT_S, trust_env=False) as http:
        for n in range(MAX_REQUESTS):
            if stop.is_set():
                return
            with ledger.lock:
                pregnancy = rng.choice(ledger.pregnancies) if ledger.pregnancies else None
            role = "chw" if pregnancy is not None and n % 3 else "site_supervisor"
            body: dict[str, Any]
            if role == "chw":
                assert pregnancy is not None
                person_id, registration = pregnancy
                if rng.random() < 0.5:
                    fields: dict[str, Any] = {"patient_uuid": person_id, "source_report_id": registration,
                                              "outcome": "live_birth", "delivery_date": "2025-07-30",
                                              "delivery_place": "health_facility", "babies_alive": 1,
                                              "mother_alive": "yes"}
                    form = "delivery"
                else:
                    fields = {"patient_uuid": person_id, "source_report_id": registration,
                              "attended_anc_clinic": "no", "danger_signs": "none"}
                    form = "anc_visit"
            else:
                missed = rng.choice(world.missed)
                fields = {"patient_id": missed["fields"]["patient_id"], "missed_appointment_id": missed["_id"],
                          "verified_by": "phone", "outcome": "returned_to_care"}
                form = "appointment_verification"
            body = {"_id": f"crash-report-{seed}-{n}", "form": form, "fields": fields,
                    "reported_date": NOW - rng.randrange(1000, 3_600_000)}
            with ledger.lock:
                ledger.reports_sent[body["_id"]] = (role, body)
            resp = ledger.deliver(http, "POST", "/api/v1/reports", world.auth(role), body)
            if resp is None or resp.status_code not in (200, 201):
                ledger.fail(f"POST /api/v1/reports {body['_id']}", resp)
                continue
            answer = resp.json()
            ledger.note_retry(answer["status"] == "unchanged")
            if answer["status"] == "unchanged" and resp.status_code != 200:
                ledger.fail(f"POST /api/v1/reports {body['_id']} unchanged", resp)
            if rng.random() < ECHO:
                again = ledger.echo(http, "/api/v1/reports", world.auth(role), body)
                if (again is None or again.status_code != 200
                        or again.json() | {"status": "created"} != answer | {"status": "created"}):
                    ledger.fail(f"POST /api/v1/reports {body['_id']} again after {answer}", again)
            with ledger.lock:
                ledger.reports_acked[body["_id"]] = answer


def sms_client(base: str, world: World, ledger: Ledger, stop: threading.Event, seed: int) -> None:
    """The SMS gateway: pregnancies registered by the CHW, deliveries of SMS-registered patients, clients'
    visit requests and messages from numbers nobody has, 1 to 3 per request."""
    rng = random.Random(seed)
    auth = world.auth("gateway")
    with httpx.Client(base_url=base, timeout=REQUEST_TIMEOUT_S, trust_env=False) as http:
        for n in range(MAX_REQUESTS):
            if stop.is_set():
                return
            messages = []
            for k in range(rng.randrange(1, 4)):
                kind = rng.random()
                with ledger.lock:
                    patient = rng.choice(ledger.sms_patients) if ledger.sms_patients else None
                if kind < 0.45:
                    sender = world.chw_phone
                    text = f"P {rng.randrange(4, 30)} {rng.choice(NAMES)} {rng.choice(SURNAMES)}"
                elif kind < 0.65 and patient is not None:
                    sender, text = world.chw_phone, f"D {patient} F"
                elif kind < 0.9:
                    sender, text = world.client_phone, f"VR visit {n} {k} please"
                else:
                    sender, text = f"+265111{n:06d}", "hello"
                messages.append({"id": f"crash-sms-{seed}-{n}-{k}", "from": sender, "text": text,
                                 "received_at": NOW - rng.randrange(1000, 3_600_000)})
            with ledger.lock:
                ledger.sms_sent.update((m["id"], m) for m in messages)
            resp = ledger.deliver(http, "POST", "/api/v1/sms/messages", auth, {"messages": messages})
            if resp is None or resp.status_code != 200:
                ledger.fail("POST /api/v1/sms/messages", resp)
                continue
            results = resp.json()["results"]
            assert [r["id"] for r in results] == [m["id"] for m in messages]
            ledger.note_retry(any(r["replayed"] for r in results))
            if rng.random() < ECHO:
                again = ledger.echo(http, "/api/v1/sms/messages", auth, {"messages": messages})
                if again is None or again.json()["results"] != [{**r, "replayed": True} for r in results]:
                    ledger.fail(f"POST /api/v1/sms/messages again after {results}", again)
            with ledger.lock:
                for m, r in zip(messages, results, strict=True):
                    ledger.sms_acked[m["id"]] = r
                    if m["text"].startswith("P ") and r["status"] == "processed":
                        ledger.sms_patients.append(r["patient_id"])


# --------------------------------------------------------------------------------------------------------
# reading the store afterwards


def _all_docs(store: Store) -> dict[str, dict[str, Any]]:
    """Every document row (tombstones too), with its ``_rev``."""
    with store.engine.connect() as conn:
        rows = conn.execute(select(docs_table.c.id, docs_table.c.rev, docs_table.c.body)).all()
    return {r.id: documents.decode(r.body, r.rev) for r in rows}


def _no_rev(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k != "_rev"}


def _comparable(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k not in VOLATILE}


def _check_documents(store: Store, ledger: Ledger, before: dict[str, dict[str, Any]], world: World) -> list[str]:
    """What the store holds against what was sent and acknowledged; the problems found."""
    problems: list[str] = []
    stored = _all_docs(store)
    for doc_id, doc in before.items():
        if stored.get(doc_id) != doc:
            problems.append(f"population document {doc_id} changed or lost")
    # POST /docs: acknowledged -> stored once with the content sent; sent -> stored as sent or not at all
    for doc_id, sent in ledger.docs_sent.items():
        got = stored.get(doc_id)
        if got is None:
            if doc_id in ledger.docs_acked:
                problems.append(f"acknowledged document {doc_id} is not stored")
            continue
        if _no_rev(got) != sent:
            problems.append(f"document {doc_id} is stored with other content than sent")
        if not got["_rev"].startswith("1-"):
            problems.append(f"document {doc_id} was written more than once (_rev {got['_rev']})")
        if ledger.docs_acked.get(doc_id, got["_rev"]) != got["_rev"]:
            problems.append(f"document {doc_id}: answered rev {ledger.docs_acked[doc_id]}, stored {got['_rev']}")
    for batch in ledger.batches:
        present = [i in stored for i in batch]
        if any(present) and not all(present):
            problems.append(f"batch {batch} is stored in part: {present}")
    # POST /reports: the report the server built, once
    contacts = {"chw": world.chw.contact_id, "site_supervisor": world.supervisor.contact_id}
    for doc_id, (role, body) in ledger.reports_sent.items():
        got = stored.get(doc_id)
        if got is None:
            if doc_id in ledger.reports_acked:
                problems.append(f"acknowledged report {doc_id} is not stored")
            continue
        if not got["_rev"].startswith("1-"):
            problems.append(f"report {doc_id} was written more than once (_rev {got['_rev']})")
        if (got.get("form"), got.get("fields"), got.get("reported_date"), got["contact"]["_id"]) != (
                body["form"], body["fields"], body["reported_date"], contacts[role]):
            problems.append(f"report {doc_id} is stored with other content than submitted: {got}")
        answer = ledger.reports_acked.get(doc_id)
        if answer is not None and answer["rev"] != got["_rev"]:
            problems.append(f"report {doc_id}: answered rev {answer['rev']}, stored {got['_rev']}")
    # SMS: each message once, as answered, with its report and registered person once
    with store.engine.connect() as conn:
        rows = conn.execute(select(sms_messages)).all()
    by_id = Counter(r.id for r in rows)
    problems += [f"SMS {i} kept {n} times" for i, n in by_id.items() if n > 1]
    problems += [f"SMS {r.id} is kept but was never sent" for r in rows if r.id not in ledger.sms_sent]
    kept = {r.id: r for r in rows}
    for msg_id, result in ledger.sms_acked.items():
        row = kept.get(msg_id)
        if row is None:
            problems.append(f"acknowledged SMS {msg_id} is not kept")
            continue
        told = (result["status"], result["report_id"], result["patient_id"])
        if (row.status, row.report_id, row.patient_id) != told:
            problems.append(f"SMS {msg_id}: answered {told}, kept {(row.status, row.report_id, row.patient_id)}")
    sms_reports = Counter(d["sms_message"].get("gateway_ref") for d in stored.values()
                          if isinstance(d.get("sms_message"), dict) and d["_id"] not in before)
    made_by = Counter(d["created_by_doc"] for d in stored.values() if "created_by_doc" in d and d["_id"] not in before)
    from_sms: set[str] = set()
    for row in rows:
        if sms_reports.get(row.id, 0) != (1 if row.report_id else 0):
            problems.append(f"SMS {row.id} ({row.status}): {sms_reports.get(row.id, 0)} reports stored")
        if row.report_id:
            report = stored.get(row.report_id)
            if report is None or report.get("sms_message", {}).get("gateway_ref") != row.id:
                problems.append(f"SMS {row.id}: its report {row.report_id} is not stored as its own")
            from_sms.add(row.report_id)
            registers = kept[row.id].text.startswith("P ")
            if made_by.get(row.report_id, 0) != (1 if registers else 0):
                problems.append(f"SMS {row.id} ({row.text!r}) registered {made_by.get(row.report_id, 0)} people")
    people = {d["_id"] for d in stored.values() if d.get("created_by_doc") in from_sms}
    # nothing that no client sent
    expected = set(before) | set(ledger.docs_sent) | set(ledger.reports_sent) | from_sms | people
    problems += [f"document {i} is stored but no client sent it" for i in sorted(set(stored) - expected)]
    return problems


def _check_tasks(store: Store, program: Program) -> list[str]:
    """Every user's task documents against a computation from scratch (module docstring); the problems."""
    problems: list[str] = []
    for user in store.users.list_all(include_disabled=False):
        if not user.roles:
            continue
        stored = store.task_docs(user)
        open_ones = Counter(d["emission"]["_id"] for d in stored if d.get("state") in (taskdocs.READY, taskdocs.DRAFT))
        problems += [f"{user.username}: {n} open task documents for {e}" for e, n in open_ones.items() if n > 1]
        ours = [d for d in stored if not is_supervisor_doc(d)]
        scope = task_scope(user)
        contacts, reports = ([], []) if scope.empty else store.docs_in_scope(scope)
        who, tz = store.engine_user(user), user.timezone or DEFAULT_TZ
        again = compute(program, docs=[*contacts, *reports], task_docs=ours, user=who, now_ms=NOW, tz=tz)
        if again.writes:
            problems.append(f"{user.username}: a recompute over the stored task documents writes "
                            f"{len(again.writes)}, e.g. {again.writes[0]['_id']} ({again.writes[0]['state']})")
        fresh = compute(program, docs=[*contacts, *reports], user=who, now_ms=NOW, tz=tz)
        live = {d["_id"]: _comparable(d) for d in ours if d.get("state") != taskdocs.CANCELLED}
        scratch = {d["_id"]: _comparable(d) for d in fresh.task_docs}
        for task_id in sorted(set(live) | set(scratch)):
            have, want = live.get(task_id), scratch.get(task_id)
            if have is None or want is None:
                where = "stored only" if want is None else "computed from scratch only"
                problems.append(f"{user.username}: task {task_id} ({(have or want or {}).get('state')}): {where}")
            elif have != want:
                keys = sorted(k for k in set(have) | set(want) if have.get(k) != want.get(k))
                problems.append(f"{user.username}: task {task_id} differs in {keys}: stored "
                                f"{ {k: have.get(k) for k in keys} }, from scratch { {k: want.get(k) for k in keys} }")
    # the supervision statistics are the counts of the task documents
    with store.engine.connect() as conn:
        rows = conn.execute(select(task_docs)).all()
        table = {tuple(r[:4]): list(r[4:]) for r in conn.execute(select(task_stats)).all() if any(r[4:])}
    counted = stats.deltas((None, stats.events_of(r._mapping)) for r in rows)
    if table != counted:
        problems.append(f"task_stats differ from the task documents: {len(table)} rows kept, {len(counted)} counted")
    return problems


# --------------------------------------------------------------------------------------------------------
# the test


@dataclass
class Kills:
    worker: int = 0
    server: int = 0
    log: list[str] = field(default_factory=list)


def _kill_schedule(server: Server, kills: Kills, start: float, rng: random.Random, world: World,
                   ledger: Ledger) -> None:
    """Kill as ``KILLS`` says, each after ``GAP_S`` (with a little jitter) of traffic, and bring back what the
    test starts itself (the server); a killed worker must be started again by `kazi serve`. Before each server
    kill the CHW registers one more pregnancy (through her second account, ``PROBE``), due for its first ANC visit
    today, and her first read after the restart must list its task (read-your-writes holds across a crash)."""
    dead: set[int] = set()  # workers killed, and those of killed servers
    with httpx.Client(base_url=server.base, timeout=REQUEST_TIMEOUT_S, trust_env=False) as http:
        for n, what in enumerate(KILLS):
            time.sleep(GAP_S + rng.uniform(-0.5, 0.5))
            worker = server.wait_worker(dead)  # the last kill's worker was started again (by serve, or the server)
            dead.add(worker)
            probe = _probe_write(http, world, ledger, n) if what in ("server", "both") else None
            if what in ("worker", "both"):
                os.kill(worker, signal.SIGKILL)
                kills.worker += 1
            if what in ("server", "both"):
                server.kill()
                kills.server += 1
                server.start()
            if probe is not None:
                _probe_read(http, world, ledger, probe, what)
            kills.log.append(f"{what} at {time.monotonic() - start:.1f} s")
    time.sleep(GAP_S)
    server.wait_worker(dead)


def _probe_write(http: httpx.Client, world: World, ledger: Ledger, n: int) -> str:
    """A pregnancy registered by the CHW (person and report, one batch) whose first ANC visit is due today:
    its task is Ready at once. Recorded as the clients' writes are. Returns the person's ``_id``."""
    house = world.households[n % len(world.households)]
    person_id, code = f"crash-probe-person-{n}", f"8{n:07d}"
    lmp = datetime.fromtimestamp((NOW - 12 * 7 * 86_400_000) / 1000, UTC).date().isoformat()
    batch = [{"_id": person_id, "type": "person", "name": "Probe Banda", "sex": "female",
              "date_of_birth": "1998-03-02", "patient_id": code, "parent": _stub(house), "reported_date": NOW - 2000},
             {"_id": f"crash-probe-pregnancy-{n}", "type": "data_record", "form": "pregnancy", "content_type": "xml",
              "reported_date": NOW - 1000, "contact": world.chw_lineage,
              "fields": {"patient_id": code, "patient_uuid": person_id, "patient_name": "Probe Banda", "lmp_date": lmp,
                         "gravida": 1, "risk_factors": "none"}}]
    with ledger.lock:
        ledger.docs_sent.update((d["_id"], d) for d in batch)
        ledger.batches.append([d["_id"] for d in batch])
    resp = ledger.deliver(http, "POST", "/api/v1/docs", world.auth("probe"), batch)
    assert resp is not None and resp.status_code == 200, resp.text if resp is not None else "no answer"
    with ledger.lock:
        ledger.docs_acked.update((r["id"], r["rev"]) for r in resp.json()["results"])
    return person_id


def _probe_read(http: httpx.Client, world: World, ledger: Ledger, person_id: str, what: str) -> None:
    resp = ledger.deliver(http, "GET", "/api/v1/tasks?limit=1000", world.auth("probe"), None)
    if resp is None or resp.status_code != 200:
        ledger.fail("GET /api/v1/tasks after a restart", resp)
    elif not any(t.get("owner") == person_id for t in resp.json()["items"]):
        with ledger.lock:
            ledger.unexpected.append(f"read-your-writes after a {what} kill: the CHW's first read lists no task "
                                     f"for {person_id}, registered (and acknowledged) before the kill")


def _caught_up(store: Store, server: Server) -> None:
    deadline = time.monotonic() + CATCH_UP_TIMEOUT_S
    while time.monotonic() < deadline:
        if tr.get_state(store, tr.PROCESSED_SEQ) >= store.last_seq():
            return
        time.sleep(0.2)
    pytest.fail(f"the worker did not catch up in {CATCH_UP_TIMEOUT_S} s: processed "
                f"{tr.get_state(store, tr.PROCESSED_SEQ)} of {store.last_seq()}\n{server.logs()[-3000:]}")


def _run_clients(base: str, world: World, ledger: Ledger, stop: threading.Event
                 ) -> tuple[list[threading.Thread], list[BaseException]]:
    crashed: list[BaseException] = []

    def guarded(target: Callable[..., None], seed: int) -> Callable[[], None]:
        def run() -> None:
            try:
                target(base, world, ledger, stop, seed)
            except BaseException as exc:  # the assertion is raised in the test's thread
                crashed.append(exc)
        return run

    threads = [threading.Thread(target=guarded(fn, seed), name=f"client-{seed}", daemon=True)
               for seed, fn in enumerate((doc_client, report_client, sms_client), start=1)]
    for t in threads:
        t.start()
    return threads, crashed


@pytest.fixture
def server(store_url: str, tmp_path: Path) -> Iterator[Server]:
    s = Server(store_url, tmp_path)
    try:
        yield s
    finally:
        if s.proc is not None and s.proc.poll() is None:
            s.proc.kill()
            s.proc.wait()
        for pid in s.worker_pids():
            os.kill(pid, signal.SIGKILL)


def test_acknowledged_writes_survive_killed_processes_once(store: Store, server: Server) -> None:
    service = TaskService(store, clock=lambda: NOW)
    try:
        users = load_demo(store, service, generate(HOUSEHOLDS, 1, DAY), history=False)
        chw = store.users.get(users[0].username)
        assert users[0].roles == ["chw"]
        store.users.create(PROBE.username, password=PROBE.password, roles=PROBE.roles, facility_id=chw.facility_id,
                           contact_id=chw.contact_id, timezone=chw.timezone)
        service.process_changes()
    finally:
        service.close()
    world = _world(store, [*users, PROBE])
    before = _all_docs(store)
    ledger, kills, stop = Ledger(), Kills(), threading.Event()
    server.start()
    try:
        server.wait_worker(set())
        threads, crashed = _run_clients(server.base, world, ledger, stop)
        start = time.monotonic()
        try:
            _kill_schedule(server, kills, start, random.Random(5), world, ledger)
            until = time.monotonic() + MIN_EXTRA_S
            while time.monotonic() < until and min(ledger.acked()) < MIN_ACKED:
                time.sleep(0.2)
        finally:
            stop.set()
            traffic_s = time.monotonic() - start
            for t in threads:
                t.join(RETRY_FOR_S + REQUEST_TIMEOUT_S)
        assert not crashed, crashed
        assert not any(t.is_alive() for t in threads), "a client did not finish"
        _caught_up(store, server)
    finally:
        server.stop()

    print(f"\n[{store.backend}] {traffic_s:.0f} s of traffic; kills: {kills.log}; server starts "
          f"took {server.start_s} s\n"
          f"  {ledger.requests} requests: {ledger.refused} refused (server down), {ledger.lost} answers lost, "
          f"{ledger.resent} answered after a retry ({ledger.found_stored} found stored), {ledger.reads} task "
          f"reads, {ledger.echoes} acknowledged writes sent again, {len(ledger.throttled)} throttled (429)\n"
          f"  acknowledged of sent: documents {len(ledger.docs_acked)} of {len(ledger.docs_sent)}, reports "
          f"{len(ledger.reports_acked)} of {len(ledger.reports_sent)}, SMS {len(ledger.sms_acked)} of "
          f"{len(ledger.sms_sent)}")
    assert not ledger.unexpected, "\n".join(ledger.unexpected[:20])
    assert kills.worker == KILLS.count("worker") + KILLS.count("both")
    assert kills.server == KILLS.count("server") + KILLS.count("both")
    assert min(ledger.acked()) >= MIN_ACKED, f"too little traffic for the test to mean anything: {ledger.acked()}"
    problems = _check_documents(store, ledger, before, world)
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(p[:400] for p in problems[:30])
    checker = TaskService(store, clock=lambda: NOW)
    try:
        program = checker.program()
        assert program is not None
        problems = _check_tasks(store, program)
    finally:
        checker.close()
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(p[:400] for p in problems[:30])
    assert not ledger.throttled, (f"{len(ledger.throttled)} requests with the right password were throttled "
                                  "(429) after the kills:\n" + "\n".join(ledger.throttled[:10]))
