"""A program's translations: CHT's ``translations/messages-<locale>.properties`` files, and locale names.

Task titles, priority labels, action labels and form labels are translation keys; the web app shows them in
the user's locale. Kazi reads the files CHT programs already carry (cht-conf uploads the same ones), in the
Java ``.properties`` format CHT uses: ``key = text`` lines, ``#`` or ``!`` comments, a trailing ``\\`` to
continue a line, ``\\uXXXX`` escapes. Pure: the loader reads the files, this module parses their text.

Fallback (what ``GET /api/v1/translations`` answers): the locale's own messages, over those of its language
(``pt`` under ``pt-BR``), over the program's default locale's (``app_settings.locale``, else ``en``). A key
missing everywhere is absent, and the app shows the key itself, as CHT does.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

TRANSLATIONS_DIR: Final = "translations"
DEFAULT_LOCALE: Final = "en"
#: a BCP 47 language tag, simplified: language (2-3 letters), optional script (4), optional region (2 letters
#: or 3 digits): en, ny, pt-BR, zh-Hans-CN, es-419
LOCALE_PATTERN: Final = re.compile(r"[a-z]{2,3}(?:-[A-Z][a-z]{3})?(?:-(?:[A-Z]{2}|\d{3}))?")
_FILE_NAME: Final = re.compile(r"messages-(.+)\.properties")
_ESCAPES: Final = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}


def is_locale(value: object) -> bool:
    return isinstance(value, str) and LOCALE_PATTERN.fullmatch(value) is not None


def locale_of_file(name: str) -> str | None:
    """The locale a file name holds (``messages-ny.properties`` -> ``ny``), or ``None``."""
    m = _FILE_NAME.fullmatch(name)
    return m.group(1) if m else None


def _logical_lines(text: str) -> list[str]:
    lines: list[str] = []
    pending: str | None = None
    for raw in text.splitlines():
        line = raw.lstrip() if pending is not None else raw
        if pending is None and (not line.strip() or line.lstrip().startswith(("#", "!"))):
            continue
        # a line continues when it ends in an odd number of backslashes
        trailing = len(line) - len(line.rstrip("\\"))
        joined = (pending or "") + (line[:-1] if trailing % 2 else line)
        if trailing % 2:
            pending = joined
        else:
            lines.append(joined)
            pending = None
    if pending is not None:
        lines.append(pending)
    return lines


def _unescape(text: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch != "\\" or i + 1 >= len(text):
            out.append(ch)
            i += 1
            continue
        nxt = text[i + 1]
        if nxt == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", text[i + 2:i + 6]):
            out.append(chr(int(text[i + 2:i + 6], 16)))
            i += 6
            continue
        out.append(_ESCAPES.get(nxt, nxt))
        i += 2
    return "".join(out)


def parse_properties(text: str) -> dict[str, str]:
    """``key = text`` pairs of a ``.properties`` file (the last one wins for a repeated key)."""
    out: dict[str, str] = {}
    for line in _logical_lines(text):
        line = line.lstrip()
        i = 0
        while i < len(line):
            if line[i] == "\\":
                i += 2
                continue
            if line[i] in "=: \t\f":
                break
            i += 1
        key = line[:i]
        rest = line[i:].lstrip(" \t\f")
        if rest[:1] in ("=", ":"):
            rest = rest[1:].lstrip(" \t\f")
        if key:
            out[_unescape(key)] = _unescape(rest)
    return out


def fallback_chain(locale: str, default: str) -> list[str]:
    """Locales to look a key up in, most specific first: ``pt-BR`` -> ``pt-BR``, ``pt``, the default."""
    chain = [locale]
    language = locale.split("-", 1)[0]
    for candidate in (language, default or DEFAULT_LOCALE):
        if candidate not in chain:
            chain.append(candidate)
    return chain


def messages_for(translations: Mapping[str, Mapping[str, str]], locale: str, default: str) -> dict[str, str]:
    """Every message for ``locale``: its own over its language's over the default locale's."""
    out: dict[str, str] = {}
    for candidate in reversed(fallback_chain(locale, default)):
        out.update(translations.get(candidate, {}))
    return out
