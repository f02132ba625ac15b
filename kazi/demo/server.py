"""The demo, served from a background thread on a free port: what the browser tests and the screenshot
script drive (``kazi demo`` serves in the foreground instead).

It is the same set-up as ``kazi demo --date DAY``: the bundled demo program, a generated population and the
demo accounts, with the server's clock frozen at 10:00 on ``DAY`` so that tasks, due labels and screenshots
are the same on every run. The socket is bound before the server starts (port 0), so there is no window in
which another process could take the port.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date

from kazi.demo.load import DemoUser, load_demo
from kazi.demo.population import DEFAULT_TZ, generate
from kazi.engine.dates import make_local
from kazi.service.tasks import TaskService
from kazi.store import Store, open_store

#: the day the tests and screenshots are frozen on (any day works; a fixed one keeps pictures stable)
DEMO_DAY = date(2025, 8, 1)


@dataclass
class RunningDemo:
    """A demo server running in this process: its address, accounts (by role) and frozen clock."""

    base_url: str
    store: Store
    service: TaskService
    now_ms: int
    tz: str
    users: dict[str, DemoUser] = field(default_factory=dict)

    def user(self, role: str) -> DemoUser:
        """The demo account holding ``role`` (``chw``, ``site_supervisor``, ...)."""
        return self.users[role]


def _free_socket(host: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    return sock


@contextmanager
def running_demo(db_url: str, *, households: int = 60, seed: int = 1, day: date = DEMO_DAY,
                 host: str = "127.0.0.1", background_interval_s: float = 0.25) -> Iterator[RunningDemo]:
    """Load the demo into the (empty) store at ``db_url`` and serve it until the block ends.

    Enter it before Playwright's sync API starts in the same thread: loading the program runs V8
    (mini-racer), which refuses to block a thread whose asyncio loop is running, as Playwright's is."""
    import uvicorn

    from kazi.server.api import create_app

    now = int(make_local(day.year, day.month - 1, day.day, 10, tz=DEFAULT_TZ))
    store = open_store(db_url)
    service = TaskService(store, clock=lambda: now)
    users = load_demo(store, service, generate(households, seed, day, DEFAULT_TZ))
    app = create_app(store=store, service=service, background_interval_s=background_interval_s)
    sock = _free_socket(host)
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="kazi-demo-server", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the demo server did not start")
            time.sleep(0.02)
        by_role: dict[str, DemoUser] = {}
        for u in users:
            for role in u.roles:
                by_role.setdefault(role, u)
        yield RunningDemo(base_url=f"http://{host}:{port}", store=store, service=service, now_ms=now,
                          tz=DEFAULT_TZ, users=by_role)
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()
        service.close()
        store.close()
