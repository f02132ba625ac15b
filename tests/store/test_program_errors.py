"""Stored program errors (``program_errors``): aggregated by version, definition, contact and message, listed
most recently seen first, and bounded. On SQLite and PostgreSQL."""

from __future__ import annotations

from kazi.store import Store
from kazi.store import program_errors as perr


def _event(contact: str, at: int, *, message: str = "boom", process: str = "worker") -> perr.ErrorEvent:
    return perr.ErrorEvent(program_version=1, kind="exception", message=message, definition_index=0,
                           definition_name="visit", contact_id=contact, file="tasks.js:3", callback="appliesIf",
                           user="chw", process=process, at=at)


def test_errors_are_aggregated_listed_newest_first_and_bounded(store: Store) -> None:
    perr.record(store, [_event("p1", 1000), _event("p2", 2000), _event("p1", 3000, process="api")], max_rows=100)
    listed = perr.recent(store)
    assert [(e["contact_id"], e["count"], e["first_seen"], e["last_seen"], e["last_process"]) for e in listed] == [
        ("p1", 2, 1000, 3000, "api"), ("p2", 1, 2000, 2000, "worker")]
    assert listed[0]["definition"] == 'definition 0 ("visit")'
    assert listed[0]["text"] == 'tasks.js:3, definition 0 ("visit"), appliesIf, contact p1: exception: boom'
    # another message, or another version, is another entry
    perr.record(store, [_event("p1", 4000, message="other")], max_rows=100)
    assert len(perr.recent(store)) == 3
    # bounded: the least recently seen go
    perr.record(store, [_event(f"q{i}", 10_000 + i) for i in range(20)], max_rows=5)
    kept = perr.recent(store)
    assert [e["contact_id"] for e in kept] == [f"q{i}" for i in range(19, 14, -1)]
    assert perr.recent(store, limit=2, offset=1)[0]["contact_id"] == "q18"
    # a huge message is cut, not refused
    perr.record(store, [_event("p9", 20_000, message="x" * 100_000)], max_rows=5)
    assert len(perr.recent(store, limit=1)[0]["message"]) == perr.MAX_MESSAGE
