"""Where a state stands in a cycle: the one rule, and what ``mou status`` and the dashboard show.

``state_standing`` decides from plain values (the request, the files received, the reminders,
the deadline); ``cycle_standings`` reads those values for a whole cycle in a few queries;
``cycle_status`` is the JSON of ``mou status`` and the dashboard. The consolidation behind the
PDFs and exports uses the same standings, so every output says the same thing.

The rule:

- The counted return is the newest accepted file (in received order) that no later accepted
  file superseded.
- Outcome: ``correction_requested`` while the Secretariat has sent a return back for
  correction and no later return has answered it; else ``accepted`` if a return counts;
  otherwise ``excused`` if the Secretariat excused the state; otherwise ``refused`` if the
  newest file received was rejected, ``pending`` if it is still being read, ``not_received``
  if nothing came. A return sent back for correction still counts in the consolidation until
  a corrected one supersedes it: it is the best the state has sent.
- Timeliness (states with a counted return): the *first accepted* file's received date, as a
  UTC calendar date, against the state's deadline (the cycle's, or the state's own when the
  Secretariat extended it). A correction sent after the deadline of a return
  accepted in time does not make the state late; a return refused in time and corrected late
  is late, because nothing usable arrived by the deadline.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from mou.clock import as_utc
from mou.cycle.opening import get_cycle
from mou.mail.outbox import undelivered
from mou.store import models as m

Outcome = Literal[
    "accepted", "correction_requested", "excused", "refused", "pending", "not_received"
]
Timeliness = Literal["on_time", "late"]
# ``mou status`` spells the outcome without the underscore (its JSON is a published contract).
STATUS_OUTCOMES: Mapping[Outcome, str] = {
    "accepted": "accepted",
    "correction_requested": "correction requested",
    "excused": "excused",
    "refused": "refused",
    "pending": "pending",
    "not_received": "not received",
}


@dataclass(frozen=True)
class Request:
    """The official request to a state, and its email."""

    reference: str
    created_at: dt.datetime
    dispatched_at: dt.datetime | None  # when the email was queued
    email_status: str | None = None  # pending | sending | sent | failed (None: no email)
    email_sent_at: dt.datetime | None = None


@dataclass(frozen=True)
class ReceivedFile:
    """One file a state sent in the cycle, as plain values."""

    id: int
    status: str  # received (being read) | accepted | rejected
    received_at: dt.datetime
    version: int | None = None
    decided_at: dt.datetime | None = None
    superseded: bool = False  # a later accepted return replaced it
    errors: int = 0
    warnings: int = 0


@dataclass(frozen=True)
class Reminder:
    """A reminder queued for a state; ``sent_at`` is None until the outbox has sent it."""

    step: str
    sent_at: dt.datetime | None = None


@dataclass(frozen=True)
class Standing:
    """Where one state stands (see the module docstring for the rule)."""

    request: Request | None
    files: tuple[ReceivedFile, ...]  # in received order
    reminders: tuple[Reminder, ...]  # in the order they were queued
    counted: ReceivedFile | None
    outcome_file: ReceivedFile | None  # the counted return, else the newest file received
    first_accepted_received_at: dt.datetime | None
    outcome: Outcome
    timeliness: Timeliness | None
    days_late: int | None
    deadline: dt.date | None = None  # the state's deadline (its own when extended)
    excused: bool = False
    correction_requested: bool = False

    @property
    def on_time(self) -> bool | None:
        return None if self.timeliness is None else self.timeliness == "on_time"

    @property
    def first_received_at(self) -> dt.datetime | None:
        return self.files[0].received_at if self.files else None

    @property
    def reminders_sent_at(self) -> tuple[dt.datetime, ...]:
        """When each reminder was sent, earliest first (queued or failed ones do not count)."""
        return tuple(sorted(r.sent_at for r in self.reminders if r.sent_at is not None))

    @property
    def last_reminder_at(self) -> dt.datetime | None:
        sent = self.reminders_sent_at
        return sent[-1] if sent else None


def _received_order(file: ReceivedFile) -> tuple[dt.datetime, int]:
    # The id breaks ties between files received at the same moment (it is the arrival order).
    return (as_utc(file.received_at) or file.received_at, file.id)


def state_standing(
    request: Request | None,
    files: Iterable[ReceivedFile],
    reminders: Iterable[Reminder],
    deadline: dt.date,
    *,
    excused: bool = False,
    correction_requested: bool = False,
) -> Standing:
    """Decide one state's standing from plain values.

    ``files`` are the state's submissions in the cycle, in any order (they are put in received
    order here); ``reminders`` the reminders queued for it; ``deadline`` the state's deadline;
    ``excused`` and ``correction_requested`` what the Secretariat decided.
    Returns the counted return, the outcome, and the timeliness with the days late.
    """
    received = tuple(sorted(files, key=_received_order))
    accepted = [f for f in received if f.status == "accepted"]
    current = [f for f in accepted if not f.superseded]
    counted = current[-1] if current else None
    outcome: Outcome
    if correction_requested:
        outcome = "correction_requested"
    elif counted is not None:
        outcome = "accepted"
    elif excused:
        outcome = "excused"
    elif not received:
        outcome = "not_received"
    elif received[-1].status == "rejected":
        outcome = "refused"
    else:
        outcome = "pending"
    first_accepted = as_utc(accepted[0].received_at) if accepted else None
    timeliness: Timeliness | None = None
    days_late: int | None = None
    if counted is not None and first_accepted is not None:
        late_by = (first_accepted.date() - deadline).days
        timeliness = "late" if late_by > 0 else "on_time"
        days_late = max(late_by, 0)
    return Standing(
        request=request,
        files=received,
        reminders=tuple(reminders),
        counted=counted,
        outcome_file=counted or (received[-1] if received else None),
        first_accepted_received_at=first_accepted,
        outcome=outcome,
        timeliness=timeliness,
        days_late=days_late,
        deadline=deadline,
        excused=excused,
        correction_requested=correction_requested,
    )


def state_deadline(cycle: m.ReportingCycle, request: m.ReportRequest | None) -> dt.date:
    """The deadline a state is held to: the cycle's, or its own if extended beyond it."""
    if request is not None and request.deadline is not None:
        return max(request.deadline, cycle.deadline)
    return cycle.deadline


def open_corrections(session: Session, cycle_id: int) -> dict[int, m.CorrectionRequest]:
    """Per state id, the correction request of the cycle that no return has answered yet."""
    return {
        c.state_id: c
        for c in session.scalars(
            select(m.CorrectionRequest)
            .where(
                m.CorrectionRequest.cycle_id == cycle_id,
                m.CorrectionRequest.answered_by_id.is_(None),
            )
            .order_by(m.CorrectionRequest.id)
        )
    }


def cycle_standings(session: Session, cycle: m.ReportingCycle) -> dict[int, Standing]:
    """The standing of every state the cycle has a request, a reminder or a file for.

    Keyed by state id, in state id order. Five queries, whatever the number of states.
    """
    requests = session.scalars(
        select(m.ReportRequest).where(m.ReportRequest.cycle_id == cycle.id)
    ).all()
    request_mail: dict[int, m.OutboxMessage] = {}
    reminders: dict[int, list[Reminder]] = defaultdict(list)
    for message in session.scalars(
        select(m.OutboxMessage)
        .where(
            m.OutboxMessage.cycle_id == cycle.id,
            m.OutboxMessage.state_id.is_not(None),
            m.OutboxMessage.kind.in_(("request", "reminder")),
        )
        .order_by(m.OutboxMessage.id)
    ):
        state_id: int = message.state_id  # type: ignore[assignment]
        if message.kind == "request":
            request_mail.setdefault(state_id, message)
        else:
            # The key ends with the step ("reminder:<cycle>:<state>:<step>").
            reminders[state_id].append(Reminder(message.key.rsplit(":", 1)[-1], message.sent_at))
    issues: dict[tuple[int, str], int] = {
        (submission_id, severity): count
        for submission_id, severity, count in session.execute(
            select(m.ValidationIssue.submission_id, m.ValidationIssue.severity, func.count())
            .join(m.Submission, m.ValidationIssue.submission_id == m.Submission.id)
            .where(m.Submission.cycle_id == cycle.id)
            .group_by(m.ValidationIssue.submission_id, m.ValidationIssue.severity)
        )
    }
    files: dict[int, list[ReceivedFile]] = defaultdict(list)
    # Decided files carry their cycle and state; a file still being read carries only where
    # it came from: a portal link names the cycle and state (a file by email or the drop
    # folder names no cycle until it is read, in about a second).
    for submission in session.scalars(
        select(m.Submission)
        .where(
            or_(
                (m.Submission.cycle_id == cycle.id) & m.Submission.state_id.is_not(None),
                (m.Submission.status == "received")
                & (m.Submission.expected_cycle_id == cycle.id)
                & m.Submission.expected_state_id.is_not(None),
            )
        )
        .order_by(m.Submission.received_at, m.Submission.id)
    ):
        state_of_file = submission.state_id or submission.expected_state_id
        files[state_of_file].append(  # type: ignore[index]
            ReceivedFile(
                id=submission.id,
                status=submission.status,
                received_at=submission.received_at,
                version=submission.version,
                decided_at=submission.decided_at,
                superseded=submission.superseded_by_id is not None,
                errors=issues.get((submission.id, "error"), 0),
                warnings=issues.get((submission.id, "warning"), 0),
            )
        )
    by_state: dict[int, Request] = {}
    for request in requests:
        mail = request_mail.get(request.state_id)
        by_state[request.state_id] = Request(
            reference=request.reference,
            created_at=request.created_at,
            dispatched_at=request.dispatched_at,
            email_status=mail.status if mail else None,
            email_sent_at=mail.sent_at if mail else None,
        )
    states = sorted(set(by_state) | set(reminders) | set(files))
    request_rows = {r.state_id: r for r in requests}
    corrections = open_corrections(session, cycle.id)
    return {
        state_id: state_standing(
            by_state.get(state_id),
            files.get(state_id, ()),
            reminders.get(state_id, ()),
            state_deadline(cycle, request_rows.get(state_id)),
            excused=(row := request_rows.get(state_id)) is not None and row.excused_at is not None,
            correction_requested=state_id in corrections,
        )
        for state_id in states
    }


def _iso(moment: dt.datetime | None) -> str | None:
    return moment.isoformat(timespec="seconds") if moment else None


def _state_status(request: m.ReportRequest, standing: Standing) -> dict[str, Any]:
    """One state's entry in ``mou status --json``."""
    shown = standing.outcome_file
    sent = standing.request
    return {
        "state": request.state.code,
        "name": request.state.name["en"],
        "reference": request.reference,
        "requested": _iso(sent.email_sent_at if sent else None),
        "request_email": sent.email_status if sent else None,
        # Every reminder queued, sent or not: the secretariat sees what is on its way.
        "reminders": [r.step for r in standing.reminders],
        "submissions": len(standing.files),
        "latest": {
            "id": shown.id,
            "version": shown.version,
            "status": shown.status,
            "received": _iso(shown.received_at),
            "decided": _iso(shown.decided_at),
            "errors": shown.errors,
            "warnings": shown.warnings,
        }
        if shown
        else None,
        "outcome": STATUS_OUTCOMES[standing.outcome],
        "on_time": standing.on_time,
        "deadline": standing.deadline.isoformat() if standing.deadline else None,
        "extended": request.deadline is not None,
        "excused": standing.excused,
        "excused_reason": request.excused_reason,
        "correction_requested": standing.correction_requested,
    }


def cycle_status(session: Session, cycle_id: int) -> dict[str, Any]:
    """Plain data for ``mou status`` and the dashboard: the cycle, and each requested state's
    request, reminders, files, outcome and timeliness (from ``cycle_standings``)."""
    cycle = get_cycle(session, cycle_id)
    standings = cycle_standings(session, cycle)
    requested = {request.state_id for request in cycle.requests}
    problems: dict[int | None, list[dict[str, Any]]] = defaultdict(list)
    for problem in undelivered(session, cycle_id=cycle.id):
        state_id = problem.pop("state_id")
        problems[state_id if state_id in requested else None].append(problem)
    states = [
        {
            **_state_status(request, standings[request.state_id]),
            # Mail of this state that did not reach everyone: `mou outbox retry` sends it again.
            "mail_problems": problems.get(request.state_id, []),
        }
        for request in cycle.requests
    ]
    outside = undelivered(session, outside_cycles=True)
    for problem in outside:
        problem.pop("state_id")
    return {
        "cycle": cycle.id,
        "instrument": cycle.instrument.code,
        "period": cycle.period,
        "deadline": cycle.deadline.isoformat(),
        "status": cycle.status,
        "states": states,
        # Mail of the cycle that is no requested state's (a receipt of a return for a state
        # the cycle does not ask), and mail of no cycle at all (the Secretariat's alerts,
        # receipts of returns whose cycle was never read; last 30 days): no state row shows it.
        "mail_problems": problems.get(None, []),
        "mail_problems_outside_cycles": outside,
        "summary": {
            outcome: sum(1 for s in states if s["outcome"] == outcome)
            for outcome in STATUS_OUTCOMES.values()
        },
    }
