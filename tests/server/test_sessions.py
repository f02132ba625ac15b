"""The web app's sessions do not pile up: expired and ended (logged out) sessions are deleted, a user's own at
each of their logins and everyone's by the background worker's hourly housekeeping. Script tokens stay. On
SQLite and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from kazi.server.api import create_app
from kazi.server.auth import SESSION_LABEL
from kazi.server.service import TaskService
from kazi.store import Store
from kazi.store import users as users_module

DAY_MS = 24 * 3600 * 1000


@pytest.fixture
def client(store: Store) -> Iterator[TestClient]:
    store.write_docs([{"_id": "hc", "type": "health_center", "name": "HC"}])
    for name in ("alice", "bob"):
        store.users.create(name, password=f"{name}-password", roles=["chw"], facility_id="hc")
    service = TaskService(store)
    try:
        with TestClient(create_app(store=store, service=service)) as c:
            yield c
    finally:
        service.close()


def _login(client: TestClient, name: str, *, days_ago: float = 0, monkeypatch: pytest.MonkeyPatch) -> str:
    """Log in as ``name``, the session created ``days_ago`` (the store's clock is moved for the token only)."""
    when = int(time.time() * 1000 - days_ago * DAY_MS)
    with monkeypatch.context() as m:
        m.setattr(users_module, "now_ms", lambda: when)
        resp = client.post("/api/v1/login", json={"username": name, "password": f"{name}-password"})
    assert resp.status_code == 200, resp.text
    cookie = client.cookies.get("kazi_session")
    client.cookies.clear()
    assert cookie
    return cookie


def _sessions(store: Store, name: str) -> set[str]:
    return {t.id for t in store.users.list_tokens(name) if t.label == SESSION_LABEL}


def _id(cookie: str) -> str:
    return cookie.split("_", 2)[1]


def test_expired_and_ended_sessions_are_deleted(client: TestClient, store: Store,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    live = _login(client, "alice", days_ago=29, monkeypatch=monkeypatch)
    ended = _login(client, "alice", monkeypatch=monkeypatch)
    assert client.post("/api/v1/logout", headers={"Cookie": f"kazi_session={ended}"}).status_code == 204
    bobs_old = _login(client, "bob", days_ago=40, monkeypatch=monkeypatch)
    with monkeypatch.context() as m:  # made behind the login's back: a login would purge it at once
        m.setattr(users_module, "now_ms", lambda: int(time.time() * 1000) - 31 * DAY_MS)
        old, _ = store.users.create_token("alice", SESSION_LABEL)  # past the 30 days
        store.users.create_token("alice", "sync script")  # an old script token is no session: it stays
    assert client.get("/api/v1/me", headers={"Cookie": f"kazi_session={old}"}).status_code == 401
    assert client.get("/api/v1/me", headers={"Cookie": f"kazi_session={ended}"}).status_code == 401
    assert _sessions(store, "alice") == {_id(old), _id(live), _id(ended)}

    # alice logs in again: her expired and ended sessions go, her live ones stay, bob's are not hers to purge
    newest = _login(client, "alice", monkeypatch=monkeypatch)
    assert _sessions(store, "alice") == {_id(live), _id(newest)}
    assert _sessions(store, "bob") == {_id(bobs_old)}
    assert [t.label for t in store.users.list_tokens("alice")].count("sync script") == 1
    assert client.get("/api/v1/me", headers={"Cookie": f"kazi_session={live}"}).json()["username"] == "alice"

    # the background worker's housekeeping purges everyone's
    auth = client.app.state.kazi.auth  # type: ignore[attr-defined]
    assert auth.purge_sessions() == 1
    assert _sessions(store, "bob") == set()
    assert _sessions(store, "alice") == {_id(live), _id(newest)}
    assert auth.purge_sessions() == 0


def test_the_served_app_purges_sessions_in_its_worker(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """`kazi serve`'s app runs the purge in its background worker's first round (then hourly)."""
    store.users.create("carol", password="carol-password", roles=["admin"])
    with monkeypatch.context() as m:
        m.setattr(users_module, "now_ms", lambda: int(time.time() * 1000) - 60 * DAY_MS)
        store.users.create_token("carol", SESSION_LABEL)
    assert len(store.users.list_tokens("carol")) == 1
    service = TaskService(store)
    try:
        with TestClient(create_app(store=store, service=service, background_interval_s=0.02)) as c:
            worker = c.app.state.kazi.worker  # type: ignore[attr-defined]
            deadline = time.monotonic() + 30
            while worker.maintenance_runs == 0 and time.monotonic() < deadline:
                time.sleep(0.02)
            assert worker.maintenance_runs == 1
            while store.users.list_tokens("carol") and time.monotonic() < deadline:
                time.sleep(0.02)
            assert store.users.list_tokens("carol") == []
    finally:
        service.close()
