"""Consolidation of a reporting cycle: the counted return of each state, as plain data.

``consolidate(session, cycle_id)`` reads the project database once and returns frozen
dataclasses (no ORM objects, see ``model``), which the PDF renderer and the export share.

Rules (each a judgement written down so reports and exports agree):

- Where each state stands (the return that counts, the outcome, on time or late) is decided
  by ``mou.cycle.standing``, the same rule ``mou status`` and the dashboard show. Only the
  counted return (the latest accepted, non-superseded one) contributes answers; older versions
  and refused or pending files never do.
- The previous cycle is the latest cycle of the same instrument that started before this one
  and has a counted return; population change compares national totals as reported.
- Which fields play which part (population sites, threats, activity status, proposals) is read
  from the form specification: tables with an ``activity_status`` column are activity
  matrices, tables with a ``severity`` column are threat tables, tables with a ``proposal``
  column hold proposals, multiline text is narrative. A form without such fields simply has no
  such section.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.orm import Session

from mou.accounts.audit import logged_actions
from mou.cycle.standing import Outcome, Timeliness, cycle_standings
from mou.errors import Refused
from mou.forms.spec import load_form
from mou.i18n.languages import pick
from mou.reporting.consolidation.activities import (
    PRIORITY_ORDER,
    STATUS_CHOICES,
    activity_matrices,
    status_column,
)
from mou.reporting.consolidation.focal_points import focal_points
from mou.reporting.consolidation.labels import (
    ACTIVITIES_SOURCE,
    SPECIES_SOURCE,
    labels_for,
    sort_name,
)
from mou.reporting.consolidation.model import (
    DONE,
    NOT_APPLICABLE,
    STARTED,
    ActivityGroup,
    ActivityLine,
    ActivityMatrix,
    CarriedForward,
    ConsolidatedCycle,
    CycleCounts,
    CycleInfo,
    DataQuality,
    DataWarning,
    FocalPoint,
    FocalPoints,
    Narrative,
    PopulationSite,
    PopulationSummary,
    Proposal,
    SpeciesRef,
    StatePopulation,
    StateRef,
    StateReturn,
    StatusCounts,
    SubmissionStatus,
    ThreatLine,
    ThreatTable,
    Translated,
)
from mou.reporting.consolidation.narratives import narratives
from mou.reporting.consolidation.population import (
    NATIONAL_TOTAL,
    NATIONAL_TREND,
    POPULATION_TABLE,
    population,
)
from mou.reporting.consolidation.proposals import PROPOSAL_COLUMN, proposals
from mou.reporting.consolidation.quality import data_quality
from mou.reporting.consolidation.returns import (
    answers_for,
    counted_submissions,
    cycle_info,
    default_forms_dir,
    read_return,
    state_ref,
    state_return,
    warnings_for,
)
from mou.reporting.consolidation.statuses import cycle_counts, submission_statuses
from mou.reporting.consolidation.threats import SEVERITY_CHOICES, threat_tables
from mou.store import models as m
from mou.workbook.validate import AnswerValue

__all__ = [
    "ACTIVITIES_SOURCE",
    "DONE",
    "NATIONAL_TOTAL",
    "NATIONAL_TREND",
    "NOT_APPLICABLE",
    "POPULATION_TABLE",
    "PRIORITY_ORDER",
    "PROPOSAL_COLUMN",
    "SEVERITY_CHOICES",
    "SPECIES_SOURCE",
    "STARTED",
    "STATUS_CHOICES",
    "ActivityGroup",
    "ActivityLine",
    "ActivityMatrix",
    "AnswerValue",
    "CarriedForward",
    "ConsolidatedCycle",
    "CycleCounts",
    "CycleInfo",
    "DataQuality",
    "DataWarning",
    "FocalPoint",
    "FocalPoints",
    "Narrative",
    "Outcome",
    "PopulationSite",
    "PopulationSummary",
    "Proposal",
    "SpeciesRef",
    "StatePopulation",
    "StateRef",
    "StateReturn",
    "StatusCounts",
    "SubmissionStatus",
    "ThreatLine",
    "ThreatTable",
    "Timeliness",
    "Translated",
    "consolidate",
    "read_return",
    "sort_name",
    "status_column",
]


def consolidate(
    session: Session, cycle_id: int, *, forms_dir: Path | None = None
) -> ConsolidatedCycle:
    """The consolidated dataset of cycle ``cycle_id``: every participant's status, and the
    sections built from the counted returns. Raises ``Refused`` for an unknown cycle."""
    cycle = session.get(m.ReportingCycle, cycle_id)
    if cycle is None:
        raise Refused(f"reporting cycle {cycle_id} does not exist: see `mou status`")
    instrument = cycle.instrument
    form = load_form(forms_dir or default_forms_dir(), instrument.code)
    labels = labels_for(session, instrument, form)
    info = cycle_info(cycle, form, labels)

    participations = sorted(
        instrument.participations, key=lambda p: (sort_name(pick(p.state.name, "en")), p.id)
    )
    states = {p.state_id: state_ref(p.state, p.role) for p in participations}
    standings = cycle_standings(session, cycle)
    counted = counted_submissions(session, standings)
    # A state that reported without being listed as a participant still appears.
    for state_id, submission in sorted(counted.items()):
        if state_id not in states and submission.state is not None:
            states[state_id] = state_ref(submission.state, "range_state")

    answers = answers_for(session, (s.id for s in counted.values()))
    warnings = warnings_for(session, (s.id for s in counted.values()))
    returns = tuple(
        state_return(
            info,
            state,
            counted[state_id],
            answers.get(counted[state_id].id, []),
            warnings.get(counted[state_id].id, []),
            form,
            labels,
        )
        for state_id, state in states.items()
        if state_id in counted
    )
    statuses = submission_statuses(states, standings, cycle.deadline)
    decisions = [r.decided_at for r in returns if r.decided_at is not None]
    species = tuple(SpeciesRef(s.code, s.scientific_name, dict(s.name)) for s in instrument.species)
    return ConsolidatedCycle(
        cycle=info,
        # From the data (the latest decision), so renders of the same data are reproducible.
        generated_at=max(decisions) if decisions else info.opened_at,
        counts=cycle_counts(statuses),
        states=statuses,
        returns=returns,
        population=population(session, cycle, returns, form, labels),
        activities=activity_matrices(session, instrument, returns, form, labels),
        threats=threat_tables(returns, form, labels),
        proposals=proposals(returns, form, labels),
        narratives=narratives(returns, form, labels),
        data_quality=data_quality(returns, form),
        species=species,
        focal_points=focal_points(
            session, instrument, {s.code: s for s in states.values()}, species
        ),
        audit=tuple(e.as_dict() for e in logged_actions(session, cycle.id)),
    )
