"""Hostile and careless input at the HTTP API's edges answers a located 4xx, never a 500, and stores nothing:
paging past what SQL or the page cache can hold, times outside the calendar, program zips whose entries
contradict each other or their own headers.

The store's side of the time range is tested on both databases in tests/store/test_store_docs.py; the
interaction routes' dates and offsets in tests/interactions/test_interaction_api.py; the SMS gateways' in
tests/server/test_sms_gateway.py.
"""

from __future__ import annotations

import io
import struct
import warnings
import zipfile
from typing import Any

import pytest
import test_api
from test_api import PROGRAM, Env, _error, _tasks, _zip, sick

from kazi.epoch import EARLIEST_MS, LATEST_MS
from kazi.server.deps import MAX_OFFSET

template_db = test_api.template_db  # test_api's fixtures, by their own names
env = test_api.env
ZIPPED = {"Content-Type": "application/zip"}
ROUTES = ("/api/v1/program/validate", "/api/v1/program")


# --------------------------------------------------------------------------------------------------------
# paging


def test_task_paging_is_bounded(env: Env) -> None:
    """An offset of 2**64 was a 500 (the page is cached and answered as a 64-bit JSON integer)."""
    for offset in (MAX_OFFSET + 1, 2**63, 2**64 + 1):
        assert _error(env.get("/api/v1/tasks", "alice", params={"offset": offset}), 422)["field"] == "query.offset"
    for since in (2**63, 2**64):
        assert _error(env.get("/api/v1/tasks", "alice", params={"since": since}), 422)["field"] == "query.since"
    page = _tasks(env, "alice", offset=MAX_OFFSET)
    assert (page["offset"], page["items"]) == (MAX_OFFSET, [])
    spec = env.client.get("/openapi.json").json()
    for path in ("/api/v1/tasks", "/api/v1/interactions/summaries", "/api/v1/sms/messages"):
        schema = next(p["schema"] for p in spec["paths"][path]["get"]["parameters"] if p["name"] == "offset")
        assert (schema["minimum"], schema["maximum"]) == (0, MAX_OFFSET), path


# --------------------------------------------------------------------------------------------------------
# times


def test_a_reported_date_outside_the_range_is_422_with_its_document(env: Env) -> None:
    good = sick("r-good", "1001", 1)
    for bad in (-1, 0, 2**62, LATEST_MS, EARLIEST_MS - 1):
        err = _error(env.post("/api/v1/docs", "alice", json=[good, {**sick("r-bad", "1001", 2),
                                                                     "reported_date": bad}]), 422)
        assert err["field"] == "reported_date"
        assert err["problems"] == [{"index": 1, "doc_id": "r-bad", "field": "reported_date",
                                    "message": f"{bad} is not a time Kazi accepts: epoch milliseconds between "
                                               "2000-01-01 and 2099-12-31 (epoch ms 946684800000 to "
                                               "4102444799999)"}]
    assert _error(env.get("/api/v1/docs/r-good", "alice"), 404)  # nothing of the batch was stored
    assert env.post("/api/v1/docs", "alice", json={**good, "reported_date": EARLIEST_MS}).status_code == 200


def test_a_submitted_forms_reported_date_is_bounded_too(env: Env) -> None:
    body: dict[str, Any] = {"_id": "sub-1", "form": "followup", "fields": {"patient_uuid": "p-a", "better": "yes"}}
    for bad in (-1, 2**62):
        err = _error(env.post("/api/v1/reports", "alice", json={**body, "reported_date": bad}), 422)
        assert err["field"] == "body.reported_date"
    resp = env.post("/api/v1/reports", "alice", json={**body, "reported_date": LATEST_MS - 1})
    assert resp.status_code == 201, resp.text


# --------------------------------------------------------------------------------------------------------
# program zips


def _patched(data: bytes, name: str, field: str, value: int) -> bytes:
    """``data`` with one field of ``name``'s central directory record replaced (a lying header)."""
    out = bytearray(data)
    pos = 0
    while True:
        pos = out.index(b"PK\x01\x02", pos)
        length = struct.unpack_from("<H", out, pos + 28)[0]
        if out[pos + 46:pos + 46 + length].decode() == name:
            struct.pack_into("<I", out, pos + {"crc": 16, "csize": 20, "usize": 24}[field], value)
            return bytes(out)
        pos += 4


def _with_notes(method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=method) as zf:
        for p in sorted(PROGRAM.rglob("*")):
            if p.is_file():
                zf.write(p, p.relative_to(PROGRAM).as_posix())
        zf.writestr("notes.txt", "A visit is a visit. " * 300)
    return buf.getvalue()


def _duplicated() -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zipfile warns about the duplicate it is asked to write
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr("notes.txt", "one")
            zf.writestr("notes.txt", "two")
    return buf.getvalue()


def _folder_entry(name: str) -> bytes:
    buf = io.BytesIO(_zip(PROGRAM))
    with zipfile.ZipFile(buf, "a") as zf:
        zf.writestr(zipfile.ZipInfo(name), "")
    return buf.getvalue()


def _damaged() -> bytes:
    data = bytearray(_with_notes())
    start = data.index(b"notes.txt") + len("notes.txt")  # the local header's name, then the deflated data
    data[start + 2:start + 8] = bytes(6)
    return bytes(data)


BAD_ZIPS = {
    "a file and a folder of one name": (_zip(PROGRAM, extra={"tasks.js/inner.txt": "x"}), "both a file and a folder"),
    "a file and a folder entry of one name": (_folder_entry("app_settings.json/"), "both a file and a folder"),
    "a file twice": (_duplicated(), "appears twice"),
    "a size smaller than the data": (_patched(_with_notes(), "notes.txt", "usize", 10), "cannot be read"),
    "a compressed size smaller than the data": (_patched(_with_notes(), "notes.txt", "csize", 5), "cannot be read"),
    "a stored size smaller than the data": (_patched(_with_notes(zipfile.ZIP_STORED), "notes.txt", "usize", 10),
                                            "cannot be read"),
    "a wrong checksum": (_patched(_with_notes(), "notes.txt", "crc", 12345), "cannot be read"),
    "damaged data": (_damaged(), "cannot be read"),
}


@pytest.mark.parametrize("case", sorted(BAD_ZIPS))
def test_a_zip_that_contradicts_itself_is_400_and_changes_nothing(env: Env, case: str) -> None:
    data, words = BAD_ZIPS[case]
    before = env.get("/api/v1/program", "admin").json()
    for route in ROUTES:
        err = _error(env.post(route, "admin", content=data, headers=ZIPPED), 400)
        assert words in err["message"] and "zip entry '" in err["message"], err
    assert env.get("/api/v1/program", "admin").json() == before


def test_a_zip_declaring_more_than_the_limit_is_413(env: Env) -> None:
    lying = _patched(_with_notes(), "notes.txt", "usize", 2**31)
    for route in ROUTES:
        assert "unpacks to more than" in _error(env.post(route, "admin", content=lying, headers=ZIPPED), 413)["message"]


def test_a_folder_entry_and_its_files_are_fine(env: Env) -> None:
    buf = io.BytesIO(_zip(PROGRAM, top="program"))
    with zipfile.ZipFile(buf, "a") as zf:
        zf.writestr(zipfile.ZipInfo("program/"), "")
        zf.writestr(zipfile.ZipInfo("program/forms/"), "")
    resp = env.post("/api/v1/program/validate", "admin", content=buf.getvalue(), headers=ZIPPED)
    assert resp.status_code == 200, resp.text
