"""``kazi serve``: the HTTP API (``/api/v1``, documented at ``/docs``) and the worker that keeps every user's
tasks up to date.

By default the worker is a process of its own (``kazi worker``, started and stopped with the server, and
restarted if it dies): computing tasks for the users a change concerns is CPU work in Python and V8, and in
the API's process it would hold the interpreter while requests wait. The API process only computes its own
caller's tasks when they read them (read-your-writes). ``--compute thread`` keeps the worker in the API
process (one process, as ``kazi demo`` runs).

The contract (issue "Kazi server"): ``kazi serve [--port N] [--host H] [--now ISO8601] [--db URL]
[--workers N]``. ``--now`` freezes the server's clock, so a test, a demo or the replay of a past day sees the
tasks of that instant however long it runs. ``--workers`` is the number of compute processes the recompute
uses (one V8 each); 0 computes in the server process.
"""

from __future__ import annotations

import argparse
import logging
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kazi.server.limits import InputSettings

log = logging.getLogger("kazi.serve")

#: how often the background worker looks for changes and local midnights (seconds)
DEFAULT_INTERVAL_S = 1.0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("serve", help="serve the HTTP API and keep every user's tasks up to date")
    add_server_arguments(p)
    p.add_argument("--now", metavar="ISO8601", default=None,
                   help="freeze the server's clock at this instant (with offset, e.g. 2025-08-01T10:00:00+02:00)")
    p.add_argument("--compute", choices=("process", "thread"), default="process",
                   help="where the worker that keeps everyone's tasks up to date runs: its own process "
                        "(default) or a thread of the API process")
    p.add_argument("--program", type=Path, metavar="DIR", default=None,
                   help="load this program folder before serving (a new program version when its files "
                        "differ from the active version's)")
    p.set_defaults(func=run)


def add_server_arguments(p: argparse.ArgumentParser,
                         db_help: str = "database URL (default: sqlite:///data/kazi.sqlite3)") -> None:
    """The options ``kazi serve`` and ``kazi demo`` share."""
    p.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine "
                                                       "only; 0.0.0.0 for the network)")
    p.add_argument("--db", metavar="URL", default=None, help=db_help)
    p.add_argument("--workers", type=int, default=0, help="compute processes (default 0: in the server process)")
    add_input_arguments(p)


def _size(text: str) -> int:
    from kazi.server.limits import parse_size

    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def add_input_arguments(p: argparse.ArgumentParser) -> None:
    """The limits on what clients send (kazi.server.limits); each defaults to its environment variable."""
    p.add_argument("--max-request-bytes", type=_size, metavar="SIZE", default=None,
                   help="largest request body accepted, e.g. 32MB (default: $KAZI_MAX_REQUEST_BYTES or 32MB; "
                        "program uploads have their own limit)")
    p.add_argument("--max-document-bytes", type=_size, metavar="SIZE", default=None,
                   help="largest document a client may send, as JSON, e.g. 1MB (default: "
                        "$KAZI_MAX_DOCUMENT_BYTES or 1MB)")
    p.add_argument("--trusted-origin", action="append", metavar="URL", default=None,
                   help="another origin the web app is reached at, e.g. https://kazi.example.org, when a proxy "
                        "does not pass the Host header on (repeatable; default: $KAZI_TRUSTED_ORIGINS)")


def input_settings(args: argparse.Namespace) -> InputSettings:
    """The :class:`kazi.server.limits.InputSettings` the options and the environment give."""
    from dataclasses import replace

    from kazi.server.limits import InputSettings

    settings: InputSettings = InputSettings.from_env()
    changes: dict[str, Any] = {}
    if getattr(args, "max_request_bytes", None) is not None:
        changes["max_request_bytes"] = args.max_request_bytes
    if getattr(args, "max_document_bytes", None) is not None:
        changes["max_document_bytes"] = args.max_document_bytes
    if getattr(args, "trusted_origin", None):
        changes["trusted_origins"] = tuple(args.trusted_origin)
    return replace(settings, **changes)


def serve(app: Any, host: str, port: int) -> None:
    """Run ``app`` with uvicorn until interrupted (Ctrl-C or SIGTERM shut it down cleanly)."""
    import uvicorn

    # keep-alive longer than uvicorn's 5 s: a phone re-reading its list a few seconds later reuses its
    # connection instead of paying a new TCP (and TLS, behind a proxy) handshake on a slow network
    uvicorn.run(app, host=host, port=port, log_level="info", lifespan="on", timeout_keep_alive=75)


class WorkerProcess:
    """``kazi worker`` as a child process, restarted (after a pause) if it ends while the server runs."""

    def __init__(self, argv: list[str], restart_after_s: float = 2.0) -> None:
        self.argv = [sys.executable, "-m", "kazi.cli.main", *argv]
        self.restart_after_s = restart_after_s
        self.proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        self._stop = threading.Event()
        self._watch = threading.Thread(target=self._watch_loop, name="kazi-worker-watch", daemon=True)

    def start(self) -> None:
        self.proc = subprocess.Popen(self.argv)
        self._watch.start()

    def _watch_loop(self) -> None:
        while not self._stop.is_set():
            proc = self.proc
            if proc is not None and proc.poll() is not None and not self._stop.wait(self.restart_after_s):
                log.warning("kazi worker ended (exit %s): starting it again", proc.returncode)
                self.restarts += 1
                self.proc = subprocess.Popen(self.argv)
            self._stop.wait(0.5)

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def run(args: argparse.Namespace) -> int:
    from kazi.cli.tasks import parse_now
    from kazi.cli.worker import worker_command
    from kazi.server.api import create_app

    now = parse_now(args.now) if args.now else None
    in_process = args.compute == "thread"
    app = create_app(args.db, now=now, workers=args.workers, program_dir=args.program,
                     background_interval_s=DEFAULT_INTERVAL_S if in_process else None, others_to_worker=True,
                     inputs=input_settings(args))
    clock = f", clock frozen at {args.now}" if args.now else ""
    print(f"Kazi serving on http://{args.host}:{args.port} (API documentation: /docs{clock})", flush=True)
    worker = None if in_process else WorkerProcess(worker_command(args))
    if worker is not None:
        worker.start()
    try:
        serve(app, args.host, args.port)
    finally:
        if worker is not None:
            worker.stop()
    return 0
