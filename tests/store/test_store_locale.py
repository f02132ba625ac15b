"""Users' locale (migration 0003): the store, ``kazi users --locale``, and the upgrade of a database with
accounts from before it, on both backends."""

from __future__ import annotations

import pytest
from sqlalchemy import insert, select

from kazi.cli.main import main
from kazi.errors import UserError
from kazi.store import Store, open_store
from kazi.store import db as store_db
from kazi.store.schema import users


def test_a_users_locale_is_checked_stored_and_cleared(loaded: Store) -> None:
    user = loaded.users.create("ama", password="ama-password", roles=["chw"], facility_id="a1", locale="ny")
    assert user.locale == "ny" and user.to_dict()["locale"] == "ny"
    assert loaded.users.update("ama", locale="pt-BR").locale == "pt-BR"
    assert loaded.users.update("ama", timezone="Africa/Blantyre").locale == "pt-BR"  # untouched
    assert loaded.users.update("ama", locale=None).locale is None
    for bad in ("Chichewa", "pt_BR", "", "EN"):
        with pytest.raises(UserError) as caught:
            loaded.users.update("ama", locale=bad)
        assert caught.value.field == "locale"
    with pytest.raises(UserError):
        loaded.users.create("kofi", password="kofi-password", roles=["chw"], locale="english")


def test_kazi_users_locale(loaded: Store, store_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    db = ["--db", store_url]
    assert main(["users", "add", "ama", "--password", "ama-password", "--roles", "chw", "--place", "a1",
                 "--locale", "ny", *db]) == 0
    assert "; locale ny" in capsys.readouterr().out
    assert loaded.users.get("ama").locale == "ny"
    assert main(["users", "update", "ama", "--locale", "", *db]) == 0
    assert loaded.users.get("ama").locale is None
    assert main(["users", "update", "ama", "--locale", "Chichewa", *db]) == 1
    assert "kazi: locale: 'Chichewa' is not a locale" in capsys.readouterr().err


def test_upgrading_to_0003_keeps_accounts_without_a_locale(empty_url: str) -> None:
    engine = store_db.create_store_engine(store_db.normalize_url(empty_url))
    try:
        store_db.migrate(engine, "0002")
        with store_db.writer(engine).begin() as conn:
            conn.execute(insert(users).values(username="old", password_hash="x", roles='["chw"]', national=False,
                                              disabled=False, created_at=1, updated_at=1))
    except Exception:
        engine.dispose()
        raise
    engine.dispose()
    store = open_store(empty_url)
    try:
        assert store_db.current_revision(store.engine) == store_db.head_revision()
        assert store.users.get("old").locale is None
        with store.engine.connect() as conn:
            assert conn.execute(select(users.c.locale)).scalar() is None
    finally:
        store.close()
