"""Reminders: before the deadline, on it, and after it (escalated to the ministry of foreign
affairs); never to a state whose return is accepted; never twice for a step. Which step is
due is a plain rule in ``rules.py``."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from mou.catalogue.addressbook import ministries_of
from mou.cycle.context import template_for
from mou.cycle.dispatch import template_filename
from mou.cycle.links import request_email_paragraph
from mou.cycle.rules import Step, step_due
from mou.cycle.standing import state_deadline
from mou.documents import PDF_CONTENT_TYPE
from mou.documents.letters import escalation_letter_for, render_escalation_letter
from mou.i18n.formatting import Formatter
from mou.i18n.languages import pick
from mou.i18n.texts import Messages
from mou.mail.outbox import Attachment, enqueue_message
from mou.settings import Settings
from mou.store import models as m
from mou.workbook import XLSX_CONTENT_TYPE


def _has_return(session: Session, request: m.ReportRequest) -> bool:
    """Accepted in this cycle, or being read for this cycle's request (a portal upload)."""
    statuses = session.scalars(
        select(m.Submission.status).where(
            m.Submission.cycle_id == request.cycle_id,
            m.Submission.state_id == request.state_id,
        )
    ).all()
    # Only a return known to be for this very request (its portal link names the cycle): a
    # file of the same state for another instrument or cycle must not silence this one.
    pending = session.scalars(
        select(m.Submission.id).where(
            m.Submission.expected_state_id == request.state_id,
            m.Submission.expected_cycle_id == request.cycle_id,
            m.Submission.status == "received",
        )
    ).first()
    return "accepted" in statuses or pending is not None


def send_reminders(session: Session, settings: Settings, today: dt.date) -> list[m.OutboxMessage]:
    """Enqueue today's reminders for every open cycle; returns the messages newly enqueued."""
    enqueued: list[m.OutboxMessage] = []
    cycles = session.scalars(select(m.ReportingCycle).filter_by(status="open")).all()
    for cycle in cycles:
        for request in cycle.requests:
            if request.dispatched_at is None or request.excused_at is not None:
                continue
            deadline = state_deadline(cycle, request)
            changes = [c for c in (cycle.deadline_changed_at, request.deadline_changed_at) if c]
            step = step_due(deadline, today, since=max(changes).date() if changes else None)
            if step is None or _has_return(session, request):
                continue
            message, created = _remind(session, settings, cycle, request, step, deadline, today)
            if created:
                enqueued.append(message)
    return enqueued


def reminder_key(
    cycle: m.ReportingCycle, request: m.ReportRequest, step: Step, deadline: dt.date
) -> str:
    """One reminder per step of each deadline: an extended deadline has steps of its own."""
    if deadline == (cycle.original_deadline or cycle.deadline):
        return f"reminder:{cycle.id}:{request.state.code}:{step.name}"
    return f"reminder:{cycle.id}:{request.state.code}:{deadline.isoformat()}:{step.name}"


def _remind(
    session: Session,
    settings: Settings,
    cycle: m.ReportingCycle,
    request: m.ReportRequest,
    step: Step,
    deadline: dt.date,
    today: dt.date,
) -> tuple[m.OutboxMessage, bool]:
    key = reminder_key(cycle, request, step, deadline)
    existing = session.scalars(select(m.OutboxMessage).filter_by(key=key)).one_or_none()
    if existing is not None:
        return existing, False
    language = request.language
    texts = Messages(settings.forms_dir, language)
    instrument = cycle.instrument
    params = {
        "state": pick(request.state.name, language),
        "instrument": pick(instrument.short_name, language),
        "period": cycle.period,
        "deadline": Formatter(language).date(deadline),
        "reference": request.reference,
    }
    ministries = ministries_of(session, request.state_id, instrument.code)
    to, cc = ministries.focal_emails, ministries.foreign_affairs_emails
    if step.escalate or not to:
        to, cc = cc, to
    attachments: list[Attachment] = []
    if step.escalate:
        # To the ministry of foreign affairs, a formal note recalling the request.
        note = escalation_letter_for(session, request.id, settings, today=today, deadline=deadline)
        attachments.append(
            Attachment(
                filename=f"note-{request.reference.replace('/', '-')}-{step.name}.pdf",
                content_type=PDF_CONTENT_TYPE,
                data=render_escalation_letter(note, settings),
            )
        )
    workbook = template_for(session, settings, cycle.id, request.state.code, language)
    attachments.append(
        Attachment(
            filename=template_filename(request, language),
            content_type=XLSX_CONTENT_TYPE,
            data=workbook,
        )
    )
    return enqueue_message(
        session,
        settings,
        key=key,
        kind="reminder",
        to=to,
        cc=cc,
        subject=texts.email(f"reminder_subject_{step.text}", **params),
        # The personal link, made for the deadline the state is held to now.
        body_text=texts.email(f"reminder_body_{step.text}", **params)
        + "\n\n"
        + request_email_paragraph(
            settings,
            cycle.id,
            request.state.code,
            language,
            deadline=deadline,
            state_name=params["state"],
        ),
        attachments=attachments,
        cycle_id=cycle.id,
        state_id=request.state_id,
    )
