"""`kazi demo`: Kazi running on its bundled demo program, with a generated population and demo users.

Plain ``kazi demo`` (the README's first command) shows Kazi as it is meant to be used, with nothing to set up:
it loads the demo program and a deterministic population into a fresh SQLite store, creates the demo
accounts (a CHW, a CHW supervisor, an online site supervisor, a program officer and an admin) with new
random passwords that it prints, computes everyone's tasks and serves the API at http://127.0.0.1:8000.
Online supervisors get tasks too (CHT gives them none). The demo CHW's colleagues (the other CHWs of her health
facility) get accounts too, and the CHWs' last three months are replayed day by day before the demo's day
(:mod:`kazi.cli.demo_history`), so that the supervisor reports compare workers with real monthly histories.

``kazi demo --print`` only computes and prints each demo user's Tasks tab, without a store or a server.
"""

from __future__ import annotations

import argparse
import secrets
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kazi.cli.demo_history import DaySplit, replay, replay_start, split_by_day
from kazi.cli.serve import DEFAULT_INTERVAL_S, add_server_arguments, input_settings, serve
from kazi.demo import PROGRAM_DIR
from kazi.engine.containers import hydrate_lineage
from kazi.engine.dates import local_date_str, make_local
from kazi.engine.engine import User, compute
from kazi.engine.permissions import is_offline
from kazi.errors import NotFoundError
from kazi.population import DEFAULT_TZ, Population, generate
from kazi.program.loader import load_program

if TYPE_CHECKING:
    from kazi.service.tasks import TaskService
    from kazi.store import Store

#: the demo's own database, recreated on each run so that the demo never mixes with real data
DEMO_DB = Path("data") / "demo.sqlite3"
#: documents per write transaction while loading the population
LOAD_BATCH = 1000
ROLE_ORDER = ["chw", "chw_supervisor", "site_supervisor", "program_officer", "admin"]
#: full recomputes during the replayed months every this many days (CHT's week), temporal updates between
#: them: a full recompute at each replayed midnight would multiply the demo's start-up by the days replayed
REPLAY_FULL_RECOMPUTE_DAYS = 7
#: the SMS gateway's account (docs/sms.md)
GATEWAY_USERNAME = "gateway"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("demo", help="serve Kazi with the demo program, a generated population and demo users")
    p.add_argument("--print", dest="print_only", action="store_true",
                   help="only print each demo user's Tasks tab (no store, no server)")
    p.add_argument("--households", type=int, default=500)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--date", type=date.fromisoformat, default=None,
                   help="the day to compute for (YYYY-MM-DD; default: today); the history ends the day before. "
                        "When given, the server's clock is frozen at 10:00 that day")
    p.add_argument("--limit", type=int, default=5, help="tasks shown per user (--print)")
    p.add_argument("--no-history", dest="history", action="store_false",
                   help="compute tasks once, at start, instead of replaying the CHWs' last three months day by day "
                        "(faster start; the supervisor reports then show all past work in the current month)")
    add_server_arguments(p, db_help=f"database URL (default: a fresh sqlite:///{DEMO_DB.as_posix()}, "
                                    "recreated on each run)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.print_only:
        return print_tasks(args)
    return serve_demo(args)


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
    supervisor reports compare workers of differing diligence (:mod:`kazi.cli.demo_history`)."""
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
    day (:mod:`kazi.cli.demo_history`), so that task documents hold the state histories the supervisor
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


def serve_demo(args: argparse.Namespace) -> int:
    from kazi.server.api import create_app
    from kazi.service.tasks import TaskService
    from kazi.store import open_store

    day = args.date or date.today()
    url = args.db
    if url is None:
        DEMO_DB.parent.mkdir(parents=True, exist_ok=True)
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{DEMO_DB}{suffix}").unlink(missing_ok=True)
        url = f"sqlite:///{DEMO_DB.as_posix()}"
    now = make_local(day.year, day.month - 1, day.day, 10, tz=DEFAULT_TZ) if args.date else None
    print(f"Kazi demo: generating {args.households} households (seed {args.seed}, history to {day}) into {url} ...",
          flush=True)
    population = generate(args.households, args.seed, day, DEFAULT_TZ)
    store = open_store(url)
    clock = (lambda: int(now)) if now is not None else None
    service = TaskService(store, clock=clock, workers=args.workers)
    try:
        print(f"  {len(population.contacts)} contacts, {len(population.reports)} reports; loading the program "
              "and computing every user's tasks ...", flush=True)
        users = load_demo(store, service, population, history=args.history)
        base = f"http://{args.host}:{args.port}"
        print(f"\nKazi is serving the demo at {base}: open it in a browser for the Tasks app (API documentation: "
              f"{base}/docs). Demo users:\n")
        print(f"  {'username':<28} {'password':<14} {'roles':<18} {'mode':<8} tasks ready")
        for u in users:
            account = store.users.get(u.username)
            ready = service.tasks(account, limit=1).total
            mode = "online" if u.online else "offline"
            print(f"  {u.username:<28} {u.password:<14} {','.join(u.roles):<18} {mode:<8} {ready}")
        first = users[0] if users else None
        if first is not None:
            print(f"\nTry:  curl -u {first.username}:{first.password} {base}/api/v1/tasks")
        sms = sms_example(population, base, users)
        if sms is not None:
            print(f"A pregnancy registered by SMS from {users[0].username}'s phone (docs/sms.md):\n  {sms}")
        print("(the passwords are new on each run; Ctrl-C stops the server)\n", flush=True)
        app = create_app(store=store, service=service, background_interval_s=DEFAULT_INTERVAL_S,
                         inputs=input_settings(args))
        serve(app, args.host, args.port)
    finally:
        service.close()
        store.close()
    return 0


def _pick_users(users: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One user per role, in a readable order."""
    order = ["chw", "chw_supervisor", "site_supervisor", "program_officer", "data_clerk"]
    chosen: dict[str, dict[str, Any]] = {}
    for u in users:
        for role in u["roles"]:
            if role in order and role not in chosen:
                chosen[role] = u
    return [chosen[r] for r in order if r in chosen]


def print_tasks(args: argparse.Namespace) -> int:
    day = args.date or date.today()
    program = load_program(PROGRAM_DIR)
    population = generate(args.households, args.seed, day, DEFAULT_TZ)
    docs = [*population.contacts, *population.reports]
    by_id = {d["_id"]: d for d in population.contacts}
    print(f"Kazi demo: program {PROGRAM_DIR}, {len(population.contacts)} contacts, "
          f"{len(population.reports)} reports, computed for {day} 10:00 ({DEFAULT_TZ})\n")
    for u in _pick_users(population.users):
        now = make_local(day.year, day.month - 1, day.day, 10, tz=u.get("tz") or DEFAULT_TZ)
        user = User(u["username"], tuple(u["roles"]), hydrate_lineage(by_id.get(u["contact_id"]), by_id))
        result = compute(program, docs=docs, user=user, now_ms=now, tz=u.get("tz") or DEFAULT_TZ)
        states: dict[str, int] = {}
        for d in result.task_docs:
            states[d["state"]] = states.get(d["state"], 0) + 1
        mode = "offline" if is_offline(list(u["roles"]), program.settings) else "online"
        ready = result.ready
        print(f"{u['username']} ({', '.join(u['roles'])}, {mode}): {len(ready)} tasks ready; "
              f"task docs by state: {dict(sorted(states.items()))}")
        for d in ready[: args.limit]:
            e = d["emission"]
            name = (e.get("contact") or {}).get("name", "")
            print(f"    due {e.get('dueDate')}  {e.get('title')}  {name}")
        if len(ready) > args.limit:
            print(f"    ... and {len(ready) - args.limit} more")
        print()
    print(f"(computed at {datetime.now().isoformat(timespec='seconds')}; see README.md for the other commands)")
    return 0
