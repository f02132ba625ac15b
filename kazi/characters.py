"""Characters no string that Kazi stores may hold, whatever it is (an id, a name, an SMS).

* NUL (U+0000): PostgreSQL cannot store it in text (the write fails), and C code, logs and terminals cut
  strings at it.
* A lone UTF-16 surrogate (U+D800 to U+DFFF without its pair): JSON's ``\\ud800`` escape can produce one,
  but it is not a character, so it cannot be encoded as UTF-8, which SQLite, the logs and every client need.

The HTTP API refuses both with 422 (kazi.server.guard); an SMS gateway's batch refuses the one message that
holds one (kazi.sms.gateway).
"""

from __future__ import annotations

import re

_REFUSED = re.compile("[\x00\ud800-\udfff]")


def refused_character(text: str) -> str | None:
    """What makes ``text`` unacceptable (a NUL character, a lone surrogate), or ``None`` when it is fine."""
    found = _REFUSED.search(text)
    if found is None:
        return None
    char = found.group()
    if char == "\x00":
        return f"contains a NUL character (U+0000) at position {found.start()}"
    return f"contains a lone surrogate (U+{ord(char):04X}) at position {found.start()}, which is not text"


def printable(text: str) -> str:
    """``text`` with its refused characters replaced by U+FFFD, so that an answer can quote it."""
    return _REFUSED.sub("\ufffd", text)
