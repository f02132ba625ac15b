"""The `kazi` command: one module per subcommand, registered here in one list."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from kazi.errors import KaziError

# Each module defines `register(subparsers) -> None`, setting `func(args) -> int` on its parser.
SUBCOMMANDS = [
    "kazi.cli.validate",
    "kazi.cli.tasks",
    "kazi.cli.conformance",
    "kazi.cli.population",
    "kazi.cli.demo",
    "kazi.cli.users",
    "kazi.cli.program",
    "kazi.cli.importer",
    "kazi.cli.serve",
    "kazi.cli.worker",
    "kazi.cli.sms",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kazi", description="CHT-compatible task engine and server.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except KaziError as exc:
        print(f"kazi: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
