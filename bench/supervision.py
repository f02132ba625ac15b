"""Supervision report benchmark (docs/supervision.md): the report page's queries over a year of task-document
history at 50,000 households' scale, on SQLite (and PostgreSQL with ``--postgres URL``), against a baseline
measured in the same run (a plain ``SELECT count(*) FROM task_docs``).

    python bench/supervision.py                          # 50,000 households (~500 CHWs), a year of history
    python bench/supervision.py --households 5000        # a quicker run
    python bench/supervision.py --postgres postgresql+psycopg://user@host/db   # also on that (empty) database

The history is synthetic (the engine is not run for a year): places, one health-centre supervisor per 10 CHWs, a
district officer, CHWs with one area of 100 households each, and for every CHW about 100 task documents a month of
the demo's task names, each completed (on time or late), failed or cancelled after a few days or still open, at a
completion rate that differs per CHW, written through ``Store.write_task_docs`` (which keeps the monthly counts,
``task_stats``); plus the reports the demo's indicators count (pregnancies) and others, inserted straight into
``docs``. What is timed is what ``GET /api/v1/supervision/report`` does besides HTTP
(``kazi.server.supervision_api.build``'s steps): the health workers of the place, their names, the indicators'
counts, the report's arithmetic, and the response model's validation and JSON, for a health centre (10 CHWs) and
the district (every CHW), over the default four months and over 13 months; the district's 13-month task counts
alone, from the monthly counts and from every task document (the method before migration 0008); a worker's
drill-down; and the task write path. The district's 13-month totals are checked against a plain count of ``task_docs``.
Target: < 1 s per report page. Results: ``bench/SUPERVISION_RESULTS.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
WORK = HERE / ".work" / "supervision"
sys.path.insert(0, str(REPO))

from pydantic import TypeAdapter  # noqa: E402
from sqlalchemy import func, insert, select, text  # noqa: E402

from kazi.demo import PROGRAM_DIR  # noqa: E402
from kazi.program.loader import load_program  # noqa: E402
from kazi.server.supervision_api import ReportOut  # noqa: E402
from kazi.store import Store, open_store  # noqa: E402
from kazi.store import supervision as stored  # noqa: E402
from kazi.store.schema import docs, task_docs, users  # noqa: E402
from kazi.supervision import report as rep  # noqa: E402
from kazi.supervision.definitions import Supervision  # noqa: E402

TZ = "Africa/Blantyre"
NOW = int(datetime(2026, 11, 15, 8, 0, tzinfo=UTC).timestamp() * 1000)
DAY = 86_400_000
YEAR_DAYS = 365
HOUSEHOLDS_PER_CHW = 100
CHWS_PER_CENTRE = 10
TASKS_PER_CHW_MONTH = 100
TARGET_S = 1.0
TASK_NAMES = [("anc.visit", "task.anc.visit.title"), ("anc.delivery_reminder", "task.anc.delivery_reminder.title"),
              ("pnc.home_visit", "task.pnc.home_visit.title"), ("newborn.home_check", "task.newborn.home_check.title"),
              ("danger_sign.follow_up", "task.danger_sign.follow_up.title"),
              ("visit_request.home_visit", "task.visit_request.home_visit.title"),
              ("art.trace_client", "task.art.trace_client.title")]
BATCH = 5000


def say(*m: object) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}]", *m, file=sys.stderr, flush=True)


def build(store: Store, households: int, seed: int) -> dict[str, Any]:
    """Write the synthetic history; returns its sizes and a CHW, a health centre and the district ids."""
    rng = random.Random(seed)
    chws = max(CHWS_PER_CENTRE, households // HOUSEHOLDS_PER_CHW)
    centres = (chws + CHWS_PER_CENTRE - 1) // CHWS_PER_CENTRE
    places: list[dict[str, Any]] = [{"_id": "district", "type": "district_hospital", "name": "District"}]
    for c in range(centres):
        places.append({"_id": f"hc-{c}", "type": "health_center", "name": f"Health centre {c}",
                       "parent": {"_id": "district"}})
    for w in range(chws):
        hc = f"hc-{w // CHWS_PER_CENTRE}"
        places.append({"_id": f"area-{w}", "type": "contact", "contact_type": "chw_area", "name": f"Area {w}",
                       "parent": {"_id": hc, "parent": {"_id": "district"}}})
        places.append({"_id": f"chw-{w}", "type": "person", "name": f"CHW {w}",
                       "parent": {"_id": f"area-{w}", "parent": {"_id": hc, "parent": {"_id": "district"}}}})
    store.write_docs(places)
    made = int(time.time() * 1000)
    with store.engine.begin() as conn:
        rows = [{"username": f"chw{w}", "password_hash": "x", "roles": '["chw"]', "facility_id": f"area-{w}",
                 "contact_id": f"chw-{w}", "timezone": TZ, "national": False, "disabled": False, "created_at": made,
                 "updated_at": made} for w in range(chws)]
        rows += [{"username": f"sup{c}", "password_hash": "x", "roles": '["chw_supervisor"]',
                  "facility_id": f"hc-{c}", "contact_id": None, "timezone": TZ, "national": False,
                  "disabled": False, "created_at": made, "updated_at": made} for c in range(centres)]
        rows.append({"username": "officer", "password_hash": "x", "roles": '["program_officer"]',
                     "facility_id": "district", "contact_id": None, "timezone": TZ, "national": False,
                     "disabled": False, "created_at": made, "updated_at": made})
        conn.execute(insert(users), rows)
    start = NOW - YEAR_DAYS * DAY
    n_tasks = 0
    batch: list[dict[str, Any]] = []

    def flush() -> None:  # the store's own write path, which also keeps the monthly counts (task_stats)
        if batch:
            store.write_task_docs(batch)
            batch.clear()

    for w in range(chws):
        rate = rng.uniform(0.45, 0.97)  # each CHW's own completion rate: the comparison means something
        user_id = f"org.couchdb.user:chw{w}"
        for i in range(TASKS_PER_CHW_MONTH * 12):
            name, title = TASK_NAMES[rng.randrange(len(TASK_NAMES))]
            authored = start + rng.randrange(YEAR_DAYS * DAY)
            due = authored + rng.randrange(0, 7) * DAY
            due_day = rep.local_date(due, TZ).isoformat()
            end_day = rep.local_date(due + 3 * DAY, TZ).isoformat()
            closing = authored + rng.randrange(1, 10 * DAY)
            closed_at: int | None = closing
            roll = rng.random()
            if closing > NOW:
                state, closed_at = "Ready", None
            elif roll < rate:
                state = "Completed"
            elif roll < rate + (1 - rate) * 0.8:
                state = "Failed"
            else:
                state = "Cancelled"
            eid = f"r-{w}-{i}~e~{name}"
            history = [{"state": "Ready", "timestamp": authored}]
            if closed_at is not None:
                history.append({"state": state, "timestamp": closed_at})
            body = {"_id": f"task~{user_id}~{eid}~{authored}", "type": "task", "authoredOn": authored,
                    "user": user_id, "requester": f"p-{w}-{i % 100}", "owner": f"p-{w}-{i % 100}",
                    "emission": {"_id": eid, "title": title, "icon": "icon", "dueDate": due_day, "startDate": due_day,
                                 "endDate": end_day, "actions": [{"type": "report", "form": "f", "label": "l",
                                                                  "content": {"source": "task"}}],
                                 "forId": f"p-{w}-{i % 100}", "contact": {"name": "Someone"}},
                    "state": state, "stateHistory": history}
            batch.append(body)
            n_tasks += 1
            if len(batch) >= BATCH:
                flush()
    flush()
    # reports: per household about 3 a year (pregnancies, ANC and PNC visits, other forms)
    forms = ["pregnancy", "P", "anc_visit", "pnc_visit", "delivery", "home_visit"]
    n_reports = 0
    doc_seq = 10_000_000
    rows = []
    for w in range(chws):
        for i in range(HOUSEHOLDS_PER_CHW * 3):
            doc_seq += 1
            when = start + rng.randrange(YEAR_DAYS * DAY)
            form = forms[rng.randrange(len(forms))]
            rid = f"report-{w}-{i}"
            rows.append({"id": rid, "rev": "1-x", "seq": doc_seq, "kind": "report", "type": "data_record",
                         "contact_type": None, "form": form, "parent_id": None, "contact_id": f"chw-{w}",
                         "subject": f"p-{w}-{i % 100}", "reported_date": when, "deleted": False,
                         "body": json.dumps({"_id": rid, "type": "data_record", "form": form, "reported_date": when,
                                             "contact": {"_id": f"chw-{w}"}, "fields": {"patient_id": "x"}})})
            n_reports += 1
            if len(rows) >= BATCH:
                with store.engine.begin() as conn:
                    conn.execute(insert(docs), rows)
                rows = []
    if rows:
        with store.engine.begin() as conn:
            conn.execute(insert(docs), rows)
    store.analyze()
    return {"households": households, "chws": chws, "centres": centres, "task_docs": n_tasks,
            "reports": n_reports}


def report_page(store: Store, supervision: Supervision, place: str, caller: str, start: str | None,
                end: str | None) -> dict[str, Any]:
    """What GET /api/v1/supervision/report does besides HTTP and the permission check."""
    first, last = rep.default_months(NOW, TZ)
    months = rep.periods(rep.parse_month(start) if start else first, rep.parse_month(end) if end else last, NOW, TZ)
    workers = stored.health_workers(store, place, exclude=caller)
    names = stored.doc_names(store, [w.contact_id or "" for w in workers] + [w.facility_id or "" for w in workers])
    infos = [rep.WorkerInfo(w.username, names.get(w.contact_id or "") or w.username, w.facility_id,
                            names.get(w.facility_id or "")) for w in workers]
    bounds = [p.start_ms for p in months] + [months[-1].end_ms]
    counts = stored.count_indicators(store, supervision, workers, bounds, [p.key for p in months])
    return rep.build_report(supervision, {"_id": place, "name": place}, months, infos, counts)


REPORT_OUT = TypeAdapter(ReportOut)


def served(store: Store, supervision: Supervision, place: str, caller: str, start: str | None,
           end: str | None) -> bytes:
    """:func:`report_page` and what the route does with it: validated by its response model and encoded as JSON
    (a district's 13 months are 1.4 MB of it)."""
    report = report_page(store, supervision, place, caller, start, end)
    return REPORT_OUT.dump_json(REPORT_OUT.validate_python(report), by_alias=True)


def exact_counts(store: Store, periods: list[dict[str, Any]]) -> dict[str, float]:
    """The district's team totals of two indicators over the report's months, counted straight from
    ``task_docs`` (plain SQL, no monthly counts): what the report must equal."""
    lo = rep.local_midnight_ms(rep.parse_month(periods[0]["key"]), TZ)
    hi = rep.local_midnight_ms(date.fromisoformat(periods[-1]["end"]) + timedelta(days=1), TZ)
    with store.engine.connect() as conn:
        completed = conn.execute(text("SELECT count(*) FROM task_docs WHERE state = 'Completed' AND closed_at >= :lo "
                                      "AND closed_at < :hi"), {"lo": lo, "hi": hi}).scalar()
        due = conn.execute(text("SELECT count(*) FROM task_docs WHERE state IN ('Completed', 'Failed') "
                                "AND closed_at >= :lo AND closed_at < :hi"), {"lo": lo, "hi": hi}).scalar()
    return {"tasks_completed": float(completed or 0), "tasks_due": float(due or 0)}


def task_counts(store: Store, supervision: Supervision, count: Callable[..., Any]) -> Callable[[], None]:
    """A timed case: the district's task indicators over 13 months by ``count`` alone, so the monthly counts
    (``task_stats`` with the slivers counted from ``task_docs``) and the count of every task document (what
    reports did before migration 0008, and still do for periods that are not whole months) compare in one run."""
    months = rep.periods(rep.parse_month("2025-11"), rep.parse_month("2026-11"), NOW, TZ)
    bounds = [p.start_ms for p in months] + [months[-1].end_ms]
    ids = [w.settings_id for w in stored.health_workers(store, "district", exclude="officer")]

    def run() -> None:
        with store.engine.connect() as conn:
            list(count(conn, supervision, ids, bounds))
    return run


WRITES = 100


def writes(store: Store) -> Callable[[], None]:
    """A timed case: ``WRITES`` new Ready task documents of one CHW, then the same documents Completed: two
    ``Store.write_task_docs`` calls, as the task service makes them (the monthly counts change in each)."""
    runs = iter(range(1_000_000))

    def run() -> None:
        n = next(runs)
        made = NOW - 3 * DAY
        user_id = "org.couchdb.user:chw0"
        docs_ = []
        for i in range(WRITES):
            eid = f"bench-{n}-{i}~e~anc.visit"
            docs_.append({"_id": f"task~{user_id}~{eid}~{made}", "type": "task", "authoredOn": made, "user": user_id,
                          "requester": "p-0-0", "owner": "p-0-0", "state": "Ready",
                          "emission": {"_id": eid, "title": "task.anc.visit.title", "dueDate": "2026-11-13",
                                       "endDate": "2026-11-16", "forId": "p-0-0"},
                          "stateHistory": [{"state": "Ready", "timestamp": made}]})
        store.write_task_docs(docs_)
        store.write_task_docs([{**d, "state": "Completed",
                                "stateHistory": [*d["stateHistory"], {"state": "Completed", "timestamp": NOW}]}
                               for d in docs_])
    return run


def timed(fn: Callable[[], Any], repeat: int) -> dict[str, Any]:
    fn()  # warm: the first run reads pages from disk
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return {"median_s": statistics.median(times), "max_s": max(times), "n": repeat}


def run_backend(label: str, url: str, households: int, seed: int, repeat: int) -> dict[str, Any]:
    store = open_store(url)
    try:
        with store.engine.connect() as conn:
            existing = conn.scalar(select(func.count()).select_from(task_docs))
        if existing:
            raise SystemExit(f"{label}: the database is not empty ({existing} task documents): use a new one")
        say(f"{label}: writing the history ({households} households)")
        t = time.perf_counter()
        sizes = build(store, households, seed)
        sizes["build_s"] = time.perf_counter() - t
        if store.backend == "postgresql":
            # the state autovacuum brings a store to: without a vacuum, PostgreSQL's index-only scans (the
            # covering indexes, the baseline's count) visit the table too, as the visibility map is empty
            with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("VACUUM (ANALYZE)")
        say(f"{label}: {sizes}")
        supervision = load_program(PROGRAM_DIR).supervision

        def baseline() -> None:
            with store.engine.connect() as conn:
                conn.execute(text("SELECT count(*) FROM task_docs")).scalar()

        cases = {
            "baseline: SELECT count(*) FROM task_docs": baseline,
            "health centre (10 CHWs), default 4 months": lambda: served(store, supervision, "hc-0", "sup0", None,
                                                                         None),
            "health centre (10 CHWs), 13 months": lambda: served(store, supervision, "hc-0", "sup0", "2025-11",
                                                                  "2026-11"),
            f"district ({sizes['chws']} CHWs), default 4 months": lambda: served(
                store, supervision, "district", "officer", None, None),
            f"district ({sizes['chws']} CHWs), 13 months": lambda: served(
                store, supervision, "district", "officer", "2025-11", "2026-11"),
            f"district ({sizes['chws']} CHWs), 13 months, task counts only: monthly counts and slivers":
                task_counts(store, supervision, stored._indicator_task_counts),
            f"district ({sizes['chws']} CHWs), 13 months, task counts only: every task document (before 0008)":
                task_counts(store, supervision, stored._task_counts),
            "drill-down: a CHW's overdue and failed tasks": lambda: stored.worker_tasks(
                store, store.users.get("chw0"), overdue_before=rep.local_date(NOW, TZ).isoformat(), failed=True),
            f"task write path: {WRITES} new task documents, then the same completed": writes(store),
        }
        results = {}
        for name, fn in cases.items():
            results[name] = timed(fn, repeat)
            say(f"{label}: {name}: median {results[name]['median_s'] * 1000:.1f} ms")
        check = report_page(store, supervision, "district", "officer", "2025-11", "2026-11")
        exact = exact_counts(store, check["periods"])
        got = {k: check["team"]["values"][k]["total"] for k in exact}
        if got != exact:
            raise SystemExit(f"{label}: the district's 13-month report {got} differs from the exact count {exact}")
        say(f"{label}: the district's 13-month team totals equal an exact count of task_docs: {exact}")
        return {"backend": label, "sizes": sizes, "results": results, "exact": exact,
                "district_team_completion": check["team"]["values"]["completion_rate"]["total"]}
    finally:
        store.close()


def write_results(runs: list[dict[str, Any]]) -> Path:
    out = HERE / "SUPERVISION_RESULTS.md"
    lines = ["# Supervision report benchmark", "",
             f"Run {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')} with `python bench/supervision.py` "
             f"(see bench/README.md). Target: < {TARGET_S:.0f} s per report page. Times are medians of repeated "
             "runs after a warm-up, in milliseconds, with the baseline `SELECT count(*) FROM task_docs` measured "
             "in the same run on the same store; the ratio is the case's median over the baseline's. Load average "
             f"(1, 5, 15 min) when the results were written: {', '.join(f'{x:.1f}' for x in os.getloadavg())} "
             f"on {os.cpu_count()} cores (other work on the machine slows every figure alike).", "",
             "The default report page is the last three complete months and the current one; 13 months is the "
             "longest range the API accepts. Reports are in the caller's months (here Africa/Blantyre, UTC+2). "
             "Whole months of task events come from `task_stats` (summed per worker, UTC month and task at each "
             "task-document write, migration 0008), the two-hour slivers between local and UTC months from "
             "`task_docs` through its covering indexes; reports by form from the covering index "
             "`ix_docs_submitted`. The two 'task counts only' rows time the task indicators alone, by that method "
             "and by counting every task document of the range (the method before 0008), in the same run. The "
             "write-path row is what the task service pays per write, monthly counts included. After the cases, "
             "the district's 13-month team totals are checked against a plain `count(*)` of `task_docs`.", ""]
    for run in runs:
        s = run["sizes"]
        lines += [f"## {run['backend']}", "",
                  f"{s['households']:,} households, {s['chws']} CHWs in {s['centres']} health centres, "
                  f"{s['task_docs']:,} task documents over a year, {s['reports']:,} reports (written in "
                  f"{s['build_s']:.0f} s). District completion rate over the default range: "
                  f"{run['district_team_completion']:.3f}.", "",
                  "| case | median ms | max ms | x baseline | < 1 s |", "| --- | ---: | ---: | ---: | :---: |"]
        base = next(iter(run["results"].values()))["median_s"]
        for name, r in run["results"].items():
            ok = "yes" if r["median_s"] < TARGET_S else "NO"
            lines.append(f"| {name} | {r['median_s'] * 1000:.1f} | {r['max_s'] * 1000:.1f} | "
                         f"{r['median_s'] / base:.1f} | {ok} |")
        lines.append("")
    out.write_text("\n".join(lines))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--households", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--postgres", help="also on this empty PostgreSQL database (SQLAlchemy URL)")
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    db = WORK / f"supervision-{args.households}.sqlite3"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    runs = [run_backend("SQLite", f"sqlite:///{db}", args.households, args.seed, args.repeat)]
    if args.postgres:
        runs.append(run_backend("PostgreSQL", args.postgres, args.households, args.seed, args.repeat))
    say(f"wrote {write_results(runs)}")


if __name__ == "__main__":
    main()
