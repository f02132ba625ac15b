"""``kazi serve``: the HTTP API (``/api/v1``, documented at ``/docs``) and the worker that keeps every user's
tasks up to date.

By default the worker is a process of its own (``kazi worker``, started and stopped with the server, and
restarted if it dies): computing tasks for the users a change concerns is CPU work in Python and V8, and in
the API's process it would hold the interpreter while requests wait. The API process only computes its own
caller's tasks when they read them (read-your-writes). ``--compute thread`` keeps the worker in the API
process (one process, as ``kazi demo`` runs).

The command line: ``kazi serve [--port N] [--host H] [--now ISO8601] [--db URL]
[--workers N]``. ``--now`` freezes the server's clock, so a test, a demo or the replay of a past day sees the
tasks of that instant however long it runs. ``--workers`` is the number of compute processes the recompute
uses (one V8 each); 0 computes in the server process.

SIGTERM (or Ctrl-C) stops it within ``STOP_WITHIN_S`` whatever program code is doing: the worker process is
told at once, computations running in the API process are interrupted (a read then answers from the stored
documents), requests still open after ``GRACEFUL_S`` are cut, and should anything still hold the process, it
ends itself (rounds are idempotent and every write is a transaction: a stop at any point loses nothing).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kazi.server.limits import InputSettings

log = logging.getLogger("kazi.serve")

#: how often the background worker looks for changes and local midnights (seconds)
DEFAULT_INTERVAL_S = 1.0
#: seconds open requests get to finish after SIGTERM
GRACEFUL_S = 2
#: seconds after SIGTERM by which the process has ended, whatever still runs
STOP_WITHIN_S = 4.5


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


def serve(app: Any, host: str, port: int, trusted_proxies: tuple[str, ...] | None = None,
          on_stop: Callable[[], None] | None = None) -> None:
    """Run ``app`` with uvicorn until interrupted (Ctrl-C or SIGTERM shut it down cleanly, within
    ``STOP_WITHIN_S``); ``on_stop`` runs at the first signal (it must not block).

    ``trusted_proxies`` (default: ``KAZI_TRUSTED_PROXIES``) are the only peers whose ``X-Forwarded-For`` and
    ``X-Forwarded-Proto`` uvicorn believes. Its own default trusts 127.0.0.1, so any local process could pick
    the client address failed logins are counted under; Kazi trusts no proxy unless told."""
    import uvicorn

    from kazi.program.js.runtime import interrupt_all

    if trusted_proxies is None:
        from kazi.service.auth import AuthSettings

        trusted_proxies = AuthSettings.from_env().trusted_proxies

    class Server(uvicorn.Server):
        stopping = False

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            super().handle_exit(sig, frame)
            if Server.stopping:
                return
            Server.stopping = True
            if on_stop is not None:
                on_stop()
            interrupt_all()  # a request computing tasks answers from the stored documents at once
            threading.Thread(target=_end_after, args=(STOP_WITHIN_S,), name="kazi-stop-watchdog",
                             daemon=True).start()

    # keep-alive longer than uvicorn's 5 s: a phone re-reading its list a few seconds later reuses its
    # connection instead of paying a new TCP (and TLS, behind a proxy) handshake on a slow network
    config = uvicorn.Config(app, host=host, port=port, log_level="info", lifespan="on", timeout_keep_alive=75,
                            timeout_graceful_shutdown=GRACEFUL_S, forwarded_allow_ips=list(trusted_proxies))
    Server(config).run()


def _end_after(seconds: float) -> None:
    """The last resort of a stop: whatever still holds the process after ``seconds`` (a thread stuck in
    native code), the process ends."""
    threading.Event().wait(seconds)
    log.error("still running %.1f s after the stop signal: exiting now", seconds)
    logging.shutdown()
    os._exit(0)


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

    def signal_stop(self) -> None:
        """Tell the worker to stop (SIGTERM) without waiting: it ends its round within a second."""
        self._stop.set()
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 3.0) -> None:
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
    from kazi.service.auth import AuthSettings

    now = parse_now(args.now) if args.now else None
    in_process = args.compute == "thread"
    auth_settings = AuthSettings.from_env()
    app = create_app(args.db, now=now, workers=args.workers, program_dir=args.program,
                     background_interval_s=DEFAULT_INTERVAL_S if in_process else None, others_to_worker=True,
                     auth_settings=auth_settings, inputs=input_settings(args))
    clock = f", clock frozen at {args.now}" if args.now else ""
    print(f"Kazi serving on http://{args.host}:{args.port} (API documentation: /docs{clock})", flush=True)
    worker = None if in_process else WorkerProcess(worker_command(args))
    if worker is not None:
        worker.start()
    try:
        serve(app, args.host, args.port, auth_settings.trusted_proxies,
              on_stop=worker.signal_stop if worker is not None else None)
    finally:
        if worker is not None:
            worker.stop()
    return 0
