"""Rendered Tasks-tab pages, kept while nothing they show has changed.

``GET /api/v1/tasks`` is the call every CHW's and supervisor's app makes most, and between two changes to a
user's tasks it answers the same bytes again and again: reading the task documents, sorting them as CHT
does, looking up each contact's lineage and encoding the JSON cost milliseconds of one core (the API is one
Python process), which 200 users refreshing their lists turn into a queue. A page is therefore kept, as the
exact bytes answered, under a key made of everything it depends on:

* the user (their id and ``updated_at``: an account change is a new key) and the query (filters, paging);
* the newest sequence number among the user's task documents (``tracking.user_task_seq``): any write to one
  of their task documents (a new task, a completion, the temporal update at midnight) is a new key, so the
  caller's own writes are always visible (read-your-writes happens before the lookup);
* their local day (the ``overdue`` filter is relative to it).

What a key does not cover is the contacts' names and lineage shown beside each task: a renamed place or a
moved household shows in a cached page after at most ``ttl_s`` (10 s). Entries are dropped least recently
used past ``max_entries``. The cache is per process and holds only the bytes of pages already sent to the
user they belong to, so it widens nobody's scope.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable

#: how long a page may show a contact's old name or lineage (seconds)
DEFAULT_TTL_S = 10.0
#: pages kept per process (a page is ~2 KB per task: a few MB for a deployment's active users)
DEFAULT_MAX_ENTRIES = 2048


class PageCache:
    """A thread-safe LRU of response bodies with a time-to-live (see the module docstring)."""

    def __init__(self, *, max_entries: int = DEFAULT_MAX_ENTRIES, ttl_s: float = DEFAULT_TTL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_entries = max_entries
        self.ttl_s = ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[Hashable, tuple[float, bytes]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable) -> bytes | None:
        """The body stored under ``key`` if it is younger than ``ttl_s``."""
        now = self._clock()
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry[0] + self.ttl_s <= now:
                if entry is not None:
                    del self._entries[key]
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return entry[1]

    def put(self, key: Hashable, body: bytes) -> None:
        with self._lock:
            self._entries[key] = (self._clock(), body)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
