"""``kazi worker``: the process that keeps every user's tasks up to date, apart from the API.

``kazi serve`` starts one (``--compute process``, the default) so that computing tasks never takes the API
process's interpreter: the API only brings its own caller up to date (read-your-writes), while this process
works off every change for every user it concerns, the local midnights and the hourly housekeeping. Several
may run against one store (one per server): they share the store's worker lease, so one computes at a time
and another takes over when it stops (:mod:`kazi.store.lease`). It runs until SIGTERM or SIGINT, then ends
its round and gives up the lease; started by ``kazi serve`` (``--parent``), it also ends within half a second
of the server's end, however the server ended. Stopping interrupts the computation in progress (program code
stuck in a loop included), so the process ends within a second or two; should something still hold it after
``STOP_WITHIN_S``, it exits anyway (rounds are idempotent: nothing is lost).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
from typing import Any

#: niceness of the worker: when the API and the worker want the same core, the kernel gives it to the API, so a
#: request never waits behind other people's computations; with a core idle the worker runs at full speed
DEFAULT_NICENESS = 10
#: how often the worker looks for changes and local midnights (seconds)
DEFAULT_INTERVAL_S = 1.0
#: seconds the worker's thread gets to end its round after a stop signal before the process exits anyway
STOP_WITHIN_S = 3.0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("worker", help="keep every user's tasks up to date (the process `kazi serve` starts)")
    p.add_argument("--db", metavar="URL", default=None, help="database URL (default: sqlite:///data/kazi.sqlite3)")
    p.add_argument("--now", metavar="ISO8601", default=None, help="freeze the clock at this instant")
    p.add_argument("--workers", type=int, default=0, help="compute processes for large full recomputes")
    p.add_argument("--interval", type=float, default=DEFAULT_INTERVAL_S,
                   help=f"seconds between rounds when there is nothing to do (default {DEFAULT_INTERVAL_S})")
    p.add_argument("--nice", type=int, default=DEFAULT_NICENESS, metavar="N",
                   help=f"scheduling niceness added to this process and its compute processes (default "
                        f"{DEFAULT_NICENESS}: requests first, background computing with what CPU is left)")
    p.add_argument("--parent", type=int, metavar="PID", default=None,
                   help="end when this process ends (`kazi serve` passes its own pid)")
    p.set_defaults(func=run)


def worker_command(args: Any) -> list[str]:
    """The ``kazi worker`` arguments that match a ``kazi serve`` invocation's (database, clock, processes)."""
    out = ["worker"]
    if getattr(args, "db", None):
        out += ["--db", args.db]
    if getattr(args, "now", None):
        out += ["--now", args.now]
    if getattr(args, "workers", 0):
        out += ["--workers", str(args.workers)]
    return [*out, "--parent", str(os.getpid())]


def run(args: argparse.Namespace) -> int:
    from kazi.cli.tasks import parse_now
    from kazi.service.auth import Authenticator, AuthSettings
    from kazi.service.tasks import TaskService
    from kazi.service.worker import BackgroundWorker
    from kazi.store import open_store

    now = parse_now(args.now) if args.now else None
    if args.nice:
        os.nice(args.nice)  # inherited by the compute processes it spawns
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    with open_store(args.db) as store:
        service = TaskService(store, clock=(lambda: now) if now is not None else None, workers=args.workers)
        auth = Authenticator(store, AuthSettings.from_env())  # its session age and failure decay

        def maintenance() -> None:
            auth.housekeeping()
            store.analyze()

        worker = BackgroundWorker(service, args.interval, maintenance=maintenance)
        worker.start()
        try:
            while not stop.wait(0.5):
                if not worker.running:
                    return 1
                if args.parent is not None and os.getppid() != args.parent:
                    # the server is gone without stopping us (killed, or uvicorn re-raised its SIGTERM
                    # before the server's cleanup ran): a worker must not outlive it, holding the lease
                    break
        finally:
            worker.stop(STOP_WITHIN_S)
            if worker.running:
                logging.getLogger("kazi.worker").error("the worker did not stop within %.1f s: exiting now",
                                                       STOP_WITHIN_S)
                os._exit(0)
            service.close()
    return 0
