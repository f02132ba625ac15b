"""``cht.v1.hasPermissions`` / ``hasAnyPermission``, the online/offline role rule, and ``cht`` for tasks.py.

Task code gates definitions on permissions (``cht.v1.hasPermissions('can_verify')``), so Kazi must answer
exactly as the CHT version its conformance suite was recorded with (cht-core 4.11's ``hasPermissions``;
docs/engine.md, "Choices where CHT's behaviour depends on its device"):

* a permission passes when ``settings["permissions"][perm]`` shares a role with the user; ``"!perm"``
  passes when it does not (or when ``perm`` is not configured at all);
* anything malformed (no permissions, roles not a list, no configured permissions) is simply ``False``;
* administrators pass everything except an explicit ``!`` check.  Admin roles are ``_admin`` and, as in
  current cht-core, ``admin``.  Roles are *not* filtered by ``settings["roles"]`` (that came after 4.11).

``settings`` is always the ``app_settings`` fragment of a program (``settings.json``): ``permissions`` maps
a permission to its role list, ``roles`` maps a role to ``{name, offline}``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

__all__ = [
    "ADMIN_ROLES", "ONLINE_ROLE", "ChtApi", "ChtV1", "has_any_permission", "has_permissions", "is_offline",
]

#: roles that hold every permission (CouchDB server admin, CHT admin)
ADMIN_ROLES: Final = ("_admin", "admin")
#: the role cht-core gives users that do not replicate (online-only)
ONLINE_ROLE: Final = "mm-online"
_NOT: Final = "!"


def _permission_map(settings: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    if not isinstance(settings, Mapping):
        return None
    perms = settings.get("permissions")
    return perms if isinstance(perms, Mapping) and perms else None


def _split(permissions: Sequence[Any]) -> tuple[list[str], list[str]]:
    """(allowed, disallowed) permission names; a non-string raises as ``indexOf`` would in JavaScript."""
    allowed: list[str] = []
    disallowed: list[str] = []
    for p in permissions:
        if not isinstance(p, str):
            raise TypeError(f"permission must be a string, got {type(p).__name__}")
        if p.startswith(_NOT):
            disallowed.append(p[1:])
        else:
            allowed.append(p)
    return allowed, disallowed


def _role_has(configured: object, roles: Sequence[Any]) -> bool:
    """Whether a configured role list (``settings.permissions[p]``) contains one of ``roles``."""
    if isinstance(configured, (list, tuple)):
        return any(r in configured for r in roles if isinstance(r, str))
    if isinstance(configured, str):  # JavaScript String.prototype.includes: substring
        return any(isinstance(r, str) and r in configured for r in roles)
    return False


def _all_pass(names: list[str], roles: Sequence[Any], perms: Mapping[str, Any], expected: bool) -> bool:
    for name in names:
        configured = perms.get(name)
        if not configured:
            if expected:
                return False
            continue
        if _role_has(configured, roles) != expected:
            return False
    return True


def _is_admin(roles: Sequence[Any]) -> bool:
    return any(r in ADMIN_ROLES for r in roles if isinstance(r, str))


def _valid_roles(roles: object) -> bool:
    return isinstance(roles, (list, tuple))


def has_permissions(
    permissions: str | Sequence[str], roles: Sequence[str], settings: Mapping[str, Any] | None,
) -> bool:
    """Whether ``roles`` hold every permission of ``permissions`` (a name or a list; ``!name`` = must not)."""
    if isinstance(permissions, str) and permissions:
        permissions = [permissions]
    perms = _permission_map(settings)
    if not isinstance(permissions, (list, tuple)) or not permissions:
        return False
    if not _valid_roles(roles) or perms is None:
        return False
    allowed, disallowed = _split(permissions)
    if _is_admin(roles):
        return not disallowed
    return _all_pass(disallowed, roles, perms, False) and _all_pass(allowed, roles, perms, True)


def has_any_permission(
    groups: Sequence[Sequence[str]], roles: Sequence[str], settings: Mapping[str, Any] | None,
) -> bool:
    """Whether ``roles`` satisfy at least one group of ``groups`` (a list of permission lists) entirely.

    Every group must be a list, otherwise the answer is ``False``.  Administrators pass unless *every* group
    holds a ``!`` permission.
    """
    perms = _permission_map(settings)
    if not isinstance(groups, (list, tuple)) or not groups or not _valid_roles(roles) or perms is None:
        return False
    if not all(isinstance(g, (list, tuple)) for g in groups):
        return False
    split = [_split(g) for g in groups]
    if _is_admin(roles):
        return not all(disallowed for _, disallowed in split)
    return any(
        _all_pass(allowed, roles, perms, True) and _all_pass(disallowed, roles, perms, False)
        for allowed, disallowed in split
    )


def is_offline(roles: Sequence[str], settings: Mapping[str, Any] | None) -> bool:
    """cht-core's ``isOffline``: whether a user with ``roles`` replicates and runs the rules engine.

    No roles, an admin role or ``mm-online`` -> online.  Otherwise offline when none of the roles is
    configured in ``settings["roles"]`` or any configured one has a truthy ``offline``.
    """
    if not roles:
        return False
    if any(r in ADMIN_ROLES or r == ONLINE_ROLE for r in roles):
        return False
    configured_roles = settings.get("roles") if isinstance(settings, Mapping) else None
    configured: Mapping[str, Any] = configured_roles if isinstance(configured_roles, Mapping) else {}
    known = [r for r in roles if configured.get(r)]
    if not known:
        return True
    return any(isinstance(configured[r], Mapping) and configured[r].get("offline") for r in known)


class ChtV1:
    """``cht.v1`` for Python definitions: the synchronous functions usable in task code.

    ``roles`` are the logged-in user's; ``settings`` the program's app settings; ``extension_libs`` maps a
    library id (for JavaScript programs, the file name in ``extension-libs/``, e.g. ``"average.js"``) to any
    Python object.
    """

    def __init__(
        self, roles: Sequence[str], settings: Mapping[str, Any] | None,
        extension_libs: Mapping[str, Any] | None = None,
    ) -> None:
        self.roles = list(roles)
        self.settings = settings
        self.extension_libs = dict(extension_libs or {})

    def _resolve(self, user: object, settings: object) -> tuple[Sequence[str], Mapping[str, Any] | None]:
        # the webapp takes roles from `user.roles`; the documented (harness) form passes the roles list
        roles: Sequence[str] = self.roles
        if isinstance(user, Mapping) and isinstance(user.get("roles"), (list, tuple)):
            roles = user["roles"]
        elif isinstance(user, (list, tuple)):
            roles = user
        chosen = self.settings
        if isinstance(settings, Mapping) and settings:
            # `chtSettings` ({permissions: {...}}) or, in the documented form, the permissions map itself
            inner = settings.get("permissions")
            chosen = settings if isinstance(inner, Mapping) else {"permissions": settings}
        return roles, chosen

    def has_permissions(
        self, permissions: str | Sequence[str], user: object = None, settings: object = None,
    ) -> bool:
        """``cht.v1.hasPermissions(permissions[, user or roles[, settings]])``."""
        roles, chosen = self._resolve(user, settings)
        return has_permissions(permissions, roles, chosen)

    def has_any_permission(
        self, groups: Sequence[Sequence[str]], user: object = None, settings: object = None,
    ) -> bool:
        """``cht.v1.hasAnyPermission(groups[, user or roles[, settings]])``."""
        roles, chosen = self._resolve(user, settings)
        return has_any_permission(groups, roles, chosen)

    def get_extension_lib(self, lib_id: str) -> Any:
        """The extension library registered as ``lib_id``, or ``None`` when there is none."""
        return self.extension_libs.get(lib_id)

    hasPermissions = has_permissions
    hasAnyPermission = has_any_permission
    getExtensionLib = get_extension_lib


class ChtApi:
    """The ``cht`` global for Python definitions: ``cht.v1.hasPermissions(...)`` ports unchanged."""

    def __init__(
        self, roles: Sequence[str], settings: Mapping[str, Any] | None,
        extension_libs: Mapping[str, Any] | None = None,
    ) -> None:
        self.v1 = ChtV1(roles, settings, extension_libs)
