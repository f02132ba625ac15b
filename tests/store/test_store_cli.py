"""``kazi users``: the command-line contract for accounts, on both backends."""

from __future__ import annotations

import json

import pytest

from kazi.cli.main import main
from kazi.store import Store


def test_users_add_list_update_disable_token(loaded: Store, store_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    db = ["--db", store_url]
    assert main(["users", "add", "grace", "--password", "s3cret-pass", "--roles", "chw,chw_supervisor",
                 "--place", "a1", "--contact", "chw1", "--tz", "Africa/Blantyre", *db]) == 0
    assert "created grace: roles chw,chw_supervisor; place a1; contact chw1; zone Africa/Blantyre" \
        in capsys.readouterr().out
    assert loaded.users.authenticate("grace", "s3cret-pass") is not None

    assert main(["users", "add", "bad", "--password", "s3cret-pass", "--roles", "chw", "--tz", "Mars/Base", *db]) == 1
    assert "kazi: timezone: unknown time zone 'Mars/Base'" in capsys.readouterr().err

    assert main(["users", "update", "grace", "--roles", "site_supervisor", "--place", "hc1", *db]) == 0
    assert loaded.users.get("grace").roles == ("site_supervisor",)
    assert main(["users", "update", "grace", *db]) == 1
    assert "nothing to change" in capsys.readouterr().err

    assert main(["users", "list", "--format", "json", *db]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [u["username"] for u in listed] == ["grace"] and "password" not in json.dumps(listed)

    assert main(["users", "token", "grace", "--label", "sync", *db]) == 0
    token = capsys.readouterr().out.strip()
    assert loaded.users.authenticate_token(token) is not None
    assert main(["users", "disable", "grace", *db]) == 0
    assert loaded.users.authenticate("grace", "s3cret-pass") is None
    assert main(["users", "enable", "grace", *db]) == 0
    assert main(["users", "revoke-token", token.split("_")[1], *db]) == 0
    assert loaded.users.authenticate_token(token) is None
    assert main(["users", "list", *db]) == 0
    assert capsys.readouterr().out.strip().endswith("1 user(s)")


def test_users_add_without_a_terminal_needs_a_password(store_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["users", "add", "ann", "--roles", "admin", "--db", store_url]) == 1
    assert "password: give --password" in capsys.readouterr().err
