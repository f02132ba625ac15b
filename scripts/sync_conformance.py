#!/usr/bin/env python3
"""Copy ../shared/conformance into tests/conformance_suite/ so the suite travels with the repo.

Run after the shared suite changes; `--check` exits 1 when the vendored copy is out of date (CI uses it
when ../shared is present, so a stale copy cannot hide).
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SOURCE = ROOT.parent / "shared" / "conformance"
TARGET = ROOT / "tests" / "conformance_suite"


def differences(source: Path, target: Path) -> list[str]:
    """Relative paths that differ, are missing, or are extra in the vendored copy."""
    out: list[str] = []
    src = {p.relative_to(source) for p in source.rglob("*") if p.is_file()}
    dst = {p.relative_to(target) for p in target.rglob("*") if p.is_file()} if target.exists() else set()
    for rel in sorted(src | dst):
        if rel not in dst:
            out.append(f"missing: {rel}")
        elif rel not in src:
            out.append(f"extra: {rel}")
        elif not filecmp.cmp(source / rel, target / rel, shallow=False):
            out.append(f"differs: {rel}")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--check", action="store_true", help="only report differences")
    args = parser.parse_args()
    if not args.source.is_dir():
        print(f"no conformance suite at {args.source}", file=sys.stderr)
        return 2
    diff = differences(args.source, TARGET)
    if args.check:
        for line in diff:
            print(line)
        print("vendored conformance suite is up to date" if not diff else f"{len(diff)} difference(s)")
        return 1 if diff else 0
    if TARGET.exists():
        shutil.rmtree(TARGET)
    shutil.copytree(args.source, TARGET)
    for p in TARGET.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)
    print(f"copied {args.source} -> {TARGET} ({len(diff)} change(s))")
    return 0


if __name__ == "__main__":
    sys.exit(main())
