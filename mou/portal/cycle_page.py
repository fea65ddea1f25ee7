"""What the Secretariat's cycle page shows of each state beyond its standing: the deadline it
is held to and how far past it is, the next reminder and its day, who the request goes to,
every email of the state in the cycle with its delivery, and the review comments. Plain view
data read from the database; nothing here knows about HTTP."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from mou.catalogue.addressbook import ministries_of
from mou.cycle.reminders import reminder_key
from mou.cycle.rules import STEPS, next_step
from mou.cycle.standing import state_deadline
from mou.forms import load_form
from mou.i18n.languages import pick
from mou.settings import Settings
from mou.store import models as m

# Outcomes for which the service still reminds: a state that has sent nothing usable.
REMINDED = frozenset({"not received", "refused"})


@dataclass(frozen=True)
class EmailView:
    """One email of a state in the cycle, and whether it went."""

    id: int
    what: str  # a text key: mail_request, mail_reminder_due, mail_extension, ...
    to: tuple[str, ...]
    cc: tuple[str, ...]
    status: str  # pending | sending | sent | failed | partial
    created_at: dt.datetime
    sent_at: dt.datetime | None
    error: str | None


@dataclass(frozen=True)
class CommentView:
    field_key: str | None
    field_label: str | None  # in the page's language
    sheet: str | None
    cell: str | None
    text: str
    changed: bool | None  # whether the answering return changed the field


@dataclass(frozen=True)
class CorrectionView:
    id: int
    submission_id: int
    requested_at: dt.datetime
    requested_by: str
    answered_by: int | None
    answered_at: dt.datetime | None
    comments: tuple[CommentView, ...]

    @property
    def open(self) -> bool:
        return self.answered_by is None


@dataclass(frozen=True)
class StateDetails:
    """What the officer needs to decide the next step for one state."""

    deadline: dt.date
    extended: bool
    excused_reason: str | None
    days_overdue: int | None  # past the deadline with nothing usable received
    next_reminder: str | None  # a text key (mail_reminder_before, ...)
    next_reminder_on: dt.date | None
    to: tuple[str, ...]
    cc: tuple[str, ...]
    emails: tuple[EmailView, ...]
    corrections: tuple[CorrectionView, ...] = field(default_factory=tuple)

    @property
    def reminders(self) -> tuple[EmailView, ...]:
        return tuple(e for e in self.emails if e.what.startswith("mail_reminder_"))

    @property
    def open_correction(self) -> CorrectionView | None:
        return next((c for c in self.corrections if c.open), None)


def email_label(message: m.OutboxMessage) -> str:
    """The text key saying what an email was (never the outbox key itself)."""
    if message.kind == "reminder":
        step = message.key.rsplit(":", 1)[-1]
        if step in {s.name for s in STEPS}:
            return "mail_reminder_" + step.replace("-", "_")
    if message.kind == "request" and ":resend:" in message.key:
        return "mail_request_resent"
    return f"mail_{message.kind}"


def state_details(
    session: Session,
    settings: Settings,
    cycle: m.ReportingCycle,
    outcomes: dict[str, str],
    lang: str,
    today: dt.date,
) -> dict[str, StateDetails]:
    """Per state code of the cycle's requests. ``outcomes``: each state's outcome as
    ``cycle_status`` spells it (it decides whether reminders still go)."""
    form = load_form(settings.forms_dir, cycle.instrument.code)
    labels = {f.key: f.label(lang) for f in form.fields}
    mail: dict[int, list[EmailView]] = defaultdict(list)
    queued: dict[int, set[str]] = defaultdict(set)
    for message in session.scalars(
        select(m.OutboxMessage)
        .where(m.OutboxMessage.cycle_id == cycle.id, m.OutboxMessage.state_id.is_not(None))
        .order_by(m.OutboxMessage.created_at, m.OutboxMessage.id)
    ):
        state_id: int = message.state_id  # type: ignore[assignment]
        if message.kind == "reminder":
            queued[state_id].add(message.key)
        mail[state_id].append(
            EmailView(
                id=message.id,
                what=email_label(message),
                to=tuple(message.to or ()),
                cc=tuple(message.cc or ()),
                status=message.status,
                created_at=message.created_at,
                sent_at=message.sent_at,
                error=message.last_error,
            )
        )
    corrections: dict[int, list[CorrectionView]] = defaultdict(list)
    for correction in session.scalars(
        select(m.CorrectionRequest)
        .where(m.CorrectionRequest.cycle_id == cycle.id)
        .order_by(m.CorrectionRequest.id.desc())
    ):
        corrections[correction.state_id].append(
            CorrectionView(
                id=correction.id,
                submission_id=correction.submission_id,
                requested_at=correction.requested_at,
                requested_by=correction.requested_by,
                answered_by=correction.answered_by_id,
                answered_at=correction.answered_at,
                comments=tuple(
                    CommentView(
                        field_key=c.field_key,
                        field_label=labels.get(c.field_key) if c.field_key else None,
                        sheet=c.sheet,
                        cell=c.cell,
                        text=c.text,
                        changed=c.changed,
                    )
                    for c in sorted(correction.comments, key=lambda c: c.id)
                ),
            )
        )
    details = {}
    for request in cycle.requests:
        code = request.state.code
        deadline = state_deadline(cycle, request)
        outcome = outcomes.get(code, "not received")
        still_due = cycle.status == "open" and request.excused_at is None and outcome in REMINDED
        upcoming = None
        if still_due and request.dispatched_at is not None:
            changes = [c for c in (cycle.deadline_changed_at, request.deadline_changed_at) if c]
            done = frozenset(
                step.name
                for step in STEPS
                if reminder_key(cycle, request, step, deadline) in queued[request.state_id]
            )
            upcoming = next_step(
                deadline, today, since=max(changes).date() if changes else None, queued=done
            )
        ministries = ministries_of(session, request.state_id, cycle.instrument.code)
        overdue = (today - deadline).days if still_due and today > deadline else None
        details[code] = StateDetails(
            deadline=deadline,
            extended=request.deadline is not None and request.deadline > cycle.deadline,
            excused_reason=request.excused_reason if request.excused_at else None,
            days_overdue=overdue,
            next_reminder="mail_reminder_" + upcoming[0].name.replace("-", "_")
            if upcoming
            else None,
            next_reminder_on=upcoming[1] if upcoming else None,
            to=tuple(ministries.foreign_affairs_emails),
            cc=tuple(ministries.focal_emails),
            emails=tuple(mail[request.state_id]),
            corrections=tuple(corrections[request.state_id]),
        )
    return details


def form_fields(settings: Settings, instrument: str, lang: str) -> list[tuple[str, str]]:
    """The form's field keys and labels in ``lang``, for the comment rows of a review."""
    form = load_form(settings.forms_dir, instrument)
    return [(f.key, f.label(lang)) for f in form.fields]


def state_name(request: m.ReportRequest, lang: str) -> str:
    return pick(request.state.name, lang)
