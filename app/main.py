"""create_app(): lifespan (engine), routers, static files, and the one error mapping.

Errors: pages get an HTML error page, /api (and ?format=json) get {"detail": ...}. The read
services' domain errors (app/services/errors.py) become HTTP statuses here, once (STATUS); a
database that is down or not migrated is a 503 that says what to do, never a 500.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.openapi.utils import get_openapi
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy import text
from sqlalchemy.exc import OperationalError, ProgrammingError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as SATimeoutError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from app import __version__
from app.api.routes import alerts as api_alerts
from app.api.routes import hosts as api_hosts
from app.api.routes import ingest as api_ingest
from app.api.routes import simulation as api_simulation
from app.api.routes.ingest import INGEST_MAX_COMPRESSED
from app.config import Settings, get_settings
from app.db.maintenance import Maintenance
from app.db.session import make_engine, make_session_factory
from app.deps import SessionDep
from app.fleet.wire import PushBody
from app.schemas.simulation import MAX_BODY_BYTES
from app.services.errors import Conflict, Invalid, NotFound, ServiceError
from app.web import model_pages, pages
from app.web.templating import templates

log = logging.getLogger("slabscope.web")
# Pages run only their own static scripts (JSON data sits in non-executed script blocks);
# inline styles stay allowed: templates set indentation in style= and Plotly styles its charts.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'self'; "
       "form-action 'self'; frame-ancestors 'none'")
# /docs and /redoc: Swagger UI and ReDoc from static/vendor (scripts/vendor-docs.sh), started
# by FastAPI's inline script; no CDN.
DOCS_CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline'; "
            "style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
            "worker-src 'self' blob:; object-src 'none'; frame-ancestors 'none'")
STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
# The HTTP status of each domain error (a subclass takes its nearest listed base's).
STATUS: dict[type[ServiceError], int] = {NotFound: 404, Conflict: 409, Invalid: 422}


def status_of(err: ServiceError) -> int:
    """The HTTP status of a domain error: its class's, or its nearest base's in STATUS."""
    for cls in type(err).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    raise TypeError(f"{type(err).__name__} has no HTTP status in app.main.STATUS")


def _wants_json(request: Request) -> bool:
    return (request.url.path.startswith("/api/") or request.url.path == "/healthz"
            or request.query_params.get("format") in ("json", "csv"))


def _error(request: Request, status: int, detail: str) -> Response:
    if _wants_json(request):
        return JSONResponse({"detail": detail}, status_code=status)
    response: Response = templates.TemplateResponse(
        request, "error.html", {"status": status, "detail": detail}, status_code=status)
    return response


def _validation_detail(err: RequestValidationError) -> str:
    parts = []
    for e in err.errors():
        where = ".".join(str(x) for x in e.get("loc", ()) if x not in ("query", "path", "body"))
        parts.append(f"{where}: {e.get('msg', 'invalid')}" if where else e.get("msg", "invalid"))
    return "; ".join(parts) or "invalid request"


def openapi_with_push_schema(app: FastAPI) -> dict[str, Any]:
    """The app's OpenAPI document with the push body's schema (app.fleet.wire) among its
    components: the ingest route's requestBody refers to it (a raw, gzip body that FastAPI
    does not parse, so it would not find the model by itself)."""
    if app.openapi_schema:
        return app.openapi_schema
    doc = get_openapi(title=app.title, version=app.version, description=app.description,
                      routes=app.routes)
    push = PushBody.model_json_schema(by_alias=True,
                                      ref_template="#/components/schemas/{model}")
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    for name, sub in {**push.pop("$defs", {}), "PushBody": push}.items():
        if name in schemas and schemas[name] != sub:
            raise RuntimeError(f"two OpenAPI components are named {name!r}")
        schemas[name] = sub
    app.openapi_schema = doc
    return doc


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the web app for these settings (the environment's by default)."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings.database_url)
        app.state.engine = engine
        app.state.sessions = make_session_factory(engine)
        upkeep = Maintenance(app.state.sessions, settings.maintenance_interval_seconds,
                             settings.raw_retention_days)
        app.state.maintenance = upkeep
        upkeep.start()
        try:
            yield
        finally:
            # Off the event loop: stop() waits for a pass in progress.
            await run_in_threadpool(upkeep.stop)
            engine.dispose()

    app = FastAPI(title="slabscope", version=__version__, lifespan=lifespan,
                  docs_url=None, redoc_url=None,  # served below from static/vendor
                  description="Dying memory cgroups, slab caches and cgroup trees, host by "
                              "host and fleet-wide.")
    app.state.settings = settings
    app.openapi = lambda: openapi_with_push_schema(app)  # type: ignore[method-assign]

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        response = _error(request, exc.status_code, str(exc.detail))
        response.headers.update(exc.headers or {})  # Retry-After of a busy 503
        return response

    @app.exception_handler(ServiceError)
    async def service_error(request: Request, exc: ServiceError) -> Response:
        return _error(request, status_of(exc), str(exc))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        return _error(request, 422, _validation_detail(exc))

    @app.exception_handler(SQLAlchemyError)
    async def database_error(request: Request, exc: SQLAlchemyError) -> Response:
        log.error("database error on %s: %s", request.url.path, str(exc).splitlines()[0])
        if isinstance(exc, SATimeoutError) or "database is locked" in str(exc):
            # Busy, not down: every pooled connection in use, or SQLite's one writer.
            response = _error(request, 503, "the database is busy (every connection in use "
                                            "or the file locked by a writer); try again")
            response.headers["Retry-After"] = "5"
            return response
        if isinstance(exc, OperationalError | ProgrammingError):
            return _error(request, 503, "the database is unavailable or not migrated: "
                                        "check SLABSCOPE_DATABASE_URL and run `slabscope migrate`")
        return _error(request, 503, "database error; see the server log")

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error on %s", request.url.path)
        return _error(request, 500, "internal error; see the server log")

    @app.middleware("http")
    async def body_limit(request: Request, call_next: Any) -> Response:
        # No stored name holds a NUL (the wire schema refuses it) and PostgreSQL text cannot:
        # a NUL in the path names nothing (404), in the query string it is invalid (422).
        if "\x00" in request.url.path:
            return _error(request, 404, "no such page: a path cannot hold a NUL character")
        if "%00" in request.url.query.lower() or "\x00" in request.url.query:
            return _error(request, 422, "a query parameter cannot hold a NUL character")
        # Bounded before anything reads the body: a clear 422 that says the limit.
        if request.method in ("POST", "PUT", "PATCH"):
            ingest = request.url.path == "/api/v1/ingest"
            limit, status = (INGEST_MAX_COMPRESSED, 413) if ingest else (MAX_BODY_BYTES, 422)
            length = request.headers.get("content-length")
            if length is None or not length.isdigit():
                return _error(request, 411 if ingest else 422, "a request body needs a "
                              f"Content-Length; the limit is {limit} bytes")
            if int(length) > limit:
                return _error(request, status, f"request body of {int(length)} bytes is over "
                                               f"the limit of {limit} bytes")
        response: Response = await call_next(request)
        return response

    @app.middleware("http")
    async def static_cache(request: Request, call_next: Any) -> Response:
        # A fingerprinted static URL (templating.asset: `?v=` of its content) never changes:
        # cached for a year without revalidation; other static files for 5 minutes.
        response: Response = await call_next(request)
        if request.url.path.startswith("/static/") and response.status_code == 200:
            response.headers["Cache-Control"] = (
                "public, max-age=31536000, immutable" if request.query_params.get("v")
                else "public, max-age=300")
        return response

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Any) -> Response:
        # Added last, so outermost: early answers of body_limit get the headers too.
        response: Response = await call_next(request)
        docs = request.url.path in ("/docs", "/redoc", "/docs/oauth2-redirect")
        response.headers.setdefault("Content-Security-Policy", DOCS_CSP if docs else CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json", title="slabscope API",
            oauth2_redirect_url="/docs/oauth2-redirect",
            swagger_js_url="/static/vendor/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url="/static/vendor/swagger-ui/swagger-ui.css",
            swagger_favicon_url="/static/vendor/swagger-ui/favicon-32x32.png")

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        return get_redoc_html(openapi_url="/openapi.json", title="slabscope API",
                              redoc_js_url="/static/vendor/redoc/redoc.standalone.js",
                              redoc_favicon_url="/static/vendor/swagger-ui/favicon-32x32.png",
                              with_google_fonts=False)

    @app.get("/healthz", include_in_schema=False)
    def healthz(session: SessionDep) -> dict[str, str]:
        session.execute(text("SELECT 1"))
        return {"status": "ok", "database": "ok"}

    @app.get("/static/vendor/plotly.min.js", include_in_schema=False)
    def plotly_js() -> FileResponse:
        # Served from the installed plotly package: no CDN (fleet hosts are often offline).
        path = resources.files("plotly") / "package_data" / "plotly.min.js"
        return FileResponse(str(path), media_type="text/javascript",
                            headers={"Cache-Control": "public, max-age=86400"})

    # Pages, JSON and the 4.8 MB plotly bundle go compressed to a client that takes gzip
    # (plotly.min.js: about 1.4 MB on the wire).
    app.add_middleware(GZipMiddleware, minimum_size=1024, compresslevel=6)
    app.include_router(api_hosts.router)
    app.include_router(api_ingest.router)
    app.include_router(api_alerts.router)
    app.include_router(api_simulation.router)
    app.include_router(pages.router)
    app.include_router(model_pages.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
