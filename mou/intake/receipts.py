"""The receipt for a submission: to the sender and the focal ministry, in the template's
language, listing errors and warnings; an accepted return carries its summary as read."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from mou.catalogue.addressbook import ministries_of
from mou.documents import PDF_CONTENT_TYPE
from mou.i18n.formatting import Formatter
from mou.i18n.languages import pick
from mou.i18n.texts import Messages
from mou.intake.decide import PROCESSING_FAILED
from mou.mail.outbox import Attachment, enqueue_message
from mou.settings import Settings
from mou.store import models as m


def receipt_key(submission_id: int) -> str:
    return f"receipt:{submission_id}"


def enqueue_receipt(
    session: Session, settings: Settings, submission_id: int
) -> tuple[m.OutboxMessage | None, bool]:
    """Enqueue the receipt of a decided submission; (None, False) when nobody can be told."""
    key = receipt_key(submission_id)
    existing = session.scalars(select(m.OutboxMessage).filter_by(key=key)).one_or_none()
    if existing is not None:
        return existing, False
    submission = session.get(m.Submission, submission_id)
    if submission is None or submission.status not in ("accepted", "rejected"):
        return None, False
    state = submission.state or (
        session.get(m.RangeState, submission.expected_state_id)
        if submission.expected_state_id
        else None
    )
    cycle = submission.cycle
    focal: list[str] = []
    if state is not None:
        instrument = cycle.instrument.code if cycle else ""
        focal = ministries_of(session, state.id, instrument).focal_emails
    to = [submission.sender] if submission.sender else focal
    cc = [address for address in focal if address not in to]
    if not to:
        return None, False
    language = submission.language or (state.language if state else "en")
    texts = Messages(settings.forms_dir, language)
    params = {
        "state": pick(state.name, language) if state else "",
        "instrument": (pick(cycle.instrument.short_name, language) if cycle else ""),
        "period": cycle.period if cycle else "",
        "version": submission.version or "",
        "received": Formatter(language).moment(submission.received_at),
        "filename": submission.filename,
        "reference": _reference(session, submission, state),
    }
    # The subject names the state, the instrument and the request when they are known.
    known = "_for" if params["reference"] and params["state"] and params["instrument"] else ""
    errors = [i for i in submission.issues if i.severity == "error"]
    warnings = [i for i in submission.issues if i.severity == "warning"]
    attachments: list[Attachment] = []
    later = (
        session.get(m.Submission, submission.superseded_by_id)
        if submission.status == "accepted" and submission.superseded_by_id
        else None
    )
    if later is not None:
        # Read and valid, but a return received after it already counts: never "accepted as
        # version N" for a file that does not count.
        params["later_filename"] = later.filename
        params["later_received"] = Formatter(language).moment(later.received_at)
        subject = texts.email("receipt_subject_superseded", **params).replace(", )", ")")
        lines = [texts.email("receipt_body_superseded", **params)]
    elif submission.status == "accepted":
        from mou.reporting.consolidation import read_return
        from mou.reporting.state_summary import render_state_summary

        subject = texts.email("receipt_subject_accepted", **params).replace(", )", ")")
        lines = [texts.email("receipt_body_accepted", **params)]
        if warnings:
            lines += ["", texts.email("warnings_heading")]
            lines += [f"- {issue.message}" for issue in warnings]
        returned = read_return(session, submission.id, forms_dir=settings.forms_dir)
        summary = render_state_summary(returned, language, settings)
        name = f"summary-{state.code if state else 'return'}-v{submission.version}.pdf"
        attachments.append(Attachment(name, PDF_CONTENT_TYPE, summary))
    elif [issue.code for issue in errors] == [PROCESSING_FAILED]:
        # Not the ministry's fault: no "please correct", only what happened and what follows.
        subject = texts.email(f"receipt_subject_failed{known}", **params)
        lines = [texts.email("receipt_body_failed", **params), "", errors[0].message]
    else:
        subject = texts.email(f"receipt_subject_rejected{known}", **params)
        lines = [texts.email("receipt_body_rejected", **params), ""]
        lines += [f"- {issue.message}" for issue in errors]
        if warnings:
            lines += ["", *[f"- {issue.message}" for issue in warnings]]
        lines += ["", texts.email("receipt_rejected_footer")]
        link = _portal_paragraph(session, settings, submission, state, language)
        if link:
            lines += ["", link]
    thread = arrived_in(session, submission.id)
    in_reply_to, references = None, []
    if thread is not None and thread.message_id:
        # A return that came by email is answered in its thread: "Re:" its subject, the
        # receipt's own subject as the first line.
        in_reply_to = thread.message_id
        references = [*(thread.references or "").split(), thread.message_id][-20:]
        if thread.subject.strip():
            lines = [subject, "", *lines]
            subject = reply_subject(thread.subject)
    return enqueue_message(
        session,
        settings,
        key=key,
        kind="receipt",
        to=to,
        cc=cc,
        subject=subject,
        body_text="\n".join(lines),
        attachments=attachments,
        cycle_id=cycle.id if cycle else None,
        state_id=state.id if state else None,
        submission_id=submission.id,
        in_reply_to=in_reply_to,
        references=references,
    )


def arrived_in(session: Session, submission_id: int) -> m.MailMessage | None:
    """The mailbox message that first brought this return, if it came by email."""
    return session.scalars(
        select(m.MailMessage)
        .join(m.MailSubmission, m.MailSubmission.mail_message_id == m.MailMessage.id)
        .where(m.MailSubmission.submission_id == submission_id)
        .order_by(m.MailSubmission.id)
    ).first()


def _portal_paragraph(
    session: Session,
    settings: Settings,
    submission: m.Submission,
    state: m.RangeState | None,
    language: str,
) -> str:
    """The state's personal portal link for the corrected file, while its cycle is open."""
    from mou.cycle.links import request_email_paragraph
    from mou.cycle.standing import state_deadline

    cycle_id = submission.cycle_id or submission.expected_cycle_id
    cycle = session.get(m.ReportingCycle, cycle_id) if cycle_id else None
    if state is None or cycle is None or cycle.status != "open":
        return ""
    request = session.scalars(
        select(m.ReportRequest).filter_by(cycle_id=cycle.id, state_id=state.id)
    ).first()
    if request is None:
        return ""
    return request_email_paragraph(
        settings,
        cycle.id,
        state.code,
        language,
        deadline=state_deadline(cycle, request),
        state_name=pick(state.name, language),
    )


def _reference(session: Session, submission: m.Submission, state: m.RangeState | None) -> str:
    """The reference of the request a return answers (known once its state and cycle are)."""
    if submission.request_id:
        request = session.get(m.ReportRequest, submission.request_id)
        return request.reference if request else ""
    cycle_id = submission.cycle_id or submission.expected_cycle_id
    if state is None or cycle_id is None:
        return ""
    request = session.scalars(
        select(m.ReportRequest).filter_by(cycle_id=cycle_id, state_id=state.id)
    ).first()
    return request.reference if request else ""


def reply_subject(subject: str) -> str:
    """``Re: `` and the subject answered, once (on one line, as headers must be)."""
    subject = " ".join(subject.split())[:900]
    return subject if subject.lower().startswith(("re:", "отв:", "réf:")) else f"Re: {subject}"
