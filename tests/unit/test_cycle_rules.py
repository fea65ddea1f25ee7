"""Which reminder step is due on a day, without a database."""

from __future__ import annotations

import datetime as dt

import pytest

from mou.cycle.rules import next_step, step_due

DEADLINE = dt.date(2027, 3, 31)


@pytest.mark.parametrize(
    ("day", "step", "escalated"),
    [
        (dt.date(2027, 3, 16), None, None),
        (dt.date(2027, 3, 17), "before", False),
        (dt.date(2027, 3, 30), "before", False),
        (DEADLINE, "due", False),
        (dt.date(2027, 4, 6), "due", False),
        (dt.date(2027, 4, 7), "overdue-1", True),
        (dt.date(2027, 4, 30), "overdue-2", True),
        (dt.date(2028, 1, 1), "overdue-2", True),
    ],
)
def test_the_latest_step_whose_day_has_come(
    day: dt.date, step: str | None, escalated: bool | None
) -> None:
    due = step_due(DEADLINE, day)
    assert (due.name if due else None) == step
    assert (due.escalate if due else None) == escalated


def test_the_next_reminder_is_the_first_step_still_to_come() -> None:
    deadline = dt.date(2027, 3, 31)
    step, day = next_step(deadline, dt.date(2027, 1, 1))
    assert (step.name, day) == ("before", dt.date(2027, 3, 17))
    # On a step's own day it is next until it is queued, then the following one is.
    assert next_step(deadline, dt.date(2027, 3, 31))[0].name == "due"
    step, day = next_step(deadline, dt.date(2027, 3, 31), queued=frozenset({"due"}))
    assert (step.name, day) == ("overdue-1", dt.date(2027, 4, 7))
    # A step whose day came before the deadline was changed is never sent, so never next.
    step, _ = next_step(deadline, dt.date(2027, 3, 20), since=dt.date(2027, 3, 20))
    assert step.name == "due"
    assert next_step(deadline, dt.date(2027, 5, 1)) is None  # the last step has come
