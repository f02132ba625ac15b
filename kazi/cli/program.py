"""``kazi program load DIR [--db URL]`` and ``kazi program info [--db URL]``: the deployment's program.

``load`` validates the folder first: every error is printed (file, definition, field, fix) and nothing
changes (exit 1), so the previous program keeps running. Otherwise the folder's files are stored as a new
version, which the server's worker picks up and recomputes every user's tasks with.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from kazi.errors import ProgramError
from kazi.store import open_store


def with_db(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--db", metavar="URL", default=None,
                        help="database URL (default: sqlite:///data/kazi.sqlite3)")
    return parser


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("program", help="load the deployment's program, show the active version")
    sub = p.add_subparsers(dest="program_command", required=True, metavar="ACTION")
    load = with_db(sub.add_parser("load", help="validate a program folder and make it the active version"))
    load.add_argument("dir", metavar="DIR", type=Path)
    load.set_defaults(func=_load)
    info = with_db(sub.add_parser("info", help="the active program version"))
    info.add_argument("--format", choices=("text", "json"), default="text")
    info.set_defaults(func=_info)


def _load(args: argparse.Namespace) -> int:
    from kazi.service.tasks import TaskService

    with open_store(args.db) as store:
        service = TaskService(store)
        try:
            info = service.load_program(args.dir)
        except ProgramError as exc:
            print(f"kazi: {args.dir}: not loaded, the previous program stays active", file=sys.stderr)
            for problem in exc.problems or []:
                print(str(problem), file=sys.stderr)
            if not exc.problems:
                print(str(exc), file=sys.stderr)
            return 1
        finally:
            service.close()
    for w in info.warnings:
        print(f"warning: {w.get('file', '')}: {w.get('message', '')}", file=sys.stderr)
    print(f"program version {info.version} loaded ({info.kind}, {len(info.warnings)} warning(s)); "
          "every user's tasks are recomputed by the server")
    return 0


def _info(args: argparse.Namespace) -> int:
    from kazi.store import tracking

    with open_store(args.db) as store:
        stored = tracking.active_program(store)
    if stored is None:
        print("no program loaded (kazi program load DIR)", file=sys.stderr)
        return 1
    data = {"version": stored.version, "kind": stored.kind, "loaded_at": stored.loaded_at,
            "files": sorted(stored.files), "warnings": stored.warnings,
            "settings_override": stored.settings_override is not None}
    if args.format == "json":
        print(json.dumps(data, indent=2))
    else:
        print(f"version {stored.version} ({stored.kind}), loaded at {stored.loaded_at}, "
              f"{len(stored.files)} files, {len(stored.warnings)} warning(s)"
              + (", app settings imported" if stored.settings_override is not None else ""))
    return 0
