"""The supervisor report page (kazi/web/static/supervision.js) in Chromium against the real report API.

Why: the page is what a supervisor reads to decide whom to support; every number it shows must be the API's
(which tests/server test against hand-made histories), the chart and the comparative view must really be
drawn, the drill-down must list the worker's overdue tasks, the CSV must arrive, and a CHW must not see any of
it. The demo here is the bundled one at 500 households (the ``kazi demo`` default): one health facility with
three CHWs of differing diligence whose last three months were lived through day by day
(kazi/demo/history.py), so the report has several workers and real monthly values -- a known,
deterministic history (seed 1, clock frozen at 10:00 on 2025-08-01).
"""

from __future__ import annotations

import csv
import io
import math
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kazi.demo.server import RunningDemo, running_demo

Session = Any  # conftest.Session (test folders are not packages here)
SessionFor = Callable[[str], Session]
LOGIC = "/app/supervision-logic.js"
#: the demo's default size: a facility with several CHWs (150 households, the other browser tests', have one)
HOUSEHOLDS = 500


@pytest.fixture(scope="module")
def demo() -> Iterator[RunningDemo]:
    """This module's own demo server (the shared one has a single CHW: nothing to compare)."""
    with tempfile.TemporaryDirectory() as tmp, \
            running_demo(f"sqlite:///{Path(tmp, 'demo.sqlite3').as_posix()}", households=HOUSEHOLDS) as running:
        yield running


@pytest.fixture(scope="module")
def report(demo: RunningDemo) -> dict[str, Any]:
    """The default report of the demo's CHW supervisor, straight from the API."""
    import httpx

    user = demo.user("chw_supervisor")
    r = httpx.get(f"{demo.base_url}/api/v1/supervision/report", auth=(user.username, user.password), timeout=60)
    r.raise_for_status()
    answer: dict[str, Any] = r.json()
    return answer


def shown(value: float | None, fmt: str) -> str:
    """What the page shows for a value (supervision-logic.js formatValue, en-US)."""
    if value is None:
        return "–"
    if fmt == "percent":
        return f"{math.floor(value * 100 + 0.5)}%"
    rounded = math.floor(value * 10 + 0.5) / 10
    return f"{int(rounded):,}" if rounded.is_integer() else f"{rounded:,.1f}"


def standing(value: float | None, cmp: dict[str, Any], higher_is_better: bool) -> str:
    """The page's rule for leaders and those who need support (supervision-logic.js standing)."""
    median, q1, q3 = cmp["median"], cmp["q1"], cmp["q3"]
    if value is None or median is None or q1 is None or q3 is None:
        return "none"
    if higher_is_better:
        return "leader" if value >= q3 and value > median else "support" if value < q1 else "middle"
    return "leader" if value <= q1 and value < median else "support" if value > q3 else "middle"


def open_report(s: Session) -> None:
    s.login()
    s.page.click("#menu-btn")
    s.page.click("#supervision-link")
    s.page.wait_for_selector("section.indicator table.report-table")


def test_the_demo_history_compares_differing_workers(demo: RunningDemo, report: dict[str, Any]) -> None:
    """The demo's history makes a comparison worth reading: several CHWs, each with tasks completed and failed
    in every full month (their months were lived through, not computed at once), and not all alike."""
    workers = report["workers"]
    assert [p["partial"] for p in report["periods"]] == [False, False, False, True]
    chws = [w for w in workers if "chw" in demo.store.users.get(w["user"]).roles]
    assert len(chws) >= 3
    for w in chws:
        for ind in ("tasks_completed", "tasks_due"):
            assert all((w["values"][ind][p["key"]] or 0) > 0 for p in report["periods"][:3]), (w["user"], ind)
    rates = {round(w["values"]["completion_rate"]["total"], 2) for w in chws}
    assert len(rates) == len(chws)
    for ind in report["indicators"]:
        if ind["kind"] == "count":  # the team's count is its workers' sum
            for key in [*(p["key"] for p in report["periods"]), "total"]:
                assert report["team"]["values"][ind["id"]][key] == sum(
                    w["values"][ind["id"]][key] or 0 for w in workers)


def test_the_supervisor_reads_the_report(session_for: SessionFor, report: dict[str, Any]) -> None:
    s = session_for("chw_supervisor")
    open_report(s)
    page = s.page
    periods = [p["key"] for p in report["periods"]]
    assert page.locator("section.indicator").count() == len(report["indicators"])
    for ind in report["indicators"]:
        iid, fmt = ind["id"], ind["format"]
        table = page.locator(f"table.report-table[data-indicator='{iid}']")
        # the table: one row per worker in the API's order, a cell per month and the total, the team's row
        assert table.locator("tbody tr").evaluate_all("rows => rows.map(r => r.dataset.user)") == \
            [w["user"] for w in report["workers"]]
        for w in report["workers"]:
            cells = table.locator(f"tbody tr[data-user='{w['user']}'] td").all_inner_texts()
            assert cells == [shown(w["values"][iid][k], fmt) for k in [*periods, "total"]], (iid, w["user"])
        team = table.locator("tfoot tr.team td").all_inner_texts()
        assert team == [shown(report["team"]["values"][iid][k], fmt) for k in [*periods, "total"]], iid

        # the chart: a series of bars per worker (a bar a month) and the team's line
        chart = page.locator(f"svg.chart[data-indicator='{iid}']")
        assert chart.locator("g.series").count() == len(report["workers"])
        assert chart.locator("g.series rect.bar").count() == len(report["workers"]) * len(periods)
        assert chart.locator("g.team-line polyline").count() == 1
        heights = chart.locator("g.series rect.bar").evaluate_all("rs => rs.map(r => +r.getAttribute('height'))")
        assert any(h > 0 for h in heights) == any((w["values"][iid][k] or 0) > 0 for w in report["workers"]
                                                  for k in periods)

        # the comparative view: the server's ranking, the median and quartiles marked, leaders and those
        # below the worse quartile labelled in words
        cmp = report["comparison"][iid]
        ranking = page.locator(f"ol.ranking[data-indicator='{iid}'] > li")
        assert ranking.evaluate_all("ls => ls.map(l => l.dataset.user)") == [r["user"] for r in cmp["ranking"]]
        section = page.locator(f"section.indicator[data-indicator='{iid}']")
        for mark in ("q1", "median", "q3"):
            key = section.locator(f".marks-key [data-mark='{mark}']")
            assert key.count() == (cmp[mark] is not None)
            if cmp[mark] is not None:
                assert float(key.get_attribute("data-value") or "nan") == pytest.approx(cmp[mark])
                assert ranking.first.locator(f".mark.{mark}").count() == 1
        for r in cmp["ranking"]:
            item = page.locator(f"ol.ranking[data-indicator='{iid}'] > li[data-user='{r['user']}']")
            expected = standing(r["value"], cmp, ind["higher_is_better"])
            assert item.get_attribute("data-standing") == expected, (iid, r)
            tag = item.locator(".tag")
            if expected == "leader":
                assert tag.inner_text() == "Leader"
            elif expected == "support":
                assert tag.inner_text() == "Needs support"
            else:
                assert tag.count() == 0
    # someone leads and someone needs support somewhere in the demo (the comparison says something)
    assert page.locator("ol.ranking > li.leader").count() > 0
    assert page.locator("ol.ranking > li.support").count() > 0
    # a phone: nothing wider than the screen but the tables' and charts' own scrolling boxes
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def test_a_worker_drill_down_lists_their_overdue_tasks(session_for: SessionFor, report: dict[str, Any]) -> None:
    s = session_for("chw_supervisor")
    open_report(s)
    # the worker with the most overdue tasks (the demo's CHWs all have some)
    lists = {w["user"]: s.api.get(f"/supervision/workers/{w['user']}/tasks") for w in report["workers"]}
    user = max(lists, key=lambda u: sum(1 for x in lists[u] if x["state"] != "Failed"))
    answer = lists[user]
    overdue = [x["_id"] for x in answer if x["state"] != "Failed"]
    failed = [x["_id"] for x in answer if x["state"] == "Failed"]
    assert overdue
    s.page.locator("table.report-table").first.locator(f"tbody tr[data-user='{user}'] a").click()
    s.page.wait_for_selector("section.worker .drill-section")
    assert s.page.url.endswith(f"#/supervision/{user}")
    got = s.page.locator("ul.drill[data-state=overdue] li").evaluate_all("ls => ls.map(l => l.dataset.taskId)")
    assert got == overdue
    assert s.page.locator("ul.drill[data-state=failed] li").count() == len(failed)
    # back to the report
    s.page.click("#back")
    s.page.wait_for_selector("section.indicator table.report-table")


def test_the_csv_download_is_the_report(session_for: SessionFor, report: dict[str, Any]) -> None:
    s = session_for("chw_supervisor")
    open_report(s)
    with s.page.expect_download() as info:
        s.page.click("#report-csv")
    download = info.value
    text = Path(download.path()).read_text(encoding="utf-8")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["place_id", "worker", "worker_name", "indicator", "period", "value"]
    keys = [*(p["key"] for p in report["periods"]), "total"]
    by_key = {(r[1], r[3], r[4]): r for r in rows[1:]}
    assert len(rows) - 1 == (len(report["workers"]) + 1) * len(report["indicators"]) * len(keys)
    for w in report["workers"]:
        for ind in report["indicators"]:
            for k in keys:
                row = by_key[(w["user"], ind["id"], k)]
                value = w["values"][ind["id"]][k]
                assert row[0] == report["place"]["_id"] and row[2] == w["name"]
                assert (row[5] == "") if value is None else float(row[5]) == pytest.approx(value, rel=1e-5)


def test_a_chw_does_not_see_the_page(session_for: SessionFor) -> None:
    s = session_for("chw")
    s.login()
    s.page.click("#menu-btn")
    assert s.page.locator("#supervision-link").count() == 0
    s.page.evaluate("location.hash = '#/supervision'")
    s.page.wait_for_function("location.hash === '#/tasks'")
    assert s.page.locator("section.supervision").count() == 0
    assert s.api.status("/supervision/report") == 403


def test_the_pages_rules(browser: Any, demo: RunningDemo) -> None:
    """supervision-logic.js: the standing rule in both directions, values, the chart's scale, the query."""
    context = browser.new_context(base_url=demo.base_url, timezone_id=demo.tz, locale="en-US")
    page = context.new_page()
    page.goto("/app/manifest.webmanifest")  # same origin, no app running

    def call(name: str, *args: Any) -> Any:
        return page.evaluate(f"async (args) => (await import('{LOGIC}')).{name}(...args)", list(args))

    try:
        cmp = {"median": 0.5, "q1": 0.4, "q3": 0.7}
        assert [call("standing", v, cmp, True) for v in (0.8, 0.7, 0.5, 0.4, 0.39, None)] == \
            ["leader", "leader", "middle", "middle", "support", "none"]
        assert [call("standing", v, cmp, False) for v in (0.3, 0.4, 0.6, 0.71)] == \
            ["leader", "leader", "middle", "support"]
        flat = {"median": 3, "q1": 3, "q3": 3}
        assert call("standing", 3, flat, True) == "middle"  # everyone equal: no leader, nobody behind
        assert [call("formatValue", v, f) for v, f in ((None, "number"), (0.666, "percent"), (1234, "number"),
                                                        (2.25, "number"), (0, "percent"))] == \
            ["–", "67%", "1,234", "2.3", "0%"]
        assert [call("niceMax", vs, f) for vs, f in (([3, 7], "number"), ([0, None], "number"), ([0.4], "percent"),
                                                      ([120], "number"), ([2.1], "number"))] == [10, 1, 1, 200, 2.5]
        assert call("reportQuery", {"place": "p 1", "start": "2025-05", "end": ""}) == "place=p+1&start=2025-05"
        assert call("fill", "{{count}} health workers", {"count": 3}) == "3 health workers"
    finally:
        context.close()
