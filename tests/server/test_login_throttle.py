"""Password checks are throttled per account and per client address (kazi.service.auth): after a few failures
the next check waits, 429 with `Retry-After`, the wait doubling with every further failure up to a cap and the
count decaying with time; the right password is refused while a wait runs; a success clears the account's
count. The counts live in the store, so every API process (and a restarted one) sees them. Argon2 checks run
on a bounded pool: beyond it a check is refused at once instead of holding a request thread. Over HTTP with
an injected clock (no sleeps), on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest
from fastapi.testclient import TestClient

from kazi.server.api import create_app
from kazi.service.auth import AuthSettings, address_bucket, client_address
from kazi.service.tasks import TaskService
from kazi.store import Store

T0 = 1_780_000_000_000
ATTACKER = "203.0.113.7"
OTHER = "198.51.100.20"


@dataclass
class Clock:
    now: int = T0

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += round(seconds * 1000)


@dataclass
class Env:
    store: Store
    clock: Clock
    service: TaskService
    clients: list[TestClient] = field(default_factory=list)

    def client(self, settings: AuthSettings, address: str = ATTACKER) -> TestClient:
        app = create_app(store=self.store, service=self.service, auth_settings=settings, auth_clock=self.clock)
        c = TestClient(app, client=(address, 40000))
        c.__enter__()
        self.clients.append(c)
        return c


@pytest.fixture
def env(store: Store) -> Iterator[Env]:
    store.write_docs([{"_id": "hc", "type": "health_center", "name": "HC"}])
    for name in ("alice", "bob", "carol"):
        store.users.create(name, password=f"{name}-password", roles=["chw"], facility_id="hc")
    e = Env(store, Clock(), TaskService(store))
    try:
        yield e
    finally:
        for c in e.clients:
            c.__exit__(None, None, None)
        e.service.close()


def _settings(**overrides: object) -> AuthSettings:
    base: dict[str, object] = {"account_free_failures": 3, "address_free_failures": 100, "first_delay_s": 1.0,
                               "max_delay_s": 8.0, "decay_s": 600.0}
    return AuthSettings(**{**base, **overrides})  # type: ignore[arg-type]


def _login(c: TestClient, name: str, password: str | None = None) -> httpx.Response:
    return c.post("/api/v1/login", json={"username": name, "password": password or f"{name}-password"})


def _basic(c: TestClient, name: str, password: str | None = None) -> httpx.Response:
    raw = base64.b64encode(f"{name}:{password or name + '-password'}".encode()).decode()
    return c.get("/api/v1/me", headers={"Authorization": f"Basic {raw}", "X-Requested-With": "test"})


def _throttled(resp: httpx.Response) -> int:
    assert resp.status_code == 429, resp.text
    body = resp.json()["error"]
    assert body["status"] == 429 and "try again in" in body["message"]
    return int(resp.headers["Retry-After"])


def test_failed_logins_wait_longer_and_longer_and_the_right_password_waits_too(env: Env) -> None:
    c = env.client(_settings())
    for _ in range(3):  # the free failures: plain 401s
        resp = _login(c, "alice", "wrong-password")
        assert resp.status_code == 401 and "Retry-After" not in resp.headers
    waits = []
    for _ in range(5):
        resp = _login(c, "alice", "wrong-password")
        assert resp.status_code == 401
        wait = int(resp.headers["Retry-After"])  # this failure started a wait
        assert _throttled(_login(c, "alice")) == wait  # the right password is refused while it runs
        assert _throttled(_basic(c, "alice")) == wait  # Basic is the same password check
        env.clock.advance(wait - 0.5)
        assert 1 <= _throttled(_login(c, "alice")) <= wait
        env.clock.advance(0.5)
        waits.append(wait)
    assert waits == [1, 2, 4, 8, 8]  # doubling, capped at max_delay_s

    # bob, from another address, is not concerned
    assert _login(env.client(_settings(), OTHER), "bob").status_code == 200
    # once the wait is over the right password works, and the account starts afresh
    assert _login(c, "alice").status_code == 200
    for _ in range(3):
        assert "Retry-After" not in _login(c, "alice", "wrong-password").headers


def test_failures_decay_so_nobody_is_locked_out_for_good(env: Env) -> None:
    c = env.client(_settings())
    for wait in (0, 0, 0, 1, 2):  # 3 free, then waits of 1 and 2 s
        assert _login(c, "alice", "wrong-password").status_code == 401
        env.clock.advance(wait)
    assert _login(c, "alice", "wrong-password").headers["Retry-After"] == "4"
    assert _throttled(_login(c, "alice")) == 4
    env.clock.advance(4)
    assert int(_login(c, "alice", "wrong-password").headers["Retry-After"]) == 8  # 7 failures counted
    env.clock.advance(3 * 600)  # three decay periods forget three failures: 4 left, so the next is the 5th
    assert int(_login(c, "alice", "wrong-password").headers["Retry-After"]) == 2
    env.clock.advance(3600)  # long enough: nothing counted any more
    assert "Retry-After" not in _login(c, "alice", "wrong-password").headers
    env.clock.advance(1)
    assert _login(c, "alice").status_code == 200


def test_one_address_guessing_at_many_accounts_is_throttled(env: Env) -> None:
    settings = _settings(account_free_failures=100, address_free_failures=4)
    attacker = env.client(settings)
    for i in range(4):
        assert _login(attacker, f"user{i}", "wrong-password").status_code == 401
    resp = _login(attacker, "nobody", "wrong-password")
    assert resp.status_code == 401 and resp.headers["Retry-After"] == "1"
    assert _throttled(_login(attacker, "carol")) == 1  # the address waits, whatever the account
    # a success from the address does not clear its other failures: an attacker logging in to an account of
    # their own between guesses gains nothing
    env.clock.advance(1)
    assert _login(attacker, "carol").status_code == 200
    resp = _login(attacker, "user9", "wrong-password")
    assert resp.status_code == 401 and resp.headers["Retry-After"] == "2"  # the 6th failure: carol's success
    # released her own attempt only
    # another address is not concerned, and neither are the accounts guessed at
    assert _login(env.client(settings, OTHER), "user0", "wrong-password").status_code == 401
    assert _login(env.client(settings, OTHER), "bob").status_code == 200


def test_counts_are_shared_by_api_processes_and_survive_a_restart(env: Env) -> None:
    first = env.client(_settings())
    for _ in range(4):
        assert _login(first, "alice", "wrong-password").status_code == 401
    second = env.client(_settings())  # another process on the same database, or the first one restarted
    assert _throttled(_login(second, "alice")) == 1
    assert env.store.users.login_failures.count() == 2  # alice and the address, as digests


def test_a_remembered_basic_password_is_refused_while_the_account_waits(env: Env) -> None:
    owner = env.client(_settings(), OTHER)
    assert _basic(owner, "alice").status_code == 200  # verified once: remembered for basic_ttl_s
    attacker = env.client(_settings())
    for _ in range(4):
        assert _basic(attacker, "alice", "guess-guess").status_code == 401
    # the owner's script is refused too (without that, a right guess would show itself by a 200)
    assert _throttled(_basic(owner, "alice")) == 1
    assert _throttled(_basic(attacker, "alice")) == 1
    env.clock.advance(1)
    assert _basic(owner, "alice").status_code == 200
    assert env.store.users.login_failures.count() == 1  # the success cleared alice's count; the address's stays


def test_sessions_and_tokens_are_not_throttled(env: Env) -> None:
    c = env.client(_settings())
    assert _login(c, "alice").status_code == 200
    cookie = c.cookies.get("kazi_session")
    c.cookies.clear()
    token, _ = env.store.users.create_token("alice", "script")
    for _ in range(5):
        _login(c, "alice", "wrong-password")
    assert _login(c, "alice").status_code == 429
    assert c.get("/api/v1/me", headers={"Cookie": f"kazi_session={cookie}"}).status_code == 200
    assert c.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_password_checks_beyond_the_hashing_pool_are_refused_at_once(env: Env) -> None:
    c = env.client(_settings(hash_threads=1, hash_queue=0))
    auth = c.app.state.kazi.auth  # type: ignore[attr-defined]
    with auth.hashing():  # the only slot is busy
        assert _throttled(_login(c, "alice")) == 1
        assert "at once" in _login(c, "alice").json()["error"]["message"]
        assert _throttled(_basic(c, "bob")) == 1
        assert env.store.users.login_failures.count() == 0  # refused before counting anything
    assert _login(c, "alice").status_code == 200


def test_the_client_address_is_the_peer_unless_a_trusted_proxy_says_otherwise(env: Env) -> None:
    plain = AuthSettings()
    headers = {"x-forwarded-for": "192.0.2.1"}
    assert client_address("203.0.113.7", headers, plain) == "203.0.113.7"  # forged header, no proxy trusted
    proxied = AuthSettings(trusted_proxies=("10.0.0.0/8", "127.0.0.1"))
    assert client_address("203.0.113.7", headers, proxied) == "203.0.113.7"  # not from the proxy
    # from the proxy: the nearest untrusted hop, read from the right (the client can forge what is to the left)
    assert client_address("127.0.0.1", {"x-forwarded-for": "192.0.2.1, 198.51.100.3, 10.1.2.3"},
                          proxied) == "198.51.100.3"
    assert client_address("127.0.0.1", {"x-forwarded-for": "[2001:db8::5]:4711"}, proxied) == "2001:db8::5"
    assert client_address("127.0.0.1", {}, proxied) == "127.0.0.1"
    real_ip = AuthSettings(trusted_proxies=("127.0.0.1",), client_address_header="X-Real-IP")
    assert client_address("127.0.0.1", {"x-real-ip": "198.51.100.9"}, real_ip) == "198.51.100.9"
    assert address_bucket("2001:db8:1:2:aaaa::1") == address_bucket("2001:db8:1:2:bbbb::2") == "2001:db8:1:2::/64"
    assert address_bucket("198.51.100.9") == "198.51.100.9"

    # over HTTP: behind a trusted proxy, each client is counted on its own
    settings = _settings(account_free_failures=100, address_free_failures=1, trusted_proxies=("127.0.0.1",))
    proxy = env.client(settings, "127.0.0.1")
    for _ in range(2):
        proxy.post("/api/v1/login", json={"username": "x", "password": "wrong-password"},
                   headers={"X-Forwarded-For": "192.0.2.50"})
    assert proxy.post("/api/v1/login", json={"username": "bob", "password": "bob-password"},
                      headers={"X-Forwarded-For": "192.0.2.50"}).status_code == 429
    assert proxy.post("/api/v1/login", json={"username": "bob", "password": "bob-password"},
                      headers={"X-Forwarded-For": "192.0.2.51"}).status_code == 200


def test_settings_come_from_the_environment() -> None:
    settings = AuthSettings.from_env({"KAZI_LOGIN_ACCOUNT_FREE_FAILURES": "7", "KAZI_LOGIN_MAX_DELAY_S": "60",
                                      "KAZI_TRUSTED_PROXIES": "127.0.0.1, 10.0.0.0/8",
                                      "KAZI_PASSWORD_HASH_THREADS": ""})
    assert (settings.account_free_failures, settings.max_delay_s) == (7, 60.0)
    assert settings.trusted_proxies == ("127.0.0.1", "10.0.0.0/8")
    assert settings.hash_threads == AuthSettings().hash_threads
    with pytest.raises(ValueError, match="KAZI_LOGIN_DECAY_S"):
        AuthSettings.from_env({"KAZI_LOGIN_DECAY_S": "soon"})
    with pytest.raises(ValueError, match="KAZI_TRUSTED_PROXIES"):
        AuthSettings.from_env({"KAZI_TRUSTED_PROXIES": "the-proxy"})


def test_the_openapi_documents_429_wherever_a_password_is_checked(env: Env) -> None:
    spec = env.client(_settings()).get("/openapi.json").json()
    assert "429" in spec["paths"]["/api/v1/login"]["post"]["responses"]
    authenticated = [(path, method) for path, item in spec["paths"].items() for method, op in item.items()
                     if "401" in op.get("responses", {})]
    assert len(authenticated) > 20
    assert all("429" in spec["paths"][p][m]["responses"] for p, m in authenticated)


def test_an_admin_can_end_a_wait_from_the_cli(env: Env, store_url: str) -> None:
    from kazi.cli.main import main

    c = env.client(_settings(address_free_failures=3))
    for _ in range(4):
        _login(c, "alice", "wrong-password")
    assert _login(c, "alice").status_code == 429
    assert main(["users", "unthrottle", "alice", "--db", store_url]) == 0
    assert _login(c, "bob").status_code == 429  # the address still waits
    assert main(["users", "unthrottle", "--address", ATTACKER, "--db", store_url]) == 0
    assert _login(c, "alice").status_code == 200
    assert main(["users", "unthrottle", "--db", store_url]) == 1


def test_a_burst_of_concurrent_guesses_gets_no_more_checks_than_a_sequence(env: Env) -> None:
    """Attempts are counted before their password is checked, in one locked transaction per attempt, so
    concurrent guesses cannot all pass before the first failure is written (nor deadlock each other)."""
    from concurrent.futures import ThreadPoolExecutor

    from kazi.service.auth import failure_key

    settings = _settings(account_free_failures=2, address_free_failures=100)
    account, address = failure_key("account", "alice"), failure_key("address", ATTACKER)
    policies = {account: settings.backoff(2), address: settings.backoff(100)}
    failures = env.store.users.login_failures
    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(lambda _: failures.reserve(policies, env.clock()), range(24)))
    admitted = [o for o in outcomes if o.wait_ms == 0]
    assert len(admitted) == 3  # two free, and the third that starts the wait
    assert sorted(o.wait_after_ms for o in admitted) == [0, 0, 1000]
    assert all(o.wait_ms == 1000 for o in outcomes if o.wait_ms)


def test_a_check_whose_server_process_died_lapses_and_never_blocks_the_right_password(env: Env) -> None:
    """A check is counted as pending before its hash is checked; a server process killed before the check ended
    leaves it so. While it could still be running it counts (a burst is a burst), but after ``pending_s`` it
    lapses: it never becomes a failure, so a right password is not refused because of a crash."""
    from kazi.service.auth import failure_key

    settings = _settings(account_free_failures=100, address_free_failures=2, pending_s=30.0)
    c = env.client(settings)
    failures = env.store.users.login_failures
    policies = {failure_key("account", "alice"): settings.backoff(100),
                failure_key("address", ATTACKER): settings.backoff(2)}
    admitted = 0
    while admitted < 5:  # checks from the address admitted one after another, in flight when the server was killed
        reservation = failures.reserve(policies, env.clock())
        if reservation.wait_ms:  # the third started a wait of 1 s, the fourth one of 2 s: a burst is a burst
            env.clock.advance(reservation.wait_ms / 1000)
        else:
            admitted += 1
    assert env.clock.now == T0 + 3000 and failures.pending(env.clock()) == 10  # five attempts, two keys each
    # while they may still be running they count: the fifth made the address wait 4 s, whatever the account
    assert _throttled(_login(c, "bob")) == 4
    env.clock.advance(30)  # 30 s after the last one began: every one has lapsed
    assert failures.pending(env.clock()) == 0
    assert _login(c, "bob").status_code == 200
    for _ in range(2):  # the lapsed checks are not failures: the address has its two free failures
        resp = _login(c, "carol", "wrong-password")
        assert resp.status_code == 401 and "Retry-After" not in resp.headers
    assert _login(c, "carol", "wrong-password").headers["Retry-After"] == "1"
    # the housekeeping deletes the lapsed rows
    assert failures.pending(env.clock(), lapse_ms=10**15) == 10
    c.app.state.kazi.auth.housekeeping()  # type: ignore[attr-defined]
    assert failures.pending(env.clock(), lapse_ms=10**15) == 0


def test_a_concurrent_burst_is_counted_while_in_flight_and_its_failures_after(env: Env) -> None:
    """Over HTTP with the checks held in flight: the checks beyond the free ones are refused while the first
    ones run; when those fail they are failures (401, the last with `Retry-After`) and the right password waits."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    c = env.client(_settings(account_free_failures=2, hash_threads=8, hash_queue=8))
    release = threading.Event()
    verify = env.store.users.verify

    def held_verify(username: str, password: str) -> object:
        assert release.wait(30)
        return verify(username, password)

    env.store.users.verify = held_verify  # type: ignore[method-assign,assignment]
    try:
        with ThreadPoolExecutor(6) as pool:
            burst = [pool.submit(_login, c, "alice", "wrong-password") for _ in range(6)]
            for _ in range(3000):  # three checks admitted (two free, the third starts the wait), three refused
                if sum(f.done() for f in burst) == 3:
                    break
                threading.Event().wait(0.01)
            done = [f.result() for f in burst if f.done()]
            assert len(done) == 3 and all(r.status_code == 429 for r in done)
            assert env.store.users.login_failures.pending(env.clock()) == 6  # three attempts, two keys each
            assert _throttled(_login(c, "alice")) == 1  # the right password too, while the burst runs
            release.set()
            answers = [f.result() for f in burst if f.result().status_code != 429]
    finally:
        release.set()
        env.store.users.verify = verify  # type: ignore[method-assign]
    # the three are failures, and the keys wait from the third (the first two are told so while the third runs)
    assert [(r.status_code, r.headers.get("Retry-After")) for r in answers] == [(401, "1")] * 3
    assert env.store.users.login_failures.pending(env.clock()) == 0
    assert _throttled(_login(c, "alice")) == 1  # three failures counted
    env.clock.advance(1)
    assert _login(c, "alice").status_code == 200


def test_a_check_that_errs_is_neither_a_failure_nor_left_pending(env: Env) -> None:
    c = env.client(_settings(account_free_failures=0))
    verify = env.store.users.verify

    def broken(username: str, password: str) -> object:
        raise RuntimeError("the database went away")

    env.store.users.verify = broken  # type: ignore[method-assign,assignment]
    try:
        with pytest.raises(RuntimeError):
            _login(c, "alice")
    finally:
        env.store.users.verify = verify  # type: ignore[method-assign]
    assert env.store.users.login_failures.pending(env.clock()) == 0
    assert _login(c, "alice").status_code == 200  # no failure was counted, although none is free


def test_a_check_that_began_a_moment_later_elsewhere_is_no_reason_to_wait(env: Env) -> None:
    """Another process may reserve a check between this one reading the clock and reading the store: a pending
    check that starts no wait must not make this one wait the few milliseconds between them (a 429 for a right
    password, seen with concurrent clients)."""
    from kazi.service.auth import failure_key

    settings = _settings()
    failures = env.store.users.login_failures
    policies = {failure_key("account", "alice"): settings.backoff(3), failure_key("address", ATTACKER):
                settings.backoff(100)}
    assert failures.reserve(policies, env.clock() + 5).wait_ms == 0
    assert failures.peek(policies, env.clock())[0] == 0
    assert failures.reserve(policies, env.clock()).wait_ms == 0
