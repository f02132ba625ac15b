"""User accounts: validation, Argon2 password hashes, tokens for scripts, and CHT's online/offline rule.

Passwords are hashed with Argon2id (argon2-cffi's defaults, RFC 9106's recommended profile) and never stored,
returned or logged in clear; a hash made with weaker parameters is upgraded on the next successful login.
Script tokens are 256-bit random secrets, so they are stored as SHA-256 hashes: a slow password hash adds
nothing against guessing a secret of that size and would cost every API call tens of milliseconds.

Online or offline is not stored: it follows from the user's roles and the *program's* role settings
(reference section 8.3), which can change with a program upload, so it is computed when asked
(:func:`is_offline`). CHT adds or removes an ``mm-online`` role when saving a user; Kazi does not, but an
``mm-online`` role given explicitly is honoured.
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
from sqlalchemy import Engine, Row, and_, delete, or_, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from kazi.engine import permissions
from kazi.errors import NotFoundError, UserError
from kazi.program.translations import is_locale
from kazi.store import db
from kazi.store.schema import CONTACT, doc_ancestors, user_tokens, users
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
            row = conn.execute(select(users).where(users.c.username == username)).first()
            if row is None:
                raise NotFoundError("user", username)
            if "facility_id" in values or "contact_id" in values:
                self._check_places(conn, values.get("facility_id", row.facility_id),
                                   values.get("contact_id", row.contact_id))
            values["updated_at"] = now_ms()
            conn.execute(users.update().where(users.c.id == row.id).values(**values))
        return self.get(username)

    def disable(self, username: str) -> StoredUser:
        """Refuse the account's password and tokens from now on; its data and task documents stay."""
        return self.update(username, disabled=True)

    def enable(self, username: str) -> StoredUser:
        return self.update(username, disabled=False)

    # -- authentication

    def authenticate(self, username: str, password: str) -> StoredUser | None:
        """The account if ``password`` is its password and it is enabled, else ``None``.

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
        if self._hasher.check_needs_rehash(row.password_hash):
            with self._writer.begin() as conn:
                conn.execute(users.update().where(users.c.id == row.id)
                             .values(password_hash=self._hasher.hash(password)))
        return _user(row)

    def create_token(self, username: str, label: str = "") -> tuple[str, TokenInfo]:
        """A new token for scripts: ``(secret token, its info)``. The token is shown only here."""
        user = self.get(username)
        token_id = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        ts = now_ms()
        with self._writer.begin() as conn:
            conn.execute(user_tokens.insert().values(id=token_id, user_id=user.id, secret_hash=_sha256(secret),
                                                     label=label, created_at=ts, revoked_at=None))
        return f"{TOKEN_PREFIX}_{token_id}_{secret}", TokenInfo(token_id, username, label, ts, None)

    def authenticate_token(self, token: str) -> StoredUser | None:
        """The enabled account a live token belongs to, else ``None``."""
        parts = token.split("_", 2)
        if len(parts) != 3 or parts[0] != TOKEN_PREFIX:
            return None
        _, token_id, secret = parts
        with self._engine.connect() as conn:
            row = conn.execute(
                select(users, user_tokens.c.secret_hash, user_tokens.c.revoked_at)
                .join(user_tokens, user_tokens.c.user_id == users.c.id)
                .where(user_tokens.c.id == token_id)
            ).first()
        if row is None or not hmac.compare_digest(row.secret_hash, _sha256(secret)):
            return None
        if row.revoked_at is not None or row.disabled:
            return None
        return _user(row)

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


def _roles_json(roles: tuple[str, ...]) -> str:
    return orjson.dumps(list(roles)).decode()


def _sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _user(row: Row[Any]) -> StoredUser:
    return StoredUser(
        id=row.id, username=row.username, roles=tuple(orjson.loads(row.roles)), facility_id=row.facility_id,
        contact_id=row.contact_id, timezone=row.timezone, national=bool(row.national),
        disabled=bool(row.disabled), created_at=row.created_at, updated_at=row.updated_at, locale=row.locale,
    )
