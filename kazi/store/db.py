"""Database URLs, engines with the right per-backend settings, and migrations on open.

Two backends, one SQL toolkit: SQLite is the embedded default (one file under a data directory, nothing to
install or run), PostgreSQL is the production store. Everything backend-specific lives here:

* SQLite runs in WAL mode (readers never block the writer and the writer never blocks readers), with foreign
  keys on (SQLite leaves them off by default), ``synchronous=FULL`` (an acknowledged write survives a power
  cut, as CouchDB's does) and a busy timeout, so a second writer waits for the lock instead of failing.
  pysqlite's own transaction handling is switched off and Kazi emits ``BEGIN`` itself: write transactions
  start with ``BEGIN IMMEDIATE``, which takes the write lock up front. A deferred transaction that reads and
  then writes can fail with "database is locked" without waiting when another writer got in between.
* PostgreSQL is reached through psycopg 3; read transactions are ``REPEATABLE READ`` so a query made of
  several statements (contacts, then their reports) sees one snapshot.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError

from kazi.errors import StoreError

if TYPE_CHECKING:  # Alembic is imported when a migration runs: it doubles the import time of the store
    from alembic.config import Config

#: where the embedded database lives unless told otherwise (relative to the working directory)
DEFAULT_DATA_DIR: Final = "data"
DEFAULT_SQLITE_FILE: Final = "kazi.sqlite3"
#: how long a SQLite writer waits for another one before giving up
SQLITE_BUSY_TIMEOUT_MS: Final = 30_000
MIGRATIONS_DIR: Final = Path(__file__).parent / "migrations"
#: the newest migration's revision, so opening an up-to-date database needs no Alembic (a test checks it)
SCHEMA_VERSION: Final = "0009"
#: execution option telling the SQLite ``begin`` hook which kind of BEGIN to emit
_SQLITE_BEGIN: Final = "kazi_sqlite_begin"


def default_url(data_dir: str | os.PathLike[str] = DEFAULT_DATA_DIR) -> str:
    """The embedded store's URL: ``sqlite:///<data_dir>/kazi.sqlite3``."""
    return f"sqlite:///{Path(data_dir) / DEFAULT_SQLITE_FILE}"


def normalize_url(url: str | None) -> URL:
    """Parse a database URL, choosing psycopg for bare ``postgresql://`` / ``postgres://`` URLs.

    Only SQLite files and PostgreSQL are supported: anything else (or an in-memory SQLite database, which
    would be a different empty database on each pooled connection) is refused with the reason.
    """
    raw = url or default_url()
    try:
        parsed = make_url(raw)
    except ArgumentError as exc:
        raise StoreError(f"invalid database URL {raw!r}: {exc}") from exc
    backend, _, driver = parsed.drivername.partition("+")
    if backend == "postgres":
        backend = "postgresql"
    if backend == "postgresql":
        if driver not in ("", "psycopg"):
            raise StoreError(f"database URL {parsed.render_as_string()!r}: use the psycopg driver "
                             "(postgresql+psycopg://...)")
        return parsed.set(drivername="postgresql+psycopg")
    if backend == "sqlite":
        if driver not in ("", "pysqlite"):
            raise StoreError(f"database URL {raw!r}: use plain sqlite:///PATH")
        if not parsed.database or parsed.database == ":memory:":
            raise StoreError("an in-memory SQLite database cannot be shared between connections: "
                             "give a file, e.g. sqlite:///data/kazi.sqlite3")
        return parsed.set(drivername="sqlite+pysqlite")
    raise StoreError(f"unsupported database URL {parsed.render_as_string()!r}: use sqlite:///PATH or "
                     "postgresql+psycopg://USER:PASSWORD@HOST/DB")


def create_store_engine(url: URL, **kwargs: Any) -> Engine:
    """An engine for ``url`` with the backend's settings (see the module docstring)."""
    if url.get_backend_name() == "sqlite":
        assert url.database is not None
        Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False}, **kwargs,
        )
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
        return engine
    return create_engine(url, pool_pre_ping=True, **kwargs)


def writer(engine: Engine) -> Engine:
    """The engine to write with: on SQLite its transactions take the write lock at ``BEGIN``."""
    if engine.dialect.name == "sqlite":
        return engine.execution_options(**{_SQLITE_BEGIN: "IMMEDIATE"})
    return engine


def reader(engine: Engine) -> Engine:
    """The engine to read with: one snapshot per transaction on both backends."""
    if engine.dialect.name == "postgresql":
        return engine.execution_options(isolation_level="REPEATABLE READ")
    return engine


def _sqlite_on_connect(dbapi_connection: sqlite3.Connection, _record: object) -> None:
    dbapi_connection.isolation_level = None  # Kazi issues BEGIN itself (see _sqlite_on_begin)
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    finally:
        cursor.close()


def _sqlite_on_begin(conn: Connection) -> None:
    mode = conn.get_execution_options().get(_SQLITE_BEGIN, "DEFERRED")
    conn.exec_driver_sql(f"BEGIN {mode}")


def alembic_config() -> Config:
    """Alembic configuration pointing at the migrations shipped in the package (no ``alembic.ini``)."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def head_revision() -> str:
    """The newest schema version this Kazi knows."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    """The database's schema version (``None`` for an empty database)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def ensure_schema(engine: Engine) -> None:
    """Migrate the database unless it already has this Kazi's schema (one cheap query when it has)."""
    try:
        with engine.connect() as conn:
            stored = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except DBAPIError:  # no version table yet, or no server: migrate() says which
        stored = None
    if stored != SCHEMA_VERSION:
        migrate(engine)


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the database to ``revision`` in one transaction, holding a lock so concurrent openers wait.

    On SQLite the transaction starts with ``BEGIN IMMEDIATE``; on PostgreSQL an advisory transaction lock is
    taken first (its DDL is transactional, so a failed migration leaves the previous schema whole).
    """
    from alembic import command
    from alembic.util.exc import CommandError

    cfg = alembic_config()
    try:
        with writer(engine).begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": lock_key("kazi-migrate")})
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
    except CommandError as exc:
        raise StoreError(f"cannot migrate the database to {revision!r}: {exc} "
                         "(is it from a newer Kazi?)") from exc
    except OperationalError as exc:
        raise StoreError(f"cannot open the database: {exc.orig or exc}") from exc


def lock_key(name: str) -> int:
    """A stable signed 64-bit key for PostgreSQL's advisory locks (migrations, the worker's lease)."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)
