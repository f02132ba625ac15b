"""What is served outside ``/api/v1``: the liveness check (``/healthz``) and ``/``, which sends a browser
to the web app."""

from fastapi import APIRouter
from fastapi.responses import RedirectResponse

from kazi.server.deps import Ctx
from kazi.server.schemas import Health

meta_routes = APIRouter(tags=["server"])


@meta_routes.get("/healthz", summary="Liveness (no authentication)", response_model=Health)
def health(c: Ctx) -> Health:
    return Health(status="ok", program_loaded=c.service.program() is not None)


@meta_routes.get("/", include_in_schema=False)
def root() -> RedirectResponse:
    return RedirectResponse("/app/")
