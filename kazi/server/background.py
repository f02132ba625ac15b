"""The background worker: the thread that keeps task documents up to date while the API answers requests.

It owns a second :class:`~kazi.server.service.TaskService` over its own store connection (engine and pool)
and its own program runtime (V8 is single-threaded: the API's runtime must stay free for read-your-writes),
and loops: :meth:`~TaskService.process_changes`, then :meth:`~TaskService.advance_time`, then a pause of
``interval_s`` unless there was work. The API thread never waits for a round (``refresh_user`` waits a
bounded time, then leaves the user to this thread). With ``workers > 1`` full recomputes spread emission
over worker processes (:mod:`kazi.workers`), so both cores work on a program change.

A failing round (the database unreachable, a bug) is logged and retried after the interval: the thread
only ends on :meth:`BackgroundWorker.stop`.
"""

from __future__ import annotations

import logging
import threading

from kazi.server.service import TaskService
from kazi.store import Store, open_store

log = logging.getLogger("kazi.background")


class BackgroundWorker:
    """``process_changes`` + ``advance_time`` in a loop on a daemon thread (``start`` / ``stop``)."""

    def __init__(self, service: TaskService, interval_s: float = 1.0) -> None:
        self.interval_s = interval_s
        self._template = service
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.rounds = 0
        self.last_error: str | None = None
        self.service: TaskService | None = None  # the thread's own service, while it runs

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="kazi-background", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = 30.0) -> None:
        """Ask the loop to end after the current round and wait for it."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def wake(self) -> None:
        """Start the next round now (after a write, so tasks follow sooner than ``interval_s``)."""
        self._wake.set()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _open(self) -> tuple[Store, TaskService]:
        template = self._template
        url = template.store.engine.url.render_as_string(hide_password=False)
        store = open_store(url, migrate=False)
        service = TaskService(store, clock=template.clock, workers=template.workers,
                              default_tz=template.default_tz)
        return store, service

    def _run(self) -> None:
        store, service = self._open()
        self.service = service
        try:
            while not self._stop.is_set():
                busy = 0
                try:
                    busy = service.process_changes()
                    busy += service.advance_time()
                    self.rounds += 1
                    self.last_error = None
                except Exception as exc:  # a round must never end the worker
                    self.last_error = f"{type(exc).__name__}: {exc}"
                    log.exception("background round failed; retrying in %.1f s", self.interval_s)
                if not busy:
                    self._wake.wait(self.interval_s)
                self._wake.clear()
        finally:
            self.service = None
            service.close()
            store.close()
