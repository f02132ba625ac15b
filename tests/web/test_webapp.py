"""The web app end to end, in Chromium, against the demo server (see conftest.py).

What a CHW and a supervisor do, checked against the API: the list in CHT's order with CHT's labels, filters
and search, a task's actions, the contact page, a form submitted and its task Completed on the server, the
household group, a form submitted offline and synced exactly once (even when the first answer is lost), a
refused submission shown, local midnight on an offline device, and the online site supervisor's
verification list.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from kazi.demo.server import RunningDemo
from kazi.engine.taskdocs import sort_for_tasks_tab

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

Session = Any  # conftest.Session (test folders are not packages here)
SessionFor = Callable[[str], Session]
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


# ------------------------------------------------------------------------------------------------------
# references written independently of the app


def today_of(demo: RunningDemo) -> str:
    return datetime.fromtimestamp(demo.now_ms / 1000, tz=ZoneInfo(demo.tz)).date().isoformat()


def due_label(due: str, today: str) -> str:
    """CHT's wording (format-date.service getTaskDueDate with task_days_overdue, messages-en)."""
    diff = (date.fromisoformat(due) - date.fromisoformat(today)).days
    if diff == 0:
        return "Due today"
    if diff == -1:
        return "Due yesterday"
    if diff < 0:
        return f"Due {-diff} days ago"
    if diff == 1:
        return "1 day left"
    if diff <= 4:
        return f"{diff} days left"
    return ""


def state_on(task: dict[str, Any], today: str) -> str:
    """CHT's calculateState from a stored window (reference 7.3), for non-terminal docs."""
    e = task["emission"]
    if e["startDate"] > today:
        return "Draft"
    if e["endDate"] < today:
        return "Failed"
    return "Ready"


def shown_rows(s: Session) -> list[dict[str, Any]]:
    """What each row of the list shows."""
    rows: list[dict[str, Any]] = s.rows().evaluate_all("""els => els.map(a => ({
        id: a.dataset.taskId,
        name: a.querySelector('.name')?.textContent ?? '',
        title: a.querySelector('.title')?.textContent ?? '',
        due: a.querySelector('.due')?.textContent ?? '',
        dueRed: !!a.querySelector('.due.overdue'),
        lineage: a.querySelector('.lineage')?.textContent ?? '',
        risk: !!a.querySelector('.risk-icon'),
        priority: a.querySelector('.priority-label')?.textContent ?? '',
        icon: !!a.querySelector('.icon svg'),
    }))""")
    return rows


def fill_form(page: Any, answers: dict[str, str] | None = None) -> None:
    """Answer every question shown: the given answers, else the first choice, a date, a number. Repeated
    because answers reveal questions (relevance)."""
    answers = answers or {}
    for _ in range(4):
        shown = page.eval_on_selector_all("form.report .field[data-field]",
                                          "els => els.filter(e => !e.hidden).map(e => [e.dataset.field, e.className])")
        for name, classes in shown:
            field = page.locator(f"form.report .field[data-field='{name}']")
            if field.is_hidden():  # an earlier answer made it irrelevant
                continue
            kind = classes.split("type-")[-1]
            if kind in ("select_one", "select_multiple"):
                if field.locator("input:checked").count():
                    continue
                wanted = answers.get(name)
                box = field.locator(f"input[value='{wanted}']") if wanted else field.locator("input").first
                box.check()
            elif kind in ("date", "integer", "decimal", "text"):
                box = field.locator("input, textarea").first
                if box.input_value():
                    continue
                default = {"date": "2025-08-01", "integer": "2", "decimal": "3.2", "text": "seen at home"}[kind]
                box.fill(answers.get(name, default))


def open_form(s: Session, task: dict[str, Any]) -> None:
    """From the list: open the task's row, then its first (report) action when it has several."""
    s.page.locator(f"a.task[data-task-id='{task['_id']}']").click()
    if len(task["emission"]["actions"]) > 1:
        s.page.locator(".actions a.btn").first.click()
    s.page.wait_for_selector("form.report")


def submit(s: Session) -> None:
    s.page.click("form.report button[type=submit]")


# ------------------------------------------------------------------------------------------------------
# the CHW's list


def test_list_matches_the_api_order_and_cht_labels(session_for: SessionFor, demo: RunningDemo) -> None:
    s = session_for("chw")
    s.login()
    items = s.api.ready_tasks()
    messages = s.api.messages()
    me = s.api.get("/me")
    today = today_of(demo)
    assert len(items) >= 5
    rows = shown_rows(s)
    assert [r["id"] for r in rows] == [i["_id"] for i in items]  # CHT's order, as the API returns it
    for row, item in zip(rows, items, strict=True):
        e = item["emission"]
        assert row["name"] == item["contact"]["name"]
        assert row["title"] == messages.get(e["title"], e["title"])
        assert row["due"] == due_label(e["dueDate"], today)
        assert row["dueRed"] == (e["dueDate"] <= today)
        places = [p["name"] for p in item["lineage"] if p["_id"] != me["facility_id"]]
        assert row["lineage"] == " · ".join(places)
        assert row["risk"] == bool(e.get("priority"))
        label = e.get("priorityLabel")
        assert row["priority"] == (messages.get(label, label) if label else "")
        assert row["icon"]
    overdue = sum(1 for i in items if i["emission"]["dueDate"] <= today)
    assert s.page.inner_text("#overdue") == str(overdue)
    labels = {r["due"] for r in rows}  # the demo day has every kind of label
    assert "Due today" in labels
    assert any(re.fullmatch(r"Due \d+ days ago", x) for x in labels)
    assert any(re.fullmatch(r"\d+ days? left", x) for x in labels)
    assert s.page.locator(".sync .last-sync").inner_text().startswith("Last sync")
    assert s.page.locator("p.end").inner_text() == "No more tasks"


def test_filters_and_search(session_for: SessionFor, demo: RunningDemo) -> None:
    s = session_for("chw")
    s.login()
    items = s.api.ready_tasks()
    messages = s.api.messages()
    today = today_of(demo)
    page = s.page
    all_ids = s.row_ids()

    page.click("#filter-btn")
    page.select_option("#f-overdue", "yes")
    assert s.row_ids() == [i["_id"] for i in items if i["emission"]["dueDate"] <= today]
    page.select_option("#f-overdue", "no")
    assert s.row_ids() == [i["_id"] for i in items if i["emission"]["dueDate"] > today]
    page.select_option("#f-overdue", "any")

    anc = messages["task.anc.visit.title"]
    page.select_option("#f-type", anc)
    assert s.row_ids() == [i["_id"] for i in items if i["emission"]["title"] == "task.anc.visit.title"]
    page.select_option("#f-type", "")

    household = items[0]["lineage"][0]
    page.select_option("#f-place", household["_id"])
    assert s.row_ids() == [i["_id"] for i in items if household["_id"] in [p["_id"] for p in i["lineage"]]]
    page.select_option("#f-place", "")
    assert s.row_ids() == all_ids

    # search: a contact's name (any case, part of it), a household, a title; diacritics do not matter
    name = items[-1]["contact"]["name"]
    page.fill("#search", name.split()[0].upper()[:4])
    assert items[-1]["_id"] in s.row_ids()
    assert all(name.split()[0].upper()[:4] in (r["name"] + r["lineage"] + r["title"]).upper() for r in shown_rows(s))
    page.fill("#search", household["name"])
    assert s.row_ids() == [i["_id"] for i in items if household["name"] in [p["name"] for p in i["lineage"]]
                           or i["contact"]["name"] == household["name"]]
    page.fill("#search", "ANC vísit")
    assert s.row_ids() == [i["_id"] for i in items if i["emission"]["title"] == "task.anc.visit.title"]

    page.fill("#search", "nobody by this name")
    assert page.locator(".empty[data-empty=no-match]").is_visible()
    page.locator(".empty[data-empty=no-match] button").click()
    assert s.row_ids() == all_ids
    assert page.input_value("#search") == ""


# ------------------------------------------------------------------------------------------------------
# working a task


def test_open_a_task_its_contact_and_submit_its_form(session_for: SessionFor, demo: RunningDemo) -> None:
    s = session_for("chw")
    s.login()
    items = s.api.ready_tasks()
    task = next(i for i in items if i["emission"]["title"] == "task.art.trace_client.title")
    messages = s.api.messages()
    page = s.page

    # a task with two actions shows them
    page.locator(f"a.task[data-task-id='{task['_id']}']").click()
    buttons = page.locator(".actions a.btn")
    assert buttons.all_inner_texts() == [messages[a["label"]] for a in task["emission"]["actions"]]
    assert page.locator("article.task-detail h2").inner_text() == messages[task["emission"]["title"]]

    # the contact action opens the contact's page: name, lineage, reports, tasks
    buttons.nth(1).click()
    page.wait_for_selector("article.contact h2")
    assert page.inner_text("article.contact h2") == task["contact"]["name"]
    assert task["lineage"][0]["name"] in page.inner_text("article.contact .lineage")
    assert task["_id"] in s.row_ids()
    page_data = s.api.get(f"/contacts/{task['contact']['_id']}")
    assert page.locator(".reports li").count() == len(page_data["reports"]) > 0
    page.go_back()

    # the report action opens the form; an empty submission is refused on the device
    page.locator(".actions a.btn").first.click()
    page.wait_for_selector("form.report")
    assert page.inner_text("#title") == messages["form.client_tracing.title"]
    submit(s)
    assert page.locator("form.report .alert").is_visible()
    assert page.locator("[data-field=client_found] .field-error").inner_text() == "This field is required."
    assert not s.posted_reports
    # relevance: the reason is asked only when the client was found
    assert page.locator("[data-field=reason_missed]").is_hidden()
    fill_form(page, {"client_found": "yes", "reason_missed": "transport"})
    assert page.locator("[data-field=reason_missed]").is_visible()
    submit(s)
    page.wait_for_selector("ul.tasks")
    assert task["_id"] not in s.row_ids()  # gone at once, before any answer from the server matters

    done = s.api.wait_for_state(task["_id"], "Completed")
    assert done["state"] == "Completed"
    report = s.posted_reports[-1]
    assert UUID.match(report["_id"])
    assert report["form"] == "client_tracing"
    assert report["fields"]["patient_uuid"] == task["contact"]["_id"]
    content = task["emission"]["actions"][0]["content"]
    assert report["fields"]["missed_appointment_id"] == content["missed_appointment_id"]
    assert report["fields"]["client_found"] == "yes" and report["fields"]["reason_missed"] == "transport"
    stored = s.api.get(f"/docs/{report['_id']}")
    assert stored["contact"]["_id"] == s.api.get("/me")["contact_id"]
    assert stored["type"] == "data_record"


def test_household_group_after_submitting(session_for: SessionFor, demo: RunningDemo) -> None:
    s = session_for("chw")
    api = s.api
    pnc = next(i for i in api.ready_tasks() if i["emission"]["title"] == "task.pnc.home_visit.title")
    # a danger sign seen in the same household: a second Ready task there (priority 10)
    mother = api.danger_sign_for("task.pnc.home_visit.title", "webapp-test-danger-sign", demo.now_ms - 3600_000)
    follow_up = next(i for i in api.ready_tasks() if i["emission"]["title"] == "task.danger_sign.follow_up.title")
    assert follow_up["contact"]["_id"] == mother["_id"]

    s.login()
    first = shown_rows(s)[0]
    assert first["id"] == follow_up["_id"]  # priority 10 sorts first
    assert first["risk"] and first["priority"] == "High priority"

    # one action and nothing else: straight to the form
    s.page.locator(f"a.task[data-task-id='{pnc['_id']}']").click()
    s.page.wait_for_selector("form.report")
    assert "#/form/" in s.page.url
    fill_form(s.page)
    submit(s)
    s.page.wait_for_url(re.compile(r"#/group/"))
    assert s.page.inner_text("#title") == "Other household tasks"
    assert s.row_ids() == [follow_up["_id"]]

    # working the last one of the household ends the group
    s.rows().first.click()
    s.page.wait_for_selector("form.report")
    fill_form(s.page, {"went_to_facility": "yes"})
    submit(s)
    s.page.wait_for_selector("#toast:has-text('All household tasks completed')")
    s.page.wait_for_url(re.compile(r"#/tasks$"))
    assert pnc["_id"] not in s.row_ids() and follow_up["_id"] not in s.row_ids()
    api.wait_for_state(pnc["_id"], "Completed")
    api.wait_for_state(follow_up["_id"], "Completed")


# ------------------------------------------------------------------------------------------------------
# offline


DROP_FIRST_ANSWER = """
(() => {
  const realFetch = window.fetch.bind(window);
  window.fetch = async (input, init) => {
    const url = typeof input === 'string' ? input : input.url;
    if (window.__kaziDropNextReportAnswer && url.endsWith('/api/v1/reports')) {
      window.__kaziDropNextReportAnswer = false;
      await realFetch(input, init);  // the server stores the report...
      throw new TypeError('Failed to fetch');  // ...and the answer is lost on the way back
    }
    return realFetch(input, init);
  };
})();
"""


def queued(page: Any) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = page.evaluate("async () => (await import('/app/data.js')).queue.all()")
    return entries


def test_offline_submission_is_queued_and_synced_exactly_once(session_for: SessionFor, demo: RunningDemo) -> None:
    s = session_for("chw")
    s.context.add_init_script(DROP_FIRST_ANSWER)
    s.login()
    page = s.page
    task = next(i for i in s.api.ready_tasks() if i["emission"]["title"] == "task.anc.visit.title")

    s.context.set_offline(True)
    page.wait_for_selector(".sync .offline")
    open_form(s, task)
    fill_form(page, {"attended_anc_clinic": "no", "danger_signs": "none"})
    submit(s)
    page.wait_for_selector("ul.tasks")
    assert task["_id"] not in s.row_ids()
    page.wait_for_selector(".sync details.queued[data-count='1']")
    assert "1 form waiting to be sent" in page.inner_text(".sync")
    [entry] = queued(page)
    report_id = entry["_id"]
    assert UUID.match(report_id)
    assert s.api.status(f"/docs/{report_id}") == 404  # nothing reached the server

    # the app opens offline (the service worker's shell, the tasks and the queue from IndexedDB)
    page.reload()
    page.wait_for_selector("ul.tasks")
    assert task["_id"] not in s.row_ids()
    assert page.locator(".sync details.queued[data-count='1']").count() == 1

    # back online: sent; the first answer is lost on the way, so the app sends again and the server,
    # idempotent by _id, answers "unchanged"
    page.evaluate("window.__kaziDropNextReportAnswer = true")
    s.context.set_offline(False)
    page.wait_for_selector(".sync details.queued", state="detached", timeout=30_000)
    assert queued(page) == []
    posted = [r for r in s.posted_reports if r["_id"] == report_id]
    assert len(posted) == 2 and posted[0] == posted[1]
    stored = s.api.get(f"/docs/{report_id}")
    assert stored["_rev"].startswith("1-")  # written once, never rewritten
    contact_page = s.api.get(f"/contacts/{task['contact']['_id']}")
    assert [r["_id"] for r in contact_page["reports"]].count(report_id) == 1
    s.api.wait_for_state(task["_id"], "Completed")
    assert task["_id"] not in s.row_ids()


def test_a_refused_submission_is_shown_and_its_task_comes_back(session_for: SessionFor, demo: RunningDemo) -> None:
    s = session_for("chw")
    taken = "00000000-0000-4000-8000-00000000c0de"
    # another report already holds the id the device will generate: the server answers 409
    s.api.post("/reports", {"_id": taken, "form": "anc_visit", "fields": {
        "source_report_id": "somewhere", "attended_anc_clinic": "no", "danger_signs": "none"}})
    s.context.add_init_script(f"Object.defineProperty(crypto, 'randomUUID', {{ value: () => '{taken}' }});")
    s.login()
    task = next(i for i in s.api.ready_tasks() if i["emission"]["title"] == "task.anc.visit.title")
    open_form(s, task)
    fill_form(s.page, {"attended_anc_clinic": "no", "danger_signs": "none"})
    submit(s)
    s.page.wait_for_selector(".sync .failed")
    assert "Not accepted by the server" in s.page.inner_text(".sync .failed")
    assert queued(s.page) == []
    s.page.wait_for_selector(f"a.task[data-task-id='{task['_id']}']")  # not done: back in the list
    s.page.locator(".sync .failed button").click()
    s.page.wait_for_selector(".sync .failed", state="detached")


def test_local_midnight_on_an_offline_device(session_for: SessionFor, demo: RunningDemo) -> None:
    s = session_for("chw")
    s.login()
    both = s.api.get("/tasks", state=["Ready", "Draft"], limit=1000)["items"]
    s.context.set_offline(True)
    today = date.fromisoformat(today_of(demo))
    # the first day on which some Draft task opens
    opening = min(i["emission"]["startDate"] for i in both if i["state"] == "Draft")
    day = date.fromisoformat(opening)
    assert day > today
    midnight = datetime(day.year, day.month, day.day, 0, 1, tzinfo=ZoneInfo(demo.tz))
    expected = sort_for_tasks_tab([i for i in both if state_on(i, opening) == "Ready"], demo.tz)
    assert expected and {i["_id"] for i in expected} != {i["_id"] for i in both if i["state"] == "Ready"}

    # the page is open at midnight: the list changes without a connection
    s.context.clock.set_fixed_time(midnight)
    s.page.evaluate("document.dispatchEvent(new Event('visibilitychange'))")
    s.page.wait_for_function(
        "ids => [...document.querySelectorAll('a.task')].map(a => a.dataset.taskId).join() === ids",
        arg=",".join(i["_id"] for i in expected))
    # and the same after opening the app offline that day
    s.page.reload()
    s.page.wait_for_selector("ul.tasks")
    rows = shown_rows(s)
    assert [r["id"] for r in rows] == [i["_id"] for i in expected]
    by_id = {i["_id"]: i for i in expected}
    assert [r["due"] for r in rows] == [due_label(by_id[r["id"]]["emission"]["dueDate"], opening) for r in rows]
    assert today + timedelta(days=1) <= day


# ------------------------------------------------------------------------------------------------------
# the online site supervisor


def test_site_supervisor_works_the_verification_list(session_for: SessionFor, demo: RunningDemo) -> None:
    s = session_for("site_supervisor")
    lists: list[str] = []  # the app's list requests: the whole list at login, then deltas (`since`)
    s.page.on("request", lambda r: lists.append(r.url) if "/api/v1/tasks?" in r.url else None)
    s.login()
    items = s.api.ready_tasks()
    assert len(items) >= 2
    assert {i["emission"]["title"] for i in items} == {"task.art.verify_missed_appointment.title"}
    assert s.row_ids() == [i["_id"] for i in items]
    for task, outcome in zip(items[:2], ["returned_to_care", "appointment_rescheduled"], strict=True):
        open_form(s, task)
        assert s.page.locator("[data-field=new_appointment_date]").is_hidden()
        fill_form(s.page, {"verified_by": "phone", "outcome": outcome})
        if outcome == "appointment_rescheduled":
            assert s.page.locator("[data-field=new_appointment_date]").is_visible()
        submit(s)
        s.page.wait_for_url(re.compile(r"#/tasks$"))  # no household group for supervisors
        s.page.wait_for_selector("ul.tasks, .empty[data-empty]")
        assert task["_id"] not in s.row_ids()
    for task in items[:2]:
        s.api.wait_for_state(task["_id"], "Completed")
    left = s.api.ready_tasks()
    assert [i["_id"] for i in left] == [i["_id"] for i in items[2:]]
    deadline = time.monotonic() + 10
    while s.row_ids() != [i["_id"] for i in left] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert s.row_ids() == [i["_id"] for i in left]
    assert "since=" not in lists[0] and any("since=" in url for url in lists[1:]), lists
