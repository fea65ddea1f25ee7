"""What warm intake workers do, as plain functions: decide every waiting return, write the
receipts of decided ones, render a cycle's summaries. The Prefect tasks around them are in
``mou.service.tasks``; the sweep and ``mou serve`` call the same functions.

A drain takes one return at a time with a *claim*: a lease in the project database that the
next drainer skips while it is fresh and takes over once it is older than ``LEASE`` (its
worker was killed). The claim only spares work; deciding stays a conditional update
(``ingest_submission``) and each receipt has its unique outbox key, so two drainers that
meet on one return (a lease run out on a slow one) still decide it and answer it once.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import exists, or_, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from mou.intake.decide import CLAIM_LEASE, IngestOutcome
from mou.intake.receipts import enqueue_receipt
from mou.mail.delivery import deliver_pending
from mou.settings import Settings
from mou.store import models as m
from mou.store.database import begin_sqlite_transaction, session_scope

log = logging.getLogger(__name__)
LEASE = CLAIM_LEASE
# Receipts the warm workers write: of returns decided this long ago at most; older ones
# (an address no message could be written to) are the sweep's.
RECEIPT_WINDOW = dt.timedelta(days=1)
DECIDED = ("accepted", "rejected")


@dataclass
class Drain:
    decided: list[int] = field(default_factory=list)
    accepted_cycles: set[int] = field(default_factory=set)
    failed: list[int] = field(default_factory=list)  # left for the next drain or the sweep


def claimer() -> str:
    """Who claims: this host and process (shown to operators, found by the tests)."""
    return f"{socket.gethostname()}:{os.getpid()}"[:120]


def _free(column: str, now: dt.datetime) -> Any:
    """The ``column`` lease is not held: never taken, or run out."""
    claimed = getattr(m.Submission, column)
    return or_(claimed.is_(None), claimed < now - LEASE)


def _has_receipt() -> Any:
    return exists().where(
        m.OutboxMessage.submission_id == m.Submission.id, m.OutboxMessage.kind == "receipt"
    )


def _claim(
    session: Session, column: str, where: list, now: dt.datetime, **also: object
) -> int | None:
    """Take the oldest row of ``where`` whose ``column`` lease is free or run out."""
    free = _free(column, now)
    begin_sqlite_transaction(session, immediate=True)  # SQLite: one claimer at a time
    query = select(m.Submission.id).where(*where, free).order_by(m.Submission.id).limit(1)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)  # claimers pass each other by
    submission_id = session.scalar(query)
    if submission_id is None:
        return None
    taken = session.execute(
        update(m.Submission)
        .where(m.Submission.id == submission_id, *where, free)
        .values({column: now, **also})
    )
    return submission_id if taken.rowcount == 1 else None


def claim_waiting(settings: Settings, now: dt.datetime | None = None) -> int | None:
    """Claim the oldest return still to be decided (committed), or None if none is free."""
    with session_scope(settings) as session:
        return _claim(
            session,
            "decision_claimed_at",
            [m.Submission.status == "received"],
            now or m.utcnow(),
            decision_claimed_by=claimer(),
        )


def claim_unanswered(
    settings: Settings, skip: set[int], now: dt.datetime | None = None
) -> int | None:
    """Claim the oldest decided return of the last day with no receipt yet (committed)."""
    now = now or m.utcnow()
    where = [
        m.Submission.status.in_(DECIDED),
        m.Submission.decided_at >= now - RECEIPT_WINDOW,
        ~_has_receipt(),
    ]
    if skip:
        where.append(m.Submission.id.not_in(skip))
    with session_scope(settings) as session:
        return _claim(session, "receipt_claimed_at", where, now)


def drain_decisions(
    settings: Settings,
    decide: Callable[[Settings, int], IngestOutcome],
    limit: int | None = None,
    stopping: Callable[[], bool] = lambda: False,
) -> Drain:
    """Decide waiting returns, oldest first, until none is free (or ``limit`` are decided, or
    ``stopping()`` says the worker is being stopped: the rest wait for the next drain).

    ``decide``: the protocol's decide-and-announce for one return."""
    drain = Drain()
    while (limit is None or len(drain.decided) < limit) and not stopping():
        try:
            submission_id = claim_waiting(settings)
        except OperationalError:
            log.warning("cannot claim a return now; the next drain or the sweep will")
            break
        if submission_id is None:
            break
        try:
            outcome = decide(settings, submission_id)
        except Exception:  # counted on the return; its lease runs out and it is tried again
            log.exception("submission %s not decided in this drain", submission_id)
            drain.failed.append(submission_id)
            release(settings, submission_id)
            continue
        except BaseException:  # the worker is stopping: nobody is reading it any more
            release(settings, submission_id)
            raise
        drain.decided.append(submission_id)
        if outcome.status == "accepted" and outcome.cycle_id is not None:
            drain.accepted_cycles.add(outcome.cycle_id)
    return drain


def release(settings: Settings, submission_id: int) -> None:
    """Let go of a claim on a return not decided here: its lease still keeps the next drains
    off it until it runs out, but deciders of later returns stop waiting for it."""
    try:
        with session_scope(settings) as session:
            session.execute(
                update(m.Submission)
                .where(
                    m.Submission.id == submission_id,
                    m.Submission.status == "received",
                    m.Submission.decision_claimed_by == claimer(),
                )
                .values(decision_claimed_by=None)
            )
    except OperationalError:
        log.warning("cannot let go of the claim on submission %s; it runs out", submission_id)


def claim(settings: Settings, submission_id: int) -> bool:
    """Claim one given return for deciding here (``mou serve``'s inline ingest); False if a
    drain holds a fresh claim on it (that drain decides it) or it is decided already."""
    now = m.utcnow()
    with session_scope(settings) as session:
        taken = session.execute(
            update(m.Submission)
            .where(
                m.Submission.id == submission_id,
                m.Submission.status == "received",
                _free("decision_claimed_at", now),
            )
            .values(decision_claimed_at=now, decision_claimed_by=claimer())
        )
        return taken.rowcount == 1


SEND_EVERY = 10  # receipts written before the drain sends what it has


def drain_receipts(settings: Settings, stopping: Callable[[], bool] = lambda: False) -> list[int]:
    """Write the receipt of every recently decided return that has none, sending them as it
    goes (every ``SEND_EVERY``), and the rest at the end."""
    written: list[int] = []
    seen: set[int] = set()
    while not stopping():
        try:
            submission_id = claim_unanswered(settings, seen)
        except OperationalError:
            log.warning("cannot claim a receipt now; the next drain or the sweep will")
            break
        if submission_id is None:
            break
        seen.add(submission_id)
        try:
            with session_scope(settings) as session:
                message, created = enqueue_receipt(session, settings, submission_id)
            if message is None:  # nobody to tell (no address known): never again
                _hold_claim(settings, submission_id)
                continue
        except ValueError:  # an address that cannot be written to: nobody to tell
            log.warning("no receipt for submission %s: unusable address", submission_id)
            _hold_claim(settings, submission_id)
            continue
        except Exception:  # its lease runs out; the next drain or the sweep tries again
            log.exception("receipt of submission %s not written", submission_id)
            continue
        if created:
            written.append(submission_id)
            if len(written) % SEND_EVERY == 0:
                deliver_pending(settings)
    deliver_pending(settings)
    return written


def _hold_claim(settings: Settings, submission_id: int) -> None:
    # No receipt can be written: keep the claim past the window, so that no drain (nor the
    # workers' look for lost work) takes it again every lease; the sweep still tries.
    with session_scope(settings) as session:
        session.execute(
            update(m.Submission)
            .where(m.Submission.id == submission_id)
            .values(receipt_claimed_at=m.utcnow() + RECEIPT_WINDOW)
        )


def waiting_work(
    settings: Settings, older_than: dt.timedelta, now: dt.datetime | None = None
) -> tuple[bool, bool]:
    """Whether returns wait to be decided, and decided ones for their receipt, with no fresh
    claim and for longer than ``older_than``, while no drain is at work on that kind: work
    nobody is doing (a worker was killed, a wake-up was lost). A long burst that drains are
    working through is theirs."""
    now = now or m.utcnow()
    with session_scope(settings) as session:
        deciding = session.scalar(
            select(m.Submission.id)
            .where(
                m.Submission.status == "received",
                m.Submission.decision_claimed_at >= now - LEASE,
            )
            .limit(1)
        )
        answering = session.scalar(
            select(m.Submission.id)
            .where(
                m.Submission.status.in_(DECIDED),
                m.Submission.receipt_claimed_at >= now - LEASE,
                m.Submission.receipt_claimed_at <= now,
            )
            .limit(1)
        )
        undecided = session.scalar(
            select(m.Submission.id)
            .where(
                m.Submission.status == "received",
                m.Submission.received_at <= now - older_than,
                _free("decision_claimed_at", now),
            )
            .limit(1)
        )
        unanswered = session.scalar(
            select(m.Submission.id)
            .where(
                m.Submission.status.in_(DECIDED),
                m.Submission.decided_at >= now - RECEIPT_WINDOW,
                m.Submission.decided_at <= now - older_than,
                ~_has_receipt(),
                _free("receipt_claimed_at", now),
            )
            .limit(1)
        )
    return (
        undecided is not None and deciding is None,
        unanswered is not None and answering is None,
    )
