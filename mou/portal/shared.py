"""What every router of the portal shares: the ``Portal`` (settings, templates, the inline
ingest, the sign-in throttle), how a page is rendered in its language, the CSRF token of a form,
how a personal link resolves, and ``PortalError``, the refusal that is answered as a page (or
as JSON under /api)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from mou.accounts.sessions import SignedIn
from mou.cycle.links import ExpiredLink, InvalidLink, verify_portal_token
from mou.i18n.languages import IN_LANGUAGE, LANGUAGE_NAMES, pick
from mou.i18n.texts import PortalTexts
from mou.portal import pages
from mou.portal.security import (
    CSRF_COOKIE,
    CSRF_FIELD,
    SignInThrottle,
    csrf_token,
    csrf_valid,
    new_nonce,
    valid_nonce,
)
from mou.service import events
from mou.service.protocol import InlineIngest
from mou.settings import Settings
from mou.store.database import session_scope

# Ids in paths fit PostgreSQL's integer: a larger one is refused as invalid, never queried.
MAX_ID = 2**31 - 1
IngestMode = Literal["auto", "thread", "prefect"]


def signed_scope(signed: SignedIn) -> str:
    """The CSRF scope of a signed-in session's forms (``signin.read_form`` checks it)."""
    return f"session:{signed.session_id}"


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


class Portal:
    """State shared by the routes: settings, templates, the inline ingest, the sign-in throttle
    (by client and account name, for the dashboard's form and the API together)."""

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
        self.throttle = SignInThrottle(settings)

    # language and texts
    def client(self, request: Request) -> str:
        """Who the sign-in throttle counts a request for (the forwarded client behind a
        trusted proxy, see ``security.ProxiedClient``)."""
        return request.client.host if request.client else "unknown"

    def texts(self, lang: str) -> PortalTexts:
        """The portal's texts in ``lang``."""
        return PortalTexts(self.settings.forms_dir, lang)

    def lang_of(self, request: Request, default: str = "en") -> str:
        """The language asked for with ``?lang=``, else ``default`` (when the service has it)."""
        wanted = request.query_params.get("lang")
        if wanted in self.settings.languages:
            return str(wanted)
        return default if default in self.settings.languages else "en"

    def language_links(self, request: Request, lang: str) -> list[tuple[str, str, str, bool]]:
        """The language switch of a page: code, name, this page in it, and whether it is on."""
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
        """Whether cookies are to be marked Secure (served, or published, over HTTPS)."""
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
        """A page of ``templates/portal`` in ``lang``; ``switch``: with the language links."""
        texts = self.texts(lang)
        html = self.env.get_template(template).render(
            lang=lang,
            t=texts,
            languages=self.language_links(request, lang) if request is not None and switch else [],
            contact=self.settings.mail_from,
            fmt_date=lambda day: pages.fmt_date(day, lang),
            fmt_moment=lambda moment: pages.fmt_moment(moment, lang),
            name=lambda names: pick(names, lang),
            detail_text=pages.detail_text,
            language_names=LANGUAGE_NAMES,
            in_language=IN_LANGUAGE,
            **context,
        )
        return HTMLResponse(html, status_code=status)

    def render_dashboard(
        self, request: Request, template: str, lang: str, signed: SignedIn, **context: Any
    ) -> HTMLResponse:
        """A Secretariat page: the signed-in account in its toolbar (name, role, sign-out) and
        the CSRF token of its forms (bound to the session: ``signin.read_form`` checks it)."""
        csrf, fresh = self.csrf(request, signed_scope(signed))
        context.setdefault("wide", True)
        response = self.render(
            request,
            template,
            lang,
            csrf=csrf,
            csrf_field=CSRF_FIELD,
            dashboard=True,
            signed_in=True,
            me=signed,
            **context,
        )
        self.set_csrf_cookie(response, request, fresh)
        return response

    def error_response(
        self, request: Request | None, error: PortalError, signed: SignedIn | None = None
    ) -> Response:
        """The answer to a refusal: the error page, or ``{"detail": ...}`` under /api; with
        ``signed``, the page has the dashboard's toolbar."""
        path = request.url.path if request is not None else ""
        response: Response
        if path.startswith("/api/"):
            response = JSONResponse(
                {"detail": self.texts("en").get(f"{error.key}_heading")}, status_code=error.status
            )
        else:
            lang = error.lang or (self.lang_of(request) if request is not None else "en")
            others = [code for code in self.settings.languages if code != lang]
            frame: dict[str, Any] = {}
            if signed is not None and request is not None:
                csrf, _ = self.csrf(request, signed_scope(signed))
                frame = {
                    "csrf": csrf,
                    "csrf_field": CSRF_FIELD,
                    "dashboard": True,
                    "signed_in": True,
                    "me": signed,
                    "wide": True,
                }
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
                **frame,
            )
        if error.status in (408, 413):  # the rest of the body is unread: no keep-alive
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
        """Set the CSRF nonce cookie on ``response`` when ``csrf`` made a new one."""
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
        """Refuse (403) a form whose token is not the one of ``scope`` and the browser's nonce."""
        value = submitted if isinstance(submitted, str) else None
        if not csrf_valid(self.settings.secret, scope, request.cookies.get(CSRF_COOKIE), value):
            raise PortalError(403, "csrf", lang=lang)

    # links
    def resolve(self, token: str, lang: str | None = None) -> pages.LinkContext:
        """The request a personal link stands for; refused when forged, expired or closed."""
        try:
            verified = verify_portal_token(self.settings.keyring, token)
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
        """Whether an upload is decided in this process (else by the warm task workers)."""
        if self.ingest == "thread":
            return True
        if self.ingest == "prefect":
            return False
        return not events.api_configured()

    def start_ingest(self, submission_id: int) -> None:
        """Decide a received upload in the inline pool, without waiting for it."""
        # A failure is logged there and left to the sweep; the page keeps saying "being checked".
        self.inline.submit(submission_id)
