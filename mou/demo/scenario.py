"""The demo's story: which state does what, on which day of each cycle, and in what order.

Days are counted from each cycle's deadline: most states report early; Turkmenistan first sends
a Bukhara deer return with typical errors, is refused, is reminded and corrects it; Kazakhstan
revises its accepted Bukhara deer return (the revision supersedes it); Afghanistan (Bukhara
deer) and Pakistan (CAMI) report only after the escalation at deadline+7; Nepal and Bhutan
(CAMI) report after the first reminder.

Pure data and dates: ``mou.demo.run`` plays the timeline through the protocol.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Step:
    """One state's action on a day counted from the cycle's deadline."""

    offset: int
    state: str
    kind: str  # return | errors | correction | revision
    channel: str  # inbox | email


@dataclass(frozen=True)
class Scenario:
    """One instrument's demonstration cycle: its period and its states' steps."""

    instrument: str
    period: str
    steps: tuple[Step, ...]


REMINDER_OFFSETS = (-14, 0, 7)  # before, due, first escalation (mou.cycle.rules.STEPS)
ERRORS_PER_RETURN = 2

SCENARIOS = (
    Scenario(
        "bukhara-deer",
        "2025-2026",
        (
            Step(-75, "UZ", "return", "inbox"),
            Step(-60, "KZ", "return", "email"),
            Step(-45, "TJ", "return", "email"),
            Step(-30, "TM", "errors", "email"),
            Step(-10, "TM", "correction", "email"),
            Step(-5, "KZ", "revision", "inbox"),
            Step(12, "AF", "return", "email"),
        ),
    ),
    Scenario(
        "cami",
        "2024-2026",
        (
            Step(-100, "MN", "return", "email"),
            Step(-95, "KZ", "return", "inbox"),
            Step(-90, "UZ", "return", "email"),
            Step(-80, "CN", "return", "inbox"),
            Step(-75, "KG", "return", "email"),
            Step(-70, "TJ", "return", "email"),
            Step(-60, "IN", "return", "inbox"),
            Step(-50, "RU", "return", "email"),
            Step(-40, "IR", "return", "email"),
            Step(-30, "TM", "return", "inbox"),
            Step(-20, "AF", "return", "email"),
            Step(-7, "NP", "return", "email"),
            Step(-2, "BT", "return", "inbox"),
            Step(10, "PK", "return", "email"),
        ),
    ),
)


@dataclass(frozen=True)
class ReminderDay:
    """A day the reminders run (for every open cycle, so once a day is enough)."""

    day: dt.date


@dataclass(frozen=True)
class StateTurn:
    """A state's step on its day; ``ordinal``: the state's n-th step in the cycle."""

    day: dt.date
    scenario: Scenario
    step: Step
    # Every step files one return, so a state with n submissions in the cycle has taken it.
    ordinal: int

    @property
    def key(self) -> tuple[str, str, int]:
        """(instrument, state, ordinal): the turn, the same in every run."""
        return self.scenario.instrument, self.step.state, self.ordinal


def timeline(deadlines: Mapping[str, dt.date]) -> list[ReminderDay | StateTurn]:
    """Both cycles' reminder runs and steps by date, from the deadlines by instrument code.

    On a day with both, reminders come first; the same day's reminders of both cycles follow
    each other (the runner runs them once).
    """
    events: list[tuple[dt.date, int, Scenario | None, Step | None]] = []
    for scenario in SCENARIOS:
        deadline = deadlines[scenario.instrument]
        for offset in REMINDER_OFFSETS:
            events.append((deadline + dt.timedelta(days=offset), 0, None, None))
        for step in scenario.steps:
            events.append((deadline + dt.timedelta(days=step.offset), 1, scenario, step))
    events.sort(key=lambda e: (e[0], e[1]))

    taken: dict[tuple[str, str], int] = {}
    ordered: list[ReminderDay | StateTurn] = []
    for day, _, scenario, step in events:
        if scenario is None or step is None:
            ordered.append(ReminderDay(day))
            continue
        ordinal = taken.get((scenario.instrument, step.state), 0) + 1
        taken[(scenario.instrument, step.state)] = ordinal
        ordered.append(StateTurn(day, scenario, step, ordinal))
    return ordered
