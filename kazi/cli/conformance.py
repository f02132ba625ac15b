"""`kazi conformance CASES_DIR`: replay CHT-computed cases and report `N passed, M failed`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from kazi.conformance import Runner, format_outcome, iter_cases


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("conformance", help="run conformance cases (the ../shared/conformance format)")
    p.add_argument("cases_dir", type=Path, metavar="CASES_DIR", help="a folder of case files, or one case file")
    p.add_argument("-v", "--verbose", action="store_true", help="also list passing cases")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not args.cases_dir.exists():
        print(f"kazi conformance: {args.cases_dir}: no such file or folder", file=sys.stderr)
        return 1
    runner = Runner()
    passed = failed = 0
    for path in iter_cases(args.cases_dir):
        outcome = runner.run_case(path)
        if outcome.passed:
            passed += 1
            devs = outcome.deviations
            if devs:
                print(f"PASS {outcome.id} with Kazi's deliberate fix ({len(devs)} doc(s)): {devs[0]}")
            elif args.verbose:
                print(f"PASS {outcome.id}")
        else:
            failed += 1
            print(format_outcome(outcome))
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 and passed > 0 else 1
