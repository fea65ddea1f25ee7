"""The secretariat's dashboard: sign-in (throttled, CSRF-protected) and sign-out, the cycles,
one cycle state by state with its files and links, and the download of a submitted workbook or
a rendered report. Pages only: the JSON for the secretariat is in ``mou.portal.api``."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from mou.cycle.links import portal_link
from mou.cycle.standing import cycle_status
from mou.mail.outbox import undelivered
from mou.portal import pages
from mou.portal.security import (
    CSRF_FIELD,
    SESSION_COOKIE,
    SESSION_SECONDS,
    content_disposition,
    make_session,
    read_session,
    token_matches,
)
from mou.portal.shared import MAX_ID, Portal, PortalError
from mou.service.protocol import reports_folder
from mou.store import files as filestore
from mou.store import models as m
from mou.store.database import session_scope


def secretariat_session(portal: Portal, request: Request) -> str | None:
    """The id of the secretariat session the request carries, or None; the dashboard is a
    404 when no secretariat token is configured."""
    if not portal.secretariat_token:
        raise PortalError(404, "not_found", lang=portal.lang_of(request))
    return read_session(
        portal.settings.secret, portal.secretariat_token, request.cookies.get(SESSION_COOKIE)
    )


def router(portal: Portal) -> APIRouter:
    """The pages under /dashboard (none of them in the OpenAPI schema)."""
    settings = portal.settings
    routes = APIRouter()

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

    @routes.get("/dashboard/login", include_in_schema=False)
    def login_page(request: Request) -> Response:
        lang = portal.lang_of(request)
        if secretariat_session(portal, request):
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

    def too_many(request: Request, lang: str, wait: int) -> Response:
        response = login_form(request, lang, 429, "too_many")
        response.headers["retry-after"] = str(wait)
        return response

    @routes.post("/dashboard/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        lang = portal.lang_of(request)
        secretariat_session(portal, request)  # 404 when the dashboard is disabled
        client = portal.client(request)
        # A blocked client is answered before its body is read.
        if wait := await run_in_threadpool(portal.throttle.retry_after, client):
            return too_many(request, lang, wait)
        form = await request.form(max_files=0, max_fields=4, max_part_size=4096)
        try:
            portal.check_csrf(request, "login", form.get(CSRF_FIELD), lang)
            offered = form.get("token")
        finally:
            await form.close()
        if wait := await run_in_threadpool(portal.throttle.attempt, client):
            return too_many(request, lang, wait)
        if not token_matches(
            portal.secretariat_token, offered if isinstance(offered, str) else None
        ):
            return login_form(request, lang, 401, "login_failed")  # the attempt stays counted
        await run_in_threadpool(portal.throttle.succeeded, client)
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

    @routes.post("/dashboard/logout", include_in_schema=False)
    async def logout(request: Request) -> Response:
        lang = portal.lang_of(request)
        sid = secretariat_session(portal, request)
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

    @routes.get("/dashboard", include_in_schema=False)
    def dashboard(request: Request) -> Response:
        lang = portal.lang_of(request)
        sid = secretariat_session(portal, request)
        if sid is None:
            return login_redirect(lang)
        with session_scope(settings) as session:
            cycles = pages.cycles_overview(session)
            set_aside = pages.set_aside_submissions(session)
            mail_outside = undelivered(session, outside_cycles=True)
        return dashboard_render(
            request,
            "dashboard.html",
            lang,
            sid,
            cycles=cycles,
            set_aside=set_aside,
            mail_outside=mail_outside,
        )

    @routes.get("/dashboard/cycles/{cycle_id}", include_in_schema=False)
    def dashboard_cycle(request: Request, cycle_id: int = Path(ge=1, le=MAX_ID)) -> Response:
        lang = portal.lang_of(request)
        sid = secretariat_session(portal, request)
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
                "mail_problems": status["mail_problems"],
            }
            reports = pages.report_files(reports_folder(settings, cycle))
        return dashboard_render(
            request, "cycle.html", lang, sid, cycle=info, rows=rows, reports=reports
        )

    @routes.get("/dashboard/submissions/{submission_id}/file", include_in_schema=False)
    def dashboard_file(request: Request, submission_id: int = Path(ge=1, le=MAX_ID)) -> Response:
        lang = portal.lang_of(request)
        if secretariat_session(portal, request) is None:
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

    @routes.get("/dashboard/cycles/{cycle_id}/reports/{name}", include_in_schema=False)
    def dashboard_report(
        request: Request, name: str, cycle_id: int = Path(ge=1, le=MAX_ID)
    ) -> Response:
        lang = portal.lang_of(request)
        if secretariat_session(portal, request) is None:
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

    return routes


def _parse_iso(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if value else None
