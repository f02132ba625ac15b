"""Fuzz the HTTP API from its own OpenAPI document with schemathesis, as an administrator and as a CHW.

A real ``kazi serve`` (API process and worker process) runs on a free loopback port over a fresh SQLite store
holding the demo program and a small generated population, with a second CHW area beside the fuzzing CHW's,
so that scope checks have something to refuse. ``st run`` then sends every operation generated requests
(documented examples, boundary values of the coverage phase, random valid and invalid data, and stateful
sequences along the links schemathesis infers), first as the CHW, then as the administrator, and the test
fails on any answer that

* is a 5xx (``not_a_server_error``),
* has a status code the operation does not document (``status_code_conformance``),
* has a body or content type that does not match the documented response (``response_schema_conformance``,
  ``content_type_conformance``, ``response_headers_conformance``),
* is not a 401 when the credentials are left out (``ignored_auth``),

or on a request schemathesis could not send at all (the server dropped the connection, timed out, died).

Realism, so the fuzzer gets past the 422s: path and query parameters are drawn, most of the time, from the
stored ids (contacts of both areas, reports, the CHW's tasks, forms, users, places, months), and the request
bodies the API documents only by example (documents, interaction summaries, SMS) or loosely (form
submissions) get a JSON Schema here that describes real ones over those ids. The response side of the
document is used as served.

Determinism: schemathesis's deterministic generation (``KAZI_FUZZ_SEED`` switches to random generation
from a seed) and no example database, so CI runs the same requests each time and nothing is written into
the repository. Bounds: a few examples per operation (``KAZI_FUZZ_EXAMPLES``) and short stateful scenarios
(``KAZI_FUZZ_STEPS``), so the whole test takes about a minute and a half on two cores.
docs/security.md ("The API fuzzer") says how to run it longer.

The credentials are bearer tokens, not HTTP Basic: given a Basic username, schemathesis uses it as a value
for ``{username}`` path parameters, and the administrator then disables herself halfway through the run. For
the same reason st_hooks.py sends a ``{username}`` request that names a fuzzing account (learnt from
``GET /api/v1/users``) to another CHW's account instead.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from kazi.demo import PROGRAM_DIR
from kazi.demo.population import generate
from kazi.store import open_store

HERE = Path(__file__).resolve().parent
NOW_ISO = "2025-08-01T10:00:00+02:00"
END_DATE = "2025-08-01"
HOUSEHOLDS = 20
TZ = "Africa/Blantyre"

#: unset: schemathesis's deterministic generation (the same requests every run); a number: random generation
#: from that seed (other requests for each seed, to search further locally)
SEED = os.environ.get("KAZI_FUZZ_SEED")
EXAMPLES = int(os.environ.get("KAZI_FUZZ_EXAMPLES", "10"))
STEPS = int(os.environ.get("KAZI_FUZZ_STEPS", "6"))
#: the whole `st run` of one user; a run that takes longer is a failure (the server hangs)
RUN_TIMEOUT_S = float(os.environ.get("KAZI_FUZZ_TIMEOUT", "300"))
#: a folder to keep the NDJSON reports, the configurations and the server's log in (to read after a run)
OUT = os.environ.get("KAZI_FUZZ_OUT")

#: the forms POST /api/v1/reports is fuzzed with (each one multiplies the coverage phase's requests)
REPORT_FORMS = ["appointment_verification", "danger_sign_follow_up", "delivery", "home_visit"]

CHECKS = ["not_a_server_error", "status_code_conformance", "content_type_conformance",
          "response_schema_conformance", "response_headers_conformance", "ignored_auth"]

# --------------------------------------------------------------------------------------------------------
# Failures known to be fixed on other branches of the same hardening work. Each entry is (branch,
# operation, check code, status, what): a failure matching one (same operation, check code and status) is
# reported as expected instead of failing the test. Whoever merges a branch deletes its entries here, then runs
#   PYTHONPATH=$PWD .venv/bin/pytest tests/fuzz -p no:cacheprovider -rA
# which lists, at its end, the entries that were not seen any more ("known failure not seen").

@dataclass(frozen=True)
class Known:
    branch: str
    operation: str
    check: str  # the schemathesis failure code, e.g. ST101 (server error), ST103 (undocumented status code)
    status: int | None
    what: str


KNOWN: list[Known] = []


# --------------------------------------------------------------------------------------------------------
# the server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class World:
    """The live server and the ids the fuzzer draws from."""

    base: str
    workdir: Path
    log: Path
    tokens: dict[str, str]
    ids: dict[str, list[Any]] = field(default_factory=dict)
    usernames: dict[str, str] = field(default_factory=dict)


def _person(pid: str, name: str, parent: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"_id": pid, "type": "person", "name": name, "parent": parent, "reported_date": 1_700_000_000_000,
            **extra}


def _under(doc: dict[str, Any], place_id: str) -> bool:
    """Whether ``place_id`` is among the document's ancestors (its parent stubs)."""
    stub = doc.get("parent")
    while isinstance(stub, dict):
        if stub.get("_id") == place_id:
            return True
        stub = stub.get("parent")
    return False


def _build_store(workdir: Path) -> tuple[str, dict[str, Any]]:
    """The demo program, the population, a second CHW area, and the two fuzzing accounts with tokens."""
    from kazi.service.tasks import TaskService

    pop = generate(HOUSEHOLDS, 1, date.fromisoformat(END_DATE), TZ)
    chw = next(u for u in pop.users if u["roles"] == ["chw"])
    admin = next(u for u in pop.users if u["roles"] == ["admin"])
    area = next(c for c in pop.contacts if c["_id"] == chw["facility_id"])
    hc = area["parent"]  # the health centre's stub, with the district above it
    other_area = {"_id": "fuzz-other-area", "type": "contact", "contact_type": "chw_area", "name": "Other area",
                  "parent": copy.deepcopy(hc), "reported_date": 1_700_000_000_000}
    other_stub = {"_id": other_area["_id"], "parent": copy.deepcopy(hc)}
    household = {"_id": "fuzz-other-hh", "type": "clinic", "name": "Other household", "parent": other_stub,
                 "reported_date": 1_700_000_000_000}
    hh_stub = {"_id": household["_id"], "parent": copy.deepcopy(other_stub)}
    others = [other_area, household,
              _person("fuzz-other-chw", "Other CHW", copy.deepcopy(other_stub), phone="+265888100002",
                      role="chw"),
              _person("fuzz-other-patient", "Other Patient", hh_stub, patient_id="9900001", sex="female",
                      date_of_birth="1995-04-02", phone="+265888100003")]

    db_url = f"sqlite:///{workdir / 'kazi.sqlite3'}"
    store = open_store(db_url)
    tokens: dict[str, str] = {}
    try:
        service = TaskService(store)
        service.load_program(PROGRAM_DIR)
        service.close()
        store.write_docs([*pop.contacts, *others])
        store.write_docs(pop.reports)
        for u in pop.users:
            store.users.create(u["username"], password=f"{u['username']}-password", roles=u["roles"],
                               facility_id=u["facility_id"], contact_id=u["contact_id"], timezone=u["tz"])
        store.users.create("fuzz-other-chw", password="other-chw-password", roles=["chw"],
                           facility_id=other_area["_id"], contact_id="fuzz-other-chw", timezone=TZ)
        store.users.create("fuzz-admin", password="fuzz-admin-password", roles=["admin"],
                           facility_id=admin["facility_id"], contact_id=admin["contact_id"], timezone=TZ)
        store.users.create("fuzz-chw", password="fuzz-chw-password", roles=["chw"],
                           facility_id=chw["facility_id"], contact_id=chw["contact_id"], timezone=TZ)
        for name in ("fuzz-admin", "fuzz-chw"):
            tokens[name] = store.users.create_token(name, "fuzz")[0]
    finally:
        store.close()

    # A few ids of each kind, in the CHW's area and outside it: the coverage phase tries every value of an
    # enum, so whole lists would multiply its requests without reaching more code.
    everyone = [*pop.contacts, *others]
    mine = [c for c in everyone if _under(c, chw["facility_id"])]
    theirs = [c for c in everyone if not _under(c, chw["facility_id"]) and c["_id"] != chw["facility_id"]]
    my_persons = [c["_id"] for c in mine if c["type"] == "person"][:4]
    my_places = [chw["facility_id"]] + [c["_id"] for c in mine if c["type"] == "clinic"][:2]
    other_persons = [c["_id"] for c in theirs if c["type"] == "person"][-2:]
    other_places = [c["_id"] for c in theirs if c["type"] != "person"][-2:]
    persons = [c for c in everyone if c["_id"] in {*my_persons, *other_persons}]
    reports = [r for r in pop.reports if r["contact"]["_id"] == chw["contact_id"]]
    ids: dict[str, Any] = {
        "chw": chw,
        "persons": my_persons + other_persons,
        "my_persons": my_persons,
        "patient_ids": [p["patient_id"] for p in persons if "patient_id" in p],
        "phones": sorted({p["phone"] for p in persons if "phone" in p}),
        "places": my_places + other_places,
        "my_places": my_places,
        "reports": [r["_id"] for r in reports[-4:]],
        "report_forms": sorted({r["form"] for r in pop.reports})[:6],
        "forms": sorted(p.stem for p in (PROGRAM_DIR / "forms").glob("*.json")),
        "usernames": [u["username"] for u in pop.users] + ["fuzz-other-chw"],
    }
    return db_url, {"tokens": tokens, "ids": ids}


#: The fuzzer sends hundreds of wrong credentials from one address (schemathesis' ignored-auth check and the
#: coverage phase's bad logins): with the login throttle on, later answers would be 429s, correct but not the
#: 401 those checks look for. The throttle has tests of its own (tests/server/test_login_throttle.py).
SERVER_ENV = {**os.environ, "KAZI_LOGIN_ACCOUNT_FREE_FAILURES": "1000000",
              "KAZI_LOGIN_ADDRESS_FREE_FAILURES": "1000000"}


def _start_serve(db_url: str, workdir: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """`kazi serve` on a free port, retried on a new port if another process took it first."""
    failures: list[str] = []
    for _ in range(3):
        port = _free_port()
        cmd = [sys.executable, "-m", "kazi.cli.main", "serve", "--port", str(port), "--db", db_url,
               "--now", NOW_ISO]
        with log.open("ab") as out:
            proc = subprocess.Popen(cmd, cwd=workdir, stdout=out, stderr=subprocess.STDOUT, env=SERVER_ENV)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        last: object = None
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                answer = httpx.get(f"{base}/healthz", timeout=5, trust_env=False)
                if answer.status_code == 200 and answer.json().get("program_loaded") is True:
                    return proc, base
                last = f"HTTP {answer.status_code}: {answer.text[:200]}"
            except (httpx.TransportError, ValueError) as exc:
                last = repr(exc)
            time.sleep(0.2)
        _stop(proc)
        failures.append(f"port {port}: last /healthz attempt: {last}")
    pytest.fail("kazi serve did not start:\n" + "\n".join(failures) + "\n" + log.read_text(errors="replace")[-3000:])


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    try:
        import schemathesis  # noqa: F401
    except ImportError:
        if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
            pytest.fail("the API fuzz test must run in CI: schemathesis is missing (pip install -e '.[dev]')")
        pytest.skip("schemathesis is not installed: pip install -e '.[dev]'")
    workdir = tmp_path_factory.mktemp("fuzz")
    db_url, made = _build_store(workdir)
    log = workdir / "serve.log"
    proc, base = _start_serve(db_url, workdir, log)
    try:
        w = World(base, workdir, log, made["tokens"], ids=made["ids"])
        with httpx.Client(base_url=base, timeout=60, trust_env=False) as http:
            # the CHW's own tasks (read-your-writes computes them now), for the task_id parameter
            page = http.get("/api/v1/tasks", params={"limit": 1000},
                            headers={"Authorization": f"Bearer {w.tokens['fuzz-chw']}"})
            assert page.status_code == 200, page.text
            w.ids["tasks"] = [t["_id"] for t in page.json()["items"]]
            w.ids["task_titles"] = sorted({t["emission"]["title"] for t in page.json()["items"]})
            assert w.ids["tasks"], "the fuzzing CHW has no tasks: the population changed?"
            schema = http.get("/openapi.json")
            assert schema.status_code == 200
            (workdir / "openapi.served.json").write_text(schema.text)
        yield w
    finally:
        _stop(proc)


# --------------------------------------------------------------------------------------------------------
# the document the fuzzer reads: the served one, with JSON Schemas for the bodies documented by example


def _id_or_new(existing: list[str], prefix: str) -> dict[str, Any]:
    return {"anyOf": [{"enum": existing}, {"type": "string", "pattern": f"^{prefix}-[a-z0-9]{{1,10}}$"}]}


def _doc_schemas(w: World, username: str) -> dict[str, dict[str, Any]]:
    """Request-body schemas keyed by (method path), over the stored ids."""
    ids = w.ids
    chw = ids["chw"]
    # mostly the CHW's own ids (writes that can succeed), one of another area's (a scope refusal)
    stub = {"type": "object", "required": ["_id"], "additionalProperties": False,
            "properties": {"_id": {"enum": [*ids["my_places"], ids["places"][-1]]}}}
    ms = {"type": "integer", "minimum": 1_600_000_000_000, "maximum": 1_760_000_000_000}
    subject = {"type": "object", "additionalProperties": False, "properties": {
        "patient_id": {"enum": ids["patient_ids"]}, "patient_uuid": {"enum": ids["persons"]},
        "patient_name": {"type": "string", "maxLength": 20}, "lmp_date": {"enum": ["2025-05-01", "2025-07-30"]},
        "delivery_date": {"enum": ["2025-07-20", "2025-07-31"]}, "outcome": {"enum": ["returned_to_care", "died"]},
        "source_report_id": {"enum": ids["reports"]},
    }}
    report = {"type": "object", "required": ["_id", "type", "form", "reported_date", "contact", "fields"],
              "additionalProperties": False, "properties": {
                  "_id": _id_or_new(ids["reports"], "fuzz-report"), "type": {"const": "data_record"},
                  "form": {"enum": ids["report_forms"]}, "reported_date": ms,
                  "contact": {"type": "object", "required": ["_id"], "additionalProperties": False,
                              "properties": {"_id": {"const": chw["contact_id"]}}},
                  "fields": subject, "_deleted": {"type": "boolean"}}}
    person = {"type": "object", "required": ["_id", "type", "name", "parent"], "additionalProperties": False,
              "properties": {
                  "_id": _id_or_new(ids["my_persons"], "fuzz-person"), "type": {"const": "person"},
                  "name": {"type": "string", "minLength": 1, "maxLength": 30}, "parent": stub,
                  "reported_date": ms, "patient_id": {"type": "string", "pattern": "^[0-9]{5,8}$"},
                  "phone": {"enum": [*ids["phones"], "+265888100099", "0888100099"]},
                  "date_of_birth": {"enum": ["1990-01-01", "2025-07-01"]}, "_deleted": {"type": "boolean"}}}
    place = {"type": "object", "required": ["_id", "type", "name", "parent"], "additionalProperties": False,
             "properties": {
                 "_id": _id_or_new(ids["my_places"][1:], "fuzz-place"),
                 "type": {"enum": ["clinic", "health_center", "contact"]},
                 "contact_type": {"enum": ["chw_area", "clinic"]},
                 "name": {"type": "string", "minLength": 1, "maxLength": 30}, "parent": stub,
                 "reported_date": ms}}
    doc = {"anyOf": [report, person, place]}
    docs = {"anyOf": [doc, {"type": "array", "minItems": 1, "maxItems": 3, "items": doc}]}

    event = {"type": "object", "required": ["action", "offset"], "additionalProperties": False, "properties": {
        "action": {"enum": ["task_list:open", "task_list:loaded", "task:open", "task:form_open", "task:form_save",
                            "task:complete", "task_list:leave"]},
        "ref": {"enum": ids["task_titles"] or ["task.x"]}, "detail": {"type": "integer", "minimum": 0},
        "offset": {"type": "integer", "minimum": 0, "maximum": 3_600_000}}}
    device = "0f8e2c4a-6b1d-4e0f-9a3c-5d7e8f901234"

    def summary_of(day: str) -> dict[str, Any]:
        noon = int(datetime.fromisoformat(f"{day}T12:00:00+00:00").timestamp() * 1000)
        return {"type": "object", "required": ["_id", "type", "metadata", "sessions"], "additionalProperties": False,
                "properties": {
                    "_id": {"const": f"interaction-{day}-{username}-{device}"},
                    "type": {"const": "interaction-log"},
                    "metadata": {"type": "object", "required": ["user", "deviceId", "date", "version"],
                                 "additionalProperties": False, "properties": {
                                     "user": {"const": username}, "deviceId": {"const": device},
                                     "date": {"const": day}, "version": {"enum": ["1.0.0", "unknown"]}}},
                    "sessions": {"type": "array", "minItems": 1, "maxItems": 2, "items": {
                        "type": "object", "required": ["session", "startedAt", "events"],
                        "additionalProperties": False, "properties": {
                            "session": {"const": "5b1e7d2c-3a4f-4b6e-8c9d-0e1f2a3b4c5d"},
                            "startedAt": {"type": "integer", "minimum": noon - 3_600_000, "maximum": noon},
                            "events": {"type": "array", "minItems": 1, "maxItems": 4, "items": event}}}},
                    "dropped": {"type": "integer", "minimum": 0}}}

    summary = {"anyOf": [summary_of("2025-07-31"), summary_of("2025-08-01")]}
    summaries = {"anyOf": [summary, {"type": "array", "minItems": 1, "maxItems": 2, "items": summary}]}

    phone = {"enum": [*ids["phones"], "+265888100099", "0888100099", "265888100002"]}
    text = {"anyOf": [{"enum": ["P 12 Mary Banda", "D 9900001 home 2025-07-30", "VR returned", "P", "hello"]},
                      {"type": "string", "maxLength": 40}]}
    gateway = {"type": "object", "additionalProperties": False, "properties": {
        "messages": {"type": "array", "maxItems": 3, "items": {
            "type": "object", "required": ["id", "from", "content"], "additionalProperties": False,
            "properties": {"id": {"pattern": "^gw-[0-9a-f]{6}$"}, "from": phone, "content": text,
                           "sms_sent": ms, "sms_received": ms}}},
        "updates": {"type": "array", "maxItems": 2, "items": {
            "type": "object", "required": ["id", "status"], "additionalProperties": False,
            "properties": {"id": {"pattern": "^[0-9a-f]{6}$"},
                           "status": {"enum": ["PENDING", "SENT", "DELIVERED", "FAILED"]}}}}}}
    messages = {"type": "object", "required": ["messages"], "additionalProperties": False, "properties": {
        "messages": {"type": "array", "minItems": 1, "maxItems": 3, "items": {
            "type": "object", "required": ["id", "from", "text"], "additionalProperties": False,
            "properties": {"id": {"pattern": "^sms-[0-9a-f]{6}$"}, "from": phone, "text": text,
                           "received_at": ms}}}}}
    report_in = {"anyOf": [_form_report(form, ids, ms) for form in REPORT_FORMS]}
    return {"POST /api/v1/docs": docs, "POST /api/v1/interactions": summaries, "POST /api/sms": gateway,
            "POST /api/v1/sms/gateway": gateway, "POST /api/v1/sms/messages": messages,
            "POST /api/v1/reports": report_in}


def _form_report(form_id: str, ids: dict[str, Any], ms: dict[str, Any]) -> dict[str, Any]:
    """A ``POST /api/v1/reports`` body for one form of the demo program, its answers typed as the form says."""
    form = json.loads((PROGRAM_DIR / "forms" / f"{form_id}.json").read_text())
    props: dict[str, Any] = {}
    required: list[str] = []
    for f in form["fields"]:
        name, kind = f["name"], f["type"]
        if kind == "note":
            continue
        if name == "patient_id":
            props[name] = {"enum": ids["patient_ids"]}
        elif name in ("patient_uuid", "place_id"):
            props[name] = {"enum": [*ids["my_persons"], ids["persons"][-1]]}
        elif kind == "hidden" and name.endswith("_id"):
            props[name] = {"enum": ids["reports"]}
        elif kind == "select_one":
            props[name] = {"enum": [c["value"] for c in f["choices"]]}
        elif kind == "select_multiple":
            values = [c["value"] for c in f["choices"]]
            props[name] = {"enum": [*values, " ".join(values[:2])]}
        elif kind == "integer":
            props[name] = {"type": "integer", "minimum": 0, "maximum": 60}
        elif kind == "decimal":
            props[name] = {"type": "number", "minimum": 0, "maximum": 60}
        elif kind == "date":
            props[name] = {"enum": ["2025-07-20", "2025-08-01", "2025-08-15"]}
        else:
            props[name] = {"type": "string", "maxLength": 20}
        if f.get("required") and "relevant" not in f and "from" not in f:
            required.append(name)
    return {"type": "object", "required": ["_id", "form", "fields"], "additionalProperties": False,
            "properties": {"_id": {"type": "string", "pattern": "^fuzz-form-[a-z0-9]{1,10}$"},
                           "form": {"const": form_id},
                           "fields": {"type": "object", "required": required, "additionalProperties": False,
                                      "properties": props},
                           "reported_date": {"anyOf": [ms, {"type": "null"}]}}}


def _fuzz_schema(w: World, username: str) -> Path:
    spec = json.loads((w.workdir / "openapi.served.json").read_text())
    for key, body in _doc_schemas(w, username).items():
        method, path = key.split(" ", 1)
        content = spec["paths"][path][method.lower()]["requestBody"]["content"]["application/json"]
        examples = content["schema"].get("examples")
        content["schema"] = {**body, **({"examples": examples} if examples else {})}
    out = w.workdir / f"openapi.{username}.json"
    out.write_text(json.dumps(spec))
    return out


# --------------------------------------------------------------------------------------------------------
# running schemathesis


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + " }"
    raise TypeError(value)


def _config(w: World, username: str) -> Path:
    ids = w.ids
    dictionaries = {
        "docs": [*ids["persons"], *ids["places"], *ids["reports"]],
        "contacts": [*ids["persons"], *ids["places"]],
        "tasks": ids["tasks"],
        "forms": ids["forms"],
        "usernames": ids["usernames"],
        "places": ids["places"],
        "titles": ids["task_titles"],
        "locales": ["en", "ny", "pt-BR"],
        "months": ["2025-05", "2025-06", "2025-07", "2025-08"],
        "days": ["2025-07-01", "2025-07-31", "2025-08-01"],
        # values that broke servers before: beyond 64-bit integers and the years a date type holds,
        # spreadsheet formulas, paths, right-to-left override, long text
        "extreme_integers": [2**63 - 1, 2**63, 2**64, -(2**63) - 1, 2**62, -1, 0],
        "extreme_strings": ["0001-01-01", "9999-12-31", "10000-01-01", "2025-02-30", "=HYPERLINK(\"x\")",
                            "+1-1", "@SUM(A1)", "../../etc/passwd", "\u202e", "NaN", "-1", "x" * 300],
    }
    bindings = {"path.doc_id": "docs", "path.contact_id": "contacts", "path.task_id": "tasks",
                "path.form_id": "forms", "path.username": "usernames", "query.place": "places",
                "query.type": "titles", "query.user": "usernames", "query.locale": "locales",
                "query.start": "months", "query.end": "months", "query.from": "days", "query.to": "days"}
    lines = [
        *([f"seed = {int(SEED)}"] if SEED else []),
        "workers = 1",
        "request-timeout = 60",
        "max-redirects = 0",
        "warnings = false",
        "",
        "[headers]",
        f"Authorization = {_toml('Bearer ' + w.tokens[username])}",
        "",
        "[generation]",
        f"max-examples = {EXAMPLES}",
        f"deterministic = {_toml(not SEED)}",
        'database = "none"',
        "with-security-parameters = false",
        "",
        "[generation.dictionaries]",
        'integer = { dictionary = "extreme_integers", probability = 0.1 }',
        'string = { dictionary = "extreme_strings", probability = 0.05 }',
        "",
        "[checks]",
        "enabled = false",
        *[f"{name}.enabled = true" for name in CHECKS],
        "",
        "[phases.stateful]",
        f"max-steps = {STEPS}",
        "",
        "[parameters]",
        *[f"{_toml(k)} = {{ dictionary = {_toml(v)}, probability = 0.7 }}" for k, v in bindings.items()],
        "",
    ]
    for name, values in dictionaries.items():
        lines += [f"[dictionaries.{name}]", f"values = {_toml(values or ['none'])}", ""]
    path = w.workdir / f"schemathesis.{username}.toml"
    path.write_text("\n".join(lines))
    return path


@dataclass(frozen=True)
class Failure:
    """One failed check (or request that could not be made) as the test reports it."""

    operation: str
    check: str
    status: int | None
    detail: str
    curl: str

    def line(self) -> str:
        status = f"HTTP {self.status}" if self.status is not None else "no response"
        return f"{self.operation}: {self.check} ({status}): {self.detail[:300]}\n    {self.curl[:600]}"


def _st(w: World, username: str) -> tuple[list[Failure], str]:
    report = w.workdir / f"events.{username}.ndjson"
    cfg = _config(w, username)
    schema = _fuzz_schema(w, username)
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "st_hooks", "NO_COLOR": "1",
           "KAZI_FUZZ_PROTECTED": ",".join(w.tokens), "KAZI_FUZZ_STAND_IN": "fuzz-other-chw",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))}
    cmd = [sys.executable, "-m", "schemathesis.cli", "--config-file", str(cfg), "run", str(schema),
           "--url", w.base, "--report", "ndjson", "--report-ndjson-path", str(report)]
    try:
        run = subprocess.run(cmd, cwd=w.workdir, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"st run as {username} took longer than {RUN_TIMEOUT_S:.0f} s (the server hangs?)\n"
                    f"{(exc.stdout or b'')[-3000:]!r}")
    output = run.stdout + run.stderr
    if OUT:
        Path(OUT).mkdir(parents=True, exist_ok=True)
        for p in (report, cfg, schema, w.log):
            if p.exists():
                shutil.copy(p, Path(OUT) / p.name)
        (Path(OUT) / f"st.{username}.txt").write_text(output)
    if run.returncode not in (0, 1):
        pytest.fail(f"st run as {username} could not run (exit {run.returncode}):\n{output[-5000:]}")
    return _failures(report), output


def _curl(request: dict[str, Any]) -> str:
    """The request as a curl command (the token left out: add ``-H 'Authorization: Bearer ...'``)."""
    body = request.get("body")
    data = ""
    if isinstance(body, dict) and "$base64" in body:
        raw = base64.b64decode(body["$base64"])
        text = raw.decode("utf-8", "backslashreplace")
        data = f" --data-raw {shlex.quote(text)}" if len(text) < 2000 else f" --data-raw <{len(raw)} bytes>"
    headers = "".join(f" -H {shlex.quote(f'{k}: {v[0]}')}" for k, v in (request.get("headers") or {}).items()
                      if k.lower() in ("content-type",))
    return f"curl -X {request.get('method')}{headers}{data} {shlex.quote(str(request.get('uri')))}"


def _failures(report: Path) -> list[Failure]:
    """Every failed check and every error of an ``st run`` NDJSON report, one per (operation, check, status)."""
    found: dict[tuple[str, str, int | None], Failure] = {}
    for line in report.read_text().splitlines():
        event = json.loads(line)
        kind, body = next(iter(event.items()))
        if kind in ("NonFatalError", "FatalError"):
            info = body.get("info") or {}
            message = json.dumps(info)[:500] if info else json.dumps(body)[:500]
            failure = Failure(body.get("label", "?"), "error", None, message, "")
            found.setdefault((failure.operation, failure.check, None), failure)
            continue
        if kind != "ScenarioFinished" or body["status"] not in ("failure", "error"):
            continue
        recorder = body["recorder"]
        for case_id, checks in recorder.get("checks", {}).items():
            interaction = recorder.get("interactions", {}).get(case_id) or {}
            response = interaction.get("response") or {}
            status = response.get("status_code")
            for check in checks:
                if check["status"] != "failure":
                    continue
                info = check["failure_info"]["failure"]
                operation = info.get("operation") or recorder["label"]
                name = f"{info.get('code', '')} {info.get('title', check['name'])}".strip()
                content = response.get("content")
                answer = ""
                if isinstance(content, dict) and "$base64" in content:
                    answer = base64.b64decode(content["$base64"]).decode("utf-8", "replace")[:300]
                detail = f"{info.get('message', '')} | {answer}".replace("\n", " ")
                failure = Failure(operation, name, status, detail, _curl(interaction.get("request") or {}))
                found.setdefault((operation, name, status), failure)
    return sorted(found.values(), key=lambda f: (f.operation, f.check, f.status or 0))


def _is_known(failure: Failure) -> Known | None:
    return next((k for k in KNOWN if k.operation == failure.operation and failure.check.startswith(k.check)
                 and k.status == failure.status), None)


def test_fuzz_api(world: World) -> None:
    """Every failure is either a bug to fix or listed in KNOWN with the branch that fixes it."""
    new: list[str] = []
    expected: list[str] = []
    seen: set[Known] = set()
    for username in ("fuzz-chw", "fuzz-admin"):
        failures, output = _st(world, username)
        for failure in failures:
            known = _is_known(failure)
            if known is None:
                new.append(f"[as {username}] {failure.line()}")
            else:
                seen.add(known)
                expected.append(f"[as {username}, fixed on {known.branch}] {failure.operation}: {failure.check} "
                                f"({failure.status})")
    for line in expected:
        print("expected failure:", line)
    for known in KNOWN:
        if known not in seen:
            print(f"known failure not seen (remove it from KNOWN once {known.branch} is merged): {known}")
    if new:
        log = world.log.read_text(errors="replace")
        traces = "\n".join(re.findall(r"Traceback.*?(?=\nINFO|\Z)", log, flags=re.S))[-6000:]
        pytest.fail(f"{len(new)} failure(s) the fuzzer found:\n" + "\n".join(new) +
                    (f"\n\nserver tracebacks:\n{traces}" if traces else ""), pytrace=False)
