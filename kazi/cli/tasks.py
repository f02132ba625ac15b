"""`kazi tasks PROGRAM_DIR --docs FILE --user USER --now ISO --tz IANA`: a user's tasks, as CHT shows them."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from kazi.engine.containers import hydrate_lineage
from kazi.engine.dates import zone
from kazi.engine.engine import User, compute
from kazi.errors import DocumentError, KaziError
from kazi.program.loader import load_program
from kazi.service.emission_pool import compute_parallel


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("tasks", help="compute a user's tasks from a program and documents")
    p.add_argument("program_dir", type=Path, metavar="PROGRAM_DIR")
    p.add_argument("--docs", type=Path, required=True, metavar="FILE",
                   help='JSON: an array of CHT docs or {"contacts": [...], "reports": [...], "tasks": [...]}')
    p.add_argument("--user", required=True, metavar="USER", help="the user's contact _id")
    p.add_argument("--username", help="CHT username for task doc ids (default: the contact _id)")
    p.add_argument("--now", required=True, metavar="ISO8601", help="the calculation instant, with offset")
    p.add_argument("--tz", required=True, metavar="IANA", help="the user's time zone, e.g. Africa/Nairobi")
    p.add_argument("--roles", default="", help="comma-separated roles for cht.v1.hasPermissions")
    p.add_argument("--format", choices=("json", "table"), default="json")
    p.add_argument("--all", action="store_true", help="every task doc and every emission, not only Ready tasks")
    p.add_argument("--workers", type=int, default=1,
                   help="processes to spread the computation over (default 1; large files: the number of cores)")
    p.set_defaults(func=run)


def read_docs(path: Path) -> list[dict[str, Any]]:
    """Docs from an array, a {contacts, reports, tasks} object, or a CouchDB _all_docs export."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DocumentError(f"{path}: cannot read: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise DocumentError(f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from exc
    if isinstance(data, dict) and isinstance(data.get("rows"), list):
        data = [r.get("doc") for r in data["rows"] if isinstance(r, dict) and isinstance(r.get("doc"), dict)]
    if isinstance(data, dict):
        docs: list[Any] = []
        for key in ("contacts", "reports", "tasks"):
            part = data.get(key, [])
            if not isinstance(part, list):
                raise DocumentError(f"{path}: {key!r} must be an array", field=key)
            docs.extend(part)
        data = docs
    if not isinstance(data, list):
        raise DocumentError(f"{path}: expected an array of documents or an object with contacts/reports/tasks")
    for i, d in enumerate(data):
        if not isinstance(d, dict):
            raise DocumentError(f"{path}: document {i} is not an object")
        if not isinstance(d.get("_id"), str) or not d["_id"]:
            raise DocumentError(f"{path}: document {i} has no string _id", field="_id")
    return data


def parse_now(value: str) -> int:
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise KaziError(f"--now {value!r}: not an ISO-8601 date-time") from exc
    if dt.tzinfo is None:
        raise KaziError(f"--now {value!r}: give an offset (e.g. +03:00 or Z) so the instant is unambiguous")
    return int(dt.timestamp() * 1000)


def run(args: argparse.Namespace) -> int:
    try:
        zone(args.tz)
    except (KeyError, ValueError):
        raise KaziError(f"--tz {args.tz!r}: not an IANA time zone name") from None
    now = parse_now(args.now)
    docs = read_docs(args.docs)
    program = load_program(args.program_dir)
    by_id = {d["_id"]: d for d in docs}
    if args.user not in by_id:
        print(f"kazi tasks: warning: user contact {args.user!r} is not among the documents", file=sys.stderr)
    contact = hydrate_lineage(by_id.get(args.user), by_id)
    roles = tuple(r for r in args.roles.split(",") if r)
    user = User(name=args.username or args.user, roles=roles, contact=contact)
    if args.workers > 1:
        result = compute_parallel(program, workers=args.workers, docs=docs, user=user, now_ms=now, tz=args.tz)
    else:
        result = compute(program, docs=docs, user=user, now_ms=now, tz=args.tz)
    if args.all:
        out: Any = {"emissions": [{k: v for k, v in e.items() if not k.startswith("_k_")}
                                  for e in result.emissions],
                    "task_docs": sorted(result.task_docs, key=lambda d: d["_id"])}
    else:
        out = result.ready
    if args.format == "json":
        print(json.dumps(out, indent=2, sort_keys=True))
    else:
        rows = out if not args.all else out["task_docs"]
        print(f"{'due':10}  {'state':9}  {'pri':>3}  {'title':40}  contact")
        for d in rows:
            e = d["emission"]
            pri = e.get("priority")
            print(f"{e.get('dueDate') or '':10}  {d['state']:9}  {pri if pri is not None else '':>3}  "
                  f"{str(e.get('title'))[:40]:40}  {e.get('contact', {}).get('name', d.get('owner', ''))}")
    return 0
