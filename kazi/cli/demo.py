"""`kazi demo`: the bundled demo program on a generated population, each demo user's Tasks tab.

It shows Kazi's main job end to end with nothing to set up: the program is validated and loaded, a
deterministic population is generated, and every demo user's tasks are computed at the chosen instant,
online supervisors included (CHT gives them none).
"""

from __future__ import annotations

import argparse
from datetime import date, datetime
from typing import Any

from kazi.demo import PROGRAM_DIR
from kazi.engine.containers import hydrate_lineage
from kazi.engine.dates import make_local
from kazi.engine.engine import User, compute
from kazi.engine.permissions import is_offline
from kazi.population import DEFAULT_TZ, generate
from kazi.program.loader import load_program


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("demo", help="compute the demo users' tasks on a generated population")
    p.add_argument("--households", type=int, default=500)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--date", type=date.fromisoformat, default=None,
                   help="the day to compute for (YYYY-MM-DD; default: today); the history ends the day before")
    p.add_argument("--limit", type=int, default=5, help="tasks shown per user")
    p.set_defaults(func=run)


def _pick_users(users: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One user per role, in a readable order."""
    order = ["chw", "chw_supervisor", "site_supervisor", "program_officer", "data_clerk"]
    chosen: dict[str, dict[str, Any]] = {}
    for u in users:
        for role in u["roles"]:
            if role in order and role not in chosen:
                chosen[role] = u
    return [chosen[r] for r in order if r in chosen]


def run(args: argparse.Namespace) -> int:
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
