"""Who is signed in to the Secretariat's pages, and what their role lets them do.

- ``router``: the sign-in form (name and password, CSRF, throttled by client and by name) and
  the sign-out button (revokes the session's row: a copied cookie stops working).
- ``viewer``, ``officer``, ``admin``: FastAPI dependencies giving a route the signed-in
  ``SignedIn`` (its ``.actor`` is the ``mou.accounts.roles.Actor`` the core checks); not
  signed in: a page goes to the sign-in form, the API answers 401; a role short of what the
  route needs: ``NotAllowed``, answered 403 (``server``).
- ``secretariat_router``: an ``APIRouter`` whose every route needs a signed-in account, and
  ``officer`` (not a reader) for anything but GET and HEAD: a new action under /dashboard is
  closed to readers without remembering to say so.
- ``read_form``: a dashboard form's fields once its CSRF token (bound to the session) is
  checked.

The session is a cookie (``mou_session``: HttpOnly, SameSite=Strict, Secure over https) for
a browser, or ``Authorization: Bearer <token>`` for a script (``POST /api/session``, in
``api``). Both are rows of ``user_sessions``, by the token's hash.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from mou.accounts import sessions as account_sessions
from mou.accounts.roles import NotAllowed
from mou.accounts.sessions import SESSION_SECONDS, SignedIn
from mou.accounts.users import authenticate, has_users
from mou.portal.security import CSRF_FIELD, SESSION_COOKIE
from mou.portal.shared import Portal, PortalError, signed_scope
from mou.store.database import session_scope

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_STATE_KEY = "mou_signed_in"


class SignInRequired(Exception):
    """No valid session: a page redirects to the sign-in form, the API answers 401."""


class TooManyAttempts(Exception):
    """A client blocked by the sign-in throttle offered a bearer token (API: 429)."""

    def __init__(self, wait: int) -> None:
        super().__init__(wait)
        self.wait = wait


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, credentials = header.partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" and credentials.strip() else None


def signed_in(request: Request) -> SignedIn | None:
    """The account the request is signed in as, or None (worked out once per request).

    Pages take the cookie only. The API also takes a bearer token, and for anything but
    GET/HEAD only that (a cookie comes with cross-site requests; a header does not). An
    unknown bearer token counts as a failed sign-in of the client."""
    if _STATE_KEY in request.scope:
        return request.scope[_STATE_KEY]
    portal: Portal = request.app.state.portal
    api = request.url.path.startswith("/api/")
    token = _bearer(request) if api else None
    found: SignedIn | None = None
    if token is not None:
        client = portal.client(request)
        if wait := portal.throttle.retry_after(client):
            raise TooManyAttempts(wait)
        found = _resume(portal, token)
        if found is None and (wait := portal.throttle.attempt(client)):
            raise TooManyAttempts(wait)
    elif not api or request.method in SAFE_METHODS:
        found = _resume(portal, request.cookies.get(SESSION_COOKIE))
    request.scope[_STATE_KEY] = found
    return found


def _resume(portal: Portal, token: str | None) -> SignedIn | None:
    if not token:
        return None
    with session_scope(portal.settings) as session:
        return account_sessions.resume(session, token)


def viewer(request: Request) -> SignedIn:
    """Dependency: any signed-in account (reader, officer, admin)."""
    found = signed_in(request)
    if found is None:
        raise SignInRequired
    return found


def officer(request: Request) -> SignedIn:
    """Dependency: an account that may act on cycles (officer or admin)."""
    found = viewer(request)
    found.actor.require("act")
    return found


def admin(request: Request) -> SignedIn:
    """Dependency: an account that may manage accounts (admin)."""
    found = viewer(request)
    found.actor.require("manage_users")
    return found


def _by_method(request: Request) -> SignedIn:
    return viewer(request) if request.method in SAFE_METHODS else officer(request)


def secretariat_router() -> APIRouter:
    """A router for Secretariat pages: every route needs a session, and all but GET and HEAD
    an officer or admin (routes needing more say so with ``Depends(admin)``)."""
    return APIRouter(dependencies=[Depends(_by_method)])


async def read_form(
    portal: Portal, request: Request, signed: SignedIn, lang: str, max_fields: int = 40
) -> dict[str, str]:
    """The text fields of a dashboard form, refused (403) unless its CSRF token is the one of
    this session and this browser's nonce."""
    form = await request.form(max_files=0, max_fields=max_fields, max_part_size=8192)
    try:
        portal.check_csrf(request, signed_scope(signed), form.get(CSRF_FIELD), lang)
        return {key: value for key, value in form.items() if isinstance(value, str)}
    finally:
        await form.close()


def router(portal: Portal) -> APIRouter:
    """/dashboard/login (GET, POST) and /dashboard/logout (POST)."""
    settings = portal.settings
    routes = APIRouter()

    def login_form(
        request: Request, lang: str, status: int = 200, failed: str = "", name: str = ""
    ) -> Response:
        with session_scope(settings) as session:
            first = not has_users(session)
        csrf, fresh = portal.csrf(request, "login")
        response = portal.render(
            request,
            "login.html",
            lang,
            status=status,
            csrf=csrf,
            csrf_field=CSRF_FIELD,
            failed=failed,
            first_admin=first,
            name_value=name,
            switch=request.method == "GET",
            dashboard=True,
        )
        portal.set_csrf_cookie(response, request, fresh)
        return response

    def too_many(request: Request, lang: str, wait: int, name: str = "") -> Response:
        response = login_form(request, lang, 429, "too_many", name)
        response.headers["retry-after"] = str(wait)
        return response

    @routes.get("/dashboard/login", include_in_schema=False)
    def login_page(request: Request) -> Response:
        lang = portal.lang_of(request)
        if signed_in(request) is not None:
            return RedirectResponse(f"/dashboard?lang={lang}", 303)
        return login_form(request, lang)

    @routes.post("/dashboard/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        lang = portal.lang_of(request)
        client = portal.client(request)
        # A blocked client is answered before its body is read.
        if wait := await run_in_threadpool(portal.throttle.retry_after, client):
            return too_many(request, lang, wait)
        form = await request.form(max_files=0, max_fields=4, max_part_size=4096)
        try:
            portal.check_csrf(request, "login", form.get(CSRF_FIELD), lang)
            name, password = form.get("name"), form.get("password")
        finally:
            await form.close()
        name = name.strip()[:200] if isinstance(name, str) else ""
        password = password if isinstance(password, str) else ""
        if not name or not password:
            return login_form(request, lang, 400, "login_missing", name)
        if wait := await run_in_threadpool(portal.throttle.attempt, client, name):
            return too_many(request, lang, wait, name)
        token = await run_in_threadpool(_sign_in, portal, name, password, client)
        if token is None:
            return login_form(request, lang, 401, "login_failed", name)  # stays counted
        await run_in_threadpool(portal.throttle.succeeded, client, name)
        old = request.cookies.get(SESSION_COOKIE)
        if old:  # whatever session this browser had is over
            await run_in_threadpool(_sign_out, portal, old)
        response = RedirectResponse(f"/dashboard?lang={lang}", 303)
        response.set_cookie(
            SESSION_COOKIE,
            token,
            max_age=SESSION_SECONDS,
            httponly=True,
            samesite="strict",
            secure=portal.https(request),
            path="/",
        )
        return response

    @routes.post("/dashboard/logout", include_in_schema=False)
    async def logout(request: Request) -> Response:
        lang = portal.lang_of(request)
        response = RedirectResponse(f"/dashboard/login?lang={lang}", 303)
        signed = await run_in_threadpool(signed_in, request)
        if signed is not None:
            await read_form(portal, request, signed, lang, max_fields=4)
            await run_in_threadpool(_sign_out, portal, request.cookies.get(SESSION_COOKIE))
        response.delete_cookie(
            SESSION_COOKIE, path="/", httponly=True, samesite="strict", secure=portal.https(request)
        )
        return response

    return routes


def _sign_in(portal: Portal, name: str, password: str, client: str) -> str | None:
    with session_scope(portal.settings) as session:
        account = authenticate(session, name, password)
        if account is None:
            return None
        return account_sessions.start_session(session, account.id, client)


def _sign_out(portal: Portal, token: str | None) -> None:
    with session_scope(portal.settings) as session:
        account_sessions.end_session(session, token)


def not_allowed_page(portal: Portal, request: Request, exc: NotAllowed) -> Response:
    """The 403 page (or JSON) for a role that may not do what it asked."""
    signed = request.scope.get(_STATE_KEY)
    params: dict[str, Any] = {"name": signed.name if signed else "", "role": ""}
    lang = portal.lang_of(request)
    if signed is not None:
        params["role"] = portal.texts(lang).get(f"role_{signed.role}")
    error = PortalError(403, "not_allowed", lang=lang, params=params)
    return portal.error_response(request, error, signed=signed)
