"""Markers that describe program definitions independently of the language they were written in.

The validator never sees live JavaScript or Python functions: the loader turns each exported value into
plain data where a function is :data:`FUNCTION` and a JavaScript ``undefined`` is :data:`UNDEFINED`.
That keeps one validator for both ``tasks.js`` and ``tasks.py``.
"""

from __future__ import annotations

from typing import Any, Final


class _Marker:
    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name


FUNCTION: Final = _Marker("FUNCTION")
UNDEFINED: Final = _Marker("UNDEFINED")
#: any other non-JSON JavaScript object (Date, RegExp, class instance...)
OTHER_OBJECT: Final = _Marker("OTHER_OBJECT")


def from_json(value: Any) -> Any:
    """Decode the JSON the JS runtime produces (`{"$kazi": "function"}` etc.) into markers."""
    if isinstance(value, dict):
        tag = value.get("$kazi") if len(value) == 1 else None
        if tag == "function":
            return FUNCTION
        if tag == "undefined":
            return UNDEFINED
        if tag == "object":
            return OTHER_OBJECT
        return {k: from_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_json(v) for v in value]
    return value


def from_python(value: Any) -> Any:
    """Describe Python definitions (tasks.py) with the same markers."""
    if callable(value) and not isinstance(value, type):
        return FUNCTION
    if isinstance(value, dict):
        return {k: from_python(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [from_python(v) for v in value]
    return value
