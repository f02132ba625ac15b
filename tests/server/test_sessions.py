"""The web app's sessions do not pile up: expired and ended (logged out) sessions are deleted, a user's own at
each of their logins and everyone's by the background worker's hourly housekeeping. Script tokens stay.

Sessions and tokens do not outlive their reason: disabling a user (and enabling them again) or changing their
password, through the API or the CLI while the server runs, revokes them, and nothing the server remembers
(verified Basic passwords) brings them back; a session sent as a bearer token expires like a cookie. On
SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from kazi.cli.main import main
from kazi.server.api import create_app
from kazi.service.auth import SESSION_LABEL
from kazi.service.tasks import TaskService
from kazi.store import Store
from kazi.store import users as users_module
from kazi.store.users import StaleCredentials

DAY_MS = 24 * 3600 * 1000


@pytest.fixture
def client(store: Store) -> Iterator[TestClient]:
    store.write_docs([{"_id": "hc", "type": "health_center", "name": "HC"}])
    for name in ("alice", "bob"):
        store.users.create(name, password=f"{name}-password", roles=["chw"], facility_id="hc")
    store.users.create("root", password="root-password", roles=["admin"])
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


def _basic(name: str, password: str | None = None) -> dict[str, str]:
    raw = base64.b64encode(f"{name}:{password or name + '-password'}".encode()).decode()
    return {"Authorization": f"Basic {raw}", "X-Requested-With": "test"}


def _me(client: TestClient, *, cookie: str | None = None, token: str | None = None,
        basic: tuple[str, str] | None = None) -> int:
    headers = {"X-Requested-With": "test"}
    if cookie is not None:
        headers["Cookie"] = f"kazi_session={cookie}"
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if basic is not None:
        headers.update(_basic(*basic))
    return client.get("/api/v1/me", headers=headers).status_code


def test_disabling_revokes_sessions_and_tokens_for_good(client: TestClient, store: Store,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    cookie = _login(client, "alice", monkeypatch=monkeypatch)
    token, _ = store.users.create_token("alice", "sync script")
    bobs = _login(client, "bob", monkeypatch=monkeypatch)
    assert _me(client, cookie=cookie) == _me(client, token=token) == 200
    assert client.post("/api/v1/users/alice/disable", headers=_basic("root")).status_code == 200
    assert _me(client, cookie=cookie) == _me(client, token=token) == 401
    assert client.post("/api/v1/users/alice/enable", headers=_basic("root")).status_code == 200
    # enabled again: her password works, what she held before stays revoked
    assert _me(client, cookie=cookie) == _me(client, token=token) == 401
    assert _me(client, basic=("alice", "alice-password")) == 200
    assert all(not t.active for t in store.users.list_tokens("alice") if t.label == "sync script")
    assert _me(client, cookie=bobs) == 200  # nobody else's


def test_a_password_change_by_the_api_revokes_sessions_and_tokens(client: TestClient, store: Store,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    cookie = _login(client, "alice", monkeypatch=monkeypatch)
    token, _ = store.users.create_token("alice", "sync script")
    assert _me(client, basic=("alice", "alice-password")) == 200
    resp = client.patch("/api/v1/users/alice", json={"password": "a-new-password"}, headers=_basic("root"))
    assert resp.status_code == 200
    assert _me(client, cookie=cookie) == _me(client, token=token) == 401
    assert _me(client, basic=("alice", "alice-password")) == 401
    assert _me(client, basic=("alice", "a-new-password")) == 200
    # other changes leave them alone
    fresh = _login_with(client, "alice", "a-new-password")
    assert client.patch("/api/v1/users/alice", json={"timezone": "Africa/Blantyre"},
                        headers=_basic("root")).status_code == 200
    assert _me(client, cookie=fresh) == 200


def test_the_cli_changing_a_password_or_disabling_reaches_a_running_server(
        client: TestClient, store: Store, store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """`kazi users` is another process: the server is not told, and must still refuse at once what the
    change revoked, including the password it verified a moment ago and remembers."""
    cookie = _login(client, "alice", monkeypatch=monkeypatch)
    token, _ = store.users.create_token("alice", "sync script")
    assert _me(client, basic=("alice", "alice-password")) == 200  # verified and remembered (basic_ttl_s)
    assert main(["users", "update", "alice", "--password", "a-new-password", "--db", store_url]) == 0
    assert _me(client, basic=("alice", "alice-password")) == 401
    assert _me(client, cookie=cookie) == _me(client, token=token) == 401
    assert _me(client, basic=("alice", "a-new-password")) == 200

    bobs = _login(client, "bob", monkeypatch=monkeypatch)
    bobs_token, _ = store.users.create_token("bob", "sync script")
    assert main(["users", "disable", "bob", "--db", store_url]) == 0
    assert main(["users", "enable", "bob", "--db", store_url]) == 0
    assert _me(client, cookie=bobs) == _me(client, token=bobs_token) == 401
    assert _me(client, basic=("bob", "bob-password")) == 200


def test_a_session_sent_as_a_bearer_token_expires_too(client: TestClient, store: Store,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    fresh = _login(client, "alice", monkeypatch=monkeypatch)
    assert _me(client, token=fresh) == 200
    old = _login(client, "alice", days_ago=31, monkeypatch=monkeypatch)
    assert _me(client, cookie=old) == 401
    assert _me(client, token=old) == 401
    with monkeypatch.context() as m:  # an old script token is no session: it does not expire
        m.setattr(users_module, "now_ms", lambda: int(time.time() * 1000) - 400 * DAY_MS)
        script, _ = store.users.create_token("alice", "sync script")
    assert _me(client, token=script) == 200
    assert _me(client, cookie=script) == 401  # and it is no cookie


def test_a_login_racing_a_password_change_gets_no_session(store: Store) -> None:
    store.users.create("ann", password="ann-password", roles=["chw"])
    verified = store.users.verify("ann", "ann-password")
    assert verified is not None
    store.users.update("ann", password="changed-meanwhile")  # committed between the check and the session
    with pytest.raises(StaleCredentials):
        store.users.create_token("ann", SESSION_LABEL, stamp=verified.stamp)
    verified = store.users.verify("ann", "changed-meanwhile")
    assert verified is not None
    store.users.disable("ann")
    with pytest.raises(StaleCredentials):
        store.users.create_token("ann", SESSION_LABEL, stamp=verified.stamp)
    assert store.users.list_tokens("ann") == []


def _login_with(client: TestClient, name: str, password: str) -> str:
    resp = client.post("/api/v1/login", json={"username": name, "password": password})
    assert resp.status_code == 200, resp.text
    cookie = client.cookies.get("kazi_session")
    client.cookies.clear()
    assert cookie
    return cookie
