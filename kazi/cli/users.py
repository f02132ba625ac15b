"""``kazi users``: create, list, update, disable and enable accounts, and issue tokens for scripts.

The command line: ``kazi users add NAME --password P --roles r1,r2 --place PLACE_ID
[--contact CONTACT_ID] [--tz IANA] [--locale ny]``, every command with ``--db URL`` (default: the embedded
SQLite file). ``--locale`` is the web app's language (docs/webapp.md); ``update --locale ''`` clears it, so the
program's default applies.
Without ``--password`` the password is asked for on the terminal, so it need not appear in the shell history.
``kazi users unthrottle NAME [--address A]`` ends a wait that failed logins started (kazi.service.auth).
Validation errors name the field (``kazi: roles: at least one role is needed``) and exit 1.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from typing import Any

from kazi.errors import UserError
from kazi.store import UNSET, StoredUser, open_store


def _roles(text: str) -> list[str]:
    return [r.strip() for r in text.split(",") if r.strip()]


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("users", help="manage user accounts (add, list, update, disable, enable, token, "
                                            "unthrottle)")
    sub = p.add_subparsers(dest="users_command", required=True, metavar="ACTION")

    def with_db(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
        parser.add_argument("--db", metavar="URL", default=None,
                            help="database URL (default: sqlite:///data/kazi.sqlite3)")
        return parser

    add = with_db(sub.add_parser("add", help="create a user"))
    add.add_argument("name", metavar="NAME")
    add.add_argument("--password", help="the password (asked for when omitted)")
    add.add_argument("--roles", type=_roles, required=True, help="comma-separated role ids, e.g. chw")
    add.add_argument("--place", dest="facility_id", help="the user's place (facility_id): they see its subtree")
    add.add_argument("--contact", dest="contact_id", help="the user's own person (contact_id), within the place")
    add.add_argument("--tz", dest="timezone", help="IANA time zone, e.g. Africa/Blantyre")
    add.add_argument("--national", action="store_true", help="sees every place (national level)")
    add.add_argument("--locale", help="the web app's language, e.g. en, ny, pt-BR (default: the program's)")
    add.set_defaults(func=_add)

    ls = with_db(sub.add_parser("list", help="list users"))
    ls.add_argument("--format", choices=("table", "json"), default="table")
    ls.set_defaults(func=_list)

    upd = with_db(sub.add_parser("update", help="change a user's roles, place, contact, zone or password (a new "
                                                "password revokes their tokens and sessions)"))
    upd.add_argument("name", metavar="NAME")
    upd.add_argument("--password", help="a new password")
    upd.add_argument("--ask-password", action="store_true", help="ask for a new password on the terminal")
    upd.add_argument("--roles", type=_roles)
    upd.add_argument("--place", dest="facility_id")
    upd.add_argument("--contact", dest="contact_id")
    upd.add_argument("--tz", dest="timezone")
    upd.add_argument("--national", choices=("yes", "no"))
    upd.add_argument("--locale", help="the web app's language ('' = the program's default)")
    upd.set_defaults(func=_update)

    for action, func, text in (("disable", _disable, "refuse the user's password and revoke their tokens and "
                                                     "sessions"),
                               ("enable", _enable, "allow a disabled user's password again (revoked tokens and "
                                                   "sessions stay revoked)")):
        cmd = with_db(sub.add_parser(action, help=text))
        cmd.add_argument("name", metavar="NAME")
        cmd.set_defaults(func=func)

    tok = with_db(sub.add_parser("token", help="issue a token for scripts (shown once)"))
    tok.add_argument("name", metavar="NAME")
    tok.add_argument("--label", default="", help="what the token is for")
    tok.set_defaults(func=_token)

    rev = with_db(sub.add_parser("revoke-token", help="revoke a token by its id (the part after 'kazi_')"))
    rev.add_argument("token_id", metavar="TOKEN_ID")
    rev.set_defaults(func=_revoke)

    unt = with_db(sub.add_parser("unthrottle", help="forget the failed logins of an account (or a client "
                                                    "address), ending its wait"))
    unt.add_argument("name", metavar="NAME", nargs="?", help="the username")
    unt.add_argument("--address", help="a client address (an IPv6 address stands for its /64)")
    unt.set_defaults(func=_unthrottle)


def _ask_password() -> str:
    if not sys.stdin.isatty():
        raise UserError("give --password (no terminal to ask on)", field="password")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Password again: ") != first:
        raise UserError("the two passwords differ", field="password")
    return first


def _show(user: StoredUser) -> str:
    place = user.facility_id or ("(everything)" if user.sees_everything else "(none)")
    flags = [f for f, on in (("national", user.national), ("disabled", user.disabled)) if on]
    extra = f" [{', '.join(flags)}]" if flags else ""
    return (f"{user.username}: roles {','.join(user.roles)}; place {place}; contact {user.contact_id or '-'}; "
            f"zone {user.timezone or '-'}; locale {user.locale or '-'}{extra}")


def _add(args: argparse.Namespace) -> int:
    password = args.password if args.password is not None else _ask_password()
    with open_store(args.db) as store:
        user = store.users.create(args.name, password=password, roles=args.roles, facility_id=args.facility_id,
                                  contact_id=args.contact_id, timezone=args.timezone, national=args.national,
                                  locale=args.locale)
    print(f"created {_show(user)}")
    return 0


def _list(args: argparse.Namespace) -> int:
    with open_store(args.db) as store:
        found = store.users.list_all()
    if args.format == "json":
        print(json.dumps([u.to_dict() for u in found], indent=2))
    else:
        for u in found:
            print(_show(u))
        print(f"{len(found)} user(s)")
    return 0


def _update(args: argparse.Namespace) -> int:
    changes: dict[str, Any] = {}
    for name in ("roles", "facility_id", "contact_id", "timezone", "password"):
        value = getattr(args, name)
        if value is not None:
            changes[name] = value
    if args.ask_password:
        changes["password"] = _ask_password()
    if args.national is not None:
        changes["national"] = args.national == "yes"
    if args.locale is not None:
        changes["locale"] = args.locale or None
    if not changes:
        raise UserError("nothing to change: give --roles, --place, --contact, --tz, --locale, --password or "
                        "--national")
    with open_store(args.db) as store:
        user = store.users.update(args.name, **{k: changes.get(k, UNSET) for k in changes})
    print(f"updated {_show(user)}")
    return 0


def _disable(args: argparse.Namespace) -> int:
    with open_store(args.db) as store:
        print(f"disabled {_show(store.users.disable(args.name))}")
    return 0


def _enable(args: argparse.Namespace) -> int:
    with open_store(args.db) as store:
        print(f"enabled {_show(store.users.enable(args.name))}")
    return 0


def _token(args: argparse.Namespace) -> int:
    with open_store(args.db) as store:
        token, info = store.users.create_token(args.name, args.label)
    print(token)
    print(f"token {info.id} for {info.username}: keep it now, it is not shown again", file=sys.stderr)
    return 0


def _revoke(args: argparse.Namespace) -> int:
    with open_store(args.db) as store:
        store.users.revoke_token(args.token_id)
    print(f"revoked token {args.token_id}")
    return 0


def _unthrottle(args: argparse.Namespace) -> int:
    from kazi.service.auth import failure_key

    keys = []
    if args.name:
        keys.append(failure_key("account", args.name))
    if args.address:
        keys.append(failure_key("address", args.address))
    if not keys:
        raise UserError("give a username, --address, or both", field="name")
    with open_store(args.db) as store:
        store.users.login_failures.forget(keys)
    print(f"forgot the failed logins of {' and '.join(filter(None, (args.name, args.address)))}")
    return 0
