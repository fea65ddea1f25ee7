"""The secretariat's dashboard: the cycles, one cycle state by state with its files, links and
audit log, and the download of a submitted workbook or a rendered report. Pages only: the
sign-in is in ``mou.portal.signin``, the accounts page in ``mou.portal.accounts``, the JSON for
the secretariat in ``mou.portal.api``."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import FileResponse, Response

from mou.accounts.audit import LoggedAction, logged_actions
from mou.accounts.sessions import SignedIn
from mou.clock import utcnow
from mou.cycle.links import portal_link
from mou.cycle.standing import cycle_status
from mou.mail.outbox import undelivered
from mou.portal import cycle_page, pages
from mou.portal.cycle_actions import COMMENT_ROWS, forget_notice, read_notice
from mou.portal.security import content_disposition
from mou.portal.shared import MAX_ID, Portal, PortalError
from mou.portal.signin import secretariat_router, viewer
from mou.secretariat.publication import KINDS, current_release
from mou.service.protocol import national_reports, reports_folder
from mou.store import files as filestore
from mou.store import models as m
from mou.store.database import session_scope

# The signed-in account, any role (module level: FastAPI reads the annotation here).
Signed = Annotated[SignedIn, Depends(viewer)]


def router(portal: Portal) -> APIRouter:
    """The pages under /dashboard (none of them in the OpenAPI schema); every one needs a
    signed-in account (``signin.secretariat_router``)."""
    settings = portal.settings
    routes = secretariat_router()

    @routes.get("/dashboard", include_in_schema=False)
    def dashboard(request: Request, signed: Signed) -> Response:
        lang = portal.lang_of(request)
        with session_scope(settings) as session:
            cycles = pages.cycles_overview(session)
            set_aside = pages.set_aside_submissions(session)
            mail_outside = undelivered(session, outside_cycles=True)
        response = portal.render_dashboard(
            request,
            "dashboard.html",
            lang,
            signed,
            cycles=cycles,
            set_aside=set_aside,
            mail_outside=mail_outside,
            notice=read_notice(settings, request),
        )
        forget_notice(response)
        return response

    @routes.get("/dashboard/cycles/{cycle_id}", include_in_schema=False)
    def dashboard_cycle(
        request: Request, signed: Signed, cycle_id: int = Path(ge=1, le=MAX_ID)
    ) -> Response:
        lang = portal.lang_of(request)
        with session_scope(settings) as session:
            cycle = session.get(m.ReportingCycle, cycle_id)
            if cycle is None:
                raise PortalError(404, "not_found", lang=lang)
            status = cycle_status(session, cycle_id)
            by_state = pages.cycle_submissions(session, cycle_id)
            requests = {r.state.code: r for r in cycle.requests}
            details = cycle_page.state_details(
                session,
                settings,
                cycle,
                {entry["state"]: entry["outcome"] for entry in status["states"]},
                lang,
                utcnow().date(),
            )
            rows = []
            for entry in status["states"]:
                request_row = requests[entry["state"]]
                more = details[entry["state"]]
                rows.append(
                    {
                        **entry,
                        "names": dict(request_row.state.name),
                        "language": request_row.language,
                        "requested_at": _parse_iso(entry["requested"]),
                        "files": by_state.get(request_row.state_id, []),
                        "details": more,
                        "link": portal_link(
                            settings, cycle.id, entry["state"], deadline=more.deadline
                        ),
                    }
                )
            info = {
                "id": cycle.id,
                "instrument": cycle.instrument.code,
                "instrument_names": dict(cycle.instrument.short_name),
                "period": cycle.period,
                "deadline": cycle.deadline,
                "original_deadline": cycle.original_deadline,
                "status": cycle.status,
                "opened_at": cycle.opened_at,
                "closed_at": cycle.closed_at,
                "summary": status["summary"],
                "mail_problems": status["mail_problems"],
                "meeting": dict(cycle.meeting or {}),
                "languages": list(cycle.instrument.languages),
            }
            reports = pages.report_files(reports_folder(settings, cycle))
            released = {kind: current_release(session, cycle_id, kind) for kind in KINDS}
            releases = {
                kind: (row.released_at, row.released_by) if row else None
                for kind, row in released.items()
            }
            log = logged_actions(session, cycle_id)
        by_state_log: dict[str, list[LoggedAction]] = {}
        for entry in log:
            if entry.state:
                by_state_log.setdefault(entry.state, []).append(entry)
        national = {
            code: [path.name for path in paths]
            for code, paths in national_reports(settings, cycle_id).items()
        }
        response = portal.render_dashboard(
            request,
            "cycle.html",
            lang,
            signed,
            cycle=info,
            rows=rows,
            reports=reports,
            national=national,
            releases=releases,
            kinds=KINDS,
            log=log,
            state_log=by_state_log,
            notice=read_notice(settings, request),
            can_act=signed.actor.can("act"),
            can_waive=signed.actor.can("waive_errors"),
            fields=cycle_page.form_fields(settings, cycle.instrument.code, lang),
            comment_rows=range(1, COMMENT_ROWS + 1),
            today=utcnow().date(),
        )
        forget_notice(response)
        return response

    @routes.get("/dashboard/cycles/{cycle_id}/national/{name}", include_in_schema=False)
    def dashboard_national_report(
        request: Request, signed: Signed, name: str, cycle_id: int = Path(ge=1, le=MAX_ID)
    ) -> Response:
        lang = portal.lang_of(request)
        listed = {
            p.name: p for paths in national_reports(settings, cycle_id).values() for p in paths
        }
        if name not in listed or not listed[name].is_file():
            raise PortalError(404, "not_found", lang=lang)
        return FileResponse(
            listed[name],
            media_type="application/pdf",
            headers={"content-disposition": content_disposition(name, "report.pdf")},
        )

    @routes.get("/dashboard/submissions/{submission_id}/file", include_in_schema=False)
    def dashboard_file(
        request: Request, signed: Signed, submission_id: int = Path(ge=1, le=MAX_ID)
    ) -> Response:
        lang = portal.lang_of(request)
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

    @routes.get("/dashboard/documents/{document_id}", include_in_schema=False)
    def dashboard_document(
        request: Request, signed: Signed, document_id: int = Path(ge=1, le=MAX_ID)
    ) -> Response:
        """A supporting document, as a download (never shown inline: it is the sender's)."""
        lang = portal.lang_of(request)
        with session_scope(settings) as session:
            found = session.get(m.SupportingDocument, document_id)
            if found is None:
                raise PortalError(404, "not_found", lang=lang)
            sha256, filename = found.sha256, found.filename
        path = filestore.path_for(settings.files_dir, sha256)
        if not path.is_file():
            raise PortalError(404, "not_found", lang=lang)
        return FileResponse(
            path,
            media_type="application/octet-stream",
            headers={
                "content-disposition": content_disposition(filename, f"document-{document_id}")
            },
        )

    @routes.get("/dashboard/cycles/{cycle_id}/reports/{name}", include_in_schema=False)
    def dashboard_report(
        request: Request, signed: Signed, name: str, cycle_id: int = Path(ge=1, le=MAX_ID)
    ) -> Response:
        lang = portal.lang_of(request)
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
