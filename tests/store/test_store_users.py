"""Users: validation naming the field, Argon2 hashes only, login, tokens, disable, online/offline."""

from __future__ import annotations

import json

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select

from kazi.demo import PROGRAM_DIR
from kazi.errors import NotFoundError, UserError
from kazi.store import UNSET, Store, is_offline, open_store
from kazi.store.schema import user_tokens, users

SETTINGS = json.loads((PROGRAM_DIR / "app_settings.json").read_text())


def _stored_hash(store: Store, username: str) -> str:
    with store.engine.connect() as conn:
        return str(conn.execute(select(users.c.password_hash).where(users.c.username == username)).scalar_one())


def test_passwords_are_stored_as_argon2_hashes_only(loaded: Store) -> None:
    user = loaded.users.create("mary", password="correct horse", roles=["chw"], facility_id="a1",
                               contact_id="chw1", timezone="Africa/Blantyre")
    stored = _stored_hash(loaded, "mary")
    assert stored.startswith("$argon2id$") and "correct horse" not in stored
    assert "correct horse" not in repr(user) and "argon2" not in json.dumps(user.to_dict())
    assert loaded.users.authenticate("mary", "correct horse") == user
    assert loaded.users.authenticate("mary", "wrong horse") is None
    assert loaded.users.authenticate("nobody", "correct horse") is None
    assert user.settings_doc() == {"_id": "org.couchdb.user:mary", "name": "mary", "type": "user-settings",
                                   "roles": ["chw"], "facility_id": "a1", "contact_id": "chw1"}


@pytest.mark.parametrize("kwargs, field, message", [
    ({"username": ""}, "username", "must not be empty"),
    ({"username": "Mary Smith"}, "username", "not valid"),
    ({"password": "short"}, "password", "at least 8"),
    ({"roles": []}, "roles", "at least one role"),
    ({"roles": "chw"}, "roles", "list of role names"),
    ({"roles": ["chw", ""]}, "roles", "not a role name"),
    ({"roles": ["chw", 3]}, "roles", "not a role name"),
    ({"roles": ["nurse"], "known_roles": ["chw", "site_supervisor"]}, "roles", "unknown role"),
    ({"timezone": "Mars/Olympus"}, "timezone", "unknown time zone"),
    ({"timezone": "../etc/passwd"}, "timezone", "unknown time zone"),
    ({"facility_id": "nowhere"}, "facility_id", "no contact 'nowhere'"),
    ({"facility_id": "r1"}, "facility_id", "not a contact"),
    ({"contact_id": ""}, "contact_id", "non-empty string"),
    ({"facility_id": "a1", "contact_id": "p3"}, "contact_id", "not within the place"),
    ({"national": "yes"}, "national", "true or false"),
])
def test_invalid_users_are_refused_naming_the_field(loaded: Store, kwargs: dict[str, object], field: str,
                                                      message: str) -> None:
    args: dict[str, object] = {"username": "valid.name", "password": "password1", "roles": ["chw"], **kwargs}
    username = args.pop("username")
    with pytest.raises(UserError, match=message) as caught:
        loaded.users.create(username, **args)  # type: ignore[arg-type]
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")
    assert loaded.users.list_all() == []


def test_known_roles_accept_the_builtin_ones(loaded: Store) -> None:
    user = loaded.users.create("boss", password="password1", roles=["admin", "mm-online", "national_admin"],
                               known_roles=["chw"])
    assert user.roles == ("admin", "mm-online", "national_admin")


def test_duplicate_username(loaded: Store) -> None:
    loaded.users.create("ann", password="password1", roles=["chw"])
    with pytest.raises(UserError, match="already exists") as caught:
        loaded.users.create("ann", password="password2", roles=["chw"])
    assert caught.value.field == "username"


def test_update_changes_only_what_is_given(loaded: Store) -> None:
    created = loaded.users.create("ann", password="password1", roles=["chw"], facility_id="a1", contact_id="chw1",
                                  timezone="Africa/Blantyre")
    updated = loaded.users.update("ann", roles=["chw_supervisor", "chw_supervisor"], timezone=None)
    assert updated.roles == ("chw_supervisor",) and updated.timezone is None
    assert (updated.facility_id, updated.contact_id, updated.created_at) == \
        (created.facility_id, created.contact_id, created.created_at)
    assert updated.updated_at >= created.updated_at
    moved = loaded.users.update("ann", facility_id="hc2", contact_id="chw3")
    assert (moved.facility_id, moved.contact_id) == ("hc2", "chw3")
    with pytest.raises(UserError, match="not within the place") as caught:
        loaded.users.update("ann", facility_id="hc1")  # chw3 works in hc2
    assert caught.value.field == "contact_id"
    loaded.users.update("ann", password="new password")
    assert loaded.users.authenticate("ann", "password1") is None
    assert loaded.users.authenticate("ann", "new password") is not None
    assert loaded.users.update("ann", roles=UNSET).roles == ("chw_supervisor",)
    with pytest.raises(NotFoundError):
        loaded.users.update("ghost", timezone="UTC")
    with pytest.raises(UserError, match="unknown time zone"):
        loaded.users.update("ann", timezone="Nowhere/Special")


def test_disabled_users_cannot_log_in_or_use_tokens(loaded: Store) -> None:
    loaded.users.create("ann", password="password1", roles=["chw"], facility_id="a1")
    token, info = loaded.users.create_token("ann", "sync script")
    assert loaded.users.authenticate_token(token) is not None
    disabled = loaded.users.disable("ann")
    assert disabled.disabled and loaded.users.get("ann").disabled
    assert loaded.users.authenticate("ann", "password1") is None
    assert loaded.users.authenticate_token(token) is None
    assert [u.username for u in loaded.users.list_all(include_disabled=False)] == []
    assert [u.username for u in loaded.users.list_all()] == ["ann"]
    loaded.users.enable("ann")
    assert loaded.users.authenticate("ann", "password1") is not None
    assert loaded.users.authenticate_token(token) is None  # revoked by the disable: enabling revives no token
    assert not loaded.users.list_tokens("ann")[0].active


def test_tokens_are_stored_hashed_and_can_be_revoked(loaded: Store) -> None:
    ann = loaded.users.create("ann", password="password1", roles=["chw"])
    token, info = loaded.users.create_token("ann", "importer")
    assert token.startswith(f"kazi_{info.id}_") and info.active and info.label == "importer"
    secret = token.split("_", 2)[2]
    with loaded.engine.connect() as conn:
        stored = conn.execute(select(user_tokens)).one()
    assert secret not in json.dumps([str(v) for v in stored])
    assert loaded.users.authenticate_token(token) == ann
    assert loaded.users.authenticate_token(token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    assert loaded.users.authenticate_token("kazi_nope_nope") is None
    assert loaded.users.authenticate_token("garbage") is None
    loaded.users.revoke_token(info.id)
    loaded.users.revoke_token(info.id)
    assert loaded.users.authenticate_token(token) is None
    assert [t.active for t in loaded.users.list_tokens("ann")] == [False]
    with pytest.raises(NotFoundError):
        loaded.users.revoke_token("unknown")


def test_weak_hashes_are_upgraded_at_login(store_url: str, loaded: Store) -> None:
    loaded.users.create("ann", password="password1", roles=["chw"])
    weak = _stored_hash(loaded, "ann")
    stronger = open_store(store_url, password_hasher=PasswordHasher(time_cost=2, memory_cost=16, parallelism=1))
    try:
        assert stronger.users.authenticate("ann", "password1") is not None
        upgraded = _stored_hash(stronger, "ann")
        assert upgraded != weak and "t=2" in upgraded
        assert loaded.users.authenticate("ann", "password1") is not None
    finally:
        stronger.close()


def test_online_or_offline_follows_the_programs_roles(loaded: Store) -> None:
    def make(name: str, roles: list[str]) -> bool:
        return is_offline(loaded.users.create(name, password="password1", roles=roles), SETTINGS)

    assert make("chw", ["chw"]) is True  # offline: true in app_settings
    assert make("sup", ["site_supervisor"]) is False  # offline: false
    assert make("both", ["site_supervisor", "chw"]) is True  # any offline role makes the user offline
    assert make("admin", ["admin", "chw"]) is False  # admins are online
    assert make("online", ["chw", "mm-online"]) is False
    assert make("unknown", ["not_configured"]) is True  # CHT: no configured role -> offline


def test_get_unknown_user(store: Store) -> None:
    with pytest.raises(NotFoundError, match="user 'ghost' not found"):
        store.users.get("ghost")
