"""The outbox: every email is recorded once under a unique key, then delivered exactly once.

``enqueue_message`` writes a row (idempotent on ``key``); ``deliver_pending`` claims due rows
one at a time with a conditional UPDATE committed before anything is sent, so concurrent
deliverers (threads, processes, machines) never send the same message. Delivery goes to the
configured SMTP relay, or, with no relay configured, to ``.eml`` files in ``var/outbox``.

A sender that crashes after the relay accepted a message but before recording it leaves the
row in "sending"; after ``STALE_CLAIM_AFTER`` it is sent again (at-least-once in that one
window, with the same Message-ID so mail clients can recognise the duplicate).
"""

from __future__ import annotations

import base64
import datetime as dt
import email.policy
import hashlib
import logging
import os
import smtplib
import socket
import ssl
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mou.settings import Settings
from mou.store import files as filestore
from mou.store.database import begin_sqlite_transaction, session_scope
from mou.store.models import OutboxMessage, utcnow

logger = logging.getLogger(__name__)

STATUSES = ("pending", "sending", "sent", "failed")
MAX_ATTEMPTS = 10
STALE_CLAIM_AFTER = dt.timedelta(minutes=15)
RETRY_BASE = dt.timedelta(seconds=30)
RETRY_CAP = dt.timedelta(hours=1)

# Bodies are base64/quoted-printable rather than 8bit, so relays without 8BITMIME accept them;
# non-ASCII headers and filenames are RFC 2047/2231 encoded.
POLICY = email.policy.SMTP.clone(cte_type="7bit")

_KEY_LENGTH = 200  # OutboxMessage.key
_KIND_LENGTH = 20  # OutboxMessage.kind


@dataclass(frozen=True)
class Attachment:
    """A file to attach; the bytes go to the file store, the row keeps their sha256."""

    filename: str
    content_type: str
    data: bytes


@dataclass
class DeliveryReport:
    """What one ``deliver_pending`` run did.

    ``sent``: delivered in this run. ``deferred``: failed transiently in this run, to be retried.
    ``failed``: given up in this run (permanent refusal or ``MAX_ATTEMPTS`` reached).
    ``still_pending``: rows in status "pending" after the run (not yet due, or not reached).
    """

    sent: int = 0
    deferred: int = 0
    failed: int = 0
    still_pending: int = 0
    sent_message_ids: list[str] = field(default_factory=list)


# --- enqueue ---------------------------------------------------------------------------------


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
) -> tuple[OutboxMessage, bool]:
    """Record an email to send once; returns (row, created). An existing ``key`` wins as is.

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
        _address(text)
    for line in (subject, *(a.filename for a in attachments)):
        if "\n" in line or "\r" in line:
            raise ValueError(f"message {key}: line break in {line!r}")
    if any(not a.filename for a in attachments):
        raise ValueError(f"message {key} has an attachment without a file name")


def _by_key(session: Session, key: str) -> OutboxMessage | None:
    return session.scalars(select(OutboxMessage).where(OutboxMessage.key == key)).one_or_none()


def _domain_of(address: str) -> str:
    return parseaddr(address)[1].rpartition("@")[2] or "localhost"


# --- building --------------------------------------------------------------------------------


def build_email(message: OutboxMessage, settings: Settings) -> EmailMessage:
    """The MIME message for an outbox row, attachments read from the file store."""
    mail = EmailMessage(policy=POLICY)
    mail["From"] = _address(message.sender or settings.mail_from)
    mail["To"] = [_address(text) for text in message.to]
    if message.cc:
        mail["Cc"] = [_address(text) for text in message.cc]
    mail["Subject"] = message.subject
    # The time the message was composed, so every retry produces the same headers.
    mail["Date"] = format_datetime(_as_utc(message.created_at or utcnow()))
    mail["Message-ID"] = message.message_id
    mail.set_content(message.body_text)
    if message.body_html:
        mail.add_alternative(message.body_html, subtype="html")
    for item in message.attachments or []:
        data = filestore.read_bytes(settings.files_dir, item["sha256"])
        maintype, subtype, params = _content_type(str(item.get("content_type") or ""))
        mail.add_attachment(
            data, maintype=maintype, subtype=subtype, filename=item["filename"], params=params
        )
    return mail


def _content_type(value: str) -> tuple[str, str, dict[str, str]]:
    """``text/csv; charset=utf-8`` -> ("text", "csv", {"charset": "utf-8"})."""
    kind, *rest = value.split(";")
    maintype, _, subtype = kind.strip().lower().partition("/")
    if not maintype or not subtype:
        return "application", "octet-stream", {}
    params = {}
    for item in rest:
        name, _, param = item.partition("=")
        if name.strip():
            params[name.strip().lower()] = param.strip().strip('"')
    return maintype, subtype, params


def _address(text: str) -> Address:
    """``Name <local@domain>`` or a bare address; an internationalised domain becomes IDNA."""
    name, addr = parseaddr(text)
    local, at, domain = addr.rpartition("@")
    if not at or not local or not domain:
        raise ValueError(f"not an email address: {text!r}")
    if not local.isascii():
        raise ValueError(f"non-ASCII mailbox names are not supported: {text!r}")
    if not domain.isascii():
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError as exc:
            raise ValueError(f"not an email address: {text!r}") from exc
    try:
        return Address(display_name=name, username=local, domain=domain)
    except (ValueError, IndexError) as exc:
        raise ValueError(f"not an email address: {text!r}") from exc


def eml_filename(key: str) -> str:
    """A file name for an outbox key: ``request:3:12:1`` -> ``request_3_12_1.eml``.

    Injective: ``:`` becomes ``_``; any other character but letters, digits, ``.`` and ``-``
    (``_`` and ``=`` included, and a leading ``.``) becomes ``=XX`` per UTF-8 byte, so two keys
    never share a file and no name is hidden or leaves the folder.
    """
    parts: list[str] = []
    for position, char in enumerate(key):
        if char.isascii() and (char.isalnum() or char == "-" or (char == "." and position)):
            parts.append(char)
        elif char == ":":
            parts.append("_")
        else:
            parts.extend(f"={byte:02X}" for byte in char.encode("utf-8"))
    name = "".join(parts)
    if len(name) > 200:  # stay under the usual 255-byte limit
        name = f"{name[:180]}-{hashlib.sha256(key.encode('utf-8')).hexdigest()[:16]}"
    return f"{name}.eml"


# --- delivery --------------------------------------------------------------------------------


def retry_delay(attempts: int) -> dt.timedelta:
    """Wait after the ``attempts``-th failed attempt: 30 s, 1 min, 2 min, ... at most 1 h."""
    return min(RETRY_BASE * 2 ** max(attempts - 1, 0), RETRY_CAP)


def deliver_pending(
    settings: Settings,
    *,
    now: dt.datetime | None = None,
    worker: str | None = None,
    limit: int | None = None,
) -> DeliveryReport:
    """Send every due pending message once, oldest first; never raises for a delivery problem.

    ``now`` fixes the clock (tests, replays); ``worker`` names this deliverer in ``claimed_by``;
    ``limit`` caps the messages claimed in this run. If the relay cannot be reached, the run
    stops after the message it was trying (the rest stay due for the next run).
    """
    clock: Callable[[], dt.datetime] = (lambda: _as_utc(now)) if now is not None else utcnow
    started = clock()
    worker = (worker or _default_worker())[:100]
    report = DeliveryReport()
    report.failed += _release_stale_claims(settings, started)

    with session_scope(settings) as session:
        due = session.scalars(
            select(OutboxMessage.id)
            .where(OutboxMessage.status == "pending", _is_due(started))
            .order_by(OutboxMessage.created_at, OutboxMessage.id)
        ).all()

    transport = _transport_for(settings)
    claimed = 0
    try:
        for outbox_id in due:
            if limit is not None and claimed >= limit:
                break
            message = _claim(settings, outbox_id, worker, clock())
            if message is None:
                continue  # another deliverer has it
            claimed += 1
            if not _attempt(settings, transport, message, worker, clock, report):
                break
    finally:
        transport.close()

    with session_scope(settings) as session:
        report.still_pending = (
            session.scalar(
                select(func.count(OutboxMessage.id)).where(OutboxMessage.status == "pending")
            )
            or 0
        )
    return report


def _is_due(now: dt.datetime) -> Any:
    return or_(OutboxMessage.next_attempt_at.is_(None), OutboxMessage.next_attempt_at <= now)


def _claim(
    settings: Settings, outbox_id: int, worker: str, now: dt.datetime
) -> OutboxMessage | None:
    """Take the message for this worker; committed before sending so no one else takes it."""
    with session_scope(settings) as session:
        result = session.execute(
            update(OutboxMessage)
            .where(
                OutboxMessage.id == outbox_id,
                OutboxMessage.status == "pending",
                _is_due(now),
            )
            .values(
                status="sending",
                claimed_by=worker,
                claimed_at=now,
                # Counted at the claim, so a sender that dies mid-send still uses an attempt.
                attempts=OutboxMessage.attempts + 1,
            )
            .execution_options(synchronize_session=False)
        )
        if getattr(result, "rowcount", 0) != 1:
            return None
        return session.get(OutboxMessage, outbox_id)


class _Unreachable(Exception):
    """The transport itself is down (cannot connect, log in, or create the outbox folder)."""


class _Transport(Protocol):
    def send(self, mail: EmailMessage, message: OutboxMessage) -> dict[str, tuple[int, bytes]]:
        """Deliver; returns the recipients the relay refused while accepting the others."""
        ...

    def close(self) -> None: ...


def _attempt(
    settings: Settings,
    transport: _Transport,
    message: OutboxMessage,
    worker: str,
    clock: Callable[[], dt.datetime],
    report: DeliveryReport,
) -> bool:
    """One delivery attempt and its record; False when the transport is down (stop the run)."""
    try:
        mail = build_email(message, settings)
        refused = transport.send(mail, message)
    except _Unreachable as exc:
        cause = exc.__cause__ or exc
        _defer_or_fail(settings, message, worker, clock(), _one_line(cause), False, report)
        logger.warning("mail transport unavailable, stopping this run: %s", _one_line(cause))
        return False
    except smtplib.SMTPRecipientsRefused as exc:
        permanent = all(code >= 500 for code, _ in exc.recipients.values())
        error = "recipients refused: " + _refusals(exc.recipients)
        _defer_or_fail(settings, message, worker, clock(), error, permanent, report)
        return True
    except (OSError, smtplib.SMTPException) as exc:
        _defer_or_fail(settings, message, worker, clock(), _one_line(exc), False, report)
        return True
    except Exception as exc:
        # A bug or bad data in one message must not stop the others or leave it "sending".
        logger.exception("could not build or send outbox message %s", message.key)
        _defer_or_fail(settings, message, worker, clock(), _one_line(exc), False, report)
        return True

    note = f"sent; recipients refused: {_refusals(refused)}" if refused else None
    if refused:
        logger.warning("message %s: %s", message.key, note)
    _finish(settings, message, worker, status="sent", sent_at=clock(), last_error=note)
    report.sent += 1
    report.sent_message_ids.append(message.message_id)
    logger.info("sent %s (%s) by %s", message.key, message.message_id, worker)
    return True


def _defer_or_fail(
    settings: Settings,
    message: OutboxMessage,
    worker: str,
    now: dt.datetime,
    error: str,
    permanent: bool,
    report: DeliveryReport,
) -> None:
    if permanent or message.attempts >= MAX_ATTEMPTS:
        _finish(settings, message, worker, status="failed", last_error=error)
        report.failed += 1
        logger.error(
            "giving up on %s after %d attempt(s): %s", message.key, message.attempts, error
        )
        return
    retry_at = now + retry_delay(message.attempts)
    _finish(settings, message, worker, status="pending", next_attempt_at=retry_at, last_error=error)
    report.deferred += 1
    logger.warning(
        "attempt %d for %s failed, retrying at %s: %s",
        message.attempts,
        message.key,
        retry_at.isoformat(),
        error,
    )


def _finish(settings: Settings, message: OutboxMessage, worker: str, **values: Any) -> None:
    """Record the outcome, only if the claim is still ours."""
    values.setdefault("next_attempt_at", None)
    with session_scope(settings) as session:
        result = session.execute(
            update(OutboxMessage)
            .where(
                OutboxMessage.id == message.id,
                OutboxMessage.status == "sending",
                OutboxMessage.claimed_by == worker,
            )
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        if getattr(result, "rowcount", 0) != 1:
            # Only after the claim went stale and another run released it.
            logger.warning(
                "claim on %s by %s was lost before recording %s",
                message.key,
                worker,
                values["status"],
            )


def _release_stale_claims(settings: Settings, now: dt.datetime) -> int:
    """Return messages left "sending" by a crashed sender to "pending"; returns how many failed."""
    cutoff = now - STALE_CLAIM_AFTER
    failed = 0
    with session_scope(settings) as session:
        stale = session.execute(
            select(
                OutboxMessage.id,
                OutboxMessage.key,
                OutboxMessage.attempts,
                OutboxMessage.claimed_by,
                OutboxMessage.claimed_at,
            ).where(OutboxMessage.status == "sending", OutboxMessage.claimed_at < cutoff)
        ).all()
        for outbox_id, key, attempts, claimed_by, claimed_at in stale:
            exhausted = attempts >= MAX_ATTEMPTS
            error = (
                f"sender {claimed_by} stopped while sending "
                f"(claimed at {_as_utc(claimed_at).isoformat()})"
            )
            result = session.execute(
                update(OutboxMessage)
                .where(
                    OutboxMessage.id == outbox_id,
                    OutboxMessage.status == "sending",
                    OutboxMessage.claimed_at < cutoff,
                )
                .values(
                    status="failed" if exhausted else "pending",
                    next_attempt_at=None,
                    last_error=error,
                )
                .execution_options(synchronize_session=False)
            )
            if getattr(result, "rowcount", 0) == 1:
                failed += exhausted
                logger.warning("released stale claim on %s: %s", key, error)
    return failed


def _transport_for(settings: Settings) -> _Transport:
    if settings.smtp_host:
        return _SmtpTransport(settings)
    return _FileTransport(settings.outbox_dir)


class _SmtpTransport:
    """One SMTP connection per run, reopened after any error."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._smtp: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        s = self._settings
        smtp = smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=s.smtp_timeout)
        try:
            if s.smtp_starttls:
                smtp.starttls(context=ssl.create_default_context())
            if s.smtp_user:
                _login(smtp, s.smtp_user, s.smtp_password)
        except BaseException:
            smtp.close()
            raise
        return smtp

    def send(self, mail: EmailMessage, message: OutboxMessage) -> dict[str, tuple[int, bytes]]:
        if self._smtp is None:
            try:
                self._smtp = self._connect()
            except Exception as exc:  # whatever stops the session stops every message
                raise _Unreachable(str(exc)) from exc
        envelope_from = _address(message.sender).addr_spec
        recipients = [_address(text).addr_spec for text in (*message.to, *message.cc)]
        try:
            return self._smtp.send_message(mail, from_addr=envelope_from, to_addrs=recipients)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is None:
            return
        try:
            smtp.quit()
        except (OSError, smtplib.SMTPException):
            smtp.close()


def _login(smtp: smtplib.SMTP, user: str, password: str) -> None:
    if (user + password).isascii():
        smtp.login(user, password)
        return
    # smtplib encodes credentials as ASCII; AUTH PLAIN is defined on UTF-8 (RFC 4616).
    smtp.ehlo_or_helo_if_needed()
    if "PLAIN" not in smtp.esmtp_features.get("auth", "").upper().split():
        raise smtplib.SMTPException("the relay offers no AUTH PLAIN for a non-ASCII password")
    token = base64.b64encode(f"\0{user}\0{password}".encode()).decode("ascii")
    code, reply = smtp.docmd("AUTH", f"PLAIN {token}")
    if code != 235:
        raise smtplib.SMTPAuthenticationError(code, reply)


class _FileTransport:
    """The embedded default: one ``.eml`` file per message, written atomically."""

    def __init__(self, outbox_dir: Path) -> None:
        self._dir = outbox_dir

    def send(self, mail: EmailMessage, message: OutboxMessage) -> dict[str, tuple[int, bytes]]:
        try:
            self._dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _Unreachable(str(exc)) from exc
        target = self._dir / eml_filename(message.key)
        fd, tmp = tempfile.mkstemp(dir=self._dir, prefix=".sending-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(mail.as_bytes())
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return {}

    def close(self) -> None:
        pass


# --- reporting -------------------------------------------------------------------------------


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


# --- helpers ---------------------------------------------------------------------------------


def _as_utc(value: dt.datetime) -> dt.datetime:
    # SQLite returns timestamps without a zone; everything this module writes is UTC.
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def _default_worker() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_native_id()}"


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or "(no detail)"
    return f"{type(exc).__name__}: {text}"[:500]


def _refusals(refused: dict[str, tuple[int, bytes]]) -> str:
    return "; ".join(
        f"{address} ({code} {' '.join(reply.decode('utf-8', 'replace').split())})"
        for address, (code, reply) in refused.items()
    )[:500]
