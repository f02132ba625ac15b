"""``cht.v1`` permission checks (cht-core 4.11 semantics, reference 8.1) and the online/offline rule (8.3)."""

from __future__ import annotations

from typing import Any

import pytest

from kazi.engine.permissions import ChtApi, has_any_permission, has_permissions, is_offline

SETTINGS: dict[str, Any] = {
    "roles": {
        "chw": {"name": "CHW", "offline": True},
        "supervisor": {"name": "Supervisor", "offline": True},
        "manager": {"name": "Manager", "offline": False},
    },
    "permissions": {
        "can_view_tasks": ["chw", "supervisor"],
        "can_verify": ["supervisor"],
        "can_trace": ["chw"],
        "can_nobody": [],
    },
}


def test_single_permission_string_or_list() -> None:
    assert has_permissions("can_view_tasks", ["chw"], SETTINGS)
    assert has_permissions(["can_view_tasks"], ["chw"], SETTINGS)
    assert not has_permissions("can_verify", ["chw"], SETTINGS)
    assert not has_permissions("can_nobody", ["chw"], SETTINGS)
    assert not has_permissions("can_unknown", ["chw"], SETTINGS)


def test_all_permissions_needed() -> None:
    assert has_permissions(["can_view_tasks", "can_trace"], ["chw"], SETTINGS)
    assert not has_permissions(["can_view_tasks", "can_verify"], ["chw"], SETTINGS)
    assert has_permissions(["can_view_tasks", "can_verify"], ["chw", "supervisor"], SETTINGS)


def test_negated_permissions() -> None:
    assert has_permissions(["can_trace", "!can_verify"], ["chw"], SETTINGS)
    assert not has_permissions(["can_trace", "!can_verify"], ["chw", "supervisor"], SETTINGS)
    assert has_permissions("!can_unknown", ["chw"], SETTINGS)  # not configured -> nobody has it
    assert has_permissions("!can_nobody", ["chw"], SETTINGS)
    assert not has_permissions("!can_view_tasks", ["chw"], SETTINGS)


def test_admin_roles() -> None:
    for admin in ("_admin", "admin"):
        assert has_permissions("can_verify", [admin], SETTINGS)
        assert has_permissions(["can_unknown", "can_nobody"], [admin], SETTINGS)
        assert not has_permissions(["can_verify", "!can_trace"], [admin], SETTINGS)
        assert has_any_permission([["can_verify"], ["!can_trace"]], [admin], SETTINGS)
        assert not has_any_permission([["!can_verify"], ["can_x", "!can_trace"]], [admin], SETTINGS)


def test_invalid_arguments_are_false() -> None:
    assert not has_permissions([], ["chw"], SETTINGS)
    assert not has_permissions("", ["chw"], SETTINGS)
    assert not has_permissions("can_view_tasks", "chw", SETTINGS)  # type: ignore[arg-type]
    assert not has_permissions("can_view_tasks", ["chw"], {"permissions": {}})
    assert not has_permissions("!can_view_tasks", ["chw"], {})
    assert not has_permissions("can_view_tasks", ["chw"], None)
    assert not has_any_permission([], ["chw"], SETTINGS)
    assert not has_any_permission([["can_trace"], "can_verify"], ["chw"], SETTINGS)  # type: ignore[list-item]
    assert not has_any_permission([["can_trace"]], None, SETTINGS)  # type: ignore[arg-type]


def test_roles_are_not_filtered_by_configured_roles() -> None:
    # cht-core 4.11: a role missing from settings.roles still grants its permissions
    settings = {"roles": {}, "permissions": {"p": ["ghost"]}}
    assert has_permissions("p", ["ghost"], settings)


def test_has_any_permission() -> None:
    groups = [["can_verify"], ["can_trace", "!can_verify"]]
    assert has_any_permission(groups, ["chw"], SETTINGS)
    assert has_any_permission(groups, ["supervisor"], SETTINGS)
    assert has_any_permission(groups, ["chw", "supervisor"], SETTINGS)
    assert not has_any_permission(groups, ["manager"], SETTINGS)
    assert not has_any_permission([["can_trace", "!can_verify"]], ["chw", "supervisor"], SETTINGS)


@pytest.mark.parametrize(
    ("roles", "offline"),
    [
        ([], False),
        (["chw"], True),
        (["manager"], False),
        (["manager", "chw"], True),  # any configured offline role
        (["unknown"], True),  # none configured -> offline
        (["unknown", "manager"], False),
        (["chw", "mm-online"], False),
        (["chw", "_admin"], False),
        (["admin"], False),
    ],
)
def test_is_offline(roles: list[str], offline: bool) -> None:
    assert is_offline(roles, SETTINGS) is offline


def test_cht_api_for_python_definitions() -> None:
    lib = object()
    cht = ChtApi(["chw"], SETTINGS, {"average.js": lib})
    assert cht.v1.hasPermissions("can_trace") and cht.v1.has_permissions("can_trace")
    assert not cht.v1.hasPermissions("can_verify")
    assert cht.v1.hasPermissions("can_verify", ["supervisor"])  # documented form: a roles list
    assert cht.v1.hasPermissions("can_verify", {"roles": ["supervisor"]})  # webapp form: a user
    assert cht.v1.hasPermissions("can_trace", {"name": "no roles"})  # a user without roles: the session's
    assert cht.v1.hasPermissions("x", None, {"permissions": {"x": ["chw"]}})  # settings override
    assert cht.v1.hasPermissions("x", None, {"x": ["chw"]})  # the permissions map itself
    assert cht.v1.hasAnyPermission([["can_verify"], ["can_trace"]])
    assert not cht.v1.has_any_permission([["can_verify"]])
    assert cht.v1.getExtensionLib("average.js") is lib
    assert cht.v1.get_extension_lib("missing.js") is None
