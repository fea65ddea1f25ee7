"""Where a cycle stands, state by state: request, reminders, submissions and outcome."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mou.cycle.opening import get_cycle
from mou.store import models as m


@dataclass
class StateStatus:
    state: str
    name: str
    reference: str
    requested: str | None  # when the request email was sent
    request_email: str | None  # pending | sent | failed
    reminders: list[str] = field(default_factory=list)  # steps sent
    submissions: int = 0
    latest: dict[str, Any] | None = None  # id, version, status, received, decided
    outcome: str = "not received"  # accepted | refused | pending | not received
    on_time: bool | None = None


def _iso(moment: dt.datetime | None) -> str | None:
    return moment.isoformat(timespec="seconds") if moment else None


def cycle_status(session: Session, cycle_id: int) -> dict[str, Any]:
    """Plain data for ``mou status`` (and the dashboard)."""
    cycle = get_cycle(session, cycle_id)
    messages = session.scalars(
        select(m.OutboxMessage).where(m.OutboxMessage.cycle_id == cycle.id)
    ).all()
    submissions = session.scalars(
        select(m.Submission).where(m.Submission.cycle_id == cycle.id).order_by(m.Submission.id)
    ).all()
    states = []
    for request in cycle.requests:
        code = request.state.code
        mine = [s for s in submissions if s.state_id == request.state_id]
        sent = [x for x in messages if x.state_id == request.state_id]
        request_mail = next((x for x in sent if x.kind == "request"), None)
        status = StateStatus(
            state=code,
            name=request.state.name["en"],
            reference=request.reference,
            requested=_iso(request_mail.sent_at if request_mail else None),
            request_email=request_mail.status if request_mail else None,
            reminders=[x.key.rsplit(":", 1)[-1] for x in sent if x.kind == "reminder"],
            submissions=len(mine),
        )
        if mine:
            counted = [s for s in mine if s.status == "accepted" and s.superseded_by_id is None]
            latest = counted[-1] if counted else mine[-1]
            status.latest = {
                "id": latest.id,
                "version": latest.version,
                "status": latest.status,
                "received": _iso(latest.received_at),
                "decided": _iso(latest.decided_at),
                "errors": sum(1 for i in latest.issues if i.severity == "error"),
                "warnings": sum(1 for i in latest.issues if i.severity == "warning"),
            }
            status.outcome = {"accepted": "accepted", "rejected": "refused"}.get(
                latest.status, "pending"
            )
            if counted:
                first_accepted = min(s.received_at for s in mine if s.status == "accepted")
                status.on_time = first_accepted.date() <= cycle.deadline
        states.append(asdict(status))
    return {
        "cycle": cycle.id,
        "instrument": cycle.instrument.code,
        "period": cycle.period,
        "deadline": cycle.deadline.isoformat(),
        "status": cycle.status,
        "states": states,
        "summary": {
            outcome: sum(1 for s in states if s["outcome"] == outcome)
            for outcome in ("accepted", "refused", "pending", "not received")
        },
    }
