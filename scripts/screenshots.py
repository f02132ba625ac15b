"""Refresh the web app's screenshots in docs/img/ (docs/webapp.md shows them) and measure its page weight.

    .venv/bin/python scripts/screenshots.py [--out docs/img]

Serves the demo (kazi.demo.server: the demo program, population and users, clock frozen on the demo
day) and drives Debian's Chromium (scripts/install_chromium.sh) at a phone's size, 360 x 760 CSS pixels,
through the screens people use: the CHW's Tasks list, a form, a contact page, the list while offline with a
form waiting, the online site supervisor's verification list and the CHW supervisor's report page (on a
second demo of 500 households, the ``kazi demo`` default, whose facility has several CHWs to compare). The
pictures are the same on every run, so a change in them is a change in the app. It also prints what the first
load of the app weighs (bytes on the wire, gzip), the figure docs/webapp.md states.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kazi.demo.server import RunningDemo, running_demo  # noqa: E402

CHROMIUM = Path(os.environ.get("KAZI_CHROMIUM", "/usr/bin/chromium"))
VIEWPORT = {"width": 360, "height": 760}


def new_page(browser: Any, demo: RunningDemo) -> tuple[Any, Any]:
    context = browser.new_context(base_url=demo.base_url, viewport=VIEWPORT, device_scale_factor=2,
                                  timezone_id=demo.tz, locale="en-US")
    context.clock.set_fixed_time(datetime.fromtimestamp(demo.now_ms / 1000, tz=UTC))
    return context, context.new_page()


def login(page: Any, demo: RunningDemo, role: str) -> None:
    user = demo.user(role)
    page.goto("/")
    page.fill("#username", user.username)
    page.fill("#password", user.password)
    page.click("form.login button[type=submit]")
    page.wait_for_selector("ul.tasks")


def shoot(page: Any, path: Path, *, full_page: bool = False) -> None:
    page.mouse.move(200, 26)  # over the title bar: no hover highlight on a row
    page.evaluate("window.scrollTo(0, 0)")
    page.locator("#toast").evaluate("el => el.hidden = true")
    page.screenshot(path=str(path), full_page=full_page, animations="disabled", caret="hide")
    print(f"  {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")


def first_load_weight(browser: Any, demo: RunningDemo) -> tuple[int, list[str]]:
    """Bytes on the wire (headers and gzip bodies) of the app's files when a phone first opens it."""
    context = browser.new_context(base_url=demo.base_url, viewport=VIEWPORT)
    page = context.new_page()
    responses: list[Any] = []
    page.on("response", lambda r: responses.append(r))
    page.goto("/")
    page.wait_for_selector("form.login")
    page.wait_for_load_state("networkidle")
    files = [r for r in responses if "/app/" in r.url and r.request.resource_type != "fetch"]
    total = sum(r.request.sizes()["responseBodySize"] + r.request.sizes()["responseHeadersSize"] for r in files)
    names = [r.url.rsplit("/", 1)[-1] or "index.html" for r in files]
    context.close()
    return total, names


def supervision_shots(browser: Any, demo: RunningDemo, out: Path) -> None:
    """The supervisor report page: its top (pickers, the first indicator) and one indicator's comparison."""
    context, page = new_page(browser, demo)
    user = demo.user("chw_supervisor")
    page.goto("/")
    page.fill("#username", user.username)
    page.fill("#password", user.password)
    page.click("form.login button[type=submit]")
    page.wait_for_selector("ul.tasks, .empty[data-empty]")
    page.click("#menu-btn")
    page.click("#supervision-link")
    page.wait_for_selector("section.indicator table.report-table")
    shoot(page, out / "supervision-report.png")
    section = page.locator("section.indicator[data-indicator=completion_rate]")
    page.evaluate("document.querySelector('header.bar').style.position = 'static'")  # not over the section
    section.screenshot(path=str(out / "supervision-comparison.png"), animations="disabled")
    print(f"  {(out / 'supervision-comparison.png').name}")
    context.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    args = parser.parse_args(argv)
    if not CHROMIUM.exists():
        print(f"no Chromium at {CHROMIUM}: run scripts/install_chromium.sh (as root)", file=sys.stderr)
        return 1
    from playwright.sync_api import sync_playwright

    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="kazi-shots-") as tmp, \
            running_demo(f"sqlite:///{Path(tmp, 'demo.sqlite3').as_posix()}", households=150) as demo, \
            running_demo(f"sqlite:///{Path(tmp, 'team.sqlite3').as_posix()}", households=500) as team, \
            sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                     args=["--no-sandbox"] if os.geteuid() == 0 else [])
        print(f"demo served at {demo.base_url}; writing screenshots:")

        context, page = new_page(browser, demo)
        login(page, demo, "chw")
        shoot(page, out / "tasks-list.png")
        trace = page.locator("a.task", has_text="Trace ART client").first
        trace.click()
        page.wait_for_selector("article.task-detail")
        shoot(page, out / "task-actions.png")
        page.locator(".actions a.btn").nth(1).click()
        page.wait_for_selector("article.contact h2")
        shoot(page, out / "contact.png", full_page=True)
        page.go_back()
        page.locator(".actions a.btn").first.click()
        page.wait_for_selector("form.report")
        page.check("input[name=client_found][value=yes]")
        page.check("input[name=reason_missed][value=transport]")
        shoot(page, out / "form.png", full_page=True)

        page.goto("/app/#/tasks")
        page.wait_for_selector("ul.tasks")
        context.set_offline(True)
        page.wait_for_selector(".sync .offline")
        page.locator("a.task", has_text="ANC visit").first.click()
        page.wait_for_selector("form.report")
        page.check("input[name=attended_anc_clinic][value=no]")
        page.check("input[name=danger_signs][value=none]")
        page.click("form.report button[type=submit]")
        page.wait_for_selector(".sync details.queued")
        page.locator(".sync details.queued summary").click()
        shoot(page, out / "offline-queued.png")
        context.close()

        context, page = new_page(browser, demo)
        login(page, demo, "site_supervisor")
        shoot(page, out / "supervisor-list.png")
        context.close()

        supervision_shots(browser, team, out)

        total, names = first_load_weight(browser, demo)
        print(f"first load of the app: {total} bytes ({total / 1024:.1f} KiB) in {len(names)} files: "
              f"{', '.join(names)}")
        browser.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
