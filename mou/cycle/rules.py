"""The cycle's calendar rules, as plain functions over dates (no database): which reminder
step is due on a day."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass


@dataclass(frozen=True)
class Step:
    name: str
    offset_days: int  # relative to the deadline
    escalate: bool  # to the ministry of foreign affairs, cc the focal ministry
    text: str  # which email texts


STEPS = (
    Step("before", -14, False, "before"),
    Step("due", 0, False, "due"),
    Step("overdue-1", 7, True, "overdue"),
    Step("overdue-2", 30, True, "overdue"),
)


def step_due(deadline: dt.date, today: dt.date, since: dt.date | None = None) -> Step | None:
    """The latest step whose day has come; earlier missed steps are not sent late.

    ``since``: the day the deadline was last changed. A step whose day came on or before it
    belongs to the old calendar and is not sent (the state has just been told the new date).
    """
    current = None
    for step in STEPS:
        if today >= deadline + dt.timedelta(days=step.offset_days):
            current = step
    stale = (
        current is not None
        and since is not None
        and deadline + dt.timedelta(days=current.offset_days) <= since
    )
    return None if stale else current


def next_step(
    deadline: dt.date,
    today: dt.date,
    since: dt.date | None = None,
    queued: frozenset[str] = frozenset(),
) -> tuple[Step, dt.date] | None:
    """The next reminder step of ``deadline`` and its day, seen from ``today``: the first whose
    day is later than today, or today's when it is not queued yet (``queued``: the step names
    already queued for this deadline). Steps on or before ``since`` (the day the deadline last
    changed) are never sent, so they are never next. None once the last step has come."""
    for step in STEPS:
        day = deadline + dt.timedelta(days=step.offset_days)
        if since is not None and day <= since:
            continue
        if day > today or (day == today and step.name not in queued):
            return step, day
    return None
