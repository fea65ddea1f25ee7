"""A mailbox message, recorded then handled, each step committed and safe to repeat.

``record_mail`` keeps the raw bytes (sha256-addressed) and a row keyed by Message-ID before
anything else. ``handle_mail`` then does what the message asks, once: a conditional update
of the row (``handled_at`` still empty) is the lock, so a second reader, or the same message
read again after a crash, finds it handled and does nothing. The server is told (the message
moved) only after that commit, by the reader.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from mou.intake.alerts import enqueue_bounce_alert
from mou.intake.documents import document_problem, keep_document
from mou.intake.record import record_submission, state_of_sender
from mou.mailbox.answers import ANSWER_KIND, enqueue_no_workbook_answer
from mou.mailbox.message import IncomingMail
from mou.settings import Settings
from mou.store import files as filestore
from mou.store import models as m
from mou.store.database import insert_unless_present, session_scope

log = logging.getLogger(__name__)

# RFC 3834 3.1.1: no more than one automatic answer to the same sender in a period.
ANSWER_PERIOD = dt.timedelta(hours=24)
NOTE_MAX = 2000


def mail_key(mail: IncomingMail, sha256: str) -> str:
    """The message's identity across readings: its Message-ID, or its bytes without one."""
    if mail.message_id and len(mail.message_id) <= 250:
        return mail.message_id
    return f"sha256:{sha256}"


def record_mail(
    session: Session, settings: Settings, raw: bytes, mail: IncomingMail, folder: str
) -> tuple[int, bool]:
    """Keep the bytes and the row; (row id, new). The same message again gives the first row."""
    sha256 = filestore.store(session, settings.files_dir, raw)
    key = mail_key(mail, sha256)
    new_id = session.execute(
        insert_unless_present(session, m.MailMessage, "key")
        .values(
            key=key,
            raw_sha256=sha256,
            message_id=mail.message_id,
            sender=mail.sender,
            from_header=mail.from_header[:1000],
            subject=mail.subject[:1000],
            sent_date=mail.date,
            in_reply_to=mail.in_reply_to,
            references=" ".join(mail.references) or None,
            folder=folder[:200],
            received_at=m.utcnow(),
        )
        .returning(m.MailMessage.id)
    ).scalar_one_or_none()
    if new_id is not None:
        return new_id, True
    return session.scalars(select(m.MailMessage.id).filter_by(key=key)).one(), False


@dataclass
class Handled:
    """What handling one message did (``already``: it was handled before, nothing done)."""

    mail_id: int
    kind: str
    note: str = ""
    submissions: list[int] = field(default_factory=list)  # recorded now, to be decided
    answered: bool = False
    bounced: str | None = None  # the outbox key of the message that bounced
    outbox_id: int | None = None  # the service's message it answers or says bounced
    already: bool = False


def take_mail(settings: Settings, raw: bytes, mail: IncomingMail, folder: str) -> Handled:
    """Record (committed), then handle (committed): what the reader calls per message."""
    with session_scope(settings) as session:
        mail_id, _ = record_mail(session, settings, raw, mail, folder)
    with session_scope(settings) as session:
        return handle_mail(session, settings, mail_id, mail)


def handle_mail(
    session: Session,
    settings: Settings,
    mail_id: int,
    mail: IncomingMail,
    now: dt.datetime | None = None,
) -> Handled:
    """Do what the message asks, once (in the caller's transaction)."""
    now = now or m.utcnow()
    won = session.execute(
        update(m.MailMessage)
        .where(m.MailMessage.id == mail_id, m.MailMessage.handled_at.is_(None))
        .values(handled_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    row = session.get(m.MailMessage, mail_id)
    assert row is not None
    if won != 1:
        return Handled(mail_id, row.kind or "", row.note or "", already=True)
    thread = _thread_message(session, mail)
    if mail.bounce is not None:
        handled = _bounce(session, settings, row, mail, now)
    elif mail.automatic is not None:
        log.info(
            "mailbox: %s from %s is automatic (%s): no answer", row.key, mail.sender, mail.automatic
        )
        handled = Handled(mail_id, "auto_reply", f"automatic ({mail.automatic}): not answered")
    elif mail.workbooks:
        handled = _returns(session, settings, row, mail, thread)
    else:
        handled = _no_workbook(session, settings, row, mail, thread, now)
    if mail.skipped:
        handled.note = "; ".join([handled.note, *mail.skipped]).strip("; ")
    session.execute(
        update(m.MailMessage)
        .where(m.MailMessage.id == mail_id)
        .values(
            kind=handled.kind,
            note=handled.note[:NOTE_MAX],
            outbox_message_id=handled.outbox_id or (thread.id if thread else None),
        )
        .execution_options(synchronize_session=False)
    )
    session.expire(row)
    return handled


def _thread_message(session: Session, mail: IncomingMail) -> m.OutboxMessage | None:
    """The service's own message this one answers (In-Reply-To, then References)."""
    ids = list(mail.thread_ids)
    if not ids:
        return None
    found = {
        o.message_id: o
        for o in session.scalars(select(m.OutboxMessage).where(m.OutboxMessage.message_id.in_(ids)))
    }
    return next((found[i] for i in ids if i in found), None)


def _returns(
    session: Session,
    settings: Settings,
    row: m.MailMessage,
    mail: IncomingMail,
    thread: m.OutboxMessage | None,
) -> Handled:
    """Each workbook through the intake as any return; documents kept beside them."""
    handled = Handled(row.id, "return")
    # The request (or reminder, or receipt) it answers says which state and cycle to expect;
    # the workbook's signed identity decides, the intake refuses a mismatch.
    expected_state = None
    if thread is not None and thread.state_id is not None:
        state = session.get(m.RangeState, thread.state_id)
        expected_state = state.code if state else None
    expected_cycle = thread.cycle_id if thread is not None else None
    notes = []
    submission_ids = []
    for part in mail.workbooks:
        if len(part.data) > settings.max_kept_bytes:
            notes.append(f"{part.filename}: over {settings.max_kept_bytes // 2**20} MB, not taken")
            continue
        recorded = record_submission(
            session,
            settings,
            part.data,
            filename=part.filename,
            sender=mail.sender,
            channel="email",
            expected_state=expected_state,
            expected_cycle_id=expected_cycle,
        )
        _link(session, row.id, recorded.submission_id)
        submission_ids.append(recorded.submission_id)
        if recorded.created:
            handled.submissions.append(recorded.submission_id)
            notes.append(f"{part.filename}: submission {recorded.submission_id}")
        else:
            notes.append(f"{part.filename}: received before as submission {recorded.submission_id}")
    for part in mail.documents:
        problem = document_problem(settings, part.filename, part.data)
        if problem is not None:
            notes.append(f"{problem.filename}: {problem.reason}, not kept as a document")
            continue
        for submission_id in dict.fromkeys(submission_ids):
            keep_document(
                session,
                settings,
                submission_id,
                part.filename,
                part.data,
                channel="email",
                mail_message_id=row.id,
            )
        notes.append(f"{part.filename}: kept as a supporting document")
    handled.note = "; ".join(notes)
    return handled


def _link(session: Session, mail_id: int, submission_id: int) -> None:
    exists = session.scalars(
        select(m.MailSubmission.id).filter_by(mail_message_id=mail_id, submission_id=submission_id)
    ).first()
    if exists is None:
        session.add(m.MailSubmission(mail_message_id=mail_id, submission_id=submission_id))
        session.flush()


def _no_workbook(
    session: Session,
    settings: Settings,
    row: m.MailMessage,
    mail: IncomingMail,
    thread: m.OutboxMessage | None,
    now: dt.datetime,
) -> Handled:
    """One polite answer saying what to attach, never a second to the same sender soon."""
    handled = Handled(row.id, "no_workbook")
    if not mail.sender:
        handled.note = "no workbook; no address to answer"
        return handled
    if _answered_recently(session, mail.sender, now):
        handled.note = "no workbook; this sender was answered in the last 24 hours"
        return handled
    state = None
    if thread is not None and thread.state_id is not None:
        state = session.get(m.RangeState, thread.state_id)
    state = state or state_of_sender(session, mail.sender)
    try:
        enqueue_no_workbook_answer(session, settings, row, state)
    except ValueError as exc:  # an address no message can be written to
        handled.note = f"no workbook; not answered ({exc})"
        return handled
    handled.answered = True
    handled.note = "no workbook; answered"
    return handled


def _answered_recently(session: Session, sender: str, now: dt.datetime) -> bool:
    recent = session.scalars(
        select(m.OutboxMessage.to).where(
            m.OutboxMessage.kind == ANSWER_KIND,
            m.OutboxMessage.created_at >= now - ANSWER_PERIOD,
        )
    ).all()
    address = sender.lower()
    return any(address in (a.lower() for a in to) for to in recent)


def _bounce(
    session: Session,
    settings: Settings,
    row: m.MailMessage,
    mail: IncomingMail,
    now: dt.datetime,
) -> Handled:
    """Mark the outbox message that did not arrive as bounced; tell the Secretariat once."""
    bounce = mail.bounce
    assert bounce is not None
    handled = Handled(row.id, "bounce")
    original = None
    if bounce.original_message_id:
        original = session.scalars(
            select(m.OutboxMessage).filter_by(message_id=bounce.original_message_id)
        ).first()
    if original is None:
        handled.note = (
            f"bounce of {bounce.original_message_id or 'an unnamed message'} that the service "
            f"did not send: {bounce.reason}"
        )
        log.warning("mailbox: %s", handled.note)
        return handled
    recipients = ", ".join(bounce.recipients)
    reason = f"bounced{' for ' + recipients if recipients else ''}: {bounce.reason}"
    session.execute(
        update(m.OutboxMessage)
        .where(m.OutboxMessage.id == original.id)
        .values(status="bounced", bounced_at=now, last_error=reason[:1000])
        .execution_options(synchronize_session=False)
    )
    session.expire(original)
    handled.outbox_id = original.id
    handled.bounced = original.key
    handled.note = f"{original.key} {reason}"
    log.warning("mailbox: %s %s", original.key, reason)
    if original.kind != "alert":  # an alert that bounced is not alerted about (no loop)
        enqueue_bounce_alert(session, settings, row.id, original.id, reason)
    return handled
