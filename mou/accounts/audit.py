"""The audit log: every Secretariat action, with who, when, what, where and why.

Actions call ``record`` in the same transaction as the change they make, so the log never
names an action that did not happen, nor misses one that did.
"""

from __future__ import annotations

import datetime as dt
import getpass
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mou.clock import utcnow
from mou.store import models as m
from mou.store.database import fit


def command_line_actor() -> str:
    """Who acts from the command line: the operating-system account running ``mou``."""
    try:
        return f"cli:{getpass.getuser()}"[:60]
    except (KeyError, OSError):  # no passwd entry (a container's arbitrary uid)
        return "cli"


def record(
    session: Session,
    actor: str,
    action: str,
    *,
    cycle_id: int | None = None,
    state_id: int | None = None,
    submission_id: int | None = None,
    reason: str | None = None,
    details: dict[str, Any] | None = None,
    at: dt.datetime | None = None,
) -> m.AuditEvent:
    event = m.AuditEvent(
        at=at or utcnow(),
        actor=fit(m.AuditEvent, "actor", actor) or "",
        action=fit(m.AuditEvent, "action", action) or "",
        cycle_id=cycle_id,
        state_id=state_id,
        submission_id=submission_id,
        reason=reason.strip() if reason and reason.strip() else None,
        details=details or {},
    )
    session.add(event)
    session.flush()
    return event


@dataclass(frozen=True)
class LoggedAction:
    id: int
    at: dt.datetime
    actor: str
    action: str
    cycle_id: int | None
    state: str | None
    submission_id: int | None
    reason: str | None
    details: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at.isoformat(timespec="seconds"),
            "actor": self.actor,
            "action": self.action,
            "cycle": self.cycle_id,
            "state": self.state,
            "submission": self.submission_id,
            "reason": self.reason,
            "details": self.details,
        }


def logged_actions(
    session: Session, cycle_id: int | None = None, state_id: int | None = None
) -> list[LoggedAction]:
    """The log, oldest first; of one cycle (and one state of it) when given."""
    query = select(m.AuditEvent).order_by(m.AuditEvent.at, m.AuditEvent.id)
    if cycle_id is not None:
        query = query.where(m.AuditEvent.cycle_id == cycle_id)
    if state_id is not None:
        query = query.where(m.AuditEvent.state_id == state_id)
    return [
        LoggedAction(
            id=e.id,
            at=e.at,
            actor=e.actor,
            action=e.action,
            cycle_id=e.cycle_id,
            state=e.state.code if e.state else None,
            submission_id=e.submission_id,
            reason=e.reason,
            details=dict(e.details or {}),
        )
        for e in session.scalars(query)
    ]
