"""``kazi serve``: the HTTP API (``/api/v1``, documented at ``/docs``) and the worker that keeps every user's
tasks up to date, in one process.

The contract (issue "Kazi server"): ``kazi serve [--port N] [--host H] [--now ISO8601] [--db URL]
[--workers N]``. ``--now`` freezes the server's clock, so a test, a demo or the replay of a past day sees the
tasks of that instant however long it runs. ``--workers`` is the number of compute processes the recompute
uses (one V8 each); 0 computes in the server process.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

#: how often the background worker looks for changes and local midnights (seconds)
DEFAULT_INTERVAL_S = 1.0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("serve", help="serve the HTTP API and keep every user's tasks up to date")
    add_server_arguments(p)
    p.add_argument("--now", metavar="ISO8601", default=None,
                   help="freeze the server's clock at this instant (with offset, e.g. 2025-08-01T10:00:00+02:00)")
    p.add_argument("--program", type=Path, metavar="DIR", default=None,
                   help="load this program folder before serving (a new program version)")
    p.set_defaults(func=run)


def add_server_arguments(p: argparse.ArgumentParser,
                         db_help: str = "database URL (default: sqlite:///data/kazi.sqlite3)") -> None:
    """The options ``kazi serve`` and ``kazi demo`` share."""
    p.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine "
                                                       "only; 0.0.0.0 for the network)")
    p.add_argument("--db", metavar="URL", default=None, help=db_help)
    p.add_argument("--workers", type=int, default=0, help="compute processes (default 0: in the server process)")


def serve(app: Any, host: str, port: int) -> None:
    """Run ``app`` with uvicorn until interrupted (Ctrl-C or SIGTERM shut it down cleanly)."""
    import uvicorn

    uvicorn.run(app, host=host, port=port, log_level="info", lifespan="on")


def run(args: argparse.Namespace) -> int:
    from kazi.cli.tasks import parse_now
    from kazi.server.api import create_app

    now = parse_now(args.now) if args.now else None
    app = create_app(args.db, now=now, workers=args.workers, program_dir=args.program,
                     background_interval_s=DEFAULT_INTERVAL_S)
    clock = f", clock frozen at {args.now}" if args.now else ""
    print(f"Kazi serving on http://{args.host}:{args.port} (API documentation: /docs{clock})", flush=True)
    serve(app, args.host, args.port)
    return 0
