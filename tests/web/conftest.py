"""Browser tests of the web app: a real Kazi server (the demo, clock frozen) and Debian's Chromium.

Why this set-up: the app's promises (CHT's list and labels, offline queueing, midnight transitions, service
worker) only show in a real browser talking to a real server. Playwright drives the system's Chromium
(``/usr/bin/chromium``, installed by ``scripts/install_chromium.sh`` from Debian's packages) through
``executable_path``; it never downloads a browser of its own. Without Chromium the tests skip, except under
CI (``CI=true``), where a missing browser is a failure.

One demo server serves the whole module (starting it is the slow part); tests work on different tasks, so
their order does not matter. The browser's clock is frozen at the server's "now" (10:00 on the demo day in
the demo's zone), so the device and the server agree on what "today" is.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from kazi.demo.server import RunningDemo, running_demo

CHROMIUM = Path(os.environ.get("KAZI_CHROMIUM", "/usr/bin/chromium"))
#: households of the test population: enough for every kind of CHW task, small enough to start in seconds
HOUSEHOLDS = 150
#: a phone
VIEWPORT = {"width": 360, "height": 760}

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')")


def _no_browser(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI installs it with scripts/install_chromium.sh)")
    pytest.skip(f"{reason}: run scripts/install_chromium.sh (as root) to run the browser tests")


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDemo]:
    db = tmp_path_factory.mktemp("webapp") / "demo.sqlite3"
    with running_demo(f"sqlite:///{db.as_posix()}", households=HOUSEHOLDS) as running:
        yield running


@pytest.fixture(scope="module")
def browser(demo: RunningDemo) -> Iterator[Any]:
    """Chromium, started after the demo: loading the demo runs V8, which must not happen in a thread where
    Playwright's event loop already runs. One per test module (a second to start): closed after each module,
    so tests run after these in the same session (tests/interactions) may load programs in this thread again."""
    if not CHROMIUM.exists() and shutil.which("chromium") is None:
        _no_browser(f"no Chromium at {CHROMIUM}")
    executable = CHROMIUM if CHROMIUM.exists() else Path(str(shutil.which("chromium")))
    args = ["--no-sandbox"] if os.geteuid() == 0 else []
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(executable), headless=True, args=args)
        try:
            yield b
        finally:
            b.close()


class Api:
    """The HTTP API as one demo user (HTTP Basic), to check what the app shows against the server."""

    def __init__(self, base_url: str, username: str, password: str) -> None:
        self.client = httpx.Client(base_url=f"{base_url}/api/v1", auth=(username, password), timeout=30)

    def get(self, path: str, **params: Any) -> Any:
        r = self.client.get(path, params=params)
        r.raise_for_status()
        return r.json()

    def status(self, path: str) -> int:
        return self.client.get(path).status_code

    def post(self, path: str, body: Any) -> Any:
        r = self.client.post(path, json=body)
        r.raise_for_status()
        return r.json()

    def ready_tasks(self) -> list[dict[str, Any]]:
        return list(self.get("/tasks", limit=1000)["items"])

    def danger_sign_for(self, task_title: str, doc_id: str, reported_date: int) -> dict[str, Any]:
        """Report a danger sign for the contact of the user's first Ready task titled ``task_title``, so her
        household has a second Ready task (the follow-up); returns that contact."""
        me = self.get("/me")
        task = next(i for i in self.ready_tasks() if i["emission"]["title"] == task_title)
        mother: dict[str, Any] = self.get(f"/docs/{task['contact']['_id']}")
        self.post("/docs", {"_id": doc_id, "type": "data_record", "form": "danger_sign",
                            "reported_date": reported_date, "contact": {"_id": me["contact_id"]},
                            "fields": {"patient_id": mother["patient_id"], "patient_uuid": mother["_id"],
                                       "danger_signs": "fever", "referred_to_facility": "yes"}})
        return mother

    def messages(self) -> dict[str, str]:
        return dict(self.get("/translations")["messages"])

    def wait_for_state(self, task_id: str, state: str, timeout_s: float = 20) -> dict[str, Any]:
        """Poll a task document until it reaches ``state`` (the server recomputes within a second or so)."""
        deadline = time.monotonic() + timeout_s
        doc: dict[str, Any] = {}
        while time.monotonic() < deadline:
            doc = self.get(f"/tasks/{task_id}")
            if doc.get("state") == state:
                return doc
            time.sleep(0.2)
        raise AssertionError(f"task {task_id} is {doc.get('state')!r} after {timeout_s} s, not {state!r}")


@dataclass
class Session:
    """A phone-sized browser context logged in (or not yet) as one demo user."""

    page: Any
    context: Any
    api: Api
    username: str
    password: str
    errors: list[str] = field(default_factory=list)
    posted_reports: list[dict[str, Any]] = field(default_factory=list)

    def login(self) -> None:
        self.page.goto("/")
        self.page.fill("#username", self.username)
        self.page.fill("#password", self.password)
        self.page.click("form.login button[type=submit]")
        self.page.wait_for_selector("ul.tasks, .empty[data-empty]")

    def rows(self) -> Any:
        return self.page.locator("ul.tasks a.task")

    def row_ids(self) -> list[str]:
        return [str(x) for x in self.rows().evaluate_all("els => els.map(e => e.dataset.taskId)")]


def demo_now(demo: RunningDemo) -> datetime:
    return datetime.fromtimestamp(demo.now_ms / 1000, tz=UTC)


@pytest.fixture
def session_for(browser: Any, demo: RunningDemo) -> Iterator[Callable[..., Session]]:
    """``session_for("chw")``: a new browser context (phone viewport, the demo's zone, frozen clock) for the
    demo user with that role. Page errors (and anything the Content-Security-Policy refused) fail the test."""
    contexts: list[tuple[Any, Session]] = []

    def make(role: str) -> Session:
        user = demo.user(role)
        context = browser.new_context(base_url=demo.base_url, viewport=VIEWPORT, timezone_id=demo.tz,
                                      locale="en-US", service_workers="allow")
        context.clock.set_fixed_time(demo_now(demo))
        context.set_default_timeout(15_000)
        page = context.new_page()
        s = Session(page=page, context=context, api=Api(demo.base_url, user.username, user.password),
                    username=user.username, password=user.password)
        page.on("pageerror", lambda exc: s.errors.append(str(exc)))

        def on_console(msg: Any) -> None:
            if msg.type == "error" and "Refused to" in msg.text:  # a Content-Security-Policy violation
                s.errors.append(msg.text)

        page.on("console", on_console)

        def on_request(request: Any) -> None:
            if request.method == "POST" and request.url.endswith("/api/v1/reports"):
                s.posted_reports.append(request.post_data_json)

        page.on("request", on_request)
        contexts.append((context, s))
        return s

    yield make
    for context, s in contexts:
        context.close()
        s.api.client.close()
        assert not s.errors, f"errors in the page: {s.errors}"
