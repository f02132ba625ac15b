"""Schemathesis hooks for the API fuzz test (loaded by `st run` through ``SCHEMATHESIS_HOOKS=st_hooks``).

The program routes take a raw ``application/zip`` body, which schemathesis cannot generate by itself. This
module registers a strategy that makes zips as a careless or hostile administrator would send them: entries
that escape the folder (``../``, absolute), a file and a folder of one name, duplicated names, nested single
top folders, broken JSON and JavaScript, binary junk, and bodies that are no zip at all. Contents are chosen
never to form a valid program, so an upload can never replace the demo program while the fuzzer runs.
"""

from __future__ import annotations

import io
import itertools
import os
import warnings
import zipfile
from typing import Any

import schemathesis
from hypothesis import strategies as st

NAMES = ["tasks.js", "targets.js", "app_settings.json", "nools-extras.js", "forms/anc_visit.json",
         "translations/messages-en.properties", "program/tasks.js", "program/app_settings.json",
         "../tasks.js", "/etc/tasks.js", "a/../../tasks.js", "tasks.js/", "forms/", "forms",
         "__MACOSX/tasks.js", "t\u00e4sks.js", "tasks.py", "x" * 200]
CONTENTS = [b"", b"module.exports = [", b"throw new Error('boom')", b"module.exports = 42;", b"{",
            b'{"roles": 1}', b"[{\"name\": null}]", b"\x00\xff\xfe\x00", b"def tasks(:", "\u00e9\u20ac".encode()]


@st.composite
def _zips(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["zip", "zip", "zip", "junk", "empty-zip"]))
    if kind == "junk":
        return draw(st.binary(min_size=0, max_size=64))
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns on duplicate names, which are the point here
        with zipfile.ZipFile(buf, "w", compression=draw(st.sampled_from([zipfile.ZIP_STORED,
                                                                          zipfile.ZIP_DEFLATED]))) as zf:
            if kind == "zip":
                for _ in range(draw(st.integers(min_value=1, max_value=4))):
                    name = draw(st.sampled_from(NAMES) | st.text(min_size=1, max_size=12))
                    zf.writestr(name, draw(st.sampled_from(CONTENTS) | st.binary(max_size=32)))
    return buf.getvalue()


schemathesis.openapi.media_type("application/zip", _zips())

#: the fuzzing accounts (comma-separated): never the target of a `{username}` route
PROTECTED = frozenset(filter(None, os.environ.get("KAZI_FUZZ_PROTECTED", "").split(",")))
#: the account such a request goes to instead
STAND_IN = os.environ.get("KAZI_FUZZ_STAND_IN", "fuzz-other-chw")


@schemathesis.hook
def before_call(context: schemathesis.HookContext, case: schemathesis.Case, kwargs: dict[str, Any]) -> None:
    """Keep the fuzzer from disabling, changing or re-enabling its own accounts: it learns their names from
    `GET /api/v1/users` and would otherwise lock itself out halfway through a run (every later request a 401)."""
    params = case.path_parameters
    if params and params.get("username") in PROTECTED:
        params["username"] = STAND_IN
    body = case.body
    if isinstance(body, dict) and isinstance(body.get("_id"), str) and body["_id"].startswith(NEW_REPORT):
        body["_id"] = f"{NEW_REPORT}{next(_serial)}"  # a new submission each time, as the web app sends


#: the prefix of the `_id`s the fuzz test's schema gives new form submissions (POST /api/v1/reports)
NEW_REPORT = "fuzz-form-"
_serial = itertools.count(1)
