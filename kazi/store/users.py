"""User accounts: validation, Argon2 password hashes, tokens for scripts, and CHT's online/offline rule.

Passwords are hashed with Argon2id (argon2-cffi's defaults, RFC 9106's recommended profile) and never stored,
returned or logged in clear; a hash made with weaker parameters is upgraded on the next successful login.
Script tokens are 256-bit random secrets, so they are stored as SHA-256 hashes: a slow password hash adds
nothing against guessing a secret of that size and would cost every API call tens of milliseconds.

Tokens (script tokens and the web app's sessions) are derived from the password's authority: changing a
user's password or disabling the account revokes every token they hold, in the same transaction, so enabling
the account again revives none of them and a stolen session does not outlive the password it was opened
with. A *stamp* (a digest of the stored hash) lets callers that remember a verified password tell, with
one read, whether it is still the password (:meth:`UserStore.get_with_stamp`), and lets a login issue its
session only if the password it checked is still the stored one (:meth:`UserStore.create_token`).

Failed password checks are counted in ``login_failures`` (:class:`LoginFailures`): the server refuses further
checks for an account or a client address for a while after repeated failures (:mod:`kazi.service.auth`).

Online or offline is not stored: it follows from the user's roles and the *program's* role settings
(its ``roles`` and their ``offline`` flags, read as CHT's ``isOffline`` does), which can change with a program
upload, so it is computed when asked (:func:`is_offline`). CHT adds or removes an ``mm-online`` role when saving
a user; Kazi does not, but an ``mm-online`` role given explicitly is honoured.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
import zoneinfo
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, Final

import orjson
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Engine, Row, and_, delete, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from kazi.engine import permissions
from kazi.errors import NotFoundError, UserError
from kazi.program.translations import is_locale
from kazi.store import db
from kazi.store.schema import CONTACT, doc_ancestors, login_attempts, login_failures, user_tokens, users
from kazi.store.schema import docs as docs_t

#: roles that see every document (with the admin roles ``_admin`` and ``admin``): CHT's national manager role
NATIONAL_ROLES: Final = ("national_admin",)
#: roles accepted whatever the program configures
BUILTIN_ROLES: Final = (*permissions.ADMIN_ROLES, permissions.ONLINE_ROLE, *NATIONAL_ROLES)
#: CHT's rule: "lower case letters, numbers, underscore (_), and hyphen (-)"; Kazi also allows dots
USERNAME_PATTERN: Final = re.compile(r"[a-z0-9_.\-]+")
ROLE_PATTERN: Final = re.compile(r"[A-Za-z0-9_.\-]+")
MIN_PASSWORD_LENGTH: Final = 8
TOKEN_PREFIX: Final = "kazi"


class _Unset(Enum):
    UNSET = 0


#: "leave this field as it is" in :meth:`UserStore.update` (``None`` means "clear it")
UNSET: Final = _Unset.UNSET


@dataclass(frozen=True)
class StoredUser:
    """A user account as stored, without its password hash."""

    id: int
    username: str
    roles: tuple[str, ...]
    facility_id: str | None
    contact_id: str | None
    timezone: str | None
    national: bool
    disabled: bool
    created_at: int
    updated_at: int
    locale: str | None = None  # the web app's language; None: the program's default locale

    @property
    def settings_id(self) -> str:
        """CHT's user-settings id, which names the user in every task document (``user`` field, ``_id``)."""
        return f"org.couchdb.user:{self.username}"

    @property
    def is_admin(self) -> bool:
        return any(r in permissions.ADMIN_ROLES for r in self.roles)

    @property
    def sees_everything(self) -> bool:
        """Admins and national users are not confined to a place."""
        return self.is_admin or self.national or any(r in NATIONAL_ROLES for r in self.roles)

    def settings_doc(self) -> dict[str, Any]:
        """The user as CHT's ``user-settings`` document."""
        doc: dict[str, Any] = {"_id": self.settings_id, "name": self.username, "type": "user-settings",
                               "roles": list(self.roles)}
        if self.facility_id is not None:
            doc["facility_id"] = self.facility_id
        if self.contact_id is not None:
            doc["contact_id"] = self.contact_id
        return doc

    def to_dict(self) -> dict[str, Any]:
        """Everything about the account an admin may see (there is no password hash here to leak)."""
        return {"id": self.id, "username": self.username, "roles": list(self.roles),
                "facility_id": self.facility_id, "contact_id": self.contact_id, "timezone": self.timezone,
                "national": self.national, "disabled": self.disabled, "created_at": self.created_at,
                "updated_at": self.updated_at, "locale": self.locale}


@dataclass(frozen=True)
class TokenInfo:
    """A script token's public facts (the secret itself is shown once, at creation)."""

    id: str
    username: str
    label: str
    created_at: int
    revoked_at: int | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True)
class Verified:
    """A password check that succeeded: the account and the stamp of the password hash it matched."""

    user: StoredUser
    stamp: str


class StaleCredentials(UserError):
    """The password changed or the account was disabled between a password check and what it allowed."""


def is_offline(user: StoredUser, settings: Mapping[str, Any] | None) -> bool:
    """CHT's ``isOffline`` for this user under a program's settings (``app_settings``: ``roles`` with
    ``offline`` flags). Offline users are CHT's "restricted to their place" device users; online ones
    (supervisors, admins) are those CHT gives no tasks and Kazi does."""
    return permissions.is_offline(list(user.roles), settings)


def now_ms() -> int:
    return int(time.time() * 1000)


# --------------------------------------------------------------------------------------------------------
# validation


def check_username(username: object) -> str:
    if not isinstance(username, str) or not username.strip():
        raise UserError("must not be empty", field="username")
    if not USERNAME_PATTERN.fullmatch(username):
        raise UserError(f"{username!r} is not valid: use lower case letters, digits, '_', '-' and '.'",
                        field="username")
    return username


def check_password(password: object) -> str:
    if not isinstance(password, str):
        raise UserError("must be a string", field="password")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(f"must be at least {MIN_PASSWORD_LENGTH} characters long", field="password")
    return password


def check_roles(roles: object, known_roles: Collection[str] | None = None) -> tuple[str, ...]:
    """A non-empty list of role ids; with ``known_roles`` (the program's), every role must be one of them
    or a built-in one (admin, ``mm-online``, national)."""
    if isinstance(roles, str) or not isinstance(roles, Sequence):
        raise UserError("must be a list of role names", field="roles")
    out: list[str] = []
    for r in roles:
        if not isinstance(r, str) or not ROLE_PATTERN.fullmatch(r):
            raise UserError(f"{r!r} is not a role name (letters, digits, '_', '-', '.')", field="roles")
        if r not in out:
            out.append(r)
    if not out:
        raise UserError("at least one role is needed", field="roles")
    if known_roles is not None:
        unknown = [r for r in out if r not in known_roles and r not in BUILTIN_ROLES]
        if unknown:
            raise UserError(f"unknown role(s) {', '.join(unknown)}; the program defines "
                            f"{', '.join(sorted(known_roles)) or 'none'}", field="roles")
    return tuple(out)


def check_timezone(tz: object) -> str | None:
    if tz is None:
        return None
    if not isinstance(tz, str) or not tz:
        raise UserError("must be an IANA zone name such as 'Africa/Blantyre'", field="timezone")
    try:
        zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise UserError(f"unknown time zone {tz!r} (use an IANA name such as 'Africa/Blantyre')",
                        field="timezone") from exc
    return tz


def check_locale(locale: object) -> str | None:
    """A language tag such as ``en``, ``ny`` or ``pt-BR`` (the program's translation files are named so),
    or ``None`` for the program's default."""
    if locale is None:
        return None
    if not is_locale(locale):
        raise UserError(f"{locale!r} is not a locale: use a language code such as 'en', 'ny' or 'pt-BR'",
                        field="locale")
    assert isinstance(locale, str)
    return locale


def _check_optional_id(value: object, field_name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise UserError("must be a document _id (a non-empty string) or null", field=field_name)
    return value


# --------------------------------------------------------------------------------------------------------
# the store side


class UserStore:
    """Accounts in the store's database: ``store.users.create(...)`` and friends."""

    def __init__(self, engine: Engine, hasher: PasswordHasher | None = None) -> None:
        self._engine = engine
        self._writer = db.writer(engine)
        self._hasher = hasher or PasswordHasher()
        self._dummy_hash: str | None = None
        self.login_failures = LoginFailures(engine)

    # -- reading

    def get(self, username: str) -> StoredUser:
        """The account named ``username`` (disabled ones too); :class:`NotFoundError` if there is none."""
        with self._engine.connect() as conn:
            row = conn.execute(select(users).where(users.c.username == username)).first()
        if row is None:
            raise NotFoundError("user", username)
        return _user(row)

    def get_by_id(self, user_id: int) -> StoredUser:
        with self._engine.connect() as conn:
            row = conn.execute(select(users).where(users.c.id == user_id)).first()
        if row is None:
            raise NotFoundError("user", str(user_id))
        return _user(row)

    def list_all(self, *, include_disabled: bool = True) -> list[StoredUser]:
        """Every account, by username."""
        query = select(users).order_by(users.c.id)
        if not include_disabled:
            query = query.where(users.c.disabled.is_(False))
        with self._engine.connect() as conn:
            rows = conn.execute(query).all()
        return sorted((_user(r) for r in rows), key=lambda u: u.username)

    # -- writing

    def create(
        self, username: str, *, password: str, roles: Sequence[str], facility_id: str | None = None,
        contact_id: str | None = None, timezone: str | None = None, national: bool = False,
        known_roles: Collection[str] | None = None, locale: str | None = None,
    ) -> StoredUser:
        """A new account. ``facility_id`` (the user's place) and ``contact_id`` (their person) must be stored
        contacts, the person within the place; ``known_roles`` are the program's roles, when one is loaded."""
        username = check_username(username)
        password = check_password(password)
        role_tuple = check_roles(roles, known_roles)
        tz = check_timezone(timezone)
        locale = check_locale(locale)
        facility_id = _check_optional_id(facility_id, "facility_id")
        contact_id = _check_optional_id(contact_id, "contact_id")
        if not isinstance(national, bool):
            raise UserError("must be true or false", field="national")
        password_hash = self._hasher.hash(password)
        ts = now_ms()
        try:
            with self._writer.begin() as conn:
                self._check_places(conn, facility_id, contact_id)
                conn.execute(users.insert().values(
                    username=username, password_hash=password_hash, roles=_roles_json(role_tuple),
                    facility_id=facility_id, contact_id=contact_id, timezone=tz, national=national,
                    disabled=False, created_at=ts, updated_at=ts, locale=locale,
                ))
        except IntegrityError as exc:
            raise UserError(f"a user named {username!r} already exists", field="username") from exc
        return self.get(username)

    def update(
        self, username: str, *, roles: Sequence[str] | _Unset = UNSET, facility_id: str | None | _Unset = UNSET,
        contact_id: str | None | _Unset = UNSET, timezone: str | None | _Unset = UNSET,
        password: str | _Unset = UNSET, national: bool | _Unset = UNSET, disabled: bool | _Unset = UNSET,
        known_roles: Collection[str] | None = None, locale: str | None | _Unset = UNSET,
    ) -> StoredUser:
        """Change the given fields (``None`` clears an optional one); the rest stay as they are."""
        values: dict[str, Any] = {}
        if not isinstance(roles, _Unset):
            values["roles"] = _roles_json(check_roles(roles, known_roles))
        if not isinstance(timezone, _Unset):
            values["timezone"] = check_timezone(timezone)
        if not isinstance(locale, _Unset):
            values["locale"] = check_locale(locale)
        if not isinstance(password, _Unset):
            values["password_hash"] = self._hasher.hash(check_password(password))
        for name, flag in (("national", national), ("disabled", disabled)):
            if not isinstance(flag, _Unset):
                if not isinstance(flag, bool):
                    raise UserError("must be true or false", field=name)
                values[name] = flag
        if not isinstance(facility_id, _Unset):
            values["facility_id"] = _check_optional_id(facility_id, "facility_id")
        if not isinstance(contact_id, _Unset):
            values["contact_id"] = _check_optional_id(contact_id, "contact_id")
        with self._writer.begin() as conn:
            row = conn.execute(select(users).where(users.c.username == username).with_for_update()).first()
            if row is None:
                raise NotFoundError("user", username)
            if "facility_id" in values or "contact_id" in values:
                self._check_places(conn, values.get("facility_id", row.facility_id),
                                   values.get("contact_id", row.contact_id))
            ts = values["updated_at"] = now_ms()
            conn.execute(users.update().where(users.c.id == row.id).values(**values))
            if "password_hash" in values or values.get("disabled") is True:
                # the tokens were issued on the old password's authority, or to an account now refused: a
                # later enable or the new password must not bring them back
                conn.execute(update(user_tokens).where(user_tokens.c.user_id == row.id,
                                                       user_tokens.c.revoked_at.is_(None)).values(revoked_at=ts))
        return self.get(username)

    def disable(self, username: str) -> StoredUser:
        """Refuse the account's password from now on and revoke its tokens and sessions for good (enabling the
        account again revives none of them); its data and task documents stay."""
        return self.update(username, disabled=True)

    def enable(self, username: str) -> StoredUser:
        return self.update(username, disabled=False)

    # -- authentication

    def authenticate(self, username: str, password: str) -> StoredUser | None:
        """The account if ``password`` is its password and it is enabled, else ``None``."""
        verified = self.verify(username, password)
        return verified.user if verified is not None else None

    def verify(self, username: str, password: str) -> Verified | None:
        """:meth:`authenticate` with the stamp of the hash the password matched (after any upgrade).

        An unknown username costs the same hash verification as a known one, so response times do not tell
        which usernames exist.
        """
        with self._engine.connect() as conn:
            row = conn.execute(select(users).where(users.c.username == username)).first()
        if row is None:
            self._verify(self._dummy(), password)
            return None
        if not self._verify(row.password_hash, password) or row.disabled:
            return None
        password_hash = row.password_hash
        if self._hasher.check_needs_rehash(password_hash):
            upgraded = self._hasher.hash(password)
            with self._writer.begin() as conn:
                done = conn.execute(users.update().where(users.c.id == row.id,
                                                         users.c.password_hash == password_hash)
                                    .values(password_hash=upgraded)).rowcount
            if done:
                password_hash = upgraded
        return Verified(_user(row), _stamp(password_hash))

    def get_with_stamp(self, username: str) -> tuple[StoredUser, str] | None:
        """The account and the stamp of its current password hash, or ``None`` without such an account."""
        with self._engine.connect() as conn:
            row = conn.execute(select(users).where(users.c.username == username)).first()
        return (_user(row), _stamp(row.password_hash)) if row is not None else None

    def create_token(self, username: str, label: str = "", *, stamp: str | None = None) -> tuple[str, TokenInfo]:
        """A new token for scripts: ``(secret token, its info)``. The token is shown only here.

        With ``stamp`` (from :meth:`verify`) the token is issued only if the account is enabled and its password
        is still the one checked, in one transaction with the account's row locked, so a password change or a
        disable that commits meanwhile cannot miss it (:class:`StaleCredentials` otherwise)."""
        token_id = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        ts = now_ms()
        with self._writer.begin() as conn:
            row = conn.execute(select(users.c.id, users.c.password_hash, users.c.disabled)
                               .where(users.c.username == username).with_for_update()).first()
            if row is None:
                raise NotFoundError("user", username)
            if stamp is not None and (row.disabled or not hmac.compare_digest(_stamp(row.password_hash), stamp)):
                raise StaleCredentials("the password changed or the account was disabled meanwhile: log in again",
                                       field="password")
            conn.execute(user_tokens.insert().values(id=token_id, user_id=row.id, secret_hash=_sha256(secret),
                                                     label=label, created_at=ts, revoked_at=None))
        return f"{TOKEN_PREFIX}_{token_id}_{secret}", TokenInfo(token_id, username, label, ts, None)

    def authenticate_token(self, token: str) -> StoredUser | None:
        """The enabled account a live token belongs to, else ``None``."""
        found = self.resolve_token(token)
        return found[0] if found is not None else None

    def resolve_token(self, token: str) -> tuple[StoredUser, TokenInfo] | None:
        """The enabled account a live (not revoked) token belongs to and the token's facts, from one query;
        ``None`` for anything else. Whether the token is still young enough is the caller's rule."""
        parts = token.split("_", 2)
        if len(parts) != 3 or parts[0] != TOKEN_PREFIX:
            return None
        _, token_id, secret = parts
        with self._engine.connect() as conn:
            row = conn.execute(
                select(users, user_tokens.c.secret_hash, user_tokens.c.revoked_at,
                       user_tokens.c.label.label("token_label"), user_tokens.c.created_at.label("token_created_at"))
                .join(user_tokens, user_tokens.c.user_id == users.c.id)
                .where(user_tokens.c.id == token_id)
            ).first()
        if row is None or not hmac.compare_digest(row.secret_hash, _sha256(secret)):
            return None
        if row.revoked_at is not None or row.disabled:
            return None
        return _user(row), TokenInfo(token_id, row.username, row.token_label, row.token_created_at, None)

    def list_tokens(self, username: str) -> list[TokenInfo]:
        user = self.get(username)
        with self._engine.connect() as conn:
            rows = conn.execute(select(user_tokens).where(user_tokens.c.user_id == user.id)
                                .order_by(user_tokens.c.created_at, user_tokens.c.id)).all()
        return [TokenInfo(r.id, username, r.label, r.created_at, r.revoked_at) for r in rows]

    def purge_tokens(self, label: str, *, created_before: int, username: str | None = None) -> int:
        """Delete the tokens labelled ``label`` that were created before ``created_before`` (epoch ms) or were
        revoked, only ``username``'s when given; returns how many. The web app's sessions are such tokens: once
        expired or ended nothing can use them, and without this every login would leave a row forever."""
        query = delete(user_tokens).where(user_tokens.c.label == label,
                                          or_(user_tokens.c.created_at < created_before,
                                              user_tokens.c.revoked_at.is_not(None)))
        if username is not None:
            query = query.where(user_tokens.c.user_id.in_(select(users.c.id).where(users.c.username == username)))
        with self._writer.begin() as conn:
            return int(conn.execute(query).rowcount or 0)

    def revoke_token(self, token_id: str) -> None:
        """Revoke a token by its id (the middle part of the token); revoking twice is harmless."""
        with self._writer.begin() as conn:
            found = conn.execute(select(user_tokens.c.revoked_at).where(user_tokens.c.id == token_id)).first()
            if found is None:
                raise NotFoundError("token", token_id)
            if found.revoked_at is None:
                conn.execute(user_tokens.update().where(user_tokens.c.id == token_id).values(revoked_at=now_ms()))

    # -- helpers

    def _verify(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    def _dummy(self) -> str:
        if self._dummy_hash is None:
            self._dummy_hash = self._hasher.hash(secrets.token_urlsafe(16))
        return self._dummy_hash

    @staticmethod
    def _check_places(conn: Connection, facility_id: str | None, contact_id: str | None) -> None:
        """The place and the person must be stored contacts, the person under the place (as CHT checks)."""
        for value, name in ((facility_id, "facility_id"), (contact_id, "contact_id")):
            if value is None:
                continue
            found = conn.execute(select(docs_t.c.kind).where(docs_t.c.id == value, docs_t.c.deleted.is_(False))
                                 ).first()
            if found is None:
                raise UserError(f"no contact {value!r} is stored", field=name)
            if found.kind != CONTACT:
                raise UserError(f"{value!r} is not a contact", field=name)
        if facility_id is not None and contact_id is not None:
            under = conn.execute(select(doc_ancestors.c.depth).where(and_(
                doc_ancestors.c.doc_id == contact_id, doc_ancestors.c.ancestor_id == facility_id))).first()
            if under is None:
                raise UserError(f"contact {contact_id!r} is not within the place {facility_id!r}",
                                field="contact_id")


# --------------------------------------------------------------------------------------------------------
# failed password checks


#: how long a password check in flight counts at most, unless the caller says otherwise (``Backoff.lapse_ms``)
DEFAULT_LAPSE_MS: Final = 30_000


@dataclass(frozen=True)
class Backoff:
    """How failed password checks slow down further ones, for one kind of key (an account, an address).

    ``free`` failures cost nothing; each one after them makes the key wait before its next check, twice as long
    as the one before, starting at ``first_delay_ms`` and never longer than ``max_delay_ms``. A failure is
    forgotten ``decay_ms`` after the last one (one per period), so a key that stops failing is free again. A
    check in flight counts as a pending failure for at most ``lapse_ms``: longer than any real check, so only
    a check whose process died lapses."""

    free: int
    first_delay_ms: int
    max_delay_ms: int
    decay_ms: int
    lapse_ms: int = DEFAULT_LAPSE_MS

    def wait_ms(self, failures: int) -> int:
        """The wait after the ``failures``-th counted failure."""
        if failures <= self.free:
            return 0
        return min(self.max_delay_ms, self.first_delay_ms << min(failures - self.free - 1, 48))

    def remaining(self, failures: int, last_failure_at: int, now: int) -> int:
        """Failures still counted at ``now``, the decayed ones forgotten."""
        if self.decay_ms <= 0:
            return 0
        return max(0, failures - max(0, now - last_failure_at) // self.decay_ms)

    def wait_at(self, row: Row[Any] | None, pending: Sequence[int], now: int) -> int:
        """How long a key with the ``login_failures`` ``row`` and checks in flight that started at ``pending``
        (epoch ms, the lapsed ones left out) must wait at ``now`` before a further check: the wait of its last
        failure, or the wait its pending checks would start if they all failed, counted from the last one's
        start (as if each had failed when it began, so a concurrent burst waits as a sequence would)."""
        wait = 0 if row is None else row.blocked_until - now
        if pending:
            failed = 0 if row is None else self.remaining(row.failures, row.last_failure_at, now)
            after = self.wait_ms(failed + len(pending))
            if after > 0:  # (a check that began after ``now``, in another process, is no reason to wait by itself)
                wait = max(wait, max(pending) + after - now)
        return max(0, wait)


@dataclass(frozen=True)
class Reservation:
    """The outcome of :meth:`LoginFailures.reserve`: ``wait_ms`` > 0 means refused (try again after it);
    otherwise the check may run as ``attempt`` and ``wait_after_ms`` is how long the keys would wait if every
    check in flight failed."""

    wait_ms: int
    wait_after_ms: int = 0
    attempt: str = ""


class LoginFailures:
    """Failed password checks per key, in the store (``login_failures``), shared by every API process.

    An attempt is counted *before* its password is checked (:meth:`reserve`), as *pending*, in
    ``login_attempts``: counted only afterwards, a burst of concurrent guesses would all be checked before the
    first failure was written. It becomes a failure when its check fails (:meth:`failed`), is released when it
    succeeds (:meth:`succeeded`) or cannot be decided (:meth:`release`), and lapses ``lapse_ms`` after it began
    if none of these came (the process checking it was killed): a crash must not leave a right password
    counted as a failure. Keys are opaque strings (the server's: ``account:<digest>``, ``address:<digest>``)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._writer = db.writer(engine)

    def peek(self, policies: Mapping[str, Backoff], now: int) -> tuple[int, set[str]]:
        """``(ms until every key may be checked again, 0 for now; the keys that have failures or pending checks
        counted)``: reads only, no lock, for the path that checks no password hash."""
        keys = list(policies)
        with self._engine.connect() as conn:
            rows = {r.key: r for r in conn.execute(select(login_failures)
                                                   .where(login_failures.c.key.in_(keys))).all()}
            pending = _pending(conn, policies, now)
        wait = max([0, *(p.wait_at(rows.get(k), pending.get(k, []), now) for k, p in policies.items())])
        return wait, set(rows) | set(pending)

    def reserve(self, policies: Mapping[str, Backoff], now: int) -> Reservation:
        """Count an attempt as pending for every key, unless one of them is still waiting (then nothing is
        counted)."""
        keys = list(policies)
        with self._writer.begin() as conn:
            rows = _lock(conn, keys, now)
            pending = _pending(conn, policies, now)
            wait = max(p.wait_at(rows[k], pending.get(k, []), now) for k, p in policies.items())
            if wait > 0:
                return Reservation(wait_ms=wait)
            attempt = secrets.token_hex(16)
            conn.execute(login_attempts.insert(), [{"attempt": attempt, "key": k, "started_at": now} for k in keys])
        after = max(p.wait_at(rows[k], [*pending.get(k, []), now], now) for k, p in policies.items())
        return Reservation(wait_ms=0, wait_after_ms=after, attempt=attempt)

    def failed(self, attempt: str, policies: Mapping[str, Backoff], now: int) -> int:
        """A reserved attempt's password was wrong: it becomes a failure of every key (even when it lapsed
        meanwhile). Returns how long the keys now wait (ms, 0 for not at all)."""
        keys = list(policies)
        with self._writer.begin() as conn:
            rows = _lock(conn, keys, now)
            conn.execute(delete(login_attempts).where(login_attempts.c.attempt == attempt))
            for key, policy in policies.items():
                row = rows[key]
                failures = policy.remaining(row.failures, row.last_failure_at, now) + 1
                blocked = max(row.blocked_until, now + policy.wait_ms(failures))
                conn.execute(update(login_failures).where(login_failures.c.key == key)
                             .values(failures=failures, last_failure_at=now, blocked_until=blocked))
            rows = _lock(conn, keys, now)
            pending = _pending(conn, policies, now)
        return max(p.wait_at(rows[k], pending.get(k, []), now) for k, p in policies.items())

    def succeeded(self, attempt: str, forget: Sequence[str]) -> None:
        """A reserved attempt succeeded: it is released, and the ``forget`` keys (the account) start afresh. The
        other keys (the address, whose other accounts may still be guessed at) keep their failures."""
        with self._writer.begin() as conn:
            keys: list[str] = list(conn.execute(select(login_attempts.c.key)
                                                 .where(login_attempts.c.attempt == attempt)).scalars())
            _lock(conn, [*keys, *forget], now_ms())  # the keys' rows first, in order, as every writer here
            conn.execute(delete(login_attempts).where(login_attempts.c.attempt == attempt))
            if forget:
                _forget(conn, forget)
            # a row kept only to be locked while its key had checks in flight: the table holds keys with failures
            conn.execute(delete(login_failures).where(
                login_failures.c.key.in_(keys), login_failures.c.failures == 0,
                ~select(login_attempts.c.key).where(login_attempts.c.key == login_failures.c.key).exists()))

    def release(self, attempt: str) -> None:
        """A reserved attempt whose check could not be made (an error): neither a failure nor a success."""
        with self._writer.begin() as conn:
            conn.execute(delete(login_attempts).where(login_attempts.c.attempt == attempt))

    def forget(self, keys: Sequence[str]) -> None:
        """Drop the keys' counts, failures and pending checks (a success on the path that reserved nothing, an
        admin ending a wait)."""
        with self._writer.begin() as conn:
            _lock(conn, keys, now_ms())
            _forget(conn, keys)

    def purge(self, now: int, decay_ms: int, lapse_ms: int = DEFAULT_LAPSE_MS) -> int:
        """Delete the rows whose failures have all decayed and whose wait is over, and the pending checks that
        lapsed; returns how many."""
        query = delete(login_failures).where(
            login_failures.c.blocked_until <= now,
            login_failures.c.last_failure_at + login_failures.c.failures * decay_ms <= now)
        with self._writer.begin() as conn:
            lapsed = int(conn.execute(delete(login_attempts)
                                      .where(login_attempts.c.started_at <= now - lapse_ms)).rowcount or 0)
        with self._writer.begin() as conn:
            return int(conn.execute(query).rowcount or 0) + lapsed

    def count(self) -> int:
        """Keys with failures counted (or a check in flight)."""
        with self._engine.connect() as conn:
            return len(conn.execute(select(login_failures.c.key)).all())

    def pending(self, now: int, lapse_ms: int = DEFAULT_LAPSE_MS) -> int:
        """Checks in flight that have not lapsed at ``now``, per key (an attempt for two keys counts twice)."""
        with self._engine.connect() as conn:
            return len(conn.execute(select(login_attempts.c.key)
                                    .where(login_attempts.c.started_at > now - lapse_ms)).all())


def _lock(conn: Connection, keys: Sequence[str], now: int) -> dict[str, Row[Any]]:
    """The keys' ``login_failures`` rows, created if missing and locked in key order, before any of their
    ``login_attempts`` rows is touched: so two attempts on the same keys take turns and cannot deadlock. A row
    another transaction deletes between the insert and the lock (a success, the housekeeping) is inserted
    again."""
    keys = sorted(set(keys))
    for _ in range(5):
        conn.execute(_insert_ignore(conn.dialect.name),
                     [{"key": k, "failures": 0, "last_failure_at": now, "blocked_until": 0} for k in keys])
        rows = {r.key: r for r in conn.execute(select(login_failures).where(login_failures.c.key.in_(list(keys)))
                                               .order_by(login_failures.c.key).with_for_update()).all()}
        if len(rows) == len(set(keys)):
            return rows
    raise RuntimeError("login_failures rows vanished while being locked")  # pragma: no cover


def _pending(conn: Connection, policies: Mapping[str, Backoff], now: int) -> dict[str, list[int]]:
    """The start times of the keys' checks in flight that have not lapsed (the lapsed ones are left to the
    housekeeping: deleting them here too could deadlock with it)."""
    rows = conn.execute(select(login_attempts.c.key, login_attempts.c.started_at)
                        .where(login_attempts.c.key.in_(list(policies)))).all()
    out: dict[str, list[int]] = {}
    for r in rows:
        if r.started_at > now - policies[r.key].lapse_ms:
            out.setdefault(r.key, []).append(r.started_at)
    return out


def _forget(conn: Connection, keys: Sequence[str]) -> None:
    conn.execute(delete(login_failures).where(login_failures.c.key.in_(list(keys))))
    conn.execute(delete(login_attempts).where(login_attempts.c.key.in_(list(keys))))


def _insert_ignore(dialect: str) -> postgresql.Insert | sqlite.Insert:
    stmt = postgresql.insert(login_failures) if dialect == "postgresql" else sqlite.insert(login_failures)
    return stmt.on_conflict_do_nothing(index_elements=["key"])


def _roles_json(roles: tuple[str, ...]) -> str:
    return orjson.dumps(list(roles)).decode()


def _sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _stamp(password_hash: str) -> str:
    return hashlib.sha256(password_hash.encode()).hexdigest()[:32]


def _user(row: Row[Any]) -> StoredUser:
    return StoredUser(
        id=row.id, username=row.username, roles=tuple(orjson.loads(row.roles)), facility_id=row.facility_id,
        contact_id=row.contact_id, timezone=row.timezone, national=bool(row.national),
        disabled=bool(row.disabled), created_at=row.created_at, updated_at=row.updated_at, locale=row.locale,
    )
