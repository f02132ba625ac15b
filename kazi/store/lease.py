"""One holder at a time across processes: the lock that lets several server processes share one store while
only one of them runs the background worker.

The task service's rounds must not run twice at once on one store: two rounds computing the same user would
both create a task document for a new emission, and both would advance the processed sequence. Inside a
process a lock is enough; across processes the store's backend provides one that its holder's death frees
by itself, so a crashed server never blocks the others and nothing has to expire:

* **PostgreSQL**: a session-level advisory lock (``pg_try_advisory_lock``) held by a connection of its own,
  kept out of the pool and outside any transaction for as long as the lease is held. PostgreSQL frees it when
  that connection ends (the process exits or dies, the network drops it), and :meth:`Lease.try_acquire`
  checks the connection each time, so a holder whose connection was lost knows it no longer holds the lease.
* **SQLite**: an exclusive ``flock`` on a file next to the database (``<database>-kazi-<name>.lock``), which
  the operating system frees when the process ends. SQLite is meant for one server process, but nothing
  stops a second one, and the lock costs nothing.

A lease is not re-entrant across objects: two leases of the same name, even in one process, exclude each
other (the tests run two workers in one process).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import Protocol

from sqlalchemy import Engine, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from kazi.store import db
from kazi.store.store import Store

#: the lease the background worker holds while it computes
WORKER_LEASE = "worker"


class Lease(Protocol):
    """A named lock over one store, shared by every process that opens it."""

    def try_acquire(self) -> bool:
        """Take the lease if it is free; ``True`` while this object holds it (calling again is cheap)."""
        ...

    def release(self) -> None:
        """Give the lease up (harmless when not held)."""
        ...


def open_lease(store: Store, name: str = WORKER_LEASE) -> Lease:
    """The lease ``name`` over ``store``, not yet taken."""
    if store.backend == "postgresql":
        return AdvisoryLease(store.engine, db.lock_key(f"kazi-lease:{name}"))
    database = store.engine.url.database
    assert database is not None  # db.normalize_url refuses SQLite URLs without a file
    return FileLease(Path(f"{database}-kazi-{name}.lock"))


class AdvisoryLease:
    """A PostgreSQL session-level advisory lock on a dedicated connection (see the module docstring)."""

    def __init__(self, engine: Engine, key: int) -> None:
        self._engine = engine
        self._key = key
        self._conn: Connection | None = None

    def try_acquire(self) -> bool:
        if self._conn is not None:
            try:
                self._conn.execute(text("SELECT 1"))
                return True
            except DBAPIError:
                self._drop()  # the connection is gone, and the lock with it: try to take it again
        conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            got = bool(conn.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": self._key}))
        except BaseException:
            conn.invalidate()
            conn.close()
            raise
        if got:
            self._conn = conn
        else:
            conn.close()
        return got

    def release(self) -> None:
        if self._conn is None:
            return
        try:
            self._conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self._key})
        except DBAPIError:
            pass  # the connection is gone: so is the lock
        finally:
            self._drop()

    def _drop(self) -> None:
        """Close the connection for good, never back into the pool: a pooled connection would keep the lock
        if the unlock did not happen."""
        if self._conn is not None:
            self._conn.invalidate()
            self._conn.close()
            self._conn = None


class FileLease:
    """An exclusive ``flock`` on a lock file (see the module docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        if self._fd is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor frees the lock
            self._fd = None
