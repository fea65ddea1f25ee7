"""Telling the Secretariat what needs a person: a return the service could not decide, an
email that bounced."""

from __future__ import annotations

from sqlalchemy.orm import Session

from mou.cycle.links import portal_base_url
from mou.i18n.formatting import Formatter
from mou.mail.outbox import enqueue_message
from mou.settings import Settings
from mou.store import models as m


def alert_key(submission_id: int) -> str:
    return f"alert:set-aside:{submission_id}"


def enqueue_set_aside_alert(
    session: Session, settings: Settings, submission_id: int, fault: str
) -> tuple[m.OutboxMessage, bool]:
    """An email to the Secretariat's own address about a return set aside; once per return.

    Internal, so in English; it names the file, who sent it and the fault, and where the
    dashboard lists it. The sender's receipt promises that the Secretariat has been told.
    """
    submission = session.get(m.Submission, submission_id)
    if submission is None:
        raise LookupError(f"no submission {submission_id}")
    received = Formatter("en").moment(submission.received_at)
    body = "\n".join(
        [
            f"Submission {submission.id} could not be processed and was set aside as refused.",
            "",
            f"File:     {submission.filename}",
            f"Sender:   {submission.sender or '(unknown)'} (by {submission.channel})",
            f"Received: {received}",
            f"Fault:    {fault}",
            "",
            "The sender was told that the file is kept and that the Secretariat will contact "
            'them. The file is listed on the dashboard under "Returns that could not be '
            f'processed": {portal_base_url(settings)}/dashboard#set-aside',
        ]
    )
    return enqueue_message(
        session,
        settings,
        key=alert_key(submission_id),
        kind="alert",
        to=[settings.mail_from],
        cc=[],
        subject=f"Return {submission.id} could not be processed ({submission.filename})",
        body_text=body,
        attachments=[],
        submission_id=submission.id,
    )


RESENDABLE = ("request", "reminder")  # the request goes out again to the corrected address


def bounce_alert_key(mail_message_id: int) -> str:
    return f"alert:bounce:{mail_message_id}"


def enqueue_bounce_alert(
    session: Session, settings: Settings, mail_message_id: int, outbox_id: int, reason: str
) -> tuple[m.OutboxMessage, bool]:
    """An email to the Secretariat's own address about a message that bounced; once per
    bounce (the bounce's own row in the mailbox is the key)."""
    message = session.get(m.OutboxMessage, outbox_id)
    if message is None:
        raise LookupError(f"no outbox message {outbox_id}")
    state = session.get(m.RangeState, message.state_id) if message.state_id else None
    cycle = session.get(m.ReportingCycle, message.cycle_id) if message.cycle_id else None
    where = f"{state.code} " if state else ""
    body = "\n".join(
        [
            f"The {message.kind} email {message.key} did not arrive.",
            "",
            f"To:       {', '.join(message.to)}",
            f"Cc:       {', '.join(message.cc) or '-'}",
            f"Subject:  {message.subject}",
            f"Reason:   {reason}",
            "",
            "It is marked as bounced"
            + (f" in `mou status {cycle.id}` and on the dashboard" if cycle else "")
            + ". Correct the address in the address book, then send the message again"
            + (
                f" (`mou request resend {cycle.id} --state {state.code}`)."
                if cycle is not None and state is not None and message.kind in RESENDABLE
                else "."
            ),
            f"Dashboard: {portal_base_url(settings)}/dashboard",
        ]
    )
    return enqueue_message(
        session,
        settings,
        key=bounce_alert_key(mail_message_id),
        kind="alert",
        to=[settings.mail_from],
        cc=[],
        subject=f"Email not delivered: {where}{message.kind} ({message.key})",
        body_text=body,
        attachments=[],
        cycle_id=None,
        state_id=None,
    )
