"""The portal application and its server: ``create_app`` assembles the routers of each
audience (a ministry's link in ``ministry``, the secretariat's pages in ``dashboard``, the JSON
in ``api``, the home page and /healthz here) with the error pages and the security
middleware; ``serve_portal_in_thread`` runs it with uvicorn next to the service.
Server-rendered (Jinja2, autoescaped); no JavaScript and no external assets are needed.
"""

from __future__ import annotations

import socket
import threading
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from mou.accounts.roles import NotAllowed
from mou.errors import Refused
from mou.portal import (
    accounts,
    api,
    contacts_page,
    cycle_actions,
    dashboard,
    ministry,
    public,
    signin,
)
from mou.portal.security import BodyTimeout, ProxiedClient, SecurityMiddleware, TrustedProxies
from mou.portal.shared import IngestMode, Portal, PortalError
from mou.settings import Settings


def create_app(
    settings: Settings, *, ingest: IngestMode = "auto", render_reports: bool = True
) -> FastAPI:
    """The portal application. ``ingest``: "auto" (Prefect trigger when an API is configured,
    else a thread here), "thread" or "prefect" to force one. ``render_reports``: render the
    reports a dashboard action made stale in a background thread (else the sweep does)."""
    portal = Portal(settings, ingest)
    renders = cycle_actions.ReportRenders(settings, enabled=render_reports)

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # type: ignore[no-untyped-def]
        yield
        await run_in_threadpool(portal.inline.close)
        await run_in_threadpool(renders.close)

    app = FastAPI(
        title="MoU reporting portal",
        version="1",
        description=(
            "JSON endpoints of the CMS national reporting portal. Ministry endpoints take the "
            "personal link token of a state and cycle; cycle endpoints need a named "
            "Secretariat account: the session of a browser signed in at /dashboard/login, or "
            "`Authorization: Bearer <token>` with a token from `POST /api/session` (name and "
            "password), ended by `DELETE /api/session`."
        ),
        docs_url=None,  # Swagger UI loads from a CDN: not served
        redoc_url=None,
        openapi_url="/openapi.json",
        lifespan=lifespan,
    )
    app.state.portal = portal
    app.state.renders = renders
    static = settings.templates_dir / "portal" / "static"
    app.mount("/static", StaticFiles(directory=static), name="static")

    @app.exception_handler(PortalError)
    async def portal_error(request: Request, exc: PortalError) -> Response:
        return portal.error_response(request, exc)

    @app.exception_handler(signin.SignInRequired)
    async def sign_in_first(request: Request, exc: signin.SignInRequired) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse(
                {"detail": "sign in first"},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        return RedirectResponse(f"/dashboard/login?lang={portal.lang_of(request)}", 303)

    @app.exception_handler(signin.TooManyAttempts)
    async def too_many(request: Request, exc: signin.TooManyAttempts) -> Response:
        return JSONResponse(
            {"detail": "too many failed attempts; try again later"},
            status_code=429,
            headers={"Retry-After": str(exc.wait)},
        )

    @app.exception_handler(NotAllowed)
    async def not_allowed(request: Request, exc: NotAllowed) -> Response:
        # Raised by a route's dependency (signin.officer, signin.admin) or by the core's own
        # check of the actor (Actor.require), whichever comes first.
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": str(exc)}, status_code=403)
        return signin.not_allowed_page(portal, request, exc)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse(
                {"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers
            )
        key = {404: "not_found", 405: "bad_request"}.get(exc.status_code, "bad_request")
        return portal.error_response(request, PortalError(exc.status_code, key))

    @app.exception_handler(BodyTimeout)
    async def body_timeout(request: Request, exc: BodyTimeout) -> Response:
        # An upload says so itself (ministry); any other body is a small form.
        return portal.error_response(request, PortalError(408, "bad_request"))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": "invalid request"}, status_code=422)
        return portal.error_response(request, PortalError(404, "not_found"))

    # The order of the routers is the order of the paths in /openapi.json.
    app.include_router(_everyone(portal))
    app.include_router(ministry.router(portal))
    app.include_router(signin.router(portal))
    app.include_router(dashboard.router(portal))
    app.include_router(cycle_actions.router(portal, renders))
    app.include_router(public.router(portal))
    app.include_router(accounts.router(portal))
    app.include_router(contacts_page.router(portal))
    app.include_router(api.router(portal))
    app.add_middleware(
        SecurityMiddleware,
        error_page=portal.crash_page,
        published_https=settings.portal_base_url.startswith("https://"),
        body_pause=settings.portal_body_timeout_seconds,
        body_total=settings.portal_body_total_seconds,
    )
    # Added last, so outermost: the headers and the throttle see the forwarded client.
    app.add_middleware(ProxiedClient, proxies=TrustedProxies(settings.portal_trusted_proxies))
    return app


def _everyone(portal: Portal) -> APIRouter:
    """The home page and the liveness check."""
    routes = APIRouter()

    @routes.get("/", include_in_schema=False)
    def home(request: Request) -> Response:
        return portal.render(request, "home.html", portal.lang_of(request))

    @routes.get("/healthz", tags=["service"], summary="Liveness of the portal")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    return routes


# --- Running next to the Prefect server ---------------------------------------------------


@dataclass
class PortalServer:
    """A running portal; call it (or ``stop()``) to stop it."""

    host: str
    port: int
    server: Any
    thread: threading.Thread

    @property
    def url(self) -> str:
        """Where the portal answers (an IPv6 host in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def stop(self, timeout: float = 10.0) -> None:
        """Ask uvicorn to finish and wait up to ``timeout`` seconds for its thread."""
        self.server.should_exit = True
        self.thread.join(timeout)

    def __call__(self) -> None:
        self.stop()


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise Refused(
            f"the portal cannot listen on {host}:{port} ({exc.strerror}); set MOU_PORTAL_PORT "
            "to a free port"
        ) from exc
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def serve_portal_in_thread(
    settings: Settings,
    *,
    ingest: IngestMode = "auto",
    app: FastAPI | None = None,
    ready_timeout: float = 15.0,
) -> PortalServer:
    """Start the portal with uvicorn in a daemon thread on ``portal_host:portal_port`` (port 0:
    one the OS chooses, see ``.port``); returns once it accepts connections. Call the result to
    stop it."""
    import uvicorn

    sock = _listen(settings.portal_host, settings.portal_port)
    port = sock.getsockname()[1]
    if settings.portal_port != port:  # port 0: links shown on the dashboard use the real one
        settings = settings.model_copy(update={"portal_port": port})
    config = uvicorn.Config(
        app or create_app(settings, ingest=ingest),
        log_level="warning",
        access_log=False,
        server_header=False,
        lifespan="on",
        timeout_graceful_shutdown=5,
        # X-Forwarded-For is read by ProxiedClient, from MOU_PORTAL_TRUSTED_PROXIES only;
        # uvicorn's default trusts 127.0.0.1, so any local process could name its address.
        proxy_headers=False,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="mou-portal", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + ready_timeout
    while not server.started:
        if not thread.is_alive():
            raise Refused("the portal stopped while starting (see the log above)")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise Refused(f"the portal did not start within {ready_timeout:.0f} s")
        time.sleep(0.02)
    return PortalServer(settings.portal_host, port, server, thread)
