"""Every status code a route really answers is listed in the OpenAPI, and no probe gets a 500.

The OpenAPI document is the contract clients (and the fuzzer in CI) are generated from: a route that answers a
code it does not list breaks them as surely as a wrong body. This walks the document itself, so a route added
later is probed too: for each operation it sends what a careless or hostile client sends (no credentials, a
caller without the right role, a body that is not JSON, a JSON body of the wrong shape, out-of-range and
malformed parameters, unknown path ids) and checks each answer's code is among the operation's responses.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import test_api
from fastapi.testclient import TestClient
from test_api import CHEAP_HASHER, NOW, Env, _copy_db, auth

from kazi.server.api import create_app
from kazi.service.tasks import TaskService
from kazi.store import open_store

template_db = test_api.template_db  # test_api's fixture, by its own name
SKIP = {"/api/v1/logout"}  # answers 204 to anything, by design


@pytest.fixture
def env(template_db: Path, tmp_path: Path) -> Iterator[Env]:
    """test_api's ``env``, with a client that answers a 500 as the server does instead of raising it."""
    store = open_store(_copy_db(template_db, tmp_path), password_hasher=CHEAP_HASHER)
    service = TaskService(store, clock=lambda: NOW)
    try:
        with TestClient(create_app(store=store, service=service), raise_server_exceptions=False) as client:
            yield Env(client, store, service)
    finally:
        service.close()
        store.close()


def _bad_values(schema: dict[str, Any]) -> list[Any]:
    """Values a parameter of ``schema`` should refuse with a 422 (or take: then any listed code is fine)."""
    options = schema.get("anyOf", [schema])
    kinds = {o.get("type") for o in options}
    formats = {o.get("format") for o in options}
    if "integer" in kinds:
        return [-1, 2**63, 2**64 + 1, "x"]
    if "date" in formats:
        return ["0001-01-01", "9999-12-31", "2025-13-01"]
    if "boolean" in kinds:
        return ["maybe"]
    if "array" in kinds or any(o.get("enum") for o in options) or any(
            (o.get("items") or {}).get("enum") for o in options):
        return ["nope"]
    return ["", "x" * 300, "0001-01", "9999-12"]


def _probes(path: str, method: str, op: dict[str, Any]) -> Iterator[tuple[str, str, str | None, dict[str, Any]]]:
    """(what, url, user, request kwargs) for one operation."""
    params = op.get("parameters", [])
    url = path
    for p in params:
        if p["in"] == "path":
            url = url.replace("{" + p["name"] + "}", "nobody-here")
    yield "no credentials", url, None, {}
    yield "a CHW", url, "alice", {}
    yield "an admin", url, "admin", {}
    if "requestBody" in op:
        content = op["requestBody"].get("content", {})
        if "application/json" in content:
            yield "a body that is not JSON", url, "admin", {"content": b"{not json",
                                                            "headers": {"Content-Type": "application/json"}}
            yield "an empty JSON object", url, "admin", {"json": {}}
            yield "a JSON string", url, "admin", {"json": "x"}
        if "application/zip" in content:
            yield "a body that is not a zip", url, "admin", {"content": b"PK\x03\x04 not really",
                                                             "headers": {"Content-Type": "application/zip"}}
    for p in params:
        if p["in"] != "query":
            continue
        for value in _bad_values(p.get("schema", {})):
            yield f"query {p['name']}={str(value)[:20]}", url, "admin", {"params": {p["name"]: value}}


def test_every_code_a_route_answers_is_in_the_openapi(env: Env) -> None:
    spec = env.client.get("/openapi.json").json()
    wrong: list[str] = []
    probed = 0
    for path, ops in spec["paths"].items():
        if not path.startswith("/api/") or path in SKIP:
            continue
        for method, op in ops.items():
            listed = set(op["responses"])
            for what, url, user, kwargs in _probes(path, method, op):
                resp: httpx.Response = env.client.request(method.upper(), url, auth=auth(user) if user else None,
                                                          **kwargs)
                probed += 1
                if str(resp.status_code) not in listed or resp.status_code >= 500:
                    wrong.append(f"{method.upper()} {path} with {what}: {resp.status_code} (listed: "
                                 f"{', '.join(sorted(listed))}) {resp.text[:160]}")
    assert probed > 200
    assert not wrong, "\n".join(wrong)
