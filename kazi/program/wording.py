"""How validation messages name what they found and what was probably meant.

Program settings, forms, SMS forms and supervision indicators are all validated with located, plain-language
problems ("``fields[2].type`` is 'interger'. Did you mean 'integer'?"); these two helpers keep that wording the
same wherever a program file is checked.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any


def show(value: Any) -> str:
    """A found value as a message shows it: strings quoted, JSON's names for the rest, containers by kind."""
    if isinstance(value, str):
        return repr(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return "an object" if isinstance(value, dict) else "an array"
    return str(value)


def did_you_mean(key: str, allowed: Iterable[str], cutoff: float = 0.6) -> str:
    """`` Did you mean 'x'?`` for the closest allowed spelling of a misspelt ``key``, else nothing."""
    close = difflib.get_close_matches(key, list(allowed), n=1, cutoff=cutoff)
    return f" Did you mean {close[0]!r}?" if close else ""
