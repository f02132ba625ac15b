"""``kazi population``: write a synthetic population for the demo program to a JSON file.

The output (``{"contacts": [...], "reports": [...], "users": [...]}``, documents as CHT stores them) is
what demos, benchmarks and server tests load; :mod:`kazi.demo.population` explains what it contains. The
flags are a contract used by scripts: ``--households N --seed S --end-date YYYY-MM-DD --out FILE``.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from kazi.demo.population import DEFAULT_TZ, Summary, write_population
from kazi.errors import KaziError


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "population",
        help="generate a synthetic population for the demo program",
        description="Generate a synthetic, reproducible population (contacts, a year of reports, users) for "
        "Kazi's demo program. The same arguments always give the same bytes.",
    )
    p.add_argument("--households", type=_positive_int, required=True, metavar="N",
                   help="number of households (about 6 contacts each)")
    p.add_argument("--seed", type=int, default=1, metavar="S", help="random seed (default 1)")
    p.add_argument("--end-date", type=_day, required=True, metavar="DATE",
                   help="YYYY-MM-DD: the history covers the 365 days before this date; compute tasks on it")
    p.add_argument("--out", required=True, metavar="FILE",
                   help="JSON file to write ('-' for standard output)")
    p.add_argument("--tz", default=DEFAULT_TZ, metavar="ZONE",
                   help=f"IANA zone of the program's users (default {DEFAULT_TZ})")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        ZoneInfo(args.tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise KaziError(f"unknown time zone: {args.tz!r}") from None
    started = time.monotonic()
    if args.out == "-":
        summary = write_population(sys.stdout, args.households, args.seed, args.end_date, args.tz)
        report = sys.stderr
    else:
        out = Path(args.out)
        tmp = out.with_name(out.name + ".part")
        try:
            with tmp.open("w", encoding="utf-8", newline="\n") as fp:
                summary = write_population(fp, args.households, args.seed, args.end_date, args.tz)
            tmp.replace(out)  # never leave a truncated file under the requested name
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise KaziError(f"cannot write {out}: {exc.strerror or exc}") from None
        report = sys.stdout
    _print_summary(summary, args.out, time.monotonic() - started, report)
    return 0


def _print_summary(summary: Summary, out: str, seconds: float, stream: Any) -> None:
    target = "standard output" if out == "-" else out
    print(f"{summary.contacts:,} contacts, {summary.reports:,} reports, {summary.users:,} users "
          f"written to {target} in {seconds:.1f} s", file=stream)
