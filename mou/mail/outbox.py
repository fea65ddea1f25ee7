"""The outbox: every email is recorded once under a unique key, then delivered exactly once.

``enqueue_message`` writes a row (idempotent on ``key``) in the caller's transaction and
refuses there a message that could never be sent. ``mou.mail.delivery`` sends the rows,
``mou.mail.message`` builds their MIME form and ``mou.mail.transports`` carries them.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from email.utils import make_msgid, parseaddr

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mou.clock import utcnow
from mou.mail.message import parse_address
from mou.settings import Settings
from mou.store import files as filestore
from mou.store.database import begin_sqlite_transaction
from mou.store.models import OutboxMessage

logger = logging.getLogger(__name__)

# partial: delivered, but some recipients were refused (last_error names them).
# bounced: delivered to the relay, then returned by a delivery status notification.
STATUSES = ("pending", "sending", "sent", "partial", "failed", "bounced")

_KEY_LENGTH = 200  # OutboxMessage.key
_KIND_LENGTH = 20  # OutboxMessage.kind


@dataclass(frozen=True)
class Attachment:
    """A file to attach; the bytes go to the file store, the row keeps their sha256."""

    filename: str
    content_type: str
    data: bytes


def enqueue_message(
    session: Session,
    settings: Settings,
    *,
    key: str,
    kind: str,
    to: list[str],
    cc: list[str],
    subject: str,
    body_text: str,
    body_html: str | None = None,
    attachments: Sequence[Attachment] = (),
    cycle_id: int | None = None,
    state_id: int | None = None,
    submission_id: int | None = None,
    in_reply_to: str | None = None,
    references: Sequence[str] = (),
) -> tuple[OutboxMessage, bool]:
    """Record an email to send once; returns (row, created). An existing ``key`` wins as is.

    ``in_reply_to`` and ``references`` (Message-IDs) make it a reply in that thread.

    The row becomes visible to deliverers when the caller's transaction commits. Raises
    ValueError for a message that could never be sent (bad address, multi-line subject).
    """
    _validate(key=key, kind=kind, to=to, cc=cc, subject=subject, attachments=attachments)
    existing = _by_key(session, key)
    if existing is not None:
        return existing, False

    # Files first (idempotent, outside the transaction), so the row never names missing bytes.
    described = [
        {
            "filename": a.filename,
            "content_type": a.content_type,
            "sha256": filestore.write_bytes(settings.files_dir, a.data),
        }
        for a in attachments
    ]
    begin_sqlite_transaction(session)
    row = OutboxMessage(
        key=key,
        kind=kind,
        cycle_id=cycle_id,
        state_id=state_id,
        submission_id=submission_id,
        sender=settings.mail_from,
        to=list(to),
        cc=list(cc),
        subject=subject,
        body_text=body_text,
        body_html=body_html,
        attachments=described,
        status="pending",
        attempts=0,
        message_id=make_msgid(domain=_domain_of(settings.mail_from)),
        created_at=utcnow(),
        in_reply_to=in_reply_to,
        references=" ".join(references) or None,
    )
    try:
        with session.begin_nested():
            # The outbox row goes first: on SQLite its INSERT takes the write lock before
            # anything is read, so a concurrent writer is waited for, not a stale snapshot.
            session.add(row)
            session.flush()
            # Bytes another transaction records at the same moment are no conflict; in one
            # order (by digest) so that two such transactions never wait for each other.
            files = {d["sha256"]: a.data for d, a in zip(described, attachments, strict=True)}
            for digest in sorted(files):
                filestore.store(session, settings.files_dir, files[digest])
    except IntegrityError:
        existing = _by_key(session, key)
        if existing is None:
            raise
        logger.debug("outbox key %s was enqueued concurrently; keeping that row", key)
        return existing, False
    logger.info("enqueued %s message %s (%s)", kind, key, row.message_id)
    return row, True


def _validate(
    *,
    key: str,
    kind: str,
    to: list[str],
    cc: list[str],
    subject: str,
    attachments: Sequence[Attachment],
) -> None:
    # Checked here so both databases behave the same (SQLite ignores VARCHAR lengths) and a
    # message that could never be built is refused at the caller, not retried ten times.
    if not key or len(key) > _KEY_LENGTH:
        raise ValueError(f"outbox key must be 1-{_KEY_LENGTH} characters: {key!r}")
    if not kind or len(kind) > _KIND_LENGTH:
        raise ValueError(f"outbox kind must be 1-{_KIND_LENGTH} characters: {kind!r}")
    if not to:
        raise ValueError(f"message {key} has no recipient")
    for text in (*to, *cc):
        parse_address(text)
    for line in (subject, *(a.filename for a in attachments)):
        if "\n" in line or "\r" in line:
            raise ValueError(f"message {key}: line break in {line!r}")
    if any(not a.filename for a in attachments):
        raise ValueError(f"message {key} has an attachment without a file name")


def _by_key(session: Session, key: str) -> OutboxMessage | None:
    return session.scalars(select(OutboxMessage).where(OutboxMessage.key == key)).one_or_none()


def _domain_of(address: str) -> str:
    return parseaddr(address)[1].rpartition("@")[2] or "localhost"


def outbox_summary(session: Session, cycle_id: int | None = None) -> dict[str, int]:
    """Messages per status (every known status present, zero included), optionally per cycle."""
    query = select(OutboxMessage.status, func.count(OutboxMessage.id)).group_by(
        OutboxMessage.status
    )
    if cycle_id is not None:
        query = query.where(OutboxMessage.cycle_id == cycle_id)
    counts = dict.fromkeys(STATUSES, 0)
    for status, count in session.execute(query).all():
        counts[status] = count
    return counts


def retry_failed(
    session: Session, key: str | None = None, *, now: dt.datetime | None = None
) -> list[str]:
    """Put failed messages back in the queue, as new; returns their keys.

    With ``key``, that message. Without, the failures of the last ``RETRY_WINDOW`` whose cycle
    is still open (or that belong to no cycle): a reminder of a closed cycle, or one a month
    old, must not go out now. A partly delivered message is never sent again: the others got
    it.
    """
    from mou.store.models import ReportingCycle

    query = select(OutboxMessage).where(OutboxMessage.status == "failed")
    if key is not None:
        query = query.where(OutboxMessage.key == key)
    else:
        since = (now or utcnow()) - RETRY_WINDOW
        open_cycles = select(ReportingCycle.id).where(ReportingCycle.status == "open")
        query = query.where(
            OutboxMessage.created_at >= since,
            OutboxMessage.cycle_id.is_(None) | OutboxMessage.cycle_id.in_(open_cycles),
        )
    keys = []
    for message in session.scalars(query.order_by(OutboxMessage.id)):
        message.status = "pending"
        message.attempts = 0
        message.next_attempt_at = None
        keys.append(message.key)
    return keys


RETRY_WINDOW = dt.timedelta(days=30)
# Mail that did not reach everyone: refused by the relay (all or some recipients), or
# returned later by a delivery status notification read from the mailbox.
MAIL_PROBLEMS = ("failed", "partial", "bounced")


def undelivered(
    session: Session,
    *,
    cycle_id: int | None = None,
    outside_cycles: bool = False,
    now: dt.datetime | None = None,
) -> list[dict[str, str | int | None]]:
    """Mail that did not reach everyone (failed, partly refused, or bounced by the recipient's
    server), oldest first, as plain data.

    Of one cycle (``cycle_id``), or, with ``outside_cycles``, mail of no cycle (the
    Secretariat's alerts, receipts of returns whose cycle was never read) of the last
    ``RETRY_WINDOW``: what ``retry_failed`` without a key would send again.
    """
    query = select(OutboxMessage).where(OutboxMessage.status.in_(MAIL_PROBLEMS))
    if outside_cycles:
        since = (now or utcnow()) - RETRY_WINDOW
        query = query.where(OutboxMessage.cycle_id.is_(None), OutboxMessage.created_at >= since)
    else:
        query = query.where(OutboxMessage.cycle_id == cycle_id)
    return [
        {
            "kind": message.kind,
            "key": message.key,
            "status": message.status,
            "error": message.last_error,
            "state_id": message.state_id,
            "to": ", ".join(message.to),
            "created": message.created_at.isoformat(timespec="seconds"),
        }
        for message in session.scalars(query.order_by(OutboxMessage.created_at, OutboxMessage.id))
    ]
