"""Where each state stands, for the reports: ``mou.cycle.standing`` decides, this module only
puts its answer beside the state's names and counts the outcomes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

from mou.cycle.standing import Standing, state_standing
from mou.reporting.consolidation.model import CycleCounts, StateRef, SubmissionStatus


def submission_statuses(
    states: Mapping[int, StateRef], standings: Mapping[int, Standing], deadline: dt.date
) -> tuple[SubmissionStatus, ...]:
    """The status of each state in ``states`` (state id -> state), in that order.

    A participant the cycle has no record of (no request, reminder or file) stands as the
    rule says of nothing at all: not received.
    """
    return tuple(
        SubmissionStatus.of(
            state, standings.get(state_id) or state_standing(None, (), (), deadline)
        )
        for state_id, state in states.items()
    )


def cycle_counts(statuses: Sequence[SubmissionStatus]) -> CycleCounts:
    """How many states were asked, sent files, and stand at each outcome and timeliness."""
    return CycleCounts(
        participants=len(statuses),
        requested=sum(1 for s in statuses if s.request_reference is not None),
        received=sum(1 for s in statuses if s.files_received),
        accepted=sum(1 for s in statuses if s.outcome == "accepted"),
        on_time=sum(1 for s in statuses if s.timeliness == "on_time"),
        late=sum(1 for s in statuses if s.timeliness == "late"),
        correction_requested=sum(1 for s in statuses if s.outcome == "correction_requested"),
        excused=sum(1 for s in statuses if s.outcome == "excused"),
        refused=sum(1 for s in statuses if s.outcome == "refused"),
        pending=sum(1 for s in statuses if s.outcome == "pending"),
        not_received=sum(1 for s in statuses if s.outcome == "not_received"),
    )
