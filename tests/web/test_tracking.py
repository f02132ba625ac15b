"""Task interaction tracking in the web app (tracker.js and the analysts' page), in Chromium against the demo
server (see conftest.py), as docs/interactions.md describes it: a tracked CHW's scripted session becomes exactly
the expected summary on the server once the day is over and the app synced; an untracked user leaves nothing
anywhere; 600 events in a day keep 500 and count 100 dropped; a summary made offline is delivered once when the
connection returns; nothing stored on the device or in the server's table names a demo contact; the
program officer reads the metrics on the analysts' page.

The demo program tracks nobody, so this module grants ``can_track_task_interactions`` to ``chw`` for its
tests (a new program version with changed settings, as a program manager would) and takes it back after.
The browser's clock is frozen and moved by hand, so every offset in a summary is known in advance.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import select

from kazi.demo import PROGRAM_DIR
from kazi.demo.server import RunningDemo
from kazi.server.interactions_api import TRACK
from kazi.store.interactions import find_summaries
from kazi.store.schema import interaction_summaries
from kazi.store.scope import EVERYTHING
from kazi.web import app_version

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

Session = Any  # conftest.Session (test folders are not packages here)
SessionFor = Callable[[str], Session]
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


# ------------------------------------------------------------------------------------------------------
# set-up and helpers


def _off_the_loop(fn: Callable[[], Any]) -> Any:
    """Run ``fn`` in a thread of its own: loading a program runs V8, which refuses to block the thread where
    Playwright's event loop runs."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # handed to the test's thread
            box["error"] = exc

    thread = threading.Thread(target=run, name="kazi-test-settings")
    thread.start()
    thread.join(120)
    if "error" in box:
        raise box["error"]
    return box.get("value")


@pytest.fixture(scope="module")
def tracked(demo: RunningDemo) -> Iterator[str]:
    """Tracking granted to the demo's ``chw`` role for this module's tests (the other roles stay untracked)."""
    permissions = json.loads((PROGRAM_DIR / "app_settings.json").read_text())["permissions"]
    _off_the_loop(lambda: demo.service.import_settings({"permissions": {**permissions, TRACK: ["chw"]}}))
    try:
        yield demo.user("chw").username
    finally:
        _off_the_loop(lambda: demo.service.import_settings({"permissions": permissions}))


def at(s: Session, ms: int) -> None:
    """Freeze the browser's clock on ``ms`` (epoch milliseconds)."""
    s.context.clock.set_fixed_time(datetime.fromtimestamp(ms / 1000, tz=UTC))


def local_ms(demo: RunningDemo, day: date, hour: int, minute: int = 0, second: int = 0) -> int:
    moment = datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=ZoneInfo(demo.tz))
    return int(moment.timestamp() * 1000)


def demo_day(demo: RunningDemo) -> date:
    return datetime.fromtimestamp(demo.now_ms / 1000, tz=ZoneInfo(demo.tz)).date()


def js_click(s: Session, selector: str) -> None:
    """Click without Playwright scrolling the element into view (a scroll would be an event of its own)."""
    s.page.locator(selector).first.evaluate("el => el.click()")


def settle(s: Session) -> None:
    """Wait until every event the page noted is stored."""
    s.page.evaluate("async () => { await (await import('/app/tracker.js')).flushed(); }")


def scroll_list(s: Session) -> None:
    """Scroll the list down and back up at the same instant: one task_list:scroll (the 2 s rule drops the
    second)."""
    s.page.evaluate("""async () => {
        for (const y of [300, 0]) {
            if (Math.round(scrollY) === y) continue;  // nothing to scroll (a short page): no event
            await Promise.race([
                new Promise((resolve) => { addEventListener('scroll', resolve, { once: true }); scrollTo(0, y); }),
                new Promise((resolve) => setTimeout(resolve, 2000)),
            ]);
        }
    }""")


TRACKING_DB = """async () => {
    if (!(await indexedDB.databases()).some((d) => d.name === 'kazi-tracking')) return null;
    const db = await new Promise((resolve, reject) => {
        const r = indexedDB.open('kazi-tracking');
        r.onsuccess = () => resolve(r.result);
        r.onerror = () => reject(r.error);
    });
    const out = {};
    for (const name of db.objectStoreNames) {
        out[name] = await new Promise((resolve) => {
            const r = db.transaction(name).objectStore(name).getAll(); r.onsuccess = () => resolve(r.result);
        });
    }
    db.close();
    return out;
}"""


def tracking_db(s: Session) -> dict[str, list[dict[str, Any]]] | None:
    out: dict[str, list[dict[str, Any]]] | None = s.page.evaluate(TRACKING_DB)
    return out


def posts_to_interactions(s: Session) -> list[Any]:
    """Every POST /api/v1/interactions the page makes, as sent."""
    sent: list[Any] = []
    s.page.on("request", lambda r: sent.append(r.post_data_json)
              if r.method == "POST" and r.url.endswith("/api/v1/interactions") else None)
    return sent


def stored(demo: RunningDemo, username: str) -> list[Any]:
    return find_summaries(demo.store, EVERYTHING, usernames=[username])


def wait_stored(demo: RunningDemo, summary_id: str, timeout_s: float = 20) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = [x for x in find_summaries(demo.store, EVERYTHING) if x.id == summary_id]
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"{summary_id} never reached the server")


def sync_now(s: Session) -> None:
    s.page.evaluate("async () => { await (await import('/app/data.js')).sync(); }")


def device_id(s: Session) -> str:
    value = s.page.evaluate("localStorage.getItem('kazi-device-id')")
    assert isinstance(value, str) and UUID.match(value)
    return value


def ev(action: str, offset: int, ref: str | None = None, detail: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"action": action}
    if ref is not None:
        out["ref"] = ref
    if detail is not None:
        out["detail"] = detail
    out["offset"] = offset
    return out


def fill_form(page: Any) -> None:
    """Answer every question shown (the first choice, a date, a number, a text), again while answers reveal
    questions."""
    for _ in range(4):
        shown = page.eval_on_selector_all("form.report .field[data-field]",
                                          "els => els.filter(e => !e.hidden).map(e => [e.dataset.field, e.className])")
        for name, classes in shown:
            field = page.locator(f"form.report .field[data-field='{name}']")
            if field.is_hidden():
                continue
            kind = classes.split("type-")[-1]
            if kind in ("select_one", "select_multiple"):
                if not field.locator("input:checked").count():
                    field.locator("input").first.check()
            elif kind in ("date", "integer", "decimal", "text"):
                box = field.locator("input, textarea").first
                if not box.input_value():
                    box.fill({"date": "2025-08-01", "integer": "2", "decimal": "3.2", "text": "seen at home"}[kind])


def sync_settled(s: Session) -> None:
    s.page.wait_for_selector(".sync .syncing", state="detached")
    s.page.wait_for_selector(".sync details.queued", state="detached", timeout=30_000)


# finds a task with one report action whose household has another such task (the group page after it)
PICK_HOUSEHOLD_PAIR = """async () => {
    const L = await import('/app/logic.js');
    const D = await import('/app/data.js');
    const ready = L.readyTasks(D.state.tasks, L.localDay(), D.hiddenTaskIds());
    // not the PNC visit: test_webapp.py works that one
    const spared = ['task.pnc.home_visit.title'];
    const single = (t) => (t.emission.actions ?? []).length === 1 && t.emission.actions[0].type !== 'contact'
        && !spared.includes(t.emission.title);
    for (const t of ready) {
        if (!single(t)) continue;
        const household = L.householdOf(t, D.state.tasks);
        if (!household) continue;
        const others = L.householdTasks(household, ready, t._id);
        if (others.length && single(others[0])) return { a: t._id, b: others[0]._id, others: others.length };
    }
    return null;
}"""


def household_pair(s: Session, demo: RunningDemo) -> dict[str, Any]:
    pair: dict[str, Any] | None = s.page.evaluate(PICK_HOUSEHOLD_PAIR)
    if pair is None:
        # a danger sign seen on a pregnant woman: a second Ready task in her household (the follow-up, first)
        s.api.danger_sign_for("task.anc.visit.title", "tracking-test-danger-sign", demo.now_ms - 3600_000)
        sync_now(s)
        pair = s.page.evaluate(PICK_HOUSEHOLD_PAIR)
    assert pair is not None
    return pair


# ------------------------------------------------------------------------------------------------------
# a tracked CHW


def test_a_tracked_session_becomes_exactly_the_expected_summary(session_for: SessionFor, demo: RunningDemo,
                                                               tracked: str) -> None:
    s = session_for("chw")
    page = s.page
    posts = posts_to_interactions(s)
    t0 = demo.now_ms
    day = demo_day(demo)
    at(s, t0)
    s.login()
    n_login = s.rows().count()
    pair = household_pair(s, demo)  # (may add a task: then the list has one more row than at login)
    tasks = {i["_id"]: i for i in s.api.ready_tasks()}
    ids = s.row_ids()
    n = len(ids)
    title = {i: t["emission"]["title"] for i, t in tasks.items()}
    multi = next(i for i in ids if len(tasks[i]["emission"]["actions"]) > 1)
    a, b = pair["a"], pair["b"]
    form_a, form_b = tasks[a]["emission"]["actions"][0]["form"], tasks[b]["emission"]["actions"][0]["form"]
    a_name = page.locator(f"a.task[data-task-id='{a}'] .name").inner_text()

    at(s, t0 + 2000)
    scroll_list(s)
    at(s, t0 + 4000)
    js_click(s, "#filter-btn")
    at(s, t0 + 5000)
    page.select_option("#f-type", index=1)
    at(s, t0 + 6000)
    page.select_option("#f-type", value="")
    at(s, t0 + 7000)
    js_click(s, "#filter-btn")
    at(s, t0 + 8000)
    page.fill("#search", a_name)  # a contact's name: searched, never recorded
    at(s, t0 + 9000)
    page.fill("#search", "")
    at(s, t0 + 10000)
    js_click(s, f"a.task[data-task-id='{multi}']")
    page.wait_for_selector(".task-detail")
    at(s, t0 + 12000)
    js_click(s, "#back")
    page.wait_for_selector("ul.tasks")
    at(s, t0 + 15000)
    pos_a = s.row_ids().index(a)
    js_click(s, f"a.task[data-task-id='{a}']")
    page.wait_for_selector(f"form.report[data-form='{form_a}']")
    at(s, t0 + 20000)
    fill_form(page)
    page.click("form.report button[type=submit]")
    page.wait_for_selector("ul.tasks.group")
    group = page.locator("ul.tasks.group a.task").count()
    assert group == pair["others"]
    sync_settled(s)
    at(s, t0 + 25000)
    pos_b = s.row_ids().index(b)
    js_click(s, f"ul.tasks.group a.task[data-task-id='{b}']")
    page.wait_for_selector(f"form.report[data-form='{form_b}']")
    at(s, t0 + 30000)
    js_click(s, "form.report .actions button[type=button]")  # Cancel
    page.wait_for_selector("ul.tasks.group")
    at(s, t0 + 32000)
    js_click(s, ".end a.btn")  # back to the list
    page.wait_for_selector("ul.tasks:not(.group)")
    n_after = s.rows().count()
    at(s, t0 + 40000)
    pos_multi = s.row_ids().index(multi)
    js_click(s, f"a.task[data-task-id='{multi}']")
    page.wait_for_selector(".task-detail")
    at(s, t0 + 42000)
    js_click(s, ".task-detail dd a")  # the contact's page: the Tasks tab is left
    page.wait_for_selector("article.contact")
    settle(s)

    # a second session that runs over midnight
    t2 = local_ms(demo, day, 23, 59, 50)
    at(s, t2)
    page.evaluate("location.hash = '#/tasks'")
    page.wait_for_selector("ul.tasks")
    n_late = s.rows().count()
    settle(s)
    at(s, t2 + 20000)  # 00:00:10 the next day
    scroll_list(s)
    settle(s)
    assert posts == []  # nothing is sent before the day is over

    # the next morning: a sync sends the finished day
    at(s, local_ms(demo, day + timedelta(days=1), 10))
    js_click(s, ".sync-line button.link")
    device = device_id(s)
    summary_id = f"interaction-{day.isoformat()}-{tracked}-{device}"
    [row] = wait_stored(demo, summary_id)
    body = row.body
    s1, s2 = body["sessions"]
    assert UUID.match(s1["session"]) and UUID.match(s2["session"]) and s1["session"] != s2["session"]
    expected = {
        "_id": summary_id,
        "type": "interaction-log",
        "metadata": {"user": tracked, "deviceId": device, "date": day.isoformat(), "version": app_version()},
        "sessions": [
            {"session": s1["session"], "startedAt": t0, "events": [
                ev("task_list:open", 0),
                ev("task_list:loaded", 0, detail=n_login),
                ev("task_list:scroll", 2000),
                ev("task_filter:open", 4000),
                ev("task_filter:select", 5000, "task_type", 1),
                ev("task_filter:clear", 6000, "task_type"),
                ev("task_filter:close", 7000),
                ev("task_filter:select", 8000, "search", 1),
                ev("task_filter:clear", 9000, "search"),
                ev("task:open", 10000, title[multi], ids.index(multi)),
                ev("task:back", 12000),
                ev("task_list:open", 12000),
                ev("task_list:loaded", 12000, detail=n),
                ev("task:open", 15000, title[a], pos_a),
                ev("task:form_open", 15000, form_a),
                ev("task:form_save", 20000),
                ev("task:complete", 20000),
                ev("task_group:show", 20000, detail=group),
                ev("task_group:select", 25000, title[b]),
                ev("task:open", 25000, title[b], pos_b),
                ev("task_group:leave", 25000),
                ev("task:form_open", 25000, form_b),
                ev("task:cancel", 30000),
                ev("task_group:show", 30000, detail=group),
                ev("task_group:leave", 32000),
                ev("task_list:open", 32000),
                ev("task_list:loaded", 32000, detail=n_after),
                ev("task:open", 40000, title[multi], pos_multi),
                ev("task_list:leave", 42000),
            ]},
            {"session": s2["session"], "startedAt": t2, "events": [
                ev("task_list:open", 0),
                ev("task_list:loaded", 0, detail=n_late),
            ]},
        ],
        "dropped": 0,
    }
    assert body == expected
    assert (row.conflict, row.events, row.dropped) == (0, 31, 0)

    # sent: gone from the device; the session that crossed midnight goes on in the new day's record
    page.wait_for_function(f"""async () => {{
        const db = await ({TRACKING_DB})();
        return db.summaries.length === 0;
    }}""")
    db = tracking_db(s)
    assert db is not None and db["summaries"] == []
    [today] = db["days"]
    assert today["day"] == (day + timedelta(days=1)).isoformat()
    assert today["sessions"] == [{"session": s2["session"], "startedAt": t2, "events": [ev("task_list:scroll", 20000)]}]
    assert [p for batch in posts for p in batch] == [expected]  # sent once (requests seen by now)


def test_600_events_in_a_day_keep_500_and_count_100_dropped(session_for: SessionFor, demo: RunningDemo,
                                                            tracked: str) -> None:
    s = session_for("chw")
    at(s, demo.now_ms)
    s.login()  # task_list:open, task_list:loaded: 2 events
    s.page.evaluate("""async () => {
        const tracker = await import('/app/tracker.js');
        for (let i = 0; i < 598; i++) tracker.track(i % 2 ? 'task_filter:close' : 'task_filter:open');
        await tracker.flushed();
    }""")
    [day] = tracking_db(s)["days"]  # type: ignore[index]
    assert (day["kept"], day["dropped"]) == (500, 100)
    at(s, demo.now_ms + 86_400_000)
    sync_now(s)
    [row] = wait_stored(demo, f"interaction-{demo_day(demo).isoformat()}-{tracked}-{device_id(s)}")
    assert (row.events, row.dropped) == (500, 100)
    events = row.body["sessions"][0]["events"]
    assert len(events) == 500 and row.body["dropped"] == 100
    assert [e["action"] for e in events[:4]] == ["task_list:open", "task_list:loaded", "task_filter:open",
                                                 "task_filter:close"]


def test_offline_then_online_delivers_the_summary_once(session_for: SessionFor, demo: RunningDemo,
                                                       tracked: str) -> None:
    s = session_for("chw")
    posts = posts_to_interactions(s)
    at(s, demo.now_ms)
    s.login()
    at(s, demo.now_ms + 1000)
    js_click(s, "#filter-btn")
    settle(s)
    s.context.set_offline(True)
    s.page.wait_for_selector(".sync .offline")
    # the next day, still offline: the app notices (here: coming back to the foreground), makes the summary
    at(s, demo.now_ms + 86_400_000)
    s.page.evaluate("document.dispatchEvent(new Event('visibilitychange'))")
    s.page.wait_for_function(f"async () => ((await ({TRACKING_DB})())?.summaries ?? []).length === 1")
    summary_id = f"interaction-{demo_day(demo).isoformat()}-{tracked}-{device_id(s)}"
    assert [x["_id"] for x in tracking_db(s)["summaries"]] == [summary_id]  # type: ignore[index]
    assert posts == [] and not [x for x in stored(demo, tracked) if x.id == summary_id]

    s.context.set_offline(False)  # the "online" event syncs
    wait_stored(demo, summary_id)
    s.page.wait_for_function(f"async () => (await ({TRACKING_DB})()).summaries.length === 0")
    sync_now(s)  # and again: nothing more to send
    sent = [p["_id"] for batch in posts for p in batch]
    assert sent == [summary_id]
    [row] = [x for x in stored(demo, tracked) if x.id == summary_id]
    assert row.conflict == 0
    assert [e["action"] for e in row.body["sessions"][0]["events"]] == [
        "task_list:open", "task_list:loaded", "task_filter:open"]


# ------------------------------------------------------------------------------------------------------
# everyone else, and personal data


def test_an_untracked_user_leaves_nothing(session_for: SessionFor, demo: RunningDemo, tracked: str) -> None:
    s = session_for("chw_supervisor")
    posts = posts_to_interactions(s)
    assert TRACK not in s.api.get("/me")["permissions"]
    at(s, demo.now_ms)
    s.login()
    js_click(s, "#filter-btn")
    if s.rows().count():
        js_click(s, "ul.tasks a.task")
        s.page.wait_for_selector(".task-detail, form.report")
        s.page.go_back()
        s.page.wait_for_selector("ul.tasks")
    scroll_list(s)
    at(s, demo.now_ms + 86_400_000)
    sync_now(s)
    s.page.click("#menu-btn")
    assert s.page.locator("#analytics-link").count() == 0
    assert posts == []
    assert tracking_db(s) is None
    assert s.page.evaluate("Object.keys(localStorage)") == []
    assert stored(demo, s.username) == []


DEVICE_DUMP = """async () => {
    const out = { localStorage: { ...localStorage }, indexedDB: {}, caches: {} };
    for (const { name } of await indexedDB.databases()) {
        if (name === 'kazi-app') continue;  // the app's own copy of the user's tasks (what the list shows)
        const db = await new Promise((resolve, reject) => {
            const r = indexedDB.open(name); r.onsuccess = () => resolve(r.result); r.onerror = () => reject(r.error);
        });
        for (const store of db.objectStoreNames) {
            out.indexedDB[`${name}/${store}`] = await new Promise((resolve) => {
                const r = db.transaction(store).objectStore(store).getAll(); r.onsuccess = () => resolve(r.result);
            });
        }
        db.close();
    }
    for (const key of await caches.keys()) {
        const cache = await caches.open(key);
        for (const request of await cache.keys()) out.caches[request.url] = await (await cache.match(request)).text();
    }
    return out;
}"""


def test_no_contact_name_or_id_is_stored_by_tracking(session_for: SessionFor, demo: RunningDemo,
                                                    tracked: str) -> None:
    s = session_for("chw")
    page = s.page
    at(s, demo.now_ms)
    s.login()
    tasks = {i["_id"]: i for i in s.api.ready_tasks()}
    first = s.row_ids()[0]
    name = page.locator(".name").first.inner_text()
    js_click(s, "#filter-btn")
    if page.locator("#f-place option").count() > 1:
        page.select_option("#f-place", index=1)  # a place chosen: which filter is recorded, never the place
    page.select_option("#f-type", index=1)
    js_click(s, "button.btn:has-text('Reset filters')")
    page.fill("#search", name)
    page.fill("#search", "")
    js_click(s, f"a.task[data-task-id='{first}']")
    page.wait_for_selector(".task-detail, form.report")
    if page.locator("form.report").count():
        fill_form(page)
        page.click("form.report button[type=submit]")
        page.wait_for_selector("ul.tasks")
        sync_settled(s)
    else:
        js_click(s, ".task-detail dd a")
        page.wait_for_selector("article.contact")
    settle(s)
    at(s, demo.now_ms + 86_400_000)
    sync_now(s)
    wait_stored(demo, f"interaction-{demo_day(demo).isoformat()}-{tracked}-{device_id(s)}")
    page.evaluate("async () => { await (await import('/app/tracker.js')).track('task_list:open'); }")
    settle(s)  # today's record exists too

    contacts = demo.store.docs_in_scope(EVERYTHING).contacts
    secrets = {c["_id"] for c in contacts} | {c["name"] for c in contacts if len(c.get("name") or "") >= 4}
    assert tasks[first]["contact"]["_id"] in secrets and name in secrets
    device = json.dumps(page.evaluate(DEVICE_DUMP), ensure_ascii=False)
    assert "kazi-tracking/days" in device and "kazi-tracking/summaries" in device
    with demo.store.engine.connect() as conn:
        table = json.dumps([list(map(str, r)) for r in conn.execute(select(interaction_summaries)).all()],
                           ensure_ascii=False)
    assert tracked in table
    for where, text in (("device", device), ("server", table)):
        found = sorted(x for x in secrets if x in text)
        assert not found, f"contact data in the {where}'s tracking data: {found[:5]}"


# ------------------------------------------------------------------------------------------------------
# the analysts' page


def test_the_program_officer_reads_the_metrics(session_for: SessionFor, demo: RunningDemo, tracked: str) -> None:
    chw = demo.user("chw")
    device = "0f8e2c4a-6b1d-4e0f-9a3c-5d7e8f901234"
    started = local_ms(demo, date(2025, 7, 30), 9)
    summary = {
        "_id": f"interaction-2025-07-30-{chw.username}-{device}", "type": "interaction-log",
        "metadata": {"user": chw.username, "deviceId": device, "date": "2025-07-30", "version": "1.0.0"},
        "sessions": [{"session": "5b1e7d2c-3a4f-4b6e-8c9d-0e1f2a3b4c5d", "startedAt": started, "events": [
            ev("task_list:open", 0), ev("task_list:loaded", 100, detail=5),
            ev("task:open", 3000, "task.anc.visit.title", 2), ev("task:form_open", 4000, "anc_visit"),
            ev("task:form_save", 60000), ev("task:complete", 61000), ev("task_list:leave", 70000)]}],
        "dropped": 0}
    with httpx.Client(base_url=demo.base_url, auth=(chw.username, chw.password)) as http:
        assert http.post("/api/v1/interactions", json=summary).status_code in (200, 201)

    s = session_for("program_officer")
    at(s, demo.now_ms)
    s.login()
    s.page.click("#menu-btn")
    s.page.click("#analytics-link")
    s.page.wait_for_selector("table.metrics")
    answer = s.api.get("/interactions/metrics", **{"from": "2025-07-03", "to": "2025-08-01", "group_by": "day"})
    headers = s.page.locator("table.metrics thead th").all_inner_texts()
    assert headers == [c["description"] for c in answer["columns"]]
    row = s.page.locator("table.metrics tbody tr", has_text="2025-07-30")
    cells = dict(zip([c["name"] for c in answer["columns"]], row.locator("td").all_inner_texts(), strict=True))
    assert (cells["tasks_opened"], cells["tasks_completed"], cells["open_ms_median"], cells["complete_ms_median"],
            cells["position_median"]) == ("1", "1", "3000", "61000", "2")
    assert s.page.locator("table.metrics tbody tr").count() == len(answer["rows"])
    assert s.page.locator("svg[data-metric='tasks_opened'] rect").count() == len(answer["rows"])

    # grouped by task type and narrowed to one day
    s.page.fill("#a-from", "2025-07-30")
    s.page.fill("#a-to", "2025-07-30")
    s.page.check("input[name=group_by][value=task_type]")
    s.page.click(".analytics-filters button[type=submit]")
    s.page.wait_for_selector("table.metrics th[data-col='task_type']")
    assert s.page.locator("table.metrics tbody tr").all_inner_texts()[0].startswith("2025-07-30")

    # the downloads
    csv_link = s.page.locator("a[data-format=csv]").get_attribute("href")
    parquet_link = s.page.locator("a[data-format=parquet]").get_attribute("href")
    assert csv_link and parquet_link
    got = s.context.request.get(f"{demo.base_url}{csv_link}")
    assert got.status == 200 and got.headers["content-type"].startswith("text/csv")
    assert got.text().splitlines()[0].startswith("day,task_type,")
    got = s.context.request.get(f"{demo.base_url}{parquet_link}")
    assert got.status == 200 and got.body()[:4] == b"PAR1"
