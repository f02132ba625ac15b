"""`kazi demo`: Kazi running on its bundled demo program, with a generated population and demo users.

Plain ``kazi demo`` (the README's first command) shows Kazi as it is meant to be used, with nothing to set up:
it loads the demo program and a deterministic population into a fresh SQLite store, creates the demo
accounts (a CHW, a CHW supervisor, an online site supervisor, a program officer and an admin) with new
random passwords that it prints, computes everyone's tasks and serves the API at http://127.0.0.1:8000.
Online supervisors get tasks too (CHT gives them none). The demo CHW's colleagues (the other CHWs of her health
facility) get accounts too, and the CHWs' last three months are replayed day by day before the demo's day
(:mod:`kazi.demo.history`), so that the supervisor reports compare workers with real monthly histories.

``kazi demo --print`` only computes and prints each demo user's Tasks tab, without a store or a server.
"""

from __future__ import annotations

import argparse
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kazi.cli.serve import DEFAULT_INTERVAL_S, add_server_arguments, input_settings, serve
from kazi.demo import PROGRAM_DIR
from kazi.demo.load import load_demo, sms_example
from kazi.demo.population import DEFAULT_TZ, generate
from kazi.engine.containers import hydrate_lineage
from kazi.engine.dates import make_local
from kazi.engine.engine import User, compute
from kazi.engine.permissions import is_offline
from kazi.program.loader import load_program

if TYPE_CHECKING:
    pass

#: the demo's own database, recreated on each run so that the demo never mixes with real data
DEMO_DB = Path("data") / "demo.sqlite3"


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
