"""Kazi's web app: the Tasks tab for CHWs and supervisors, served by the API at ``/app/``.

The app is plain HTML, CSS and JavaScript modules in ``kazi/web/static/`` with no build step, so a server
needs nothing but Python to ship it and a cheap phone downloads a few tens of kilobytes. Everything the app
shows comes from the JSON API (``/api/v1``); this module only serves the files.

Serving rules that matter for an offline-first app:

* ``/app/sw.js`` (the service worker) carries a hash of every static file, written in when served: any
  change to the app is a byte-different worker, which the browser installs, re-caching the shell. Without
  it, a phone would keep running the shell it cached first;
* every file is served ``Cache-Control: no-cache`` (with an ETag): a phone that is online re-validates
  cheaply and never runs a stale mix of files; offline, the service worker's cache answers;
* files are gzipped when the browser accepts it (a third of the bytes on a slow connection); only the
  app's files: the API's own responses are the API's business;
* a strict Content-Security-Policy: the app loads nothing but its own files and talks to nothing but its
  own server, so an injected name or label could not run or send anything elsewhere;
* ``/app`` redirects to ``/app/`` (relative URLs in index.html resolve under the slash) and ``/`` to the app
  (``kazi.server.api``), because people type the server's address, not a path.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

from fastapi import FastAPI
from starlette.middleware.gzip import GZipMiddleware
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

STATIC_DIR = Path(__file__).resolve().parent / "static"
APP_PATH = "/app"
#: the placeholder in sw.js that the served worker has replaced by the files' hash
VERSION_MARK = "__KAZI_VERSION__"

#: what the app's pages may load and contact: their own origin only (SVG icons are inline markup)
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "manifest-src 'self'; worker-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
       "frame-ancestors 'none'")

#: media types the defaults may get wrong (a manifest must be served as one for the install prompt)
_TYPES = {".webmanifest": "application/manifest+json", ".js": "text/javascript; charset=utf-8",
          ".svg": "image/svg+xml", ".css": "text/css; charset=utf-8", ".html": "text/html; charset=utf-8"}


@lru_cache(maxsize=1)
def app_version() -> str:
    """A short hash of every static file: a new value whenever any file of the app changes."""
    digest = hashlib.sha256()
    for path in sorted(p for p in STATIC_DIR.rglob("*") if p.is_file()):
        digest.update(path.relative_to(STATIC_DIR).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


class _AppFiles(StaticFiles):
    """Static files the browser re-validates on each use (see the module's docstring)."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers["Cache-Control"] = "no-cache"
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        media = _TYPES.get(Path(path).suffix)
        if media is not None and response.status_code == 200:
            response.headers["Content-Type"] = media
        return response


def service_worker() -> Response:
    """``/app/sw.js`` with the app's version written in (the only file that is not served verbatim)."""
    text = (STATIC_DIR / "sw.js").read_text(encoding="utf-8").replace(VERSION_MARK, app_version())
    return Response(text, media_type="text/javascript; charset=utf-8", headers={"Cache-Control": "no-cache"})


def mount(app: FastAPI) -> None:
    """Serve the web app at ``/app/`` on ``app``."""
    app.add_api_route(f"{APP_PATH}/sw.js", service_worker, methods=["GET"], include_in_schema=False)
    app.mount(APP_PATH, GZipMiddleware(_AppFiles(directory=STATIC_DIR, html=True), minimum_size=512), name="webapp")
