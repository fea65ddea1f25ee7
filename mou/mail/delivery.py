"""Delivery of the outbox: each due message claimed, sent once, and its outcome recorded.

``deliver_pending`` claims due rows one at a time with a conditional UPDATE committed before
anything is sent, so concurrent deliverers (threads, processes, machines) never send the same
message. Delivery goes to the configured SMTP relay, or, with no relay configured, to ``.eml``
files in ``var/outbox`` (``mou.mail.transports``).

A sender that crashes after the relay accepted a message but before recording it leaves the
row in "sending"; it is sent again once the claim is known to be dead: at once when the
claimant was a process of this machine that no longer runs, after ``STALE_CLAIM_AFTER``
otherwise (at-least-once in that one window, with the same Message-ID so mail clients can
recognise the duplicate).

A transient failure (the relay down, a timeout, a 4xx) is retried with back-off for about a
week (``MAX_ATTEMPTS``), so a relay down for a weekend loses nothing; a permanent refusal (5xx) of
every recipient fails the message at once. When only some recipients are refused the message
is "partial": delivered to the others, the refused addresses recorded in ``last_error``.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import smtplib
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, or_, select, update

from mou.clock import as_utc, utcnow
from mou.mail.message import build_email
from mou.mail.transports import Transport, TransportUnavailable, transport_for
from mou.settings import Settings
from mou.store.database import session_scope
from mou.store.models import OutboxMessage

logger = logging.getLogger(__name__)

# Transient failures are retried, at most an hour apart once backed off, for about a week
# (8 attempts to reach the hour, then hourly): a relay down for a weekend loses nothing.
MAX_ATTEMPTS = 8 + 7 * 24
STALE_CLAIM_AFTER = dt.timedelta(minutes=15)
RETRY_BASE = dt.timedelta(seconds=30)
RETRY_CAP = dt.timedelta(hours=1)


@dataclass
class DeliveryReport:
    """What one ``deliver_pending`` run did.

    ``sent``: delivered in this run. ``deferred``: failed transiently in this run, to be retried.
    ``failed``: given up in this run (permanent refusal, or ``MAX_ATTEMPTS`` reached).
    ``partial``: delivered, but some recipients were refused.
    ``still_pending``: rows in status "pending" after the run (not yet due, or not reached).
    """

    sent: int = 0
    deferred: int = 0
    failed: int = 0
    partial: int = 0
    still_pending: int = 0
    sent_message_ids: list[str] = field(default_factory=list)


def retry_delay(attempts: int) -> dt.timedelta:
    """Wait after the ``attempts``-th failed attempt: 30 s, 1 min, 2 min, ... at most 1 h."""
    # The exponent is capped: 2**n of a week's attempts would overflow a timedelta.
    return min(RETRY_BASE * 2 ** min(max(attempts - 1, 0), 16), RETRY_CAP)


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
    fixed = as_utc(now)
    clock: Callable[[], dt.datetime] = (lambda: fixed) if fixed is not None else utcnow
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

    transport = transport_for(settings)
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


def _attempt(
    settings: Settings,
    transport: Transport,
    message: OutboxMessage,
    worker: str,
    clock: Callable[[], dt.datetime],
    report: DeliveryReport,
) -> bool:
    """One delivery attempt and its record; False when the transport is down (stop the run)."""
    try:
        mail = build_email(message, settings)
        refused = transport.send(mail, message)
    except TransportUnavailable as exc:
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

    if refused:
        # Delivered to the others: recorded as such, never as plainly "sent".
        note = f"recipients refused: {_refusals(refused)}"
        logger.warning("message %s: %s", message.key, note)
        _finish(settings, message, worker, status="partial", sent_at=clock(), last_error=note)
        report.partial += 1
    else:
        _finish(settings, message, worker, status="sent", sent_at=clock(), last_error=None)
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


def claimant_gone(claimed_by: str | None) -> bool:
    """True when the claim was made by a process of this machine that no longer runs.

    Only a claim naming this host *and* this PID namespace is checked (containers may share a
    hostname but not process ids); any other is judged by its age alone. A claim that names
    its process's start time is gone too when its PID now belongs to a process started at
    another time (PIDs are reused); an older claim without one is judged by the PID alone.
    """
    parts = (claimed_by or "").split(":")
    if len(parts) not in (4, 5) or parts[0] != socket.gethostname():
        return False
    if parts[3] != _pid_namespace():
        return False
    pid_text = parts[1]
    if not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError):
        return False
    if len(parts) == 5 and parts[4].isdigit():
        started = _process_start(int(pid_text))
        return started is not None and started != parts[4]
    return False


def _release_stale_claims(settings: Settings, now: dt.datetime) -> int:
    """Return messages left "sending" by a crashed sender to "pending"; returns how many failed.

    A claim is stale after ``STALE_CLAIM_AFTER``, or at once when its claimant was a process of
    this machine that has gone (a restart after a crash resends within a minute).
    """
    cutoff = now - STALE_CLAIM_AFTER
    failed = 0
    with session_scope(settings) as session:
        claims = session.execute(
            select(
                OutboxMessage.id,
                OutboxMessage.key,
                OutboxMessage.attempts,
                OutboxMessage.claimed_by,
                OutboxMessage.claimed_at,
            ).where(OutboxMessage.status == "sending")
        ).all()
        for outbox_id, key, attempts, claimed_by, claimed_at in claims:
            if claimed_at >= cutoff and not claimant_gone(claimed_by):
                continue
            exhausted = attempts >= MAX_ATTEMPTS
            error = (
                f"sender {claimed_by} stopped while sending (claimed at {claimed_at.isoformat()})"
            )
            result = session.execute(
                update(OutboxMessage)
                .where(
                    OutboxMessage.id == outbox_id,
                    OutboxMessage.status == "sending",
                    OutboxMessage.claimed_at == claimed_at,
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


def _pid_namespace() -> str:
    try:
        return str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        return "-"


def _process_start(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot, from /proc), or None if unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            text = stat.read().decode("ascii", "replace")
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: count after the last ")".
    fields = text[text.rfind(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else None


def _default_worker() -> str:
    # host:pid:thread:pid-namespace:start, so a claim can be told dead on this machine, even
    # once its PID is another process's (above).
    return (
        f"{socket.gethostname()}:{os.getpid()}:{threading.get_native_id()}:{_pid_namespace()}"
        f":{_process_start(os.getpid()) or '-'}"
    )


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or "(no detail)"
    return f"{type(exc).__name__}: {text}"[:500]


def _refusals(refused: dict[str, tuple[int, bytes]]) -> str:
    return "; ".join(
        f"{address} ({code} {' '.join(reply.decode('utf-8', 'replace').split())})"
        for address, (code, reply) in refused.items()
    )[:500]
