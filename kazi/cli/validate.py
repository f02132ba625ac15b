"""`kazi validate PROGRAM_DIR`: every problem of a program's task definitions, located; exit 1 on errors."""

from __future__ import annotations

import argparse
from pathlib import Path

from kazi.program.loader import inspect_tasks
from kazi.program.validate import format_problems


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("validate", help="validate a program folder (tasks.js or tasks.py)")
    p.add_argument("program_dir", type=Path, metavar="PROGRAM_DIR")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    problems = inspect_tasks(args.program_dir)
    errors = [p for p in problems if p.severity == "error"]
    if problems:
        print(format_problems(problems))
    if errors:
        return 1
    print(f"{args.program_dir}: valid")
    return 0
