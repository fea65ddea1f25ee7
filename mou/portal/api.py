"""The JSON API, described at /openapi.json: what a personal link is for and the submissions
sent through it (by its token), and the cycles with their standing for the secretariat: a
named account's session, as a browser's cookie (GET only) or ``Authorization: Bearer
<token>`` from ``POST /api/session`` (name and password, throttled like the sign-in form;
``DELETE /api/session`` revokes it). No shared secret. Refusals are ``{"detail": ...}``."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Request
from fastapi.responses import Response
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from mou.accounts.roles import Role
from mou.accounts.sessions import SignedIn, end_session, resume, start_session
from mou.accounts.users import authenticate
from mou.cycle.standing import cycle_status
from mou.errors import Refused
from mou.i18n.languages import pick
from mou.portal import pages
from mou.portal.security import SESSION_COOKIE
from mou.portal.shared import MAX_ID, Portal
from mou.portal.signin import viewer
from mou.store.database import session_scope

# Module level: FastAPI resolves the (postponed) annotations of dependencies in module globals.
bearer = HTTPBearer(auto_error=False, description="A named account's token, from POST /api/session")
session_cookie = APIKeyCookie(
    name=SESSION_COOKIE, auto_error=False, description="Set by signing in at /dashboard/login"
)


# --- JSON shapes (OpenAPI) --------------------------------------------------------------
# Without docstrings, as the endpoints: a docstring would become a description in the schema.


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
    outcome: Literal[
        "accepted", "correction requested", "excused", "refused", "pending", "not received"
    ]
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


class SignInIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    password: str = Field(min_length=1, max_length=1024)


class SessionOut(BaseModel):
    token: str
    name: str
    role: Role
    expires_at: dt.datetime


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


# --- The endpoints ------------------------------------------------------------------------


def router(portal: Portal) -> APIRouter:
    """The endpoints under /api: a ministry's link, then the secretariat's cycles."""
    settings = portal.settings
    routes = APIRouter()
    # No docstrings on the endpoints below: FastAPI would publish them in /openapi.json.

    # --- JSON for a ministry's link ---------------------------------------------------

    @routes.get(
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

    @routes.get(
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

    @routes.get(
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
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
        cookie: Annotated[str | None, Depends(session_cookie)],
    ) -> SignedIn:
        # The schemes above document the two ways in; signin.viewer reads them.
        return viewer(request)

    @routes.post(
        "/api/session",
        response_model=SessionOut,
        tags=["secretariat"],
        summary="Sign in with a named account: a bearer token for the other endpoints",
        responses={
            401: {"description": "wrong name or password"},
            429: {"description": "throttled"},
        },
    )
    def api_sign_in(request: Request, body: SignInIn) -> SessionOut:
        client = portal.client(request)
        wait = portal.throttle.attempt(client, body.name)
        if wait:
            raise HTTPException(
                429, "too many failed attempts; try again later", headers={"Retry-After": str(wait)}
            )
        with session_scope(settings) as session:
            account = authenticate(session, body.name, body.password)
            if account is None:
                raise HTTPException(401, "wrong name or password")
            token = start_session(session, account.id, client)
            found = resume(session, token)
        portal.throttle.succeeded(client, body.name)
        assert found is not None
        return SessionOut(
            token=token, name=found.name, role=found.role, expires_at=found.expires_at
        )

    @routes.delete(
        "/api/session",
        status_code=204,
        tags=["secretariat"],
        summary="Sign out: the bearer token stops working",
    )
    def api_sign_out(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> Response:
        viewer(request)
        with session_scope(settings) as session:
            end_session(session, credentials.credentials if credentials else None)
        return Response(status_code=204)

    @routes.get(
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

    @routes.get(
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

    return routes
