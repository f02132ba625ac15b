"""Schema versions: migrations build the schema from an empty database on both backends, and agree with it."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select, text

from kazi.errors import StoreError
from kazi.store import Store, default_url, open_store
from kazi.store import db as store_db
from kazi.store.schema import counters, metadata


@pytest.fixture
def make_store(empty_url: str, store_opener: Any) -> Iterator[Callable[[], Store]]:
    """Stores opened on an empty database (this module is about what opening does to it)."""
    with store_opener(lambda: open_store(empty_url)) as make:
        yield make


def test_migrates_an_empty_database_to_the_schema(empty_url: str, make_store: Callable[[], Store]) -> None:
    engine = store_db.create_store_engine(store_db.normalize_url(empty_url))
    assert store_db.current_revision(engine) is None
    engine.dispose()
    store = make_store()
    assert store_db.current_revision(store.engine) == store_db.head_revision()
    tables = set(inspect(store.engine).get_table_names())
    assert {t.name for t in metadata.sorted_tables} <= tables
    with store.engine.connect() as conn:
        # the migrated database is exactly what kazi/store/schema.py describes (columns, types, indexes, keys)
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
        assert diff == []
        assert dict(conn.execute(select(counters.c.name, counters.c.value)).all()) == {"docs": 0, "tasks": 0}


def test_schema_version_constant_is_the_newest_migration() -> None:
    assert store_db.SCHEMA_VERSION == store_db.head_revision()


def test_reopening_keeps_data_and_changes_nothing(make_store: Callable[[], Store]) -> None:
    first = make_store()
    first.write_docs([{"_id": "a", "type": "clinic"}])
    first.close()
    again = make_store()
    assert again.get_doc("a")["type"] == "clinic"
    assert again.last_seq() == 1


def test_downgrade_to_empty_and_up_again(make_store: Callable[[], Store]) -> None:
    store = make_store()
    cfg = store_db.alembic_config()
    with store_db.writer(store.engine).begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "base")
    assert "docs" not in inspect(store.engine).get_table_names()
    store_db.migrate(store.engine)
    assert "docs" in inspect(store.engine).get_table_names()


def test_concurrent_first_opens_migrate_once(empty_url: str) -> None:
    stores: list[Store] = []
    errors: list[BaseException] = []

    def open_one() -> None:
        try:
            stores.append(open_store(empty_url))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert errors == []
        assert all(store_db.current_revision(s.engine) == store_db.head_revision() for s in stores)
    finally:
        for s in stores:
            s.close()


def test_a_schema_from_a_newer_kazi_is_refused(make_store: Callable[[], Store], empty_url: str) -> None:
    store = make_store()
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'from_the_future'"))
    with pytest.raises(StoreError, match="newer Kazi"):
        open_store(empty_url)


@pytest.mark.parametrize("url, message", [
    ("mysql://u@h/db", "unsupported database URL"),
    ("sqlite://", "in-memory"),
    ("postgresql+asyncpg://u@h/db", "psycopg"),
    ("not a url", "invalid database URL"),
])
def test_unsupported_urls_are_refused_with_the_reason(url: str, message: str) -> None:
    with pytest.raises(StoreError, match=message):
        store_db.normalize_url(url)


def test_url_forms() -> None:
    assert default_url() == "sqlite:///data/kazi.sqlite3"
    assert store_db.normalize_url(None).database == "data/kazi.sqlite3"
    assert store_db.normalize_url("postgres://u:p@h:5/db").drivername == "postgresql+psycopg"
    assert store_db.normalize_url("postgresql://u@h/db").drivername == "postgresql+psycopg"


def test_unreachable_server_is_a_store_error() -> None:
    with pytest.raises(StoreError, match="cannot open the database"):
        open_store("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2")


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path: object) -> None:
    store = open_store(f"sqlite:///{tmp_path}/sub/dir/k.sqlite3")  # the directory is created
    try:
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == store_db.SQLITE_BUSY_TIMEOUT_MS
    finally:
        store.close()
