"""The accounts page of the dashboard (admins only): every account with its role and when it
was last seen, and forms to add one, disable or enable one, and set a new password. Each form
calls ``mou.accounts.users`` with the signed-in admin as actor, so each change is in the
audit log under the admin's name; the page lists the latest account changes."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from mou.accounts import users
from mou.accounts.audit import LoggedAction
from mou.accounts.roles import ROLES
from mou.accounts.sessions import SignedIn
from mou.portal.shared import Portal
from mou.portal.signin import admin, read_form, secretariat_router
from mou.store import models as m
from mou.store.database import session_scope

Admin = Annotated[SignedIn, Depends(admin)]
UserName = Annotated[str, Path(min_length=1, max_length=60)]
# What a change says it did (``?done=``), by the texts' keys: nothing from the URL is shown
# but one of these and a name that exists.
DONE = frozenset({"user_added", "user_disabled", "user_enabled", "user_password"})
HISTORY = 50


def router(portal: Portal) -> APIRouter:
    """/dashboard/users and its forms."""
    settings = portal.settings
    routes = secretariat_router()

    def page(
        request: Request,
        lang: str,
        signed: SignedIn,
        *,
        status: int = 200,
        problem: tuple[str, dict[str, Any]] | None = None,
        form: dict[str, str] | None = None,
    ) -> Response:
        with session_scope(settings) as session:
            accounts = users.list_accounts(session)
            history = _account_history(session)
        done = request.query_params.get("done")
        who = request.query_params.get("user", "")
        notice = None
        if done in DONE and any(a.name == who for a in accounts):
            notice = (done, who)
        return portal.render_dashboard(
            request,
            "users.html",
            lang,
            signed,
            status=status,
            accounts=accounts,
            history=history,
            roles=ROLES,
            notice=notice,
            problem=problem,
            form=form or {},
            minimum=users.MIN_PASSWORD_LENGTH,
        )

    def done(lang: str, what: str, name: str) -> Response:
        return RedirectResponse(f"/dashboard/users?lang={lang}&done={what}&user={name}", 303)

    def refused(
        request: Request, lang: str, signed: SignedIn, exc: users.AccountRefused, form: Any
    ) -> Response:
        return page(request, lang, signed, status=400, problem=(exc.key, exc.params), form=form)

    @routes.get("/dashboard/users", include_in_schema=False)
    def users_page(request: Request, signed: Admin) -> Response:
        return page(request, portal.lang_of(request), signed)

    @routes.post("/dashboard/users", include_in_schema=False)
    async def add(request: Request, signed: Admin) -> Response:
        lang = portal.lang_of(request)
        form = await read_form(portal, request, signed, lang)
        kept = {k: form.get(k, "") for k in ("name", "full_name", "email", "role")}
        if form.get("password", "") != form.get("confirm", ""):
            problem = users.AccountRefused("passwords_differ", "the two passwords differ")
            return refused(request, lang, signed, problem, kept)

        def create() -> users.Account:
            with session_scope(settings) as session:
                return users.add_user(
                    session,
                    signed.actor,
                    form.get("name", ""),
                    form.get("role", ""),
                    form.get("password", ""),
                    full_name=form.get("full_name"),
                    email=form.get("email"),
                )

        try:
            account = await run_in_threadpool(create)
        except users.AccountRefused as exc:
            return refused(request, lang, signed, exc, kept)
        return done(lang, "user_added", account.name)

    @routes.post("/dashboard/users/{name}/disable", include_in_schema=False)
    async def disable(request: Request, signed: Admin, name: UserName) -> Response:
        lang = portal.lang_of(request)
        await read_form(portal, request, signed, lang)
        try:
            account = await run_in_threadpool(_change, portal, users.disable_user, signed, name)
        except users.AccountRefused as exc:
            return refused(request, lang, signed, exc, None)
        return done(lang, "user_disabled", account.name)

    @routes.post("/dashboard/users/{name}/enable", include_in_schema=False)
    async def enable(request: Request, signed: Admin, name: UserName) -> Response:
        lang = portal.lang_of(request)
        await read_form(portal, request, signed, lang)
        try:
            account = await run_in_threadpool(_change, portal, users.enable_user, signed, name)
        except users.AccountRefused as exc:
            return refused(request, lang, signed, exc, None)
        return done(lang, "user_enabled", account.name)

    @routes.post("/dashboard/users/{name}/password", include_in_schema=False)
    async def password(request: Request, signed: Admin, name: UserName) -> Response:
        lang = portal.lang_of(request)
        form = await read_form(portal, request, signed, lang)
        try:
            if form.get("password", "") != form.get("confirm", ""):
                raise users.AccountRefused("passwords_differ", "the two passwords differ")
            account = await run_in_threadpool(
                _change, portal, users.set_password, signed, name, form.get("password", "")
            )
        except users.AccountRefused as exc:
            return refused(request, lang, signed, exc, None)
        if account.name == signed.name:  # the admin's own session is revoked with the others
            return RedirectResponse(f"/dashboard/login?lang={lang}", 303)
        return done(lang, "user_password", account.name)

    return routes


def _change(portal: Portal, action: Any, signed: SignedIn, *args: Any) -> users.Account:
    with session_scope(portal.settings) as session:
        return action(session, signed.actor, *args)


def _account_history(session: Any) -> list[LoggedAction]:
    """The latest account changes, newest first."""
    rows = session.scalars(
        select(m.AuditEvent)
        .where(m.AuditEvent.action.like("user.%"))
        .order_by(m.AuditEvent.at.desc(), m.AuditEvent.id.desc())
        .limit(HISTORY)
    )
    return [
        LoggedAction(
            id=e.id,
            at=e.at,
            actor=e.actor,
            action=e.action,
            cycle_id=e.cycle_id,
            state=None,
            submission_id=e.submission_id,
            reason=e.reason,
            details=dict(e.details or {}),
        )
        for e in rows
    ]
