"""``kazi worker``: the process that keeps every user's tasks up to date, apart from the API.

``kazi serve`` starts one (``--compute process``, the default) so that computing tasks never takes the API
process's interpreter: the API only brings its own caller up to date (read-your-writes), while this process
works off every change for every user it concerns, the local midnights and the hourly housekeeping. Several
may run against one store (one per server): they share the store's worker lease, so one computes at a time
and another takes over when it stops (:mod:`kazi.store.lease`). It runs until SIGTERM or SIGINT, then ends
its round and gives up the lease.
"""

from __future__ import annotations

import argparse
import signal
import threading
from typing import Any

#: how often the worker looks for changes and local midnights (seconds)
DEFAULT_INTERVAL_S = 1.0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("worker", help="keep every user's tasks up to date (the process `kazi serve` starts)")
    p.add_argument("--db", metavar="URL", default=None, help="database URL (default: sqlite:///data/kazi.sqlite3)")
    p.add_argument("--now", metavar="ISO8601", default=None, help="freeze the clock at this instant")
    p.add_argument("--workers", type=int, default=0, help="compute processes for large full recomputes")
    p.add_argument("--interval", type=float, default=DEFAULT_INTERVAL_S,
                   help=f"seconds between rounds when there is nothing to do (default {DEFAULT_INTERVAL_S})")
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
    return out


def run(args: argparse.Namespace) -> int:
    from kazi.cli.tasks import parse_now
    from kazi.server.auth import Authenticator
    from kazi.server.background import BackgroundWorker
    from kazi.server.service import TaskService
    from kazi.store import open_store

    now = parse_now(args.now) if args.now else None
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    with open_store(args.db) as store:
        service = TaskService(store, clock=(lambda: now) if now is not None else None, workers=args.workers)
        auth = Authenticator(store)

        def maintenance() -> None:
            auth.purge_sessions()
            store.analyze()

        worker = BackgroundWorker(service, args.interval, maintenance=maintenance)
        worker.start()
        try:
            while not stop.wait(0.5):
                if not worker.running:
                    return 1
        finally:
            worker.stop()
            service.close()
    return 0
