"""Kazi's HTTP API (FastAPI): documents, the caller's tasks, the program and the users, under ``/api/v1``.

Rules every route follows, so clients can rely on them without reading each route:

* **Authenticated** (:mod:`kazi.service.auth`): HTTP Basic, a bearer token or the web app's session cookie;
  401 otherwise. Only ``POST /api/v1/login``, ``/healthz`` and the documentation are open. Password checks
  are throttled per account and per client address: 429 with ``Retry-After`` on any route a password
  reaches (every authenticated route, through Basic, and the login).
* **Input checked before any route reads it** (:mod:`kazi.server.guard`): a body only after authentication,
  within the size limits (413), as JSON (415), strict and without NUL or lone surrogates anywhere (422);
  writes with the session cookie from the server's own origin only (403).
* **Confined to the caller's scope**: every store call passes the caller, so a document or task outside
  their place is a 404 with the same words as a missing one (never a 403, which would say it exists).
* **JSON errors**: ``{"error": {"status", "message", "field"?, "problems"?}}`` for every failure, unknown
  routes and bad parameters included; a bug gives a 500 with no stack trace (the trace goes to the log).
* **Read-your-writes**: a write returns once it is committed; the next ``GET /api/v1/tasks`` of the same
  user first brings that user's tasks up to date (``TaskService.refresh_user``), so writes stay fast and a
  user never sees tasks older than their own last write. Other users' tasks follow through the background
  worker.

Handlers are plain ``def`` functions where they call the store or the engine: FastAPI runs them in its
thread pool, so a slow Argon2 check or a recompute never blocks the event loop.

This module is the app factory (:func:`create_app`): it joins the routes, one module per area (``*_api.py``),
built on the request plumbing they share (:mod:`kazi.server.deps`: errors, the application's state, the
authentication dependencies). Imports run one way: the factory imports the route modules, they import
``deps``, and nothing imports the factory.
"""

import dataclasses
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from kazi import web
from kazi.program.limits import ProgramLimits
from kazi.server.app_api import app_routers
from kazi.server.deps import ApiContext, errors, install_error_handlers
from kazi.server.documents_api import doc_routes
from kazi.server.guard import RequestGuard, api_routes, document_answers
from kazi.server.interactions_api import interaction_routes
from kazi.server.limits import InputSettings
from kazi.server.meta_api import meta_routes
from kazi.server.program_api import program_routes
from kazi.server.session_api import session_routes
from kazi.server.sms_api import sms_routes
from kazi.server.supervision_api import supervision_routes
from kazi.server.tasks_api import task_routes
from kazi.server.users_api import user_routes
from kazi.service.auth import Authenticator, AuthSettings
from kazi.service.tasks import TaskService
from kazi.service.worker import BackgroundWorker
from kazi.store import Store, open_store
from kazi.store.interactions import InteractionLimits


def create_app(
    store_url: str | None = None, *, now: int | None = None, service: TaskService | None = None,
    store: Store | None = None, program_dir: Path | None = None,
    workers: int = 0, background_interval_s: float | None = None, basic_ttl_s: float | None = None,
    others_to_worker: bool | None = None, interaction_limits: InteractionLimits | None = None,
    auth_settings: AuthSettings | None = None, auth_clock: Callable[[], int] | None = None,
    limits: ProgramLimits | None = None,
    inputs: InputSettings | None = None,
) -> FastAPI:
    """The API application.

    ``store_url`` opens a store (default: the embedded SQLite file) unless ``store`` or ``service`` gives one;
    ``now`` (epoch ms) freezes the server's clock (tests, demos, replaying a past day); ``program_dir`` loads
    a program before serving, as a new version only when its files differ from the active version's (a
    restart with the same folder recomputes nothing); ``background_interval_s`` runs the recompute worker
    while the app is up (what ``kazi serve --compute thread`` does; tests drive the service themselves).
    ``others_to_worker`` (default: when ``background_interval_s`` is given) says that a worker, this app's or
    another process's, keeps everyone's tasks up to date, so a read computes only the caller's own writes
    (``TaskService.refresh_user``). ``interaction_limits`` caps what the interaction routes store (default:
    :meth:`InteractionLimits.from_env`). ``auth_settings`` are the authentication limits (default: from the
    ``KAZI_...`` environment, :meth:`AuthSettings.from_env`; ``basic_ttl_s`` overrides theirs); ``auth_clock``
    (epoch ms) times sessions and failed logins (tests; never the frozen ``now``, which would make a wait
    last forever).
    ``limits``: what program code may cost (default: the ``KAZI_PROGRAM_...`` environment,
    :meth:`ProgramLimits.from_env`).
    ``inputs`` are the limits on what clients send (default: from the environment,
    :meth:`InputSettings.from_env`), applied by :mod:`kazi.server.guard`. The app closes only a store it opened.
    """
    owns_store = False
    if store is None and service is not None:
        found = getattr(service, "store", None)
        if not isinstance(found, Store):
            raise TypeError("create_app(service=...) needs store= too: the service does not expose its store")
        store = found
    if store is None:
        store = open_store(store_url)
        owns_store = True
    owns_service = service is None
    if service is None:
        clock: Callable[[], int] | None = (lambda: now) if now is not None else None
        service = TaskService(store, clock=clock, workers=workers, limits=limits)
    if others_to_worker is None:
        others_to_worker = bool(background_interval_s)
    if others_to_worker:
        service.others_to_worker = True
    if program_dir is not None:
        service.load_program(Path(program_dir), if_changed=True)
    settings = auth_settings if auth_settings is not None else AuthSettings.from_env()
    if basic_ttl_s is not None:
        settings = dataclasses.replace(settings, basic_ttl_s=basic_ttl_s)
    auth = (Authenticator(store, settings) if auth_clock is None
            else Authenticator(store, settings, clock=auth_clock))
    ctx = ApiContext(store=store, service=service, auth=auth,
                     interaction_limits=interaction_limits or InteractionLimits.from_env())

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        def maintenance() -> None:
            ctx.auth.housekeeping()
            ctx.store.analyze()

        worker = (BackgroundWorker(ctx.service, background_interval_s, maintenance=maintenance)
                  if background_interval_s else None)
        if worker is not None:
            worker.start()
        ctx.worker = worker
        try:
            yield
        finally:
            ctx.worker = None
            if worker is not None:
                worker.stop()
            if owns_service:
                ctx.service.interrupt()  # a read still computing (its client gone) must not hold the shutdown
                ctx.service.close()
            if owns_store:
                ctx.store.close()

    app = FastAPI(
        title="Kazi", version="1", lifespan=lifespan,
        summary="CHT-compatible tasks for every user, offline CHWs and online supervisors alike",
        description="Authenticate with HTTP Basic, a bearer token (`kazi users token NAME`) or the session "
                    "cookie `POST /api/v1/login` sets. Every call is confined to the caller's place: what is "
                    "outside it is a 404. Errors are `{\"error\": {\"status\", \"message\", \"field\"?, "
                    "\"problems\"?}}`. Guide with curl examples: docs/api.md.",
    )
    app.state.kazi = ctx
    install_error_handlers(app)
    routers = (session_routes, doc_routes, task_routes, program_routes, user_routes, meta_routes, *app_routers,
               interaction_routes, sms_routes, supervision_routes)
    document_answers(routers, errors)
    for router in routers:
        app.include_router(router)
    web.mount(app)  # the web app at /app/ (kazi/web)
    app.add_middleware(RequestGuard, settings=inputs if inputs is not None else InputSettings.from_env(),
                       routes=api_routes(routers))
    return app
