"""Dispatch the official request: letter + template, To the ministry of foreign affairs, Cc
the focal ministry, through the outbox (one message per request, whatever is re-run)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from mou.catalogue.addressbook import ministries_of
from mou.cycle.context import template_for
from mou.cycle.links import request_email_paragraph
from mou.cycle.standing import state_deadline
from mou.documents import PDF_CONTENT_TYPE
from mou.errors import Refused
from mou.i18n.formatting import Formatter
from mou.i18n.languages import pick
from mou.i18n.texts import Messages
from mou.mail.outbox import Attachment, enqueue_message
from mou.settings import Settings
from mou.store import models as m
from mou.workbook import XLSX_CONTENT_TYPE


def request_key(request: m.ReportRequest) -> str:
    return f"request:{request.cycle_id}:{request.state.code}:1"


def template_filename(request: m.ReportRequest, language: str | None = None) -> str:
    """The workbook's name wherever it is sent (request, reminders): the state by the code of
    the request's reference, then the workbook's language."""
    cycle = request.cycle
    language = language or request.language
    return f"{cycle.instrument.code}-{cycle.period}-{request.state.code}-{language}.xlsx"


def dispatch_request(
    session: Session,
    settings: Settings,
    request_id: int,
    now: dt.datetime | None = None,
    *,
    key: str | None = None,
    resent: bool = False,
) -> tuple[m.OutboxMessage, bool]:
    """Enqueue the request email of one state; (message, created). Idempotent by its key.

    ``key`` and ``resent``: the same request sent again (same reference, to the addresses
    the address book has now), under a key of its own.
    """
    from mou.documents.letters import render_request_letter, request_letter_for

    request = session.get(m.ReportRequest, request_id)
    if request is None:
        raise Refused(f"report request {request_id} does not exist")
    key = key or request_key(request)
    existing = session.scalars(select(m.OutboxMessage).filter_by(key=key)).one_or_none()
    if existing is not None:
        return existing, False
    cycle, state, language = request.cycle, request.state, request.language
    instrument = cycle.instrument
    ministries = ministries_of(session, state.id, instrument.code)
    if not ministries.foreign_affairs:
        raise Refused(
            f"{state.code} has no enabled ministry of foreign affairs in the address book: "
            f"see `mou contacts list --state {state.code}`"
        )
    workbook = template_for(session, settings, cycle.id, state.code, language)
    filename = template_filename(request)
    letter = render_request_letter(
        request_letter_for(session, request.id, settings, enclosures=(filename,)), settings
    )
    texts = Messages(settings.forms_dir, language)
    params = {
        "instrument": pick(instrument.short_name, language),
        "period": cycle.period,
        "reference": request.reference,
        "state": pick(state.name, language),
        "deadline": Formatter(language).date(state_deadline(cycle, request)),
    }
    intro = texts.email("resend_intro", **params) + "\n\n" if resent else ""
    message, created = enqueue_message(
        session,
        settings,
        key=key,
        kind="request",
        to=ministries.foreign_affairs_emails,
        cc=ministries.focal_emails,
        subject=texts.email("request_subject", **params),
        body_text=intro
        + texts.email("request_body", **params)
        + "\n\n"
        + request_email_paragraph(
            settings,
            cycle.id,
            state.code,
            language,
            deadline=state_deadline(cycle, request),
            state_name=params["state"],
        ),
        attachments=[
            Attachment(f"{request.reference.replace('/', '-')}.pdf", PDF_CONTENT_TYPE, letter),
            Attachment(filename, XLSX_CONTENT_TYPE, workbook),
        ],
        cycle_id=cycle.id,
        state_id=state.id,
    )
    if created and request.dispatched_at is None:
        request.dispatched_at = now or m.utcnow()
    return message, created
