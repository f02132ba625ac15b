"""One Kazi benchmark run, in its own process (so peak RSS belongs to this run alone).

    python bench/kazi_run.py --program DIR --population FILE --user-contact ID [--user-name NAME]
        [--roles chw] --now ISO|ms --tz ZONE [--incremental N] [--verify-incremental] [--workers N]

Prints one JSON object on stdout (progress on stderr):
  full compute   documents in -> task documents out: ``kazi.engine.engine.compute`` over every container
                 (or the engine's parallel entry point when it exists and --workers > 1), first run in a fresh
                 process, program already loaded (load time reported apart);
  incremental    N times: one new report (the CHW completing a Ready task: the task's first action form,
                 submitted for the task's subject a minute before ``now``), then recompute only the affected
                 container (its contact, reports and task docs, looked up in an index built beforehand, as a
                 store's index would be) and merge the writes into the task-doc store;
                 --verify-incremental checks the merged store against a full recompute with the new reports.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from population_io import load_population, parse_now  # noqa: E402

Doc = dict[str, Any]


def log(*m: object) -> None:
    print("[kazi-run]", *m, file=sys.stderr, flush=True)


def rss_peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def rss_now_mb() -> float:
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * resource.getpagesize() / 2**20
    except OSError:
        return float("nan")


def children_peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def by_state(task_docs: list[Doc]) -> dict[str, int]:
    out: dict[str, int] = defaultdict(int)
    for d in task_docs:
        out[str(d.get("state"))] += 1
    return dict(sorted(out.items()))


def parallel_entry(workers: int) -> tuple[Any, str]:
    """The engine's parallel full-compute entry point, if it has one (callable, description)."""
    if workers <= 1:
        return None, ""
    try:
        from kazi.service import emission_pool
    except ImportError:
        return None, ""
    fn = getattr(emission_pool, "compute_parallel", None)
    if callable(fn):
        return fn, f"kazi.service.emission_pool.compute_parallel(workers={workers})"
    return None, ""


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--program", required=True)
    ap.add_argument("--population", required=True)
    ap.add_argument("--user-contact", required=True)
    ap.add_argument("--user-name")
    ap.add_argument("--roles", default="chw")
    ap.add_argument("--now", required=True)
    ap.add_argument("--tz", required=True)
    ap.add_argument("--workers", type=int, default=1, help="use the engine's parallel path with N workers")
    ap.add_argument("--incremental", type=int, default=20, help="number of one-report updates to time")
    ap.add_argument("--verify-incremental", action="store_true")
    ap.add_argument("--out-task-docs")
    a = ap.parse_args()

    from kazi.engine.containers import (
        contact_subject_ids,
        hydrate_lineage,
        is_contact,
        report_subject_id,
    )
    from kazi.engine.engine import User, compute
    from kazi.program.loader import load_program

    out: dict[str, Any] = {"engine": "kazi", "python": sys.version.split()[0]}
    t0 = time.perf_counter()
    docs, meta = load_population(Path(a.population))
    out["parse_ms"] = (time.perf_counter() - t0) * 1e3
    now_ms = parse_now(a.now)
    tz = a.tz

    t0 = time.perf_counter()
    program = load_program(Path(a.program))
    out["load_program_ms"] = (time.perf_counter() - t0) * 1e3

    by_id = {d["_id"]: d for d in docs}
    user_doc = by_id.get(a.user_contact)
    if user_doc is None:
        raise SystemExit(f"user contact {a.user_contact} is not in the population")
    user = User(
        name=a.user_name or a.user_contact,
        roles=[r for r in a.roles.split(",") if r],
        contact=hydrate_lineage(user_doc, by_id),
    )
    contacts = [d for d in docs if is_contact(d)]
    reports = [d for d in docs if d.get("type") == "data_record"]
    out.update(docs_in=len(docs), contacts=len(contacts), reports=len(reports))

    gc.collect()
    out["rss_before_compute_mb"] = rss_now_mb()
    par_fn, par_name = parallel_entry(a.workers)
    if a.workers > 1 and par_fn is None:
        raise SystemExit("the engine has no parallel path (kazi.service.emission_pool.compute_parallel)")
    out["path"] = (
        f"{par_name}: emission over {a.workers} worker processes, pool start-up included"
        if par_fn
        else "kazi.engine.engine.compute (one process)"
    )
    log(f"full compute: {len(docs)} docs, {out['path']}, user {user.name} ({','.join(user.roles)}), TZ {tz}")
    t0 = time.perf_counter()
    if par_fn is not None:
        result = par_fn(program, workers=a.workers, docs=docs, task_docs=[], user=user, now_ms=now_ms, tz=tz)
    else:
        result = compute(program, docs=docs, task_docs=[], user=user, now_ms=now_ms, tz=tz)
    full_ms = (time.perf_counter() - t0) * 1e3
    if par_fn is None:
        # The first compute also starts V8 and compiles the program; CHT's emission pass is timed warm (min
        # of 3), so time Kazi warm too, and keep the first figure as the headline.
        warm: list[float] = []
        for _ in range(2):
            t1 = time.perf_counter()
            compute(program, docs=docs, task_docs=[], user=user, now_ms=now_ms, tz=tz)
            warm.append((time.perf_counter() - t1) * 1e3)
        out["full_warm_ms"] = min(warm)
        out["warm_runs"] = len(warm)
        log(f"full compute, V8 runtime already up: min {min(warm):.0f} ms of {len(warm)}")
    if par_fn is not None:
        # as a server runs it: the worker pool already started (and its programs loaded) before the compute
        from kazi.service.emission_pool import ParallelEmissionSource

        with ParallelEmissionSource(program.path, a.workers) as source:
            warm = contacts[:50]
            for _ in range(a.workers):
                compute(source, docs=warm, user=user, now_ms=now_ms, tz=tz, batch_size=10)
            t1 = time.perf_counter()
            again = compute(source, docs=docs, task_docs=[], user=user, now_ms=now_ms, tz=tz, batch_size=2000)
            out["full_warm_pool_ms"] = (time.perf_counter() - t1) * 1e3
            out["warm_pool_same_counts"] = (len(again.emissions), len(again.task_docs)) == (
                len(result.emissions),
                len(result.task_docs),
            )
        log(f"full compute with the pool already running: {out['full_warm_pool_ms']:.0f} ms")
    task_docs: list[Doc] = result.task_docs
    out["full_ms"] = full_ms
    out["emissions"] = len(result.emissions)
    out["task_docs"] = len(task_docs)
    out["writes"] = len(result.writes)
    out["task_docs_by_state"] = by_state(task_docs)
    out["errors"] = len(getattr(result, "errors", []) or [])
    out["peak_rss_after_full_mb"] = rss_peak_mb()
    out["children_peak_rss_mb"] = children_peak_mb()
    log(f"full compute: {full_ms:.0f} ms, {len(result.emissions)} emissions, {len(task_docs)} task docs")
    if a.out_task_docs:
        Path(a.out_task_docs).write_text(json.dumps(task_docs))

    # ---- containers (for throughput): contacts + headless subjects, as the marshaller builds them
    subject_to_contact: dict[Any, str] = {}
    for c in contacts:
        for sid in contact_subject_ids(c):
            subject_to_contact.setdefault(sid, c["_id"])
    headless = {report_subject_id(r) for r in reports} - set(subject_to_contact)
    headless.discard(None)
    out["containers"] = len(contacts) + len(headless)
    out["containers_per_s"] = out["containers"] / (full_ms / 1e3)
    if "full_warm_pool_ms" in out:
        out["containers_per_s_warm_pool"] = out["containers"] / (out["full_warm_pool_ms"] / 1e3)

    # ---- incremental: one new report at a time, recompute the affected container, merge
    if a.incremental > 0:
        out.update(
            incremental(
                a,
                program,
                user,
                now_ms,
                tz,
                contacts,
                reports,
                task_docs,
                compute,
                contact_subject_ids,
                report_subject_id,
            )
        )
    out["peak_rss_mb"] = rss_peak_mb()
    print(json.dumps(out, indent=2, default=str))
    return 0


def incremental_reports(
    n: int, task_docs: list[Doc], reports: list[Doc], user: Any, now_ms: int
) -> list[tuple[Doc, str | None]]:
    """N new reports, each a minute before now: first the CHW completing open tasks (the task's first action
    form, submitted for the task's subject: Ready tasks first, then Draft and Failed ones), then, when there
    are not enough tasks, copies of existing reports spread over the population (new ids)."""
    out: list[tuple[Doc, str | None]] = []
    rank = {"Ready": 0, "Draft": 1, "Failed": 2}
    open_tasks = sorted(
        (
            d
            for d in task_docs
            if d.get("state") in rank
            and d["emission"].get("actions")
            and d["emission"]["actions"][0].get("form")
            and d["emission"].get("forId")
        ),
        key=lambda d: (rank[d["state"]], d["_id"]),
    )
    submitter = user.contact and {"_id": user.contact["_id"]}
    for task in open_tasks[:n]:
        action = task["emission"]["actions"][0]
        fields = dict(action.get("content") or {})
        fields.pop("contact", None)
        fields["patient_id"] = task["emission"]["forId"]
        out.append(
            (
                {
                    "_id": f"bench-incremental-{len(out):04d}",
                    "type": "data_record",
                    "form": action["form"],
                    "content_type": "xml",
                    "reported_date": int(now_ms) - 60_000,
                    "contact": submitter,
                    "fields": fields,
                },
                task["_id"],
            )
        )
    pool = sorted((r for r in reports if r.get("form")), key=lambda r: r["_id"])
    if pool and len(out) < n:
        step = max(1, len(pool) // (n - len(out)))
        for r in pool[::step][: n - len(out)]:
            copy = json.loads(json.dumps(r))
            copy["_id"] = f"bench-incremental-{len(out):04d}"
            copy["reported_date"] = int(now_ms) - 60_000
            out.append((copy, None))
    return out


def incremental(
    a: argparse.Namespace,
    program: Any,
    user: Any,
    now_ms: int,
    tz: str,
    contacts: list[Doc],
    reports: list[Doc],
    task_docs: list[Doc],
    compute: Any,
    contact_subject_ids: Any,
    report_subject_id: Any,
) -> dict[str, Any]:
    # the store: docs by id, and the index a store keeps (subject -> contact / reports / task docs)
    contact_by_subject: dict[Any, Doc] = {}
    for c in contacts:
        for sid in contact_subject_ids(c):
            contact_by_subject.setdefault(sid, c)
    reports_by_subject: dict[Any, list[Doc]] = defaultdict(list)
    for r in reports:
        reports_by_subject[report_subject_id(r)].append(r)
    baseline = json.loads(json.dumps(task_docs)) if a.verify_incremental else []
    store: dict[str, Doc] = {d["_id"]: d for d in task_docs}
    tasks_by_requester: dict[Any, dict[str, Doc]] = defaultdict(dict)
    for d in task_docs:
        tasks_by_requester[d.get("requester")][d["_id"]] = d

    picks = incremental_reports(a.incremental, task_docs, reports, user, now_ms)
    if not picks:
        return {"incremental_note": "no task or report to base a new report on"}
    # What a long-running server does once its data is loaded: move everything alive so far out of the
    # collector's reach, so that a full collection (tens of ms over ~2M objects at 50,000 households)
    # does not land inside a 2 ms update.
    gc.collect()
    gc.freeze()
    times: list[float] = []
    completed = 0
    new_reports: list[Doc] = []
    for report, task_id in picks:
        new_reports.append(report)
        t0 = time.perf_counter()
        # recompute the affected container only: look up its docs, compute, merge the writes
        sid = report_subject_id(report)
        contact = contact_by_subject.get(sid)
        ids = contact_subject_ids(contact) if contact else [sid]
        reports_by_subject[sid].append(report)
        sub_docs: list[Doc] = [contact] if contact else []
        sub_tasks: list[Doc] = []
        for s in ids:
            sub_docs.extend(reports_by_subject.get(s, ()))
            sub_tasks.extend(tasks_by_requester.get(s, {}).values())
        res = compute(
            program,
            docs=sub_docs,
            task_docs=sub_tasks,
            user=user,
            now_ms=now_ms,
            tz=tz,
            subjects=[contact["_id"] if contact else sid],
        )
        for w in res.writes:
            store[w["_id"]] = w
            tasks_by_requester[w.get("requester")][w["_id"]] = w
        times.append((time.perf_counter() - t0) * 1e3)
        if task_id and store.get(task_id, {}).get("state") == "Completed":
            completed += 1
    res_out: dict[str, Any] = {
        "incremental_runs": len(times),
        "incremental_ms": times,
        "incremental_median_ms": statistics.median(times),
        "incremental_p95_ms": sorted(times)[max(0, int(round(0.95 * len(times))) - 1)],
        "incremental_max_ms": max(times),
        "incremental_tasks_completed": completed,
        "incremental_task_completions": sum(1 for _, t in picks if t),
    }
    log(
        f"incremental: median {res_out['incremental_median_ms']:.1f} ms, "
        f"max {res_out['incremental_max_ms']:.1f} ms over {len(times)} one-report updates "
        f"({completed} of {res_out['incremental_task_completions']} task completions "
        "turned their task Completed)"
    )
    if a.verify_incremental:
        log("verifying the merged store against a full recompute with the new reports ...")
        full = compute(
            program,
            docs=contacts + reports + new_reports,
            task_docs=baseline,
            user=user,
            now_ms=now_ms,
            tz=tz,
        )
        want = {d["_id"]: json.dumps(d, sort_keys=True) for d in full.task_docs}
        got = {k: json.dumps(v, sort_keys=True) for k, v in store.items()}
        diff = [k for k in set(want) | set(got) if want.get(k) != got.get(k)]
        res_out["incremental_verified"] = not diff
        res_out["incremental_verify_differences"] = len(diff)
        log(f"verification: {'identical' if not diff else f'{len(diff)} task docs differ'}")
    return res_out


if __name__ == "__main__":
    sys.exit(main())
