"""The portal: a ministry's upload page behind its personal link, the secretariat's dashboard,
and JSON endpoints described at /openapi.json. Server-rendered (Jinja2, autoescaped); no
JavaScript and no external assets are needed.

Every upload goes through the same intake as the drop folder (``receive_file``: raw bytes and
row committed, event emitted); it is then ingested by ``process_submission`` in a small thread
pool here (always under `mou serve`), or by the Prefect deployment trigger when the portal runs
apart from the service with an API configured.
"""

from __future__ import annotations

import datetime as dt
import socket
import threading
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, HTTPException, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException, MultiPartParser

from mou.cycle.context import template_for
from mou.cycle.links import ExpiredLink, InvalidLink, portal_link, verify_portal_token
from mou.cycle.standing import cycle_status
from mou.errors import Refused
from mou.i18n.languages import LANGUAGE_NAMES, pick
from mou.i18n.texts import PortalTexts
from mou.portal import pages
from mou.portal.security import (
    CSRF_COOKIE,
    CSRF_FIELD,
    SESSION_COOKIE,
    SESSION_SECONDS,
    BodyTooLarge,
    LoginThrottle,
    SecurityMiddleware,
    content_disposition,
    csrf_token,
    csrf_valid,
    limited_stream,
    make_session,
    new_nonce,
    read_session,
    sniff_spreadsheet,
    token_matches,
    valid_nonce,
)
from mou.service import events
from mou.service.protocol import (
    INGEST_INLINE,
    INGEST_QUEUED,
    InlineIngest,
    receive_file,
    reports_folder,
)
from mou.settings import Settings
from mou.store import files as filestore
from mou.store import models as m
from mou.store.database import session_scope
from mou.workbook import XLSX_CONTENT_TYPE

FORM_OVERHEAD = 64 * 1024  # multipart boundaries, part headers and the CSRF field
MAX_ID = 2**31 - 1
IngestMode = Literal["auto", "thread", "prefect"]
# Module level: FastAPI resolves the (postponed) annotations of dependencies in module globals.
bearer = HTTPBearer(auto_error=False, description="The secretariat token")
session_cookie = APIKeyCookie(
    name=SESSION_COOKIE, auto_error=False, description="Set by signing in at /dashboard/login"
)


class PortalError(Exception):
    """An answer that is a page (or JSON under /api): status, text keys, parameters."""

    def __init__(
        self,
        status: int,
        key: str,
        *,
        lang: str | None = None,
        multilingual: bool = False,
        params: dict[str, Any] | None = None,
        extra: list[str] | None = None,
        back: str | None = None,
    ) -> None:
        super().__init__(key)
        self.status = status
        self.key = key
        self.lang = lang
        self.multilingual = multilingual
        self.params = params or {}
        self.extra = extra or []
        self.back = back


# --- JSON shapes (OpenAPI) --------------------------------------------------------------


class IssueOut(BaseModel):
    severity: Literal["error", "warning"]
    code: str
    message: str
    sheet: str | None = None
    cell: str | None = None
    field: str | None = None


class SubmissionOut(BaseModel):
    id: int
    status: Literal["received", "accepted", "rejected"]
    decided: bool
    current: bool
    version: int | None
    filename: str
    channel: str
    received_at: dt.datetime
    decided_at: dt.datetime | None
    superseded_by: int | None
    language: str | None
    errors: int
    warnings: int
    issues: list[IssueOut]


class LinkOut(BaseModel):
    instrument: str
    instrument_name: str
    cycle_id: int
    period: str
    deadline: dt.date
    state: str
    state_name: str
    language: str
    reference: str
    link_expires: dt.date


class LatestOut(BaseModel):
    id: int
    version: int | None
    status: str
    received: str | None
    decided: str | None
    errors: int
    warnings: int


class StateStatusOut(BaseModel):
    state: str
    name: str
    reference: str
    requested: str | None
    request_email: str | None
    reminders: list[str]
    submissions: int
    latest: LatestOut | None
    outcome: Literal["accepted", "refused", "pending", "not received"]
    on_time: bool | None


class CycleStatusOut(BaseModel):
    cycle: int
    instrument: str
    period: str
    deadline: str
    status: str
    states: list[StateStatusOut]
    summary: dict[str, int]


class CycleOut(BaseModel):
    id: int
    instrument: str
    period: str
    deadline: dt.date
    status: str
    states: int
    summary: dict[str, int]


def _submission_out(view: pages.SubmissionView) -> SubmissionOut:
    return SubmissionOut(
        id=view.id,
        status=view.status,  # type: ignore[arg-type]
        decided=view.decided,
        current=view.current,
        version=view.version,
        filename=view.filename,
        channel=view.channel,
        received_at=view.received_at,
        decided_at=view.decided_at,
        superseded_by=view.superseded_by,
        language=view.language,
        errors=len(view.errors),
        warnings=len(view.warnings),
        issues=[
            IssueOut(
                severity="error" if i.severity == "error" else "warning",
                code=i.code,
                message=i.message,
                sheet=i.sheet,
                cell=i.cell,
                field=i.field,
            )
            for i in view.issues
        ],
    )


# --- The portal ---------------------------------------------------------------------------


class Portal:
    """State shared by the routes: settings, templates, the inline ingest, the login throttle."""

    def __init__(self, settings: Settings, ingest: IngestMode) -> None:
        self.settings = settings
        self.ingest = ingest
        self.env = Environment(
            loader=FileSystemLoader(settings.templates_dir / "portal"),
            autoescape=select_autoescape(default=True, default_for_string=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.inline = InlineIngest(settings)
        self.throttle = LoginThrottle()

    # language and texts
    @property
    def secretariat_token(self) -> str:
        return self.settings.secretariat_token

    def texts(self, lang: str) -> PortalTexts:
        return PortalTexts(self.settings.forms_dir, lang)

    def lang_of(self, request: Request, default: str = "en") -> str:
        wanted = request.query_params.get("lang")
        if wanted in self.settings.languages:
            return str(wanted)
        return default if default in self.settings.languages else "en"

    def language_links(self, request: Request, lang: str) -> list[tuple[str, str, str, bool]]:
        return [
            (
                code,
                LANGUAGE_NAMES.get(code, code),
                f"{request.url.path}?lang={code}",
                code == lang,
            )
            for code in self.settings.languages
        ]

    def https(self, request: Request) -> bool:
        base = self.settings.portal_base_url
        return request.url.scheme == "https" or base.startswith("https://")

    # rendering
    def render(
        self,
        request: Request | None,
        template: str,
        lang: str,
        *,
        status: int = 200,
        switch: bool = True,
        **context: Any,
    ) -> HTMLResponse:
        texts = self.texts(lang)
        html = self.env.get_template(template).render(
            lang=lang,
            t=texts,
            languages=self.language_links(request, lang) if request is not None and switch else [],
            contact=self.settings.mail_from,
            fmt_date=lambda day: pages.fmt_date(day, lang),
            fmt_moment=lambda moment: pages.fmt_moment(moment, lang),
            name=lambda names: pick(names, lang),
            language_names=LANGUAGE_NAMES,
            **context,
        )
        return HTMLResponse(html, status_code=status)

    def error_response(self, request: Request | None, error: PortalError) -> Response:
        path = request.url.path if request is not None else ""
        if path.startswith("/api/"):
            return JSONResponse(
                {"detail": self.texts("en").get(f"{error.key}_heading")}, status_code=error.status
            )
        lang = error.lang or (self.lang_of(request) if request is not None else "en")
        others = [code for code in self.settings.languages if code != lang]
        response = self.render(
            request,
            "error.html",
            lang,
            status=error.status,
            switch=request is not None and request.method == "GET",
            key=error.key,
            params=error.params,
            extra=error.extra,
            back=error.back,
            others=[(code, self.texts(code)) for code in others] if error.multilingual else [],
        )
        if error.status == 413:
            response.headers["connection"] = "close"
        return response

    def crash_page(self, scope: dict[str, Any]) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """The 500 answer of the security middleware (no request object, no traceback)."""
        if str(scope.get("path", "")).startswith("/api/"):
            body = b'{"detail":"internal error"}'
            headers = [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ]
            return 500, headers, body
        response = self.error_response(None, PortalError(500, "error", multilingual=True))
        body = bytes(response.body)
        headers = [
            (b"content-type", b"text/html; charset=utf-8"),
            (b"content-length", str(len(body)).encode()),
        ]
        return 500, headers, body

    # CSRF
    def csrf(self, request: Request, scope: str) -> tuple[str, str | None]:
        """The form's token, and the nonce to set as cookie when the browser has none."""
        nonce = request.cookies.get(CSRF_COOKIE)
        fresh = None
        if not valid_nonce(nonce):
            nonce = fresh = new_nonce()
        return csrf_token(self.settings.secret, scope, str(nonce)), fresh

    def set_csrf_cookie(self, response: Response, request: Request, nonce: str | None) -> None:
        if nonce:
            # Lax, not Strict: the link is opened from a mail client (a cross-site navigation);
            # a Strict cookie would not come back and each new tab would replace the nonce.
            response.set_cookie(
                CSRF_COOKIE,
                nonce,
                httponly=True,
                samesite="lax",
                secure=self.https(request),
                path="/",
            )

    def check_csrf(self, request: Request, scope: str, submitted: Any, lang: str) -> None:
        value = submitted if isinstance(submitted, str) else None
        if not csrf_valid(self.settings.secret, scope, request.cookies.get(CSRF_COOKIE), value):
            raise PortalError(403, "csrf", lang=lang)

    # links
    def resolve(self, token: str, lang: str | None = None) -> pages.LinkContext:
        try:
            verified = verify_portal_token(self.settings.secret, token)
        except InvalidLink:
            raise PortalError(404, "invalid_link", lang=lang, multilingual=True) from None
        except ExpiredLink:
            raise PortalError(403, "expired_link", lang=lang, multilingual=True) from None
        with session_scope(self.settings) as session:
            link = pages.link_context(
                session, token, verified.cycle_id, verified.state, verified.expires
            )
        if link is None:
            raise PortalError(404, "invalid_link", lang=lang, multilingual=True)
        if link.cycle_status != "open":
            raise PortalError(403, "expired_link", lang=lang, multilingual=True)
        return link

    # ingest
    def ingest_here(self) -> bool:
        if self.ingest == "thread":
            return True
        if self.ingest == "prefect":
            return False
        return not events.api_configured()

    def start_ingest(self, submission_id: int) -> None:
        # A failure is logged there and left to the sweep; the page keeps saying "being checked".
        self.inline.submit(submission_id)

    # dashboard
    def dashboard_session(self, request: Request) -> str | None:
        if not self.secretariat_token:
            raise PortalError(404, "not_found", lang=self.lang_of(request))
        return read_session(
            self.settings.secret, self.secretariat_token, request.cookies.get(SESSION_COOKIE)
        )


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def create_app(settings: Settings, *, ingest: IngestMode = "auto") -> FastAPI:
    """The portal application. ``ingest``: "auto" (Prefect trigger when an API is configured,
    else a thread here), "thread" or "prefect" to force one."""
    portal = Portal(settings, ingest)

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # type: ignore[no-untyped-def]
        yield
        await run_in_threadpool(portal.inline.close)

    app = FastAPI(
        title="MoU reporting portal",
        version="1",
        description=(
            "JSON endpoints of the CMS national reporting portal. Ministry endpoints take the "
            "personal link token of a state and cycle; cycle endpoints need the secretariat "
            "session (sign in at /dashboard/login) or `Authorization: Bearer <token>`."
        ),
        docs_url=None,  # Swagger UI loads from a CDN: not served
        redoc_url=None,
        openapi_url="/openapi.json",
        lifespan=lifespan,
    )
    app.state.portal = portal
    static = settings.templates_dir / "portal" / "static"
    app.mount("/static", StaticFiles(directory=static), name="static")

    @app.exception_handler(PortalError)
    async def portal_error(request: Request, exc: PortalError) -> Response:
        return portal.error_response(request, exc)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse(
                {"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers
            )
        key = {404: "not_found", 405: "bad_request"}.get(exc.status_code, "bad_request")
        return portal.error_response(request, PortalError(exc.status_code, key))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": "invalid request"}, status_code=422)
        return portal.error_response(request, PortalError(404, "not_found"))

    # --- pages for everyone -----------------------------------------------------------

    @app.get("/", include_in_schema=False)
    def home(request: Request) -> Response:
        return portal.render(request, "home.html", portal.lang_of(request))

    @app.get("/healthz", tags=["service"], summary="Liveness of the portal")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    # --- a ministry's link ------------------------------------------------------------

    def upload_page_response(
        request: Request, link: pages.LinkContext, lang: str, status: int = 200
    ) -> Response:
        token = link.token
        with session_scope(settings) as session:
            versions = [pages.submission_view(s) for s in pages.link_submissions(session, link)]
        csrf, fresh = portal.csrf(request, f"link:{token}")
        template_lang = lang if lang in link.instrument_languages else link.request_language
        response = portal.render(
            request,
            "upload.html",
            lang,
            status=status,
            link=link,
            state_name=pick(link.state_names, lang),
            versions=versions,
            current=next((v for v in versions if v.current), None),
            csrf=csrf,
            csrf_field=CSRF_FIELD,
            limit_mb=max(1, settings.max_upload_bytes // 2**20),
            page_url=f"/r/{token}?lang={lang}",
            upload_url=f"/r/{token}/upload?lang={lang}",
            template_url=f"/r/{token}/template?lang={template_lang}",
            template_language=LANGUAGE_NAMES.get(template_lang, template_lang),
        )
        portal.set_csrf_cookie(response, request, fresh)
        return response

    @app.get("/r/{token}", include_in_schema=False)
    def upload_page(request: Request, token: str) -> Response:
        lang = portal.lang_of(request)
        link = portal.resolve(token, lang if "lang" in request.query_params else None)
        lang = portal.lang_of(request, link.request_language)
        return upload_page_response(request, link, lang)

    @app.get("/r/{token}/template", include_in_schema=False)
    def template_download(request: Request, token: str) -> Response:
        link = portal.resolve(token)
        lang = portal.lang_of(request, link.request_language)
        if lang not in link.instrument_languages:
            lang = link.request_language
        try:
            with session_scope(settings) as session:
                data = template_for(session, settings, link.cycle_id, link.state, lang)
        except Refused:
            raise PortalError(404, "not_found", lang=lang) from None
        filename = f"{link.instrument}-{link.period}-{link.state}-{lang}.xlsx"
        return Response(
            data,
            media_type=XLSX_CONTENT_TYPE,
            headers={"content-disposition": content_disposition(filename, "template.xlsx")},
        )

    @app.post("/r/{token}/upload", include_in_schema=False)
    async def upload(request: Request, token: str) -> Response:
        link = await run_in_threadpool(portal.resolve, token)
        lang = portal.lang_of(request, link.request_language)
        back = f"/r/{token}?lang={lang}"
        limit = settings.max_upload_bytes
        limit_mb = max(1, limit // 2**20)
        too_large = PortalError(413, "too_large", lang=lang, params={"limit": limit_mb}, back=back)
        declared = request.headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                raise PortalError(400, "bad_request", lang=lang, back=back)
            if int(declared) > limit + FORM_OVERHEAD:
                raise too_large  # answered before a byte of the body is read
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            raise PortalError(400, "bad_request", lang=lang, back=back)
        parser = MultiPartParser(
            request.headers,
            limited_stream(request.stream(), limit + FORM_OVERHEAD),
            max_files=1,
            max_fields=4,
            max_part_size=16 * 1024,
        )
        try:
            form = await parser.parse()
        except BodyTooLarge:
            raise too_large from None
        except MultiPartException:
            raise PortalError(400, "bad_request", lang=lang, back=back) from None
        try:
            portal.check_csrf(request, f"link:{token}", form.get(CSRF_FIELD), lang)
            workbook = form.get("workbook")
            if not isinstance(workbook, UploadFile):
                raise PortalError(400, "no_file", lang=lang, back=back)
            data = await workbook.read(limit + 1)
            filename = workbook.filename or ""
        finally:
            await form.close()
        if len(data) > limit:
            raise too_large
        sniffed = sniff_spreadsheet(filename, data[:8])
        if not sniffed.ok:
            if sniffed.reason == "no_file":
                raise PortalError(400, "no_file", lang=lang, back=back)
            raise PortalError(
                415,
                "unsupported",
                lang=lang,
                extra=["howto_excel", "howto_libreoffice", "howto_template"],
                back=back,
            )
        submission_id, _ = await run_in_threadpool(
            receive_file,
            settings,
            data,
            filename=filename,
            state=link.state,
            cycle_id=link.cycle_id,
            channel="portal",
            ingest=INGEST_INLINE if portal.ingest_here() else INGEST_QUEUED,
        )

        def visible_status() -> str | None:
            with session_scope(settings) as session:
                found = pages.link_submission(session, link, submission_id)
                return found.status if found else None

        status = await run_in_threadpool(visible_status)
        if status is None:  # the same bytes were received before, for another request
            raise PortalError(409, "duplicate", lang=lang, back=back)
        if status == "received" and portal.ingest_here():
            portal.start_ingest(submission_id)
        return RedirectResponse(f"/r/{token}/submissions/{submission_id}?lang={lang}", 303)

    @app.get("/r/{token}/submissions/{submission_id}", include_in_schema=False)
    def submission_page(
        request: Request, token: str, submission_id: int = Path(ge=1, le=MAX_ID)
    ) -> Response:
        link = portal.resolve(token)
        lang = portal.lang_of(request, link.request_language)
        with session_scope(settings) as session:
            found = pages.link_submission(session, link, submission_id)
            if found is None:
                raise PortalError(404, "not_found", lang=lang, back=f"/r/{token}?lang={lang}")
            view = pages.submission_view(found)
            versions = [pages.submission_view(s) for s in pages.link_submissions(session, link)]
        return portal.render(
            request,
            "submission.html",
            lang,
            link=link,
            state_name=pick(link.state_names, lang),
            s=view,
            versions=versions,
            refresh=2 if view.kind == "checking" else None,
            page_url=f"/r/{token}?lang={lang}",
            self_url=f"{request.url.path}?lang={lang}",
        )

    # --- JSON for a ministry's link ---------------------------------------------------

    @app.get(
        "/api/r/{token}",
        response_model=LinkOut,
        tags=["ministry link"],
        summary="What the link is for",
    )
    def api_link(token: str) -> LinkOut:
        link = portal.resolve(token)
        lang = link.request_language
        return LinkOut(
            instrument=link.instrument,
            instrument_name=pick(link.instrument_short, lang),
            cycle_id=link.cycle_id,
            period=link.period,
            deadline=link.deadline,
            state=link.state,
            state_name=pick(link.state_names, lang),
            language=lang,
            reference=link.reference,
            link_expires=link.expires,
        )

    @app.get(
        "/api/r/{token}/submissions",
        response_model=list[SubmissionOut],
        tags=["ministry link"],
        summary="Every file received for this state and cycle",
    )
    def api_link_submissions(token: str) -> list[SubmissionOut]:
        link = portal.resolve(token)
        with session_scope(settings) as session:
            return [
                _submission_out(pages.submission_view(s))
                for s in pages.link_submissions(session, link)
            ]

    @app.get(
        "/api/r/{token}/submissions/{submission_id}",
        response_model=SubmissionOut,
        tags=["ministry link"],
        summary="Status and issues of one submission",
    )
    def api_link_submission(
        token: str, submission_id: int = Path(ge=1, le=MAX_ID)
    ) -> SubmissionOut:
        link = portal.resolve(token)
        with session_scope(settings) as session:
            found = pages.link_submission(session, link, submission_id)
            if found is None:
                raise HTTPException(404, "not found")
            return _submission_out(pages.submission_view(found))

    # --- the secretariat --------------------------------------------------------------

    def api_secretariat(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
        cookie: Annotated[str | None, Depends(session_cookie)],
    ) -> None:
        configured = portal.secretariat_token
        if not configured:
            raise HTTPException(404, "not found")
        if read_session(settings.secret, configured, cookie):
            return
        if credentials is not None and token_matches(configured, credentials.credentials):
            return
        raise HTTPException(401, "sign in first", headers={"WWW-Authenticate": "Bearer"})

    def login_redirect(lang: str) -> Response:
        return RedirectResponse(f"/dashboard/login?lang={lang}", 303)

    def dashboard_render(
        request: Request, template: str, lang: str, sid: str, **context: Any
    ) -> Response:
        csrf, fresh = portal.csrf(request, f"session:{sid}")
        response = portal.render(
            request,
            template,
            lang,
            csrf=csrf,
            csrf_field=CSRF_FIELD,
            dashboard=True,
            signed_in=True,
            wide=True,
            **context,
        )
        portal.set_csrf_cookie(response, request, fresh)
        return response

    @app.get("/dashboard/login", include_in_schema=False)
    def login_page(request: Request) -> Response:
        lang = portal.lang_of(request)
        if portal.dashboard_session(request):
            return RedirectResponse(f"/dashboard?lang={lang}", 303)
        return login_form(request, lang)

    def login_form(request: Request, lang: str, status: int = 200, failed: str = "") -> Response:
        csrf, fresh = portal.csrf(request, "login")
        response = portal.render(
            request,
            "login.html",
            lang,
            status=status,
            csrf=csrf,
            csrf_field=CSRF_FIELD,
            failed=failed,
            switch=request.method == "GET",
            dashboard=True,
        )
        portal.set_csrf_cookie(response, request, fresh)
        return response

    @app.post("/dashboard/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        lang = portal.lang_of(request)
        portal.dashboard_session(request)  # 404 when the dashboard is disabled
        client = _client(request)
        if portal.throttle.blocked(client):
            return login_form(request, lang, 429, "too_many")
        form = await request.form(max_files=0, max_fields=4, max_part_size=4096)
        try:
            portal.check_csrf(request, "login", form.get(CSRF_FIELD), lang)
            offered = form.get("token")
        finally:
            await form.close()
        if not token_matches(
            portal.secretariat_token, offered if isinstance(offered, str) else None
        ):
            portal.throttle.failed(client)
            return login_form(request, lang, 401, "login_failed")
        portal.throttle.succeeded(client)
        response = RedirectResponse(f"/dashboard?lang={lang}", 303)
        response.set_cookie(
            SESSION_COOKIE,
            make_session(settings.secret, portal.secretariat_token),
            max_age=SESSION_SECONDS,
            httponly=True,
            samesite="strict",
            secure=portal.https(request),
            path="/",
        )
        return response

    @app.post("/dashboard/logout", include_in_schema=False)
    async def logout(request: Request) -> Response:
        lang = portal.lang_of(request)
        sid = portal.dashboard_session(request)
        if sid is None:
            return login_redirect(lang)
        form = await request.form(max_files=0, max_fields=4, max_part_size=4096)
        try:
            portal.check_csrf(request, f"session:{sid}", form.get(CSRF_FIELD), lang)
        finally:
            await form.close()
        response = login_redirect(lang)
        response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
        return response

    @app.get("/dashboard", include_in_schema=False)
    def dashboard(request: Request) -> Response:
        lang = portal.lang_of(request)
        sid = portal.dashboard_session(request)
        if sid is None:
            return login_redirect(lang)
        with session_scope(settings) as session:
            cycles = pages.cycles_overview(session)
        return dashboard_render(request, "dashboard.html", lang, sid, cycles=cycles)

    @app.get("/dashboard/cycles/{cycle_id}", include_in_schema=False)
    def dashboard_cycle(request: Request, cycle_id: int = Path(ge=1, le=MAX_ID)) -> Response:
        lang = portal.lang_of(request)
        sid = portal.dashboard_session(request)
        if sid is None:
            return login_redirect(lang)
        with session_scope(settings) as session:
            cycle = session.get(m.ReportingCycle, cycle_id)
            if cycle is None:
                raise PortalError(404, "not_found", lang=lang)
            status = cycle_status(session, cycle_id)
            by_state = pages.cycle_submissions(session, cycle_id)
            requests = {r.state.code: r for r in cycle.requests}
            rows = []
            for entry in status["states"]:
                request_row = requests[entry["state"]]
                rows.append(
                    {
                        **entry,
                        "names": dict(request_row.state.name),
                        "language": request_row.language,
                        "requested_at": _parse_iso(entry["requested"]),
                        "files": by_state.get(request_row.state_id, []),
                        "link": portal_link(
                            settings, cycle.id, entry["state"], deadline=cycle.deadline
                        ),
                    }
                )
            info = {
                "id": cycle.id,
                "instrument": cycle.instrument.code,
                "instrument_names": dict(cycle.instrument.short_name),
                "period": cycle.period,
                "deadline": cycle.deadline,
                "status": cycle.status,
                "opened_at": cycle.opened_at,
                "summary": status["summary"],
            }
            reports = pages.report_files(reports_folder(settings, cycle))
        return dashboard_render(
            request, "cycle.html", lang, sid, cycle=info, rows=rows, reports=reports
        )

    @app.get("/dashboard/submissions/{submission_id}/file", include_in_schema=False)
    def dashboard_file(request: Request, submission_id: int = Path(ge=1, le=MAX_ID)) -> Response:
        lang = portal.lang_of(request)
        if portal.dashboard_session(request) is None:
            return login_redirect(lang)
        with session_scope(settings) as session:
            found = session.get(m.Submission, submission_id)
            if found is None:
                raise PortalError(404, "not_found", lang=lang)
            sha256, filename = found.file_sha256, found.filename
        path = filestore.path_for(settings.files_dir, sha256)
        if not path.is_file():
            raise PortalError(404, "not_found", lang=lang)
        return FileResponse(
            path,
            media_type="application/octet-stream",
            headers={
                "content-disposition": content_disposition(
                    filename, f"submission-{submission_id}.xlsx"
                )
            },
        )

    @app.get("/dashboard/cycles/{cycle_id}/reports/{name}", include_in_schema=False)
    def dashboard_report(
        request: Request, name: str, cycle_id: int = Path(ge=1, le=MAX_ID)
    ) -> Response:
        lang = portal.lang_of(request)
        if portal.dashboard_session(request) is None:
            return login_redirect(lang)
        with session_scope(settings) as session:
            cycle = session.get(m.ReportingCycle, cycle_id)
            if cycle is None:
                raise PortalError(404, "not_found", lang=lang)
            folder = reports_folder(settings, cycle)
        # Served only by exact name from the folder's own listing: never a path from the URL.
        listed = {entry["name"] for entry in pages.report_files(folder)}
        if name not in listed:
            raise PortalError(404, "not_found", lang=lang)
        return FileResponse(
            folder / name,
            media_type="application/pdf",
            headers={"content-disposition": content_disposition(name, "report.pdf")},
        )

    @app.get(
        "/api/cycles",
        response_model=list[CycleOut],
        tags=["secretariat"],
        summary="Every reporting cycle with its counts",
        dependencies=[Depends(api_secretariat)],
    )
    def api_cycles() -> list[CycleOut]:
        with session_scope(settings) as session:
            return [
                CycleOut(**{k: v for k, v in row.items() if k in CycleOut.model_fields})
                for row in pages.cycles_overview(session)
            ]

    @app.get(
        "/api/cycles/{cycle_id}/status",
        response_model=CycleStatusOut,
        tags=["secretariat"],
        summary="Per state: request, reminders, submissions and outcome",
        dependencies=[Depends(api_secretariat)],
    )
    def api_cycle_status(cycle_id: int = Path(ge=1, le=MAX_ID)) -> CycleStatusOut:
        try:
            with session_scope(settings) as session:
                return CycleStatusOut(**cycle_status(session, cycle_id))
        except Refused:
            raise HTTPException(404, "not found") from None

    app.add_middleware(SecurityMiddleware, error_page=portal.crash_page)
    return app


def _parse_iso(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if value else None


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
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def stop(self, timeout: float = 10.0) -> None:
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
