"""Releasing a cycle's PDFs on the portal's public page, and taking a release back."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from mou.accounts.audit import record
from mou.accounts.roles import Actor
from mou.clock import utcnow
from mou.cycle.opening import get_cycle
from mou.errors import Refused
from mou.secretariat.results import ActionResult
from mou.store import models as m

KINDS = ("reports", "national-reports")


def current_release(session: Session, cycle_id: int, kind: str) -> m.Publication | None:
    return session.scalars(
        select(m.Publication)
        .where(
            m.Publication.cycle_id == cycle_id,
            m.Publication.kind == kind,
            m.Publication.withdrawn_at.is_(None),
        )
        .order_by(m.Publication.id.desc())
    ).first()


def publish(
    session: Session,
    actor: Actor,
    cycle_id: int,
    kinds: Sequence[str] = ("reports",),
    withdraw: bool = False,
    reason: str | None = None,
) -> ActionResult:
    """Release (or withdraw) the cycle's progress summaries and/or national reports."""
    actor.require("act")
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown or not kinds:
        raise Refused(f"publish what? one or more of {', '.join(KINDS)}")
    cycle = get_cycle(session, cycle_id)
    done, already = [], []
    for kind in kinds:
        release = current_release(session, cycle.id, kind)
        if withdraw:
            if release is None:
                already.append(kind)
                continue
            release.withdrawn_at = utcnow()
            release.withdrawn_by = actor.name
        else:
            if release is not None:
                already.append(kind)
                continue
            session.add(m.Publication(cycle_id=cycle.id, kind=kind, released_by=actor.name))
        record(
            session,
            actor.name,
            "publication.withdraw" if withdraw else "publication.release",
            cycle_id=cycle.id,
            reason=(reason or "").strip() or None,
            details={"kind": kind},
        )
        done.append(kind)
    session.flush()
    verb = "withdrawn" if withdraw else "published"
    parts = []
    if done:
        parts.append(f"{' and '.join(done)} of cycle {cycle.id} {verb}")
    if already:
        state = "not published" if withdraw else "published already"
        parts.append(f"{' and '.join(already)} {state}")
    return ActionResult(
        "publication.withdraw" if withdraw else "publication.release",
        bool(done),
        "; ".join(parts),
        cycle_id=cycle.id,
        details={"kinds": done},
        render=bool(done) and not withdraw,
    )


@dataclass(frozen=True)
class Release:
    cycle_id: int
    instrument: str
    instrument_name: dict[str, str]
    period: str
    kind: str
    released_at: dt.datetime


def public_releases(session: Session) -> list[Release]:
    """What the public page lists: every release not withdrawn, newest cycle first."""
    rows = session.execute(
        select(m.Publication, m.ReportingCycle)
        .join(m.ReportingCycle, m.Publication.cycle_id == m.ReportingCycle.id)
        .where(m.Publication.withdrawn_at.is_(None))
        .order_by(m.ReportingCycle.period_end.desc(), m.ReportingCycle.id, m.Publication.kind)
    ).all()
    return [
        Release(
            cycle_id=cycle.id,
            instrument=cycle.instrument.code,
            instrument_name=dict(cycle.instrument.short_name),
            period=cycle.period,
            kind=publication.kind,
            released_at=publication.released_at,
        )
        for publication, cycle in rows
    ]


def is_released(session: Session, cycle_id: int, kind: str) -> bool:
    return current_release(session, cycle_id, kind) is not None
