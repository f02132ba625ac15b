"""Finding the `kazi worker` processes a test's server started, so tests can wait for them or kill them."""

from __future__ import annotations

from pathlib import Path


def worker_pids(db_url: str, parent: int | None = None) -> list[int]:
    """Processes running `kazi worker` on this database (from /proc: the test machine is Linux); with
    ``parent``, only those started by that server process (a killed server's worker may still be ending)."""
    parent_arg = str(parent).encode() if parent is not None else None
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"worker" in argv and db_url.encode() in argv and (parent_arg is None or parent_arg in argv):
                pids.append(int(entry.name))
    return pids
