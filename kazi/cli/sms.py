"""``kazi sms messages [--status S] [--limit N] [--db URL]``: the SMS the gateways delivered, for review.

The same list as ``GET /api/v1/sms/messages`` for an administrator (every message, newest first), for whoever
runs the server: which senders were unknown, which messages were refused and what they were told
(docs/sms.md).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from kazi.cli.program import with_db
from kazi.store import open_store
from kazi.store import sms as stored
from kazi.store.scope import EVERYTHING


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("sms", help="review the SMS the gateways delivered")
    sub = p.add_subparsers(dest="sms_command", required=True, metavar="ACTION")
    msgs = with_db(sub.add_parser("messages", help="the messages kept, newest first, with their outcome"))
    msgs.add_argument("--status", choices=stored.STATUSES, help="only messages with this outcome")
    msgs.add_argument("--limit", type=int, default=50)
    msgs.add_argument("--format", choices=("text", "json"), default="text")
    msgs.set_defaults(func=_messages)


def _messages(args: argparse.Namespace) -> int:
    with open_store(args.db) as store:
        total, items = stored.list_messages(store, EVERYTHING, gateway_user=None, status=args.status,
                                            limit=max(1, args.limit), offset=0)
    if args.format == "json":
        print(json.dumps({"total": total, "items": [m.to_dict() for m in items]}, indent=2))
        return 0
    print(f"{total} message(s){f' with status {args.status}' if args.status else ''}; newest first")
    for m in items:
        outcome = m.status + (f" ({m.error})" if m.error else "")
        print(f"  #{m.seq}  {m.sender:<16} {outcome:<28} {m.text!r}")
        if m.reply_text:
            print(f"        reply: {m.reply_text}")
    return 0
