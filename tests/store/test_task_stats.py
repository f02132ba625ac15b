"""The monthly event counts supervision reports read (kazi.store.task_stats, migration 0008).

Pure parts: UTC months, what a document counts for, the change a write makes, and the plan that turns any
report's bounds into whole UTC months plus exactly counted slivers. On SQLite and PostgreSQL: random histories
written in several rounds (new documents, closings, rewrites, supervisor tasks, documents without a task name),
whose indicator counts for months in zones east and west of UTC, with and without daylight saving, and for a
30-day window, equal a count worked out here in Python from the documents themselves; and the migration builds
from ``task_docs`` the same table the write path kept.
"""

from __future__ import annotations

import bisect
import random
from collections import defaultdict
from datetime import UTC, date, datetime
from typing import Any

import pytest
from migrating import down_and_up
from sqlalchemy import select

from kazi.store import Store, StoredUser
from kazi.store import supervision as stored
from kazi.store import task_stats as stats
from kazi.store.schema import task_stats
from kazi.supervision import report as rep
from kazi.supervision.definitions import Supervision, parse_supervision

DAY = 86_400_000
HOUR = 3_600_000


def ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso).replace(tzinfo=UTC).timestamp() * 1000)


# ------------------------------------------------------------------------------------------------------------
# pure


def test_utc_month_start() -> None:
    assert stats.utc_month_start(ms("2026-11-15T10:00")) == ms("2026-11-01T00:00")
    assert stats.utc_month_start(ms("2026-12-31T23:59")) == ms("2026-12-01T00:00")
    assert stats.utc_month_start(ms("2027-01-01T00:00")) == ms("2027-01-01T00:00")
    assert stats.utc_month_start(ms("1969-12-31T12:00")) == ms("1969-12-01T00:00")


def events(**kw: Any) -> stats.TaskEvents:
    base: dict[str, Any] = {"user_id": "org.couchdb.user:mary", "authored_on": ms("2026-08-30T12:00"),
                            "closed_at": None, "state": "Ready", "on_time": None, "task_name": "anc.visit",
                            "title_key": "task.anc"}
    return stats.TaskEvents(**{**base, **kw})


def test_what_a_document_counts_for() -> None:
    aug, sep = ms("2026-08-01T00:00"), ms("2026-09-01T00:00")
    key = ("org.couchdb.user:mary", aug, "anc.visit", "task.anc")
    assert stats.contributions(events()) == [(key, stats.GENERATED)]
    done = events(state="Completed", closed_at=ms("2026-09-01T01:00"), on_time=True)
    assert stats.contributions(done) == [(key, stats.GENERATED), ((*key[:1], sep, *key[2:]), stats.COMPLETED),
                                         ((*key[:1], sep, *key[2:]), stats.ON_TIME)]
    late = events(state="Completed", closed_at=ms("2026-08-31T00:00"), on_time=False)
    assert stats.contributions(late) == [(key, stats.GENERATED), (key, stats.COMPLETED)]
    nameless = events(task_name=None, title_key=None, authored_on=None, state="Failed", closed_at=aug)
    assert stats.contributions(nameless) == [(("org.couchdb.user:mary", aug, "", ""), stats.FAILED)]


def test_the_change_a_write_makes() -> None:
    ready = events()
    done = events(state="Completed", closed_at=ms("2026-09-01T01:00"), on_time=True)
    aug, sep = ms("2026-08-01T00:00"), ms("2026-09-01T00:00")
    key = ("org.couchdb.user:mary", aug, "anc.visit", "task.anc")
    assert stats.deltas([(None, ready)]) == {key: [1, 0, 0, 0, 0]}
    # Ready -> Completed: generated stays (cancels out, left out), completion added in September
    assert stats.deltas([(ready, done)]) == {(key[0], sep, *key[2:]): [0, 1, 1, 0, 0]}
    assert stats.deltas([(ready, ready)]) == {}
    # a batch sums: a new document and another one closing
    assert stats.deltas([(None, ready), (ready, done)]) == {key: [1, 0, 0, 0, 0],
                                                            (key[0], sep, *key[2:]): [0, 1, 1, 0, 0]}


def test_a_plan_for_months_east_of_utc_adds_the_sliver_before_each_month() -> None:
    months = rep.periods(date(2026, 8, 1), date(2026, 10, 1), ms("2026-11-15T10:00"), "Africa/Blantyre")
    bounds = [p.start_ms for p in months] + [months[-1].end_ms]
    plan = stats.plan(bounds)
    aug, sep, oct_, nov = (ms(f"2026-{m}-01T00:00") for m in ("08", "09", "10", "11"))
    assert plan.months == [(aug, sep, 0), (sep, oct_, 1), (oct_, nov, 2)]
    # 22:00-24:00 UTC on the last day of a month is already the next month in Blantyre (UTC+2)
    assert plan.exact == {(aug - 2 * HOUR, aug): [(0, 1)], (sep - 2 * HOUR, sep): [(0, -1), (1, 1)],
                          (oct_ - 2 * HOUR, oct_): [(1, -1), (2, 1)], (nov - 2 * HOUR, nov): [(2, -1)]}
    assert plan.month_steps() == [(sep, 0), (oct_, 1), (nov, 2)]


def test_a_plan_west_of_utc_and_across_daylight_saving() -> None:
    # New York: UTC-4 in summer, UTC-5 from 1 November 2026: the first hours of a UTC month are the month before
    months = rep.periods(date(2026, 10, 1), date(2026, 11, 1), ms("2026-11-15T10:00"), "America/New_York")
    bounds = [p.start_ms for p in months] + [months[-1].end_ms]
    oct_, nov, dec = (ms(f"2026-{m}-01T00:00") for m in ("10", "11", "12"))
    assert bounds == [oct_ + 4 * HOUR, nov + 4 * HOUR, dec + 5 * HOUR]
    plan = stats.plan(bounds)
    assert plan.months == [(oct_, nov, 0), (nov, dec, 1)]
    assert plan.exact == {(oct_, oct_ + 4 * HOUR): [(0, -1)], (nov, nov + 4 * HOUR): [(0, 1), (1, -1)],
                          (dec, dec + 5 * HOUR): [(1, 1)]}


def test_a_plan_in_utc_reads_months_only_and_a_window_is_counted_exactly() -> None:
    bounds = [ms("2026-08-01T00:00"), ms("2026-09-01T00:00"), ms("2026-10-01T00:00")]
    assert stats.plan(bounds).exact == {}
    window = [ms("2026-10-16T10:00"), ms("2026-11-15T10:00")]
    assert stats.plan(window).months == [] and stats.plan(window).exact == {tuple(window): [(0, 1)]}
    assert stats.plan(window).month_range is None
    # a month and a half: its end is no month's start, so it is counted exactly too
    assert stats.plan([ms("2026-08-01T00:00"), ms("2026-09-15T00:00")]).months == []


# ------------------------------------------------------------------------------------------------------------
# on both databases

SETTINGS: dict[str, Any] = {"supervision": {
    "categories": {"anc": {"tasks": ["anc.visit"]}, "pnc": {"titles": ["task.pnc"]}},
    "indicators": [
        {"id": "done", "label": "Done", "tasks": {"states": ["completed"]}},
        {"id": "anc_made", "label": "ANC generated", "tasks": {"category": "anc", "states": ["generated"]}},
        {"id": "pnc_closed", "label": "PNC closed",
         "tasks": {"category": "pnc", "states": ["completed", "failed", "cancelled"]}},
        {"id": "on_time", "label": "On time", "tasks": {"states": ["completed_on_time"]}},
        {"id": "failed", "label": "Failed", "tasks": {"states": ["failed"]}},
        {"id": "visits", "label": "Visits", "reports": {"forms": ["visit"]}},
        {"id": "rate", "label": "Rate", "rate": {"numerator": "done", "denominator": "failed"}},
    ]}}
ZONES = {"mary": "Africa/Blantyre", "john": "America/New_York", "kiri": "Pacific/Kiritimati", "ana": None}
NAMES = [("anc.visit", "task.anc"), ("pnc.home", "task.pnc"), ("other", "task.other"), (None, "task.pnc"),
         ("supervisor:low", "task.sup")]
START, END = ms("2025-10-20T00:00"), ms("2026-11-20T00:00")
NOW = ms("2026-11-15T10:00")


def supervision() -> Supervision:
    parsed, problems = parse_supervision(SETTINGS, "app_settings.json")
    assert problems == []
    return parsed


def task_doc(user: str, n: int, name: str | None, title: str, authored: int, state: str = "Ready",
             closed: int | None = None) -> dict[str, Any]:
    eid = f"r-{user}-{n}~e~{name}" if name is not None else f"bad-{n}"
    history = [{"state": "Ready", "timestamp": authored}]
    if closed is not None:
        history.append({"state": state, "timestamp": closed})
    end = datetime.fromtimestamp((authored + 3 * DAY) / 1000, UTC).date().isoformat()
    return {"_id": f"task~{user}~{n}", "type": "task", "user": f"org.couchdb.user:{user}", "authoredOn": authored,
            "emission": {"_id": eid, "title": title, "dueDate": end, "endDate": end},
            "state": state, "stateHistory": history}


def random_history(store: Store, seed: int) -> tuple[list[StoredUser], dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """Accounts, task documents written in rounds (every round through the store's write path) and reports;
    returns the workers, the final task documents and the live reports."""
    rng = random.Random(seed)
    store.write_docs([{"_id": "hc", "type": "health_center", "name": "HC"}] +
                     [{"_id": f"c-{u}", "type": "person", "name": u, "parent": {"_id": "hc"}} for u in ZONES])
    workers = [store.users.create(u, password=f"{u}-password", roles=["chw"], facility_id="hc", contact_id=f"c-{u}",
                                  timezone=tz) for u, tz in ZONES.items()]
    final: dict[str, dict[str, Any]] = {}
    for round_ in range(4):
        batch = []
        for user in ZONES:
            for n in range(round_ * 40, round_ * 40 + 40):  # new documents, Ready or already closed
                name, title = NAMES[rng.randrange(len(NAMES))]
                authored = rng.randrange(START - 20 * DAY, END)
                # closings often within hours of a month's start, where the slivers are
                if rng.random() < 0.5:
                    authored = stats.utc_month_start(authored) + rng.randrange(-30, 30) * HOUR
                doc = task_doc(user, n, name, title, authored)
                if rng.random() < 0.3:
                    doc = closing(rng, doc)
                batch.append(doc)
        open_docs = [d for d in final.values() if d["state"] == "Ready"]
        batch += [closing(rng, d) for d in rng.sample(open_docs, len(open_docs) // 2)]
        batch += rng.sample(list(final.values()), min(10, len(final)))  # unchanged rewrites
        batch = list({d["_id"]: d for d in batch}.values())
        rng.shuffle(batch)
        store.write_task_docs(batch)
        final.update((d["_id"], d) for d in batch)
    reports = [{"_id": f"rep-{i}", "type": "data_record", "form": rng.choice(["visit", "note"]),
                "reported_date": rng.randrange(START, END), "contact": {"_id": f"c-{rng.choice(list(ZONES))}"},
                "fields": {}} for i in range(120)]
    store.write_docs(reports)
    gone = [r["_id"] for r in reports[:15]]
    store.delete_docs(gone)
    return workers, final, [r for r in reports if r["_id"] not in gone]


def closing(rng: random.Random, doc: dict[str, Any]) -> dict[str, Any]:
    state = rng.choice(["Completed", "Completed", "Failed", "Cancelled"])
    closed = doc["authoredOn"] + rng.randrange(1, 12 * DAY)
    if rng.random() < 0.5:  # near a month's start
        closed = max(doc["authoredOn"] + 1, stats.utc_month_start(closed) + rng.randrange(-30, 30) * HOUR)
    return {**doc, "state": state, "stateHistory": [*doc["stateHistory"], {"state": state, "timestamp": closed}]}


def expected(docs: dict[str, dict[str, Any]], reports: list[dict[str, Any]], bounds: list[int]
             ) -> dict[tuple[str, str, int], int]:
    """The indicators' counts per (username, indicator, period), from the documents, in Python."""
    out: dict[tuple[str, str, int], int] = defaultdict(int)

    def period(at: int) -> int | None:
        k = bisect.bisect_right(bounds, at) - 1
        return k if 0 <= k < len(bounds) - 1 else None

    for d in docs.values():
        user = d["user"].removeprefix("org.couchdb.user:")
        name = d["emission"]["_id"].split("~")[-1] if "~" in d["emission"]["_id"] else None
        title = d["emission"]["title"]
        if name is not None and name.startswith("supervisor:"):
            continue
        anc, pnc = name == "anc.visit", title == "task.pnc"
        made = period(d["authoredOn"])
        if made is not None and anc:
            out[user, "anc_made", made] += 1
        if d["state"] == "Ready":
            continue
        closed_at = d["stateHistory"][-1]["timestamp"]
        closed = period(closed_at)
        if closed is None:
            continue
        if d["state"] == "Completed":
            out[user, "done", closed] += 1
            if rep.completed_on_time(closed_at, d["emission"]["endDate"], ZONES[user] or "UTC"):
                out[user, "on_time", closed] += 1
        if d["state"] == "Failed":
            out[user, "failed", closed] += 1
        if pnc:
            out[user, "pnc_closed", closed] += 1
    for r in reports:
        at = period(r["reported_date"])
        if r["form"] == "visit" and at is not None:
            out[r["contact"]["_id"].removeprefix("c-"), "visits", at] += 1
    return {k: v for k, v in out.items() if v}


def counted(counts: rep.Counts, keys: list[str]) -> dict[tuple[str, str, int], int]:
    out = {}
    for user, by_ind in counts.items():
        for iid, by_key in by_ind.items():
            assert by_key.get(rep.TOTAL, 0) == sum(v for k, v in by_key.items() if k != rep.TOTAL)
            out.update(((user, iid, keys.index(k)), int(v)) for k, v in by_key.items() if k != rep.TOTAL and v)
    return out


@pytest.mark.parametrize("seed", [1, 2])
def test_counts_equal_the_documents_counted_one_by_one(store: Store, seed: int) -> None:
    workers, docs, reports = random_history(store, seed)
    sup = supervision()
    for tz in ["UTC", "Africa/Blantyre", "America/New_York", "Pacific/Kiritimati", "Pacific/Pago_Pago"]:
        months = rep.periods(date(2025, 11, 1), date(2026, 11, 1), NOW, tz)
        bounds = [p.start_ms for p in months] + [months[-1].end_ms]
        keys = [p.key for p in months]
        got = counted(stored.count_indicators(store, sup, workers, bounds, keys), keys)
        assert got == expected(docs, reports, bounds), tz
    for window in [30, 45]:  # supervisor-task rules' windows: no whole months
        bounds = [NOW - window * DAY, NOW + 1]
        got = counted(stored.count_indicators(store, sup, workers, bounds, ["window"]), ["window"])
        assert got == expected(docs, reports, bounds)


def table(store: Store) -> dict[tuple[Any, ...], tuple[int, ...]]:
    with store.engine.connect() as conn:
        rows = conn.execute(select(task_stats)).all()
    return {tuple(r[:4]): tuple(r[4:]) for r in rows if any(r[4:])}


def test_the_migration_builds_what_the_write_path_kept(store: Store) -> None:
    random_history(store, 3)
    kept = table(store)
    assert kept and all(n >= 0 for counts in kept.values() for n in counts)
    down_and_up(store, "0007")  # task_stats dropped, then built by migration 0008 from task_docs
    assert table(store) == kept
