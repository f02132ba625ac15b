"""Who is calling: HTTP Basic, bearer tokens and the web app's session cookie, all resolved to a StoredUser.

Three ways in, because the callers differ (docs/api.md, "Tokens and sessions"): scripts use Basic or a token, the
web app a session cookie (a browser must not keep a password, and JavaScript must not be able to read the
credential).

* **Basic**: the password is checked with Argon2id (~50 ms by design), far too slow to pay on every call of
  a script. A verified username and password pair is remembered in memory for ``basic_ttl_s`` seconds, keyed
  by a SHA-256 of both (the password itself is never kept), with the stamp of the password hash it matched:
  each call still reads the account, and a disabled account or a changed password (by the API, the CLI or
  another process) makes the entry worthless at once.
* **Bearer**: the store's script tokens (``kazi_<id>_<secret>``), verified by a SHA-256 and one query.
* **Session cookie**: logging in issues a store token labelled as a web session and sets it as an HttpOnly,
  SameSite=Lax cookie. The session is therefore kept server-side in the database (it survives a restart,
  which matters to an offline-first app, and works with several server processes), it is unguessable (256
  random bits, stored hashed) and logging out revokes it for good. Sessions expire ``session_max_age_s``
  after they were opened, however they are presented (a session token sent as ``Bearer`` expires too), so
  a copied cookie does not live forever. Expired and ended sessions are deleted
  (:meth:`Authenticator.purge_sessions`): a user's own at each of their logins, everyone's by the background
  worker once an hour, so the table holds live sessions only.

Changing a user's password or disabling them revokes every token and session they hold
(:meth:`kazi.store.users.UserStore.update`), so enabling the account again revives none of them.

**Throttling.** Every password check (Basic, ``POST /api/v1/login``) is counted per account and per client
address in the store (:class:`kazi.store.users.LoginFailures`), so every API process sees the same counts and
a restart forgets none. After ``*_free_failures`` failures a key must wait before its next check (429 with
``Retry-After``), twice as long after each further failure, at most ``max_delay_s``; one failure is forgotten
per ``decay_s`` without failures, so nobody is locked out for good. While a key waits no password is checked
at all, the right one included: otherwise the wait would not slow down guessing. A check is counted as
*pending* before its hash is checked, so that a burst of concurrent guesses waits as a sequence of them would;
it becomes a failure when the password is wrong, and a success releases it. A pending check that neither
failed nor succeeded within ``pending_s`` (its server process was killed) lapses: a crash never leaves a right
password counted as a failure. A success clears the account's count; the address keeps its other failures,
so an attacker cannot clear them by logging in to an account of their own. Sessions and tokens are not
throttled: a user whose account is being guessed at keeps working in the web app and with their scripts'
tokens.

**Hashing pool.** Argon2 takes tens of milliseconds of CPU and 64 MiB per check. At most ``hash_threads``
checks run at once and at most ``hash_queue`` more wait; a check beyond those is refused at once (429,
``Retry-After: 1``) instead of holding one of the server's request threads, so a flood of wrong passwords
cannot starve other users' requests.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import dataclasses
import hashlib
import ipaddress
import math
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from kazi.errors import NotFoundError
from kazi.store import Store, StoredUser
from kazi.store.users import Backoff, StaleCredentials, Verified, now_ms

SESSION_COOKIE = "kazi_session"
SESSION_LABEL = "web session"
#: the web app's sessions: long enough for a health worker who works offline for weeks
DEFAULT_SESSION_MAX_AGE_S = 30 * 24 * 3600
DEFAULT_BASIC_TTL_S = 60.0
_MAX_CACHE = 10_000


def _setting(default: Any, env: str, help_text: str) -> Any:
    return field(default=default, metadata={"env": env, "help": help_text})


@dataclass(frozen=True)
class AuthSettings:
    """The authentication limits, each with its environment variable (:meth:`from_env`)."""

    account_free_failures: int = _setting(
        5, "KAZI_LOGIN_ACCOUNT_FREE_FAILURES", "failed password checks of one account before it must wait")
    address_free_failures: int = _setting(
        20, "KAZI_LOGIN_ADDRESS_FREE_FAILURES",
        "failed password checks from one client address (an IPv6 /64) before it must wait; higher than an "
        "account's because many phones can share one carrier address")
    first_delay_s: float = _setting(1.0, "KAZI_LOGIN_FIRST_DELAY_S", "the first wait, doubled by every further failure")
    max_delay_s: float = _setting(900.0, "KAZI_LOGIN_MAX_DELAY_S", "the longest wait (seconds)")
    decay_s: float = _setting(900.0, "KAZI_LOGIN_DECAY_S",
                              "one counted failure is forgotten per this many seconds without failures")
    pending_s: float = _setting(
        30.0, "KAZI_LOGIN_PENDING_S",
        "how long a password check in flight counts as a pending failure at most: one whose server process died "
        "lapses after it (longer than any real check)")
    hash_threads: int = _setting(max(1, (os.cpu_count() or 2) // 2), "KAZI_PASSWORD_HASH_THREADS",
                                 "password hashes checked at once (default: half the CPUs, at least 1)")
    hash_queue: int = _setting(8, "KAZI_PASSWORD_HASH_QUEUE",
                               "password checks that may wait for a hashing thread; more are refused (429)")
    trusted_proxies: tuple[str, ...] = _setting(
        (), "KAZI_TRUSTED_PROXIES",
        "comma-separated addresses or networks of reverse proxies whose client address header is believed "
        "(default: none, the socket's peer is the client)")
    client_address_header: str = _setting(
        "X-Forwarded-For", "KAZI_CLIENT_ADDRESS_HEADER",
        "the header a trusted proxy puts the client's address in (X-Forwarded-For, X-Real-IP, ...)")
    basic_ttl_s: float = _setting(DEFAULT_BASIC_TTL_S, "KAZI_BASIC_CACHE_S",
                                  "how long a verified Basic username and password is remembered")
    session_max_age_s: int = _setting(DEFAULT_SESSION_MAX_AGE_S, "KAZI_SESSION_MAX_AGE_S",
                                      "how long a web app session lives after its login (seconds)")

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
                raise ValueError(f"{f.name} ({f.metadata['env']}) must not be negative")
        if self.hash_threads < 1:
            raise ValueError("hash_threads (KAZI_PASSWORD_HASH_THREADS) must be at least 1")
        for proxy in self.trusted_proxies:
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError as exc:
                raise ValueError(f"trusted_proxies (KAZI_TRUSTED_PROXIES): {proxy!r} is not an address or a "
                                 "network") from exc

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> AuthSettings:
        """The defaults, with every ``KAZI_...`` variable that is set; a bad value raises ValueError naming it."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            raw = env.get(f.metadata["env"])
            if raw is None or raw.strip() == "":
                continue
            default = f.default
            try:
                if isinstance(default, tuple):
                    values[f.name] = tuple(p.strip() for p in raw.split(",") if p.strip())
                elif isinstance(default, int):
                    values[f.name] = int(raw)
                elif isinstance(default, float):
                    values[f.name] = float(raw)
                else:
                    values[f.name] = raw.strip()
            except ValueError as exc:
                raise ValueError(f"{f.metadata['env']}={raw!r}: {f.metadata['help']}") from exc
        return cls(**values)

    def backoff(self, free: int) -> Backoff:
        return Backoff(free=free, first_delay_ms=round(self.first_delay_s * 1000),
                       max_delay_ms=round(self.max_delay_s * 1000), decay_ms=round(self.decay_s * 1000),
                       lapse_ms=round(self.pending_s * 1000))


class AuthError(Exception):
    """No usable credentials: the API answers 401 with this message (and ``Retry-After`` when the failure
    made the account or address wait)."""

    def __init__(self, message: str, *, retry_after_s: int | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Throttled(Exception):
    """Too many failed password checks, or too many at once: the API answers 429 with ``Retry-After``."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class HashGate:
    """Bounds the Argon2 checks: ``threads`` run at once, ``queue`` more may wait, the rest are refused."""

    def __init__(self, threads: int, queue: int) -> None:
        self._admitted = threading.BoundedSemaphore(threads + queue)
        self._running = threading.BoundedSemaphore(threads)

    @contextlib.contextmanager
    def admit(self) -> Iterator[None]:
        if not self._admitted.acquire(blocking=False):
            raise Throttled("too many password checks at once: try again in a second", 1)
        try:
            yield
        finally:
            self._admitted.release()

    @contextlib.contextmanager
    def run(self) -> Iterator[None]:
        with self._running:
            yield


@dataclass
class _CacheEntry:
    username: str
    stamp: str
    expires: float


@dataclass
class Authenticator:
    """Resolves credentials to enabled accounts (see the module docstring for the schemes and the limits).

    ``clock`` (epoch ms) times sessions and failed logins: tests inject one; a server with a frozen task clock
    (``kazi serve --now``) still throttles by the real one."""

    store: Store
    settings: AuthSettings = field(default_factory=AuthSettings)
    clock: Callable[[], int] = now_ms
    monotonic: Callable[[], float] = time.monotonic
    _basic: dict[str, _CacheEntry] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _gate: HashGate = field(init=False)

    def __post_init__(self) -> None:
        self._gate = HashGate(self.settings.hash_threads, self.settings.hash_queue)
        self._account_backoff = self.settings.backoff(self.settings.account_free_failures)
        self._address_backoff = self.settings.backoff(self.settings.address_free_failures)

    @property
    def max_age_s(self) -> int:
        return self.settings.session_max_age_s

    # -- the three schemes

    def basic(self, header_value: str, address: str | None = None) -> StoredUser:
        """``Authorization: Basic ...`` (the part after ``Basic``), from the client ``address``."""
        try:
            decoded = base64.b64decode(header_value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise AuthError("malformed Basic credentials (expected base64 of username:password)") from exc
        username, sep, password = decoded.partition(":")
        if not sep:
            raise AuthError("malformed Basic credentials (expected base64 of username:password)")
        return self.password(username, password, address)

    def password(self, username: str, password: str, address: str | None = None) -> StoredUser:
        """A username and password from the client ``address``; :class:`Throttled` while either must wait."""
        return self._check(username, password, address).user

    def token(self, token: str) -> StoredUser:
        """A script token (``Authorization: Bearer kazi_...``); a web session sent so expires all the same."""
        found = self.store.users.resolve_token(token.strip())
        if found is None:
            raise AuthError("unknown, revoked or malformed token, or the account is disabled")
        user, info = found
        if info.label == SESSION_LABEL and self._expired(info.created_at):
            raise AuthError("the session has expired: log in again")
        return user

    def session(self, cookie: str) -> StoredUser:
        """The web app's session cookie: a web-session token, refused once older than ``max_age_s``."""
        found = self.store.users.resolve_token(cookie)
        if found is None:
            raise AuthError("the session has ended: log in again")
        user, info = found
        if info.label != SESSION_LABEL:
            raise AuthError("a script token is not a session: send it as `Authorization: Bearer`")
        if self._expired(info.created_at):
            raise AuthError("the session has expired: log in again")
        return user

    # -- sessions

    def open_session(self, username: str, password: str, address: str | None = None
                     ) -> tuple[str, StoredUser, int]:
        """Log in: ``(cookie value, user, expiry in epoch ms)``."""
        verified = self._check(username, password, address)
        self.purge_sessions(verified.user.username)  # one indexed delete: the user's own dead sessions
        try:
            token, info = self.store.users.create_token(verified.user.username, SESSION_LABEL,
                                                        stamp=verified.stamp)
        except (StaleCredentials, NotFoundError) as exc:
            self.forget(verified.user.username)
            raise AuthError(str(exc)) from exc
        return token, verified.user, info.created_at + self.max_age_s * 1000

    def purge_sessions(self, username: str | None = None) -> int:
        """Delete expired and ended (logged out) sessions, everyone's or one user's; returns how many."""
        cutoff = self.clock() - self.max_age_s * 1000
        return self.store.users.purge_tokens(SESSION_LABEL, created_before=cutoff, username=username)

    def housekeeping(self) -> None:
        """What the background worker runs hourly: dead sessions, fully decayed failure counts and lapsed pending
        checks go."""
        self.purge_sessions()
        self.store.users.login_failures.purge(self.clock(), max(self._account_backoff.decay_ms,
                                                                self._address_backoff.decay_ms),
                                              self._account_backoff.lapse_ms)

    def close_session(self, cookie: str) -> None:
        """Log out: revoke the session's token (harmless when it is already revoked or malformed)."""
        token_id = _token_id(cookie)
        if token_id is None:
            return
        try:
            self.store.users.revoke_token(token_id)
        except NotFoundError:
            pass

    def forget(self, username: str) -> None:
        """Drop the cached Basic credentials of a user (after their password, roles or status changed). Only
        an optimisation: an entry whose password hash changed is refused anyway."""
        with self._lock:
            self._basic = {k: e for k, e in self._basic.items() if e.username != username}

    @contextlib.contextmanager
    def hashing(self) -> Iterator[None]:
        """A slot of the hashing pool, for other Argon2 work a request does (an admin setting a password)."""
        with self._gate.admit(), self._gate.run():
            yield

    # -- the password check and its throttle

    def _check(self, username: str, password: str, address: str | None) -> Verified:
        failures = self.store.users.login_failures
        account = failure_key("account", username)
        policies = {account: self._account_backoff}
        if address is not None:
            policies[failure_key("address", address)] = self._address_backoff
        key = _cache_key(username, password)
        with self._lock:
            entry = self._basic.get(key)
        if entry is not None and entry.expires > self.monotonic():
            # a remembered password is still refused while the account or address waits: otherwise a right
            # guess would show itself by the answer
            wait, counted = failures.peek(policies, self.clock())
            self._refuse_while(wait)
            found = self.store.users.get_with_stamp(entry.username)
            if found is not None and not found[0].disabled and found[1] == entry.stamp:
                if account in counted:
                    failures.forget([account])
                return Verified(found[0], entry.stamp)
            self.forget(entry.username)

        self._refuse_while(failures.peek(policies, self.clock())[0])  # reads only, for a flood that already waits
        with self._gate.admit(), self._gate.run():
            # counted as pending once a hashing thread is about to check it (not while it queues, so that a
            # killed process leaves at most hash_threads attempts pending) and before the hash is checked, so
            # that a concurrent burst is throttled too; a pending attempt whose process dies here lapses after
            # pending_s instead of counting as a failure
            reservation = failures.reserve(policies, self.clock())
            self._refuse_while(reservation.wait_ms)
            try:
                verified = self.store.users.verify(username, password)
            except BaseException:
                with contextlib.suppress(Exception):  # else it lapses: the check's own error is the one to see
                    failures.release(reservation.attempt)
                raise
        if verified is None:
            wait_ms = failures.failed(reservation.attempt, policies, self.clock())
            after = _seconds(wait_ms) if wait_ms > 0 else None
            raise AuthError("wrong username or password, or the account is disabled", retry_after_s=after)
        failures.succeeded(reservation.attempt, [account])
        with self._lock:
            now = self.monotonic()
            if len(self._basic) >= _MAX_CACHE:
                self._basic = {k: e for k, e in self._basic.items() if e.expires > now}
                if len(self._basic) >= _MAX_CACHE:
                    self._basic.clear()
            self._basic[key] = _CacheEntry(verified.user.username, verified.stamp, now + self.settings.basic_ttl_s)
        return verified

    @staticmethod
    def _refuse_while(wait_ms: int) -> None:
        if wait_ms > 0:
            seconds = _seconds(wait_ms)
            raise Throttled(f"too many failed password checks for this account or from this address: try again "
                            f"in {seconds} s", seconds)

    def _expired(self, created_at: int) -> bool:
        return created_at + self.max_age_s * 1000 < self.clock()


def client_address(peer: str | None, headers: Mapping[str, str], settings: AuthSettings) -> str | None:
    """The client's address: the socket's peer, or, when the peer is a trusted proxy, the nearest address in
    ``client_address_header`` that is not a trusted proxy (read from the right: a proxy appends the address it
    saw, while everything to its left came from the client and may be forged)."""
    if peer is None or not settings.trusted_proxies or not _trusted(peer, settings.trusted_proxies):
        return peer
    raw = headers.get(settings.client_address_header.lower())
    hops = [h for h in (_host(p) for p in (raw or "").split(",")) if h]
    for hop in reversed(hops):
        if not _trusted(hop, settings.trusted_proxies):
            return hop
    return hops[0] if hops else peer


def address_bucket(address: str) -> str:
    """What one client's failures are counted under: the IPv4 address, or the IPv6 /64 (one subscriber's
    allocation, whose addresses are free to rotate through); anything else as it is."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is None:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip.ipv4_mapped or ip) if isinstance(ip, ipaddress.IPv6Address) else str(ip)


def _trusted(host: str, proxies: tuple[str, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(p, strict=False) for p in proxies)


def _host(value: str) -> str:
    """An address from a forwarding header entry, without a port (``1.2.3.4:80``, ``[2001:db8::1]:80``)."""
    value = value.strip().strip('"')
    if value.startswith("["):
        return value[1:value.find("]")] if "]" in value else value
    if value.count(":") == 1:
        return value.split(":", 1)[0]
    return value


def failure_key(kind: str, value: str) -> str:
    """What failures are counted under: ``account:`` and the username's SHA-256, or ``address:`` and the SHA-256
    of the address's bucket (:func:`address_bucket`). Digests keep the keys short whatever a client sends."""
    if kind == "address":
        value = address_bucket(value)
    return f"{kind}:{hashlib.sha256(value.encode('utf-8', 'surrogatepass')).hexdigest()}"


def _seconds(ms: int) -> int:
    return max(1, math.ceil(ms / 1000))


def _cache_key(username: str, password: str) -> str:
    return hashlib.sha256(f"{len(username)}:{username}:{password}".encode("utf-8", "surrogatepass")).hexdigest()


def _token_id(token: str) -> str | None:
    parts = token.split("_", 2)
    return parts[1] if len(parts) == 3 and parts[1] else None
