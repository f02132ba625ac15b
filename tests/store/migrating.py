"""Moving a test's store down to an older schema and up again: how the tests check that a migration computes
for stored rows what the write path computes for new ones."""

from __future__ import annotations

from alembic import command

from kazi.store import Store
from kazi.store import db as store_db


def down_and_up(store: Store, down_to: str) -> None:
    """Downgrade ``store`` to revision ``down_to``, then upgrade it to the newest schema (each in a transaction
    of its own, as opening a store migrates)."""
    cfg = store_db.alembic_config()
    for step, target in ((command.downgrade, down_to), (command.upgrade, "head")):
        with store_db.writer(store.engine).begin() as conn:
            cfg.attributes["connection"] = conn
            step(cfg, target)
