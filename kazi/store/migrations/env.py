"""Alembic's entry point: run the migrations on the connection :func:`kazi.store.db.migrate` passes in.

Kazi never lets Alembic open its own connection or read an ``alembic.ini``: the store decides the URL, the
SQLite pragmas and the transaction (which also holds the lock that keeps two processes from migrating the
same database at once), and migrations run inside that transaction.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from kazi.store.schema import metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


_connection = context.config.attributes.get("connection")
if not isinstance(_connection, Connection):
    raise RuntimeError("kazi migrations run through kazi.store.open_store (no connection was given)")
_run(_connection)
