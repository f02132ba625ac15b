"""Shared fixtures: store (and server) tests run on SQLite and on a real PostgreSQL server.

The PostgreSQL server is, in order of preference:

1. the one ``KAZI_TEST_POSTGRES_URL`` names (a user allowed to CREATE DATABASE, e.g.
   ``postgresql+psycopg://kazi:secret@127.0.0.1:5432/postgres``);
2. a throwaway cluster started here from Debian's ``postgresql`` package (``scripts/install_postgres.sh``):
   ``initdb`` into a temporary directory (as the ``postgres`` system user when running as root, since
   PostgreSQL refuses to run as root), ``pg_ctl start`` on a free loopback port with durability switched off
   (it is thrown away), and ``pg_ctl stop`` + removal at the end of the session.

Fixtures, each once per backend (tests are parametrized ``[sqlite]`` / ``[postgresql]``):

* ``empty_url``: a database with nothing in it, of the test's own (the migration tests start there);
* ``store_url`` / ``store``: a database at the current schema holding nothing. On SQLite a copy of a file
  migrated once per session; on PostgreSQL one migrated database shared by the session and emptied
  (TRUNCATE) before each test, ten times faster than a database per test;
* ``loaded``: ``store`` with a small hierarchy and reports (``HIERARCHY``, ``REPORTS``).

When no server can be had, the PostgreSQL half of the suite fails under CI (``CI=true``) and is skipped
elsewhere, with the reason.
"""

from __future__ import annotations

import contextlib
import copy
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from argon2 import PasswordHasher
from sqlalchemy.engine import make_url

from kazi.store import Store, open_store
from kazi.store.schema import metadata

PG_ENV = "KAZI_TEST_POSTGRES_URL"
BACKENDS = ["sqlite", "postgresql"]
#: Argon2 at its cheapest: the tests check hashing is used, not that it is slow
CHEAP_HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


class PostgresUnavailable(Exception):
    pass


@dataclass
class Cluster:
    root: Path
    bindir: Path
    port: int
    as_postgres: bool

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://kazi@127.0.0.1:{self.port}/postgres"

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            _run(self, [str(self.bindir / "pg_ctl"), "-D", str(self.root / "data"), "-m", "immediate", "-w",
                        "stop"], timeout=60)
        shutil.rmtree(self.root, ignore_errors=True)


def _bindir() -> Path:
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0)
    if candidates:
        return candidates[-1].parent
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    raise PostgresUnavailable("PostgreSQL is not installed (run scripts/install_postgres.sh)")


def _run(cluster: Cluster, cmd: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    if cluster.as_postgres:
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=True, cwd=cluster.root)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_cluster() -> Cluster:
    """initdb + pg_ctl start of a throwaway cluster; raises PostgresUnavailable with the reason."""
    bindir = _bindir()
    as_postgres = os.geteuid() == 0
    root = Path(tempfile.mkdtemp(prefix="kazi-pg-"))
    if as_postgres:
        try:
            pg = pwd.getpwnam("postgres")
        except KeyError as exc:
            raise PostgresUnavailable("running as root but there is no 'postgres' system user") from exc
        os.chown(root, pg.pw_uid, pg.pw_gid)
    cluster = Cluster(root, bindir, _free_port(), as_postgres)
    try:
        _run(cluster, [str(bindir / "initdb"), "-D", str(root / "data"), "-U", "kazi", "--auth=trust",
                       "--encoding=UTF8", "--no-locale", "--no-sync"], timeout=120)
        options = (f"-p {cluster.port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=100")
        _run(cluster, [str(bindir / "pg_ctl"), "-D", str(root / "data"), "-l", str(root / "server.log"),
                       "-o", options, "-w", "-t", "60", "start"], timeout=90)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        log = root / "server.log"
        detail = getattr(exc, "stderr", "") or ""
        if log.exists():
            detail += log.read_text(errors="replace")[-2000:]
        cluster.stop()
        raise PostgresUnavailable(f"could not start a PostgreSQL cluster: {exc}\n{detail}") from exc
    return cluster


def _libpq(url: str) -> str:
    """A SQLAlchemy URL as a libpq connection string for psycopg."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    """URL of a PostgreSQL database on a server where the tests may create databases."""
    env_url = os.environ.get(PG_ENV)
    if env_url:
        yield env_url
        return
    try:
        cluster = start_cluster()
    except PostgresUnavailable as exc:
        if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
            pytest.fail(f"the PostgreSQL store tests must run in CI: {exc}", pytrace=False)
        pytest.skip(f"no PostgreSQL server for the store tests ({exc}); or set {PG_ENV} to use a running one")
    try:
        yield cluster.url
    finally:
        cluster.stop()


@dataclass
class PostgresTemplates:
    """Two databases per session: ``empty`` (copied for each test about migrations, ~0.2 s a copy) and
    ``migrated`` (the current schema, shared by the other tests and emptied before each, ~10 ms)."""

    admin_url: str
    empty: str = "kazi_tpl_empty"
    migrated: str = "kazi_tpl_migrated"


@pytest.fixture(scope="session")
def postgres_templates(postgres_admin_url: str) -> Iterator[PostgresTemplates]:
    tpl = PostgresTemplates(postgres_admin_url)
    suffix = uuid.uuid4().hex[:8]  # a shared server may run several test sessions at once
    tpl.empty, tpl.migrated = f"{tpl.empty}_{suffix}", f"{tpl.migrated}_{suffix}"
    with psycopg.connect(_libpq(postgres_admin_url), autocommit=True) as conn:
        for name in (tpl.empty, tpl.migrated):
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
    open_test_store(_db_url(postgres_admin_url, tpl.migrated)).close()
    try:
        yield tpl
    finally:
        with psycopg.connect(_libpq(postgres_admin_url), autocommit=True) as conn:
            for name in (tpl.empty, tpl.migrated):
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _db_url(admin_url: str, name: str) -> str:
    return make_url(admin_url).set(drivername="postgresql+psycopg", database=name) \
        .render_as_string(hide_password=False)


@contextlib.contextmanager
def postgres_copy(tpl: PostgresTemplates, template: str) -> Iterator[str]:
    """A database of the test's own, copied from ``template`` and dropped afterwards."""
    name = f"kazi_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_libpq(tpl.admin_url), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}" STRATEGY FILE_COPY')
    try:
        yield _db_url(tpl.admin_url, name)
    finally:
        with psycopg.connect(_libpq(tpl.admin_url), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test that wants a migrated store."""
    path = tmp_path_factory.mktemp("kazi-sqlite-template") / "kazi.sqlite3"
    open_test_store(f"sqlite:///{path}").close()  # the last connection to close folds the WAL into the file
    return path


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def empty_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """URL of an empty database (no schema at all), once per backend."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'data' / 'kazi.sqlite3'}"
        return
    tpl: PostgresTemplates = request.getfixturevalue("postgres_templates")
    with postgres_copy(tpl, tpl.empty) as url:
        yield url


@pytest.fixture
def store_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """URL of a database migrated to the current schema and holding nothing, once per backend."""
    if backend == "sqlite":
        path = tmp_path / "data" / "kazi.sqlite3"
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    tpl: PostgresTemplates = request.getfixturevalue("postgres_templates")
    url = _db_url(tpl.admin_url, tpl.migrated)
    _reset_postgres(url)
    yield url


def _reset_postgres(url: str) -> None:
    """Empty every table of the shared migrated database: ten times faster than copying a database."""
    tables = ", ".join(t.name for t in metadata.sorted_tables if t.name != "counters")
    with psycopg.connect(_libpq(url), autocommit=True) as conn:
        conn.execute("SET lock_timeout = '10s'")  # a store left open by a test must not hang the suite
        conn.execute(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
        conn.execute("UPDATE counters SET value = 0")


def open_test_store(url: str) -> Store:
    return open_store(url, password_hasher=CHEAP_HASHER)


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    """A migrated, empty store on each backend."""
    s = open_test_store(store_url)
    try:
        yield s
    finally:
        s.close()


@contextlib.contextmanager
def _store_opener(open_one: Callable[[], Store]) -> Iterator[Callable[[], Store]]:
    """A function that opens one more store each call; every store it opened is closed on exit."""
    opened: list[Store] = []

    def make() -> Store:
        opened.append(open_one())
        return opened[-1]

    try:
        yield make
    finally:
        for s in opened:
            s.close()


@pytest.fixture
def make_store(store_url: str) -> Iterator[Callable[[], Store]]:
    """Open more stores on the same database (another process would; all closed at teardown)."""
    with _store_opener(lambda: open_test_store(store_url)) as make:
        yield make


@pytest.fixture
def store_opener() -> Callable[[Callable[[], Store]], contextlib.AbstractContextManager[Callable[[], Store]]]:
    """For modules that open stores their own way: ``with store_opener(open_one) as make: ...``."""
    return _store_opener


def _person(pid: str, parent_chain: list[str], **extra: object) -> dict[str, object]:
    return {"_id": pid, "type": "person", "name": pid.upper(), "parent": _stubs(parent_chain),
            "reported_date": 1_700_000_000_000, **extra}


def _stubs(chain: list[str]) -> dict[str, object] | None:
    """Minified CHT lineage: {_id, parent: {_id, parent: ...}} from ids nearest first."""
    node: dict[str, object] | None = None
    for cid in reversed(chain):
        node = {"_id": cid, **({"parent": node} if node else {})}
    return node


HIERARCHY: list[dict[str, object]] = [
    {"_id": "d1", "type": "district_hospital", "name": "District"},
    {"_id": "hc1", "type": "contact", "contact_type": "health_centre", "parent": _stubs(["d1"])},
    {"_id": "hc2", "type": "contact", "contact_type": "health_centre", "parent": _stubs(["d1"])},
    {"_id": "a1", "type": "clinic", "parent": _stubs(["hc1", "d1"]), "place_id": "A1"},
    {"_id": "a2", "type": "clinic", "parent": _stubs(["hc1", "d1"])},
    {"_id": "a3", "type": "clinic", "parent": _stubs(["hc2", "d1"])},
    _person("chw1", ["a1", "hc1", "d1"]),
    _person("p1", ["a1", "hc1", "d1"], patient_id="1001"),
    _person("p2", ["a2", "hc1", "d1"], patient_id="1002"),
    _person("p3", ["a3", "hc2", "d1"], patient_id="1003"),
    _person("chw3", ["a3", "hc2", "d1"]),
]

REPORTS: list[dict[str, object]] = [
    {"_id": "r1", "type": "data_record", "form": "anc_visit", "fields": {"patient_id": "1001"},
     "contact": _stubs(["chw1", "a1"]), "reported_date": 1_700_000_100_000},
    {"_id": "r2", "type": "data_record", "form": "anc_visit", "patient_id": "p2",
     "contact": _stubs(["chw1", "a1"]), "reported_date": 1_700_000_200_000},
    {"_id": "r3", "type": "data_record", "form": "anc_visit", "fields": {"patient_uuid": "p3"},
     "contact": _stubs(["chw3", "a3"]), "reported_date": 1_700_000_300_000},
    # headless: its subject is no stored contact, so it goes with its submitter's place
    {"_id": "r4", "type": "data_record", "form": "missed_appointment", "fields": {"patient_id": "9999"},
     "contact": _stubs(["chw1", "a1"]), "reported_date": 1_700_000_400_000},
    # no subject at all
    {"_id": "r5", "type": "data_record", "form": "stock", "contact": _stubs(["chw1", "a1"]),
     "reported_date": 1_700_000_500_000},
    # about hc2's patient, submitted by hc1's CHW: it belongs to its subject's place
    {"_id": "r6", "type": "data_record", "form": "anc_visit", "fields": {"patient_id": "1003"},
     "contact": _stubs(["chw1", "a1"]), "reported_date": 1_700_000_600_000},
    # about a place, by its short code
    {"_id": "r7", "type": "data_record", "form": "household_survey", "place_id": "A1",
     "contact": _stubs(["chw1", "a1"]), "reported_date": 1_700_000_700_000},
]


@pytest.fixture
def loaded(store: Store) -> Store:
    """A store holding HIERARCHY (district d1 > health centres hc1, hc2 > areas > people) and REPORTS."""
    store.write_docs([*HIERARCHY, *REPORTS])
    return store


@pytest.fixture
def sample_docs() -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """Fresh copies of (HIERARCHY, REPORTS), free to modify."""
    return copy.deepcopy(HIERARCHY), copy.deepcopy(REPORTS)
