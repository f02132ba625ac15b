"""Who is calling: HTTP Basic, bearer tokens and the web app's session cookie, all resolved to a StoredUser.

Three ways in, because the callers differ (issue "Kazi server"): scripts use Basic or a token, the web app a
session cookie (a browser must not keep a password, and JavaScript must not be able to read the credential).

* **Basic**: the password is checked with Argon2id (~50 ms by design), far too slow to pay on every call of
  a script. A verified username and password pair is remembered in memory for ``basic_ttl_s`` seconds, keyed
  by a SHA-256 of both (the password itself is never kept); the account is still read from the store on each
  call, so a disabled user is refused at once. Changing or disabling a user through the API forgets their
  entries immediately; other changes wait out the short lifetime.
* **Bearer**: the store's script tokens (``kazi_<id>_<secret>``), verified by a SHA-256 and one query.
* **Session cookie**: logging in issues a store token labelled as a web session and sets it as an HttpOnly,
  SameSite=Lax cookie. The session is therefore kept server-side in the database (it survives a restart,
  which matters to an offline-first app, and works with several server processes), it is unguessable (256
  random bits, stored hashed) and logging out revokes it for good. Sessions also expire after ``max_age_s``
  (checked against the token's creation time, so a copied cookie does not live forever). Expired and ended
  sessions are deleted (:meth:`Authenticator.purge_sessions`): a user's own at each of their logins, everyone's
  by the background worker once an hour, so the table holds live sessions only.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from kazi.errors import NotFoundError
from kazi.store import Store, StoredUser
from kazi.store.users import now_ms

SESSION_COOKIE = "kazi_session"
SESSION_LABEL = "web session"
#: the web app's sessions: long enough for a health worker who works offline for weeks
DEFAULT_SESSION_MAX_AGE_S = 30 * 24 * 3600
DEFAULT_BASIC_TTL_S = 60.0
_MAX_CACHE = 10_000


class AuthError(Exception):
    """No usable credentials: the API answers 401 with this message."""


@dataclass
class _CacheEntry:
    username: str
    expires: float


@dataclass
class Authenticator:
    """Resolves credentials to enabled accounts (see the module docstring for the three schemes)."""

    store: Store
    basic_ttl_s: float = DEFAULT_BASIC_TTL_S
    max_age_s: int = DEFAULT_SESSION_MAX_AGE_S
    monotonic: Callable[[], float] = time.monotonic
    _basic: dict[str, _CacheEntry] = field(default_factory=dict)
    _session_created: dict[str, int] = field(default_factory=dict)  # token id -> created_at (ms)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- the three schemes

    def basic(self, header_value: str) -> StoredUser:
        """``Authorization: Basic ...`` (the part after ``Basic``)."""
        try:
            decoded = base64.b64decode(header_value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise AuthError("malformed Basic credentials (expected base64 of username:password)") from exc
        username, sep, password = decoded.partition(":")
        if not sep:
            raise AuthError("malformed Basic credentials (expected base64 of username:password)")
        return self.password(username, password)

    def password(self, username: str, password: str) -> StoredUser:
        """A username and password, verified once per ``basic_ttl_s`` (the Argon2 check is the slow part)."""
        key = _cache_key(username, password)
        now = self.monotonic()
        with self._lock:
            entry = self._basic.get(key)
        if entry is not None and entry.expires > now:
            try:
                user = self.store.users.get(entry.username)
            except NotFoundError:
                user = None
            if user is not None and not user.disabled:
                return user
            self.forget(entry.username)
        user = self.store.users.authenticate(username, password)
        if user is None:
            raise AuthError("wrong username or password, or the account is disabled")
        with self._lock:
            if len(self._basic) >= _MAX_CACHE:
                self._basic = {k: e for k, e in self._basic.items() if e.expires > now}
                if len(self._basic) >= _MAX_CACHE:
                    self._basic.clear()
            self._basic[key] = _CacheEntry(user.username, now + self.basic_ttl_s)
        return user

    def token(self, token: str) -> StoredUser:
        """A script token (``Authorization: Bearer kazi_...``)."""
        user = self.store.users.authenticate_token(token.strip())
        if user is None:
            raise AuthError("unknown, revoked or malformed token, or the account is disabled")
        return user

    def session(self, cookie: str) -> StoredUser:
        """The web app's session cookie: a web-session token, refused once older than ``max_age_s``."""
        user = self.store.users.authenticate_token(cookie)
        if user is None:
            raise AuthError("the session has ended: log in again")
        created = self._created_at(user.username, cookie)
        if created is None or created + self.max_age_s * 1000 < now_ms():
            raise AuthError("the session has expired: log in again")
        return user

    # -- sessions

    def open_session(self, username: str, password: str) -> tuple[str, StoredUser, int]:
        """Log in: ``(cookie value, user, expiry in epoch ms)``."""
        user = self.password(username, password)
        self.purge_sessions(user.username)  # one indexed delete: the user's own dead sessions
        token, info = self.store.users.create_token(user.username, SESSION_LABEL)
        self._remember_session(info.id, info.created_at)
        return token, user, info.created_at + self.max_age_s * 1000

    def purge_sessions(self, username: str | None = None) -> int:
        """Delete expired and ended (logged out) sessions, everyone's or one user's; returns how many."""
        cutoff = now_ms() - self.max_age_s * 1000
        purged = self.store.users.purge_tokens(SESSION_LABEL, created_before=cutoff, username=username)
        with self._lock:
            self._session_created = {k: c for k, c in self._session_created.items() if c >= cutoff}
        return purged

    def close_session(self, cookie: str) -> None:
        """Log out: revoke the session's token (harmless when it is already revoked or malformed)."""
        token_id = _token_id(cookie)
        if token_id is None:
            return
        try:
            self.store.users.revoke_token(token_id)
        except NotFoundError:
            pass
        with self._lock:
            self._session_created.pop(token_id, None)

    def forget(self, username: str) -> None:
        """Drop the cached Basic credentials of a user (after their password, roles or status changed)."""
        with self._lock:
            self._basic = {k: e for k, e in self._basic.items() if e.username != username}

    def _created_at(self, username: str, cookie: str) -> int | None:
        token_id = _token_id(cookie)
        if token_id is None:
            return None
        with self._lock:
            known = self._session_created.get(token_id)
        if known is not None:
            return known
        for info in self.store.users.list_tokens(username):
            if info.id == token_id:
                if info.label != SESSION_LABEL:
                    return None  # a script token is not a session: it must be sent as a bearer token
                self._remember_session(token_id, info.created_at)
                return info.created_at
        return None

    def _remember_session(self, token_id: str, created_at: int) -> None:
        with self._lock:
            if len(self._session_created) >= _MAX_CACHE:
                self._session_created.clear()  # a cache: forgotten entries are read again from the store
            self._session_created[token_id] = created_at


def _cache_key(username: str, password: str) -> str:
    return hashlib.sha256(f"{len(username)}:{username}:{password}".encode()).hexdigest()


def _token_id(token: str) -> str | None:
    parts = token.split("_", 2)
    return parts[1] if len(parts) == 3 and parts[1] else None
