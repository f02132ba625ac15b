"""The background worker: the thread that keeps task documents up to date while the API answers requests.

It owns a second :class:`~kazi.service.tasks.TaskService` over its own store connection (engine and pool)
and its own program runtime (V8 is single-threaded: the API's runtime must stay free for read-your-writes),
and loops: :meth:`~TaskService.process_changes`, then :meth:`~TaskService.advance_time`, then a pause of
``interval_s`` unless there was work. The API thread never waits for a round (``refresh_user`` waits a
bounded time, then leaves the user to this thread). With ``workers > 1`` full recomputes spread emission
over worker processes (:mod:`kazi.service.emission_pool`), so both cores work on a program change.

Several server processes may share one store (PostgreSQL): each runs a worker, but a round needs the store's
worker lease (:mod:`kazi.store.lease`), so one worker computes and the others stand by, trying the lease at
each interval. The lease goes with its holder's process or connection, so a standby takes over within an
interval when the computing server stops or dies.

Housekeeping that is not about tasks (``maintenance``: deleting expired sessions) runs in the holder's rounds
at most once every ``maintenance_every_s``; one process doing it is enough for every process's store.

A failing round (the database unreachable, a bug) is logged and retried after the interval: the thread
only ends on :meth:`BackgroundWorker.stop`.

A round never outlives its reason: a watcher thread checks, while a round runs, that its program version is
still the active one, and ends the computation in progress when another was loaded (program code stuck in
a loop for every contact would otherwise keep the old version computing for hours); :meth:`stop` ends the
computation in progress too, so the process stops within a second, whatever the program does.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from kazi.service.tasks import TaskService
from kazi.store import Store, open_store
from kazi.store.lease import WORKER_LEASE, open_lease

log = logging.getLogger("kazi.background")

#: how often the holder's rounds run ``maintenance`` (seconds)
MAINTENANCE_EVERY_S = 3600.0


class BackgroundWorker:
    """``process_changes`` + ``advance_time`` in a loop on a daemon thread (``start`` / ``stop``), while this
    process holds the store's worker lease.

    ``rounds`` counts the rounds it computed, ``standby_rounds`` those it left to another holder; ``holding``
    says whether it held the lease at its last round.
    """

    def __init__(self, service: TaskService, interval_s: float = 1.0, *,
                 maintenance: Callable[[], object] | None = None,
                 maintenance_every_s: float = MAINTENANCE_EVERY_S) -> None:
        self.interval_s = interval_s
        self.maintenance = maintenance
        self.maintenance_every_s = maintenance_every_s
        self._template = service
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_maintenance = 0.0  # monotonic time; the first held round does it
        self.rounds = 0
        self.standby_rounds = 0
        self.maintenance_runs = 0
        self.holding = False
        self.last_error: str | None = None
        self.service: TaskService | None = None  # the thread's own service, while it runs
        self._in_round = threading.Event()
        self._watcher: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="kazi-background", daemon=True)
        self._thread.start()
        self._watcher = threading.Thread(target=self._watch, name="kazi-background-watch", daemon=True)
        self._watcher.start()

    def stop(self, timeout: float | None = 30.0) -> None:
        """End the loop and wait for it (the lease is given up): the computation in progress is interrupted,
        so this takes well under a second unless the database hangs."""
        self._stop.set()
        self._wake.set()
        service = self.service
        if service is not None:
            service.interrupt()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if self._watcher is not None:
            self._watcher.join(1.0)
            self._watcher = None

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
                              default_tz=template.default_tz, limits=template.limits, process="worker")
        return store, service

    def _run(self) -> None:
        store, service = self._open()
        lease = open_lease(store, WORKER_LEASE)
        self.service = service
        try:
            while not self._stop.is_set():
                busy = 0
                try:
                    self.holding = lease.try_acquire()
                    if self.holding:
                        self._in_round.set()
                        try:
                            busy = service.process_changes()
                            busy += service.advance_time()
                        finally:
                            self._in_round.clear()
                        self.rounds += 1
                        self._maintain()
                    else:
                        self.standby_rounds += 1
                    self.last_error = None
                except Exception as exc:  # a round must never end the worker
                    self.last_error = f"{type(exc).__name__}: {exc}"
                    log.exception("background round failed; retrying in %.1f s", self.interval_s)
                if not busy:
                    self._wake.wait(self.interval_s)
                self._wake.clear()
        finally:
            self.service = None
            self.holding = False
            lease.release()
            service.close()
            store.close()

    def _watch(self) -> None:
        """While a round runs, end its computation when another program version became active."""
        period = max(0.2, min(self.interval_s, 1.0))
        while not self._stop.wait(period):
            service = self.service
            if service is None or not self._in_round.is_set():
                continue
            try:
                service.interrupt_if_replaced()
            except Exception:  # noqa: BLE001 - a check that failed (database away) is tried again next period
                log.debug("program version check failed", exc_info=True)

    def _maintain(self) -> None:
        if self.maintenance is None or time.monotonic() < self._next_maintenance:
            return
        self._next_maintenance = time.monotonic() + self.maintenance_every_s
        self.maintenance_runs += 1
        self.maintenance()
