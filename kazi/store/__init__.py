"""Kazi's store: CHT documents, task documents and users in SQLite (embedded) or PostgreSQL (production).

``open_store(url)`` opens a database and brings its schema up to date; see ``docs/store.md`` for the schema,
the scope rules and how the tests get a PostgreSQL server.
"""

from kazi.store.db import default_url
from kazi.store.scope import EVERYTHING, NOTHING, Scope, scope_of
from kazi.store.store import Change, ScopeDocs, Store, TaskChange, WriteResult, open_store
from kazi.store.users import UNSET, StoredUser, TokenInfo, UserStore, is_offline

__all__ = [
    "EVERYTHING", "NOTHING", "UNSET", "Change", "Scope", "ScopeDocs", "Store", "StoredUser", "TaskChange",
    "TokenInfo", "UserStore", "WriteResult", "default_url", "is_offline", "open_store", "scope_of",
]
