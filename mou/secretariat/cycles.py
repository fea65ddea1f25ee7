"""Cycle actions: list, extend a deadline, excuse a state, send a request again, close."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mou.accounts.audit import record
from mou.accounts.roles import Actor
from mou.catalogue.addressbook import ministries_of
from mou.clock import utcnow
from mou.cycle.dispatch import dispatch_request
from mou.cycle.opening import get_cycle
from mou.cycle.standing import cycle_status, state_deadline
from mou.errors import Refused
from mou.secretariat.notices import enqueue_extension_notice
from mou.secretariat.results import ActionResult
from mou.settings import Settings
from mou.store import models as m
from mou.store.database import begin_sqlite_transaction


def required_reason(reason: str | None, option: str = "--reason") -> str:
    """The reason an action is taken is part of the record: it may not be empty."""
    text = (reason or "").strip()
    if not text:
        raise Refused(f"give the reason for this action ({option} TEXT); it goes into the log")
    if len(text) > 2000:
        raise Refused("the reason is longer than 2,000 characters; shorten it")
    return text


def locked_cycle(session: Session, cycle_id: int) -> m.ReportingCycle:
    """The cycle, its row locked until commit: two officers acting on one cycle at once take
    turns, and the second sees what the first did (PostgreSQL: a row lock; SQLite: the write
    lock, taken before anything is read)."""
    begin_sqlite_transaction(session, immediate=True)
    session.execute(
        select(m.ReportingCycle.id).where(m.ReportingCycle.id == cycle_id).with_for_update()
    )
    return get_cycle(session, cycle_id)


def optional_reason(reason: str | None) -> str | None:
    text = (reason or "").strip()
    if len(text) > 2000:
        raise Refused("the reason is longer than 2,000 characters; shorten it")
    return text or None


def _open_cycle(session: Session, cycle_id: int) -> m.ReportingCycle:
    cycle = locked_cycle(session, cycle_id)
    if cycle.status != "open":
        raise Refused(f"cycle {cycle_id} ({cycle.instrument.code} {cycle.period}) is closed")
    return cycle


def request_of(session: Session, cycle: m.ReportingCycle, state: str) -> m.ReportRequest:
    code = state.strip().upper()
    for request in cycle.requests:
        if request.state.code == code:
            return request
    requested = ", ".join(r.state.code for r in cycle.requests) or "none"
    raise Refused(
        f"cycle {cycle.id} has no request to {code} (requested: {requested}); "
        "a state is added by `mou cycle open` with --states"
    )


def list_cycles(session: Session) -> list[dict[str, Any]]:
    """Every cycle, newest first, with how its states stand (``mou cycle list``)."""
    cycles = session.scalars(
        select(m.ReportingCycle).order_by(m.ReportingCycle.opened_at.desc(), m.ReportingCycle.id)
    ).all()
    rows = []
    for cycle in cycles:
        status = cycle_status(session, cycle.id)
        rows.append(
            {
                "id": cycle.id,
                "instrument": cycle.instrument.code,
                "period": cycle.period,
                "deadline": cycle.deadline.isoformat(),
                "original_deadline": (cycle.original_deadline or cycle.deadline).isoformat(),
                "status": cycle.status,
                "opened": cycle.opened_at.isoformat(timespec="seconds"),
                "closed": cycle.closed_at.isoformat(timespec="seconds")
                if cycle.closed_at
                else None,
                "requested": len(status["states"]),
                "counts": status["summary"],
            }
        )
    return rows


def extend_deadline(
    session: Session,
    settings: Settings,
    actor: Actor,
    cycle_id: int,
    deadline: dt.date,
    reason: str | None,
    state: str | None = None,
    today: dt.date | None = None,
) -> ActionResult:
    """A later deadline for the whole cycle, or for one state; the addressees are told."""
    actor.require("act")
    why = required_reason(reason)
    cycle = _open_cycle(session, cycle_id)
    today = today or utcnow().date()
    if deadline < today:
        raise Refused(f"the new deadline {deadline.isoformat()} has passed already")
    now = utcnow()
    if state is None:
        affected = [r for r in cycle.requests if state_deadline(cycle, r) < deadline]
        if cycle.deadline == deadline:
            return ActionResult(
                "cycle.extend",
                False,
                f"cycle {cycle.id} already has the deadline {deadline.isoformat()}",
                cycle_id=cycle.id,
            )
        if deadline < cycle.deadline:
            raise Refused(
                f"{deadline.isoformat()} is before the cycle's deadline "
                f"{cycle.deadline.isoformat()}: an extension moves it later"
            )
        old = cycle.deadline
        cycle.original_deadline = cycle.original_deadline or old
        cycle.deadline = deadline
        cycle.deadline_changed_at = now
        record(
            session,
            actor.name,
            "cycle.extend",
            cycle_id=cycle.id,
            reason=why,
            details={"from": old.isoformat(), "to": deadline.isoformat()},
        )
        targets = affected
        where = f"cycle {cycle.id}"
    else:
        request = request_of(session, cycle, state)
        old = state_deadline(cycle, request)
        if old == deadline:
            return ActionResult(
                "state.extend",
                False,
                f"{request.state.code} already has the deadline {deadline.isoformat()}",
                cycle_id=cycle.id,
                state=request.state.code,
            )
        if deadline < old:
            raise Refused(
                f"{deadline.isoformat()} is before {request.state.code}'s deadline "
                f"{old.isoformat()}: an extension moves it later"
            )
        request.deadline = deadline
        request.deadline_changed_at = now
        record(
            session,
            actor.name,
            "state.extend",
            cycle_id=cycle.id,
            state_id=request.state_id,
            reason=why,
            details={"from": old.isoformat(), "to": deadline.isoformat()},
        )
        targets = [request]
        where = request.state.code
    session.flush()
    emails = []
    for request in targets:
        if request.excused_at is not None or request.dispatched_at is None:
            continue
        message, created = enqueue_extension_notice(session, settings, cycle, request)
        if created:
            emails.append(message.key)
    return ActionResult(
        "state.extend" if state else "cycle.extend",
        True,
        f"deadline of {where} extended from {old.isoformat()} to {deadline.isoformat()}; "
        f"{len(emails)} notice(s) queued",
        cycle_id=cycle.id,
        state=state.upper() if state else None,
        emails=emails,
        render=True,
    )


def excuse_state(
    session: Session,
    actor: Actor,
    cycle_id: int,
    state: str,
    reason: str | None,
    undo: bool = False,
) -> ActionResult:
    """Excuse a state from reporting in the cycle (no reminders; shown as excused), or undo."""
    actor.require("act")
    why = required_reason(reason)
    cycle = _open_cycle(session, cycle_id)
    request = request_of(session, cycle, state)
    code = request.state.code
    action = "state.unexcuse" if undo else "state.excuse"
    if (request.excused_at is None) == undo:
        already = "is not excused" if undo else "is excused already"
        return ActionResult(action, False, f"{code} {already}", cycle_id=cycle.id, state=code)
    if undo:
        request.excused_at = None
        request.excused_reason = None
    else:
        request.excused_at = utcnow()
        request.excused_reason = why
    record(session, actor.name, action, cycle_id=cycle.id, state_id=request.state_id, reason=why)
    done = "no longer excused" if undo else "excused: no reminders, shown as excused"
    return ActionResult(action, True, f"{code} {done}", cycle_id=cycle.id, state=code, render=True)


def _addressees_digest(to: list[str], cc: list[str]) -> str:
    text = "|".join(sorted(a.lower() for a in to)) + "#" + "|".join(sorted(a.lower() for a in cc))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def resend_request(
    session: Session,
    settings: Settings,
    actor: Actor,
    cycle_id: int,
    state: str,
    reason: str | None = None,
) -> ActionResult:
    """Send the request again (same reference) to the addresses the address book has now.

    Once per set of addressees: after an address is corrected it goes out once more; run
    again with nothing changed, it sends nothing.
    """
    actor.require("act")
    why = optional_reason(reason)
    cycle = _open_cycle(session, cycle_id)
    request = request_of(session, cycle, state)
    code = request.state.code
    ministries = ministries_of(session, request.state_id, cycle.instrument.code)
    to, cc = ministries.foreign_affairs_emails, ministries.focal_emails
    if not to:
        raise Refused(f"{code} has no ministry of foreign affairs in the address book")
    key = f"request:{cycle.id}:{code}:resend:{_addressees_digest(to, cc)}"
    existing = session.scalars(select(m.OutboxMessage).filter_by(key=key)).one_or_none()
    if existing is not None:
        return ActionResult(
            "request.resend",
            False,
            f"the request to {code} was sent again to these addresses on "
            f"{existing.created_at.date().isoformat()}; correct an address first "
            "(mou contacts set) to send it elsewhere",
            cycle_id=cycle.id,
            state=code,
        )
    message, created = dispatch_request(session, settings, request.id, key=key, resent=True)
    if not created:  # sent meanwhile by someone else: nothing more to do or to log
        return ActionResult(
            "request.resend",
            False,
            f"the request to {code} was just sent again to these addresses",
            cycle_id=cycle.id,
            state=code,
        )
    record(
        session,
        actor.name,
        "request.resend",
        cycle_id=cycle.id,
        state_id=request.state_id,
        reason=why,
        details={"to": to, "cc": cc, "key": key},
    )
    return ActionResult(
        "request.resend",
        True,
        f"request {request.reference} sent again to {', '.join(to)}"
        + (f" (cc {', '.join(cc)})" if cc else ""),
        cycle_id=cycle.id,
        state=code,
        emails=[message.key],
    )


def close_cycle(
    session: Session, actor: Actor, cycle_id: int, reason: str | None = None
) -> ActionResult:
    """Close the cycle: links expire, later files are answered that it is closed (and kept),
    reminders stop; the final reports are rendered by the caller."""
    actor.require("act")
    why = optional_reason(reason)
    cycle = locked_cycle(session, cycle_id)
    if cycle.status == "closed":
        return ActionResult(
            "cycle.close", False, f"cycle {cycle.id} is closed already", cycle_id=cycle.id
        )
    cycle.status = "closed"
    cycle.closed_at = utcnow()
    record(session, actor.name, "cycle.close", cycle_id=cycle.id, reason=why)
    return ActionResult(
        "cycle.close",
        True,
        f"cycle {cycle.id} ({cycle.instrument.code} {cycle.period}) closed",
        cycle_id=cycle.id,
        render=True,
    )


MEETING_FIELDS = ("name", "number", "place", "dates", "agenda_item", "original", "action")
# Fields with words in them: each may be given again per language ("name.ru"), which the
# summary in that language prints instead (the plain field is in the original language).
MEETING_TRANSLATED = ("name", "place", "dates", "action")
MEETING_TEXT_MAX = 2000  # the action requested: a paragraph
MEETING_LINE_MAX = 200


def meeting_field(name: str, languages: Sequence[str]) -> tuple[str, str | None]:
    """(field, language) of a meeting key, "name" or "name.ru"; Refused if it is neither."""
    field, _, language = name.partition(".")
    if field not in MEETING_FIELDS or (language and field not in MEETING_TRANSLATED):
        known = ", ".join((*MEETING_FIELDS, *(f"{f}.<language>" for f in MEETING_TRANSLATED)))
        raise Refused(f"unknown meeting field {name!r}: {known}")
    if language and language not in languages:
        raise Refused(
            f"the meeting's {field} in {language!r}: the instrument's languages are "
            f"{', '.join(languages)}"
        )
    return field, language or None


def set_meeting(
    session: Session,
    actor: Actor,
    cycle_id: int,
    fields: dict[str, str | None],
    reason: str | None = None,
) -> ActionResult:
    """Set what the progress summary's cover says of the meeting it serves; a field given as
    "" is removed, one not given stays. The same values again change nothing."""
    actor.require("act")
    why = optional_reason(reason)
    cycle = locked_cycle(session, cycle_id)
    current = dict(cycle.meeting or {})
    wanted = dict(current)
    for name, value in fields.items():
        field, _language = meeting_field(name, cycle.instrument.languages)
        if value is None:
            continue
        text = " ".join(value.split()) if field != "action" else value.strip()
        limit = MEETING_TEXT_MAX if field == "action" else MEETING_LINE_MAX
        if len(text) > limit:
            raise Refused(f"the meeting's {name} is longer than {limit} characters")
        if name == "original" and text and text not in cycle.instrument.languages:
            raise Refused(
                f"--original must be one of the instrument's languages: "
                f"{', '.join(cycle.instrument.languages)}"
            )
        if text:
            wanted[name] = text
        else:
            wanted.pop(name, None)
    if wanted == current:
        return ActionResult(
            "cycle.meeting",
            False,
            f"cycle {cycle.id}: the meeting is as given already",
            cycle_id=cycle.id,
        )
    cycle.meeting = wanted or None
    record(
        session,
        actor.name,
        "cycle.meeting",
        cycle_id=cycle.id,
        reason=why,
        details={"old": current, "new": wanted},
    )
    return ActionResult(
        "cycle.meeting",
        True,
        f"cycle {cycle.id}: the meeting set for its progress summary",
        cycle_id=cycle.id,
        render=True,
    )
