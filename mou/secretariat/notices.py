"""The emails of the Secretariat's actions, in the state's language, through the outbox."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.orm import Session

from mou.catalogue.addressbook import ministries_of
from mou.cycle.links import request_email_paragraph
from mou.cycle.standing import state_deadline
from mou.i18n.formatting import Formatter
from mou.i18n.languages import pick
from mou.i18n.texts import Messages
from mou.mail.message import parse_address
from mou.mail.outbox import enqueue_message
from mou.settings import Settings
from mou.store import models as m


def _params(cycle: m.ReportingCycle, request: m.ReportRequest, language: str) -> dict[str, str]:
    return {
        "instrument": pick(cycle.instrument.short_name, language),
        "period": cycle.period,
        "reference": request.reference,
        "state": pick(request.state.name, language),
        "deadline": Formatter(language).date(state_deadline(cycle, request)),
    }


def _portal_paragraph(
    settings: Settings, cycle: m.ReportingCycle, request: m.ReportRequest, language: str
) -> str:
    # A new link: the one sent with the request expires with the deadline it was made for.
    return request_email_paragraph(
        settings,
        cycle.id,
        request.state.code,
        language,
        deadline=state_deadline(cycle, request),
        state_name=pick(request.state.name, language),
    )


def enqueue_extension_notice(
    session: Session, settings: Settings, cycle: m.ReportingCycle, request: m.ReportRequest
) -> tuple[m.OutboxMessage, bool]:
    """A short formal notice of the new deadline, To and Cc as the request went."""
    language = request.language
    texts = Messages(settings.forms_dir, language)
    params = _params(cycle, request, language)
    ministries = ministries_of(session, request.state_id, cycle.instrument.code)
    deadline = state_deadline(cycle, request)
    return enqueue_message(
        session,
        settings,
        key=f"extension:{cycle.id}:{request.state.code}:{deadline.isoformat()}",
        kind="extension",
        to=ministries.foreign_affairs_emails or ministries.focal_emails,
        cc=ministries.focal_emails if ministries.foreign_affairs_emails else [],
        subject=texts.email("extension_subject", **params),
        body_text=texts.email("extension_body", **params)
        + "\n\n"
        + _portal_paragraph(settings, cycle, request, language),
        cycle_id=cycle.id,
        state_id=request.state_id,
    )


def _valid(address: str | None) -> str | None:
    if not address:
        return None
    try:
        parse_address(address)
    except ValueError:
        return None
    return address


def enqueue_correction_email(
    session: Session,
    settings: Settings,
    correction: m.CorrectionRequest,
    submission: m.Submission,
    lines: Sequence[str],
) -> tuple[m.OutboxMessage, bool]:
    """The Secretariat's comments on a return, to the focal ministry and the file's sender,
    cc the ministry of foreign affairs, in the return's language."""
    request = session.get(m.ReportRequest, submission.request_id)
    assert request is not None  # a return is sent back only once matched to its request
    cycle = request.cycle
    language = submission.language or request.language
    texts = Messages(settings.forms_dir, language)
    params = _params(cycle, request, language)
    ministries = ministries_of(session, request.state_id, cycle.instrument.code)
    to = list(ministries.focal_emails)
    sender = _valid(submission.sender)
    if sender and sender.lower() not in {a.lower() for a in to}:
        to.append(sender)
    cc = [a for a in ministries.foreign_affairs_emails if a.lower() not in {t.lower() for t in to}]
    if not to:
        to, cc = cc, []
    body = texts.email(
        "correction_body",
        **params,
        receipt=submission.id,
        received=Formatter(language).date(submission.received_at),
        comments="\n".join(lines),
    )
    return enqueue_message(
        session,
        settings,
        key=f"correction:{correction.id}",
        kind="correction",
        to=to,
        cc=cc,
        subject=texts.email("correction_subject", **params),
        body_text=body + "\n\n" + _portal_paragraph(settings, cycle, request, language),
        cycle_id=cycle.id,
        state_id=request.state_id,
        submission_id=submission.id,
    )
