"""Loading the demo into a store: the generated population, the demo program, the demo accounts (one per
role, the demo CHW's colleagues and the SMS gateway) with new random passwords, and everyone's tasks.

Used by ``kazi demo`` (:mod:`kazi.cli.demo`) and by the demo server that the browser tests and the screenshots
run (:mod:`kazi.demo.server`). With ``history``, the CHWs' last three months are replayed day by day first
(:mod:`kazi.demo.history`), so that the supervisor reports compare workers with real monthly histories.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

from kazi.demo import PROGRAM_DIR
from kazi.demo.history import DaySplit, replay, replay_start, split_by_day
from kazi.demo.population import DEFAULT_TZ, Population
from kazi.engine.dates import local_date_str
from kazi.engine.permissions import is_offline
from kazi.errors import NotFoundError

if TYPE_CHECKING:
    from kazi.service.tasks import TaskService
    from kazi.store import Store

#: documents per write transaction while loading the population
LOAD_BATCH = 1000
ROLE_ORDER = ["chw", "chw_supervisor", "site_supervisor", "program_officer", "admin"]
#: full recomputes during the replayed months every this many days (CHT's week), temporal updates between
#: them: a full recompute at each replayed midnight would multiply the demo's start-up by the days replayed
REPLAY_FULL_RECOMPUTE_DAYS = 7
#: the SMS gateway's account (docs/sms.md)
GATEWAY_USERNAME = "gateway"


@dataclass(frozen=True)
class DemoUser:
    """A demo account and the password generated for it (shown once, at start)."""

    username: str
    password: str
    roles: list[str]
    online: bool


def demo_users(population: Population) -> list[dict[str, Any]]:
    """One account per demo role, the CHW and the supervisors from the same health facility."""
    by_role: dict[str, list[dict[str, Any]]] = {}
    for u in population.users:
        for role in u["roles"]:
            by_role.setdefault(role, []).append(u)
    chosen: list[dict[str, Any]] = []
    chw = by_role.get("chw", [None])[0]
    facility = None
    if chw is not None:
        chosen.append(chw)
        facility = next((a for a in population.contacts if a["_id"] == chw["facility_id"]), {}).get("parent", {})
    for role in ROLE_ORDER[1:]:
        candidates = by_role.get(role, [])
        same = [u for u in candidates if facility and u["facility_id"] == facility.get("_id")]
        if same or candidates:
            chosen.append((same or candidates)[0])
    return chosen


def _write_batches(store: Store, docs: list[dict[str, Any]]) -> None:
    for start in range(0, len(docs), LOAD_BATCH):
        store.write_docs(docs[start:start + LOAD_BATCH])


def facility_workers(population: Population, chosen: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The other CHWs of the demo CHW's health facility (their areas' parent): their accounts make the
    supervisor reports compare workers of differing diligence (:mod:`kazi.demo.history`)."""
    parents = {c["_id"]: (c.get("parent") or {}).get("_id") for c in population.contacts
               if c.get("contact_type") == "chw_area"}
    chw = next((u for u in chosen if "chw" in u["roles"]), None)
    if chw is None:
        return []
    facility = parents.get(chw["facility_id"])
    taken = {u["username"] for u in chosen}
    return [u for u in population.users if "chw" in u["roles"] and u["username"] not in taken
            and facility is not None and parents.get(u["facility_id"]) == facility]


def load_demo(store: Store, service: TaskService, population: Population, *, history: bool = True
              ) -> list[DemoUser]:
    """Load the population and the demo program into ``store``, create (or reset) the demo accounts with new
    passwords and compute everyone's tasks. Idempotent: documents are written by id, accounts updated.

    The accounts are one per demo role plus the demo CHW's colleagues (the other CHWs of the facility: the
    supervisor's team). With ``history``, the last three months are lived through day by day before the demo's
    day (:mod:`kazi.demo.history`), so that task documents hold the state histories the supervisor
    reports count; without it, everything is written and computed once, at the service's "now"."""
    docs = [*population.contacts, *population.reports]
    tz = DEFAULT_TZ
    end_day = date.fromisoformat(local_date_str(service.clock(), tz) or "")
    split = (split_by_day(docs, replay_start(end_day), end_day, tz) if history
             else DaySplit(before=docs, days=[], after=[]))
    _write_batches(store, split.before)
    store.analyze()
    service.load_program(PROGRAM_DIR)
    program = service.program()
    known = list(program.roles) if program is not None else None
    made: dict[str, DemoUser] = {}

    def account(u: dict[str, Any]) -> None:
        password = secrets.token_urlsafe(9)
        fields = {"roles": u["roles"], "facility_id": u["facility_id"], "contact_id": u["contact_id"],
                  "timezone": u.get("tz") or DEFAULT_TZ}
        try:
            store.users.get(u["username"])
        except NotFoundError:
            store.users.create(u["username"], password=password, known_roles=known, **fields)
        else:
            store.users.update(u["username"], password=password, disabled=False, known_roles=known, **fields)
        online = not is_offline(list(u["roles"]), program.settings if program is not None else None)
        made[u["username"]] = DemoUser(u["username"], password, list(u["roles"]), online)

    chosen = demo_users(population)
    everyone = [*chosen, *facility_workers(population, chosen)]
    # the CHWs live through the replayed months; the others' accounts come after it and are computed once, at
    # "now" (their tasks are not what the reports compare, and a facility-wide supervisor costs the most)
    workers = [u for u in everyone if "chw" in u["roles"]] if split.days else everyone
    for u in workers:
        account(u)
    if split.days:
        full_days = service.full_recompute_days
        service.full_recompute_days = REPLAY_FULL_RECOMPUTE_DAYS
        try:
            replay(service, split.days, tz, lambda batch: _write_batches(store, batch))
        finally:
            service.full_recompute_days = full_days
    for u in everyone:
        if u["username"] not in made:
            account(u)
    out = [made[u["username"]] for u in everyone]
    gateway = gateway_account(population)
    if gateway is not None and known is not None and "gateway" in known:
        password = secrets.token_urlsafe(9)
        try:
            store.users.get(GATEWAY_USERNAME)
        except NotFoundError:
            store.users.create(GATEWAY_USERNAME, password=password, known_roles=known, **gateway)
        else:
            store.users.update(GATEWAY_USERNAME, password=password, disabled=False, known_roles=known, **gateway)
        out.append(DemoUser(GATEWAY_USERNAME, password, ["gateway"], True))
    _write_batches(store, split.after)
    if split.days:
        store.analyze()
    service.process_changes()
    return out


def gateway_account(population: Population) -> dict[str, Any] | None:
    """The SMS gateway's account fields: role ``gateway``, national (it matches senders anywhere, as CHT's
    gateway user does) and without a place, so it gets no tasks and costs no computation."""
    if not any("chw" in u["roles"] for u in population.users):
        return None
    return {"roles": ["gateway"], "facility_id": None, "contact_id": None, "national": True,
            "timezone": DEFAULT_TZ}


def sms_example(population: Population, base: str, users: list[DemoUser]) -> str | None:
    """The curl that registers a pregnancy by SMS from the demo CHW's phone (README.md, "Cases by SMS")."""
    gateway = next((u for u in users if u.username == GATEWAY_USERNAME), None)
    chw = next((u for u in population.users if "chw" in u["roles"]), None)
    phone = next((c.get("phone") for c in population.contacts if chw and c["_id"] == chw["contact_id"]), None)
    if gateway is None or not phone:
        return None
    return (f"curl -u {gateway.username}:{gateway.password} -H 'Content-Type: application/json' "
            f"{base}/api/v1/sms/messages \\\n      -d '{{\"messages\": [{{\"id\": \"demo-1\", "
            f"\"from\": \"{phone}\", \"text\": \"P 12 Mary Banda\"}}]}}'")
