"""The consolidated cycle as plain data: frozen dataclasses, no ORM objects.

``consolidate`` builds them once from the database; the PDF renderer, the export and the
tests read them after the session has closed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mou.cycle.standing import Outcome, Standing, Timeliness
from mou.i18n.languages import pick
from mou.workbook.validate import AnswerValue

Translated = Mapping[str, str]

# Statuses that count as work done or under way; "not_applicable" is left out of shares.
DONE = ("completed", "ongoing")
STARTED = ("completed", "ongoing", "in_progress")
NOT_APPLICABLE = "not_applicable"


@dataclass(frozen=True)
class StateRef:
    """A participating state, with its names from the catalogue."""

    code: str
    iso3: str
    name: Translated
    language: str
    role: str  # signatory | range_state

    def label(self, language: str) -> str:
        return pick(self.name, language)


@dataclass(frozen=True)
class SpeciesRef:
    code: str
    scientific_name: str
    name: Translated


@dataclass(frozen=True)
class CycleInfo:
    """The cycle and its instrument."""

    id: int
    instrument_code: str
    instrument_name: Translated
    instrument_short_name: Translated
    secretariat: Translated
    instrument_languages: tuple[str, ...]
    period: str
    period_start: dt.date
    period_end: dt.date
    deadline: dt.date
    form_id: str
    form_version: int
    form_title: Translated
    status: str
    opened_at: dt.datetime
    closed_at: dt.datetime | None
    # Labels of the form's catalogue-driven lists: "@activities" and "@species" -> value -> text.
    catalogue_choices: Mapping[str, Mapping[str, Translated]] = field(default_factory=dict)
    # The meeting the progress summary serves, as the Secretariat set it (mou cycle meeting).
    meeting: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class DataWarning:
    """A validation warning that remained on an accepted return."""

    state_code: str
    code: str
    field_key: str | None
    field_label: Translated | None
    sheet: str | None
    cell: str | None
    message: str


@dataclass(frozen=True)
class DocumentRef:
    """A supporting document kept with a return (a national plan, a map, a legal text)."""

    filename: str
    kind: str  # PDF, Word, PNG image... (its sniffed type)
    size: int


@dataclass(frozen=True)
class StateReturn:
    """What one accepted submission says, in form order."""

    cycle: CycleInfo
    state: StateRef
    submission_id: int
    version: int
    filename: str
    language: str | None
    received_at: dt.datetime
    decided_at: dt.datetime | None
    answers: tuple[AnswerValue, ...]
    warnings: tuple[DataWarning, ...]
    # The Secretariat accepted it after review (despite its warnings, or waived errors).
    review_reason: str | None = None
    waived_codes: tuple[str, ...] = ()
    documents: tuple[DocumentRef, ...] = ()

    def value(self, field_key: str, row_key: str = "", column_key: str = "") -> Any:
        for answer in self.answers:
            if (answer.field_key, answer.row_key, answer.column_key) == (
                field_key,
                row_key,
                column_key,
            ):
                return answer.value
        return None

    def table(self, field_key: str) -> dict[str, dict[str, Any]]:
        """Rows of a table answer, in stored order: {row_key: {column_key: value}}."""
        rows: dict[str, dict[str, Any]] = {}
        for answer in self.answers:
            if answer.field_key == field_key and answer.column_key:
                rows.setdefault(answer.row_key, {})[answer.column_key] = answer.value
        return rows

    def carried_forward(self, field_key: str, row_key: str = "", column_key: str = "") -> bool:
        return any(
            a.carried_forward
            for a in self.answers
            if (a.field_key, a.row_key, a.column_key) == (field_key, row_key, column_key)
        )


@dataclass(frozen=True)
class SubmissionStatus:
    """Where one state stands in the cycle: ``mou.cycle.standing``'s answer, for the reports."""

    state: StateRef
    request_reference: str | None
    request_created_at: dt.datetime | None
    request_dispatched_at: dt.datetime | None
    reminders_sent: int
    last_reminder_at: dt.datetime | None
    files_received: int
    first_received_at: dt.datetime | None
    accepted_version: int | None
    accepted_received_at: dt.datetime | None
    accepted_at: dt.datetime | None
    first_accepted_received_at: dt.datetime | None
    outcome: Outcome
    timeliness: Timeliness | None
    days_late: int | None
    deadline: dt.date | None = None  # the state's own when extended
    excused: bool = False

    @property
    def requested_at(self) -> dt.datetime | None:
        return self.request_dispatched_at or self.request_created_at

    @classmethod
    def of(cls, state: StateRef, standing: Standing) -> SubmissionStatus:
        """The status of ``state`` as its ``Standing`` decides it (no rule of its own here)."""
        request, counted = standing.request, standing.counted
        return cls(
            state=state,
            request_reference=request.reference if request else None,
            request_created_at=request.created_at if request else None,
            request_dispatched_at=request.dispatched_at if request else None,
            reminders_sent=len(standing.reminders_sent_at),
            last_reminder_at=standing.last_reminder_at,
            files_received=len(standing.files),
            first_received_at=standing.first_received_at,
            accepted_version=counted.version if counted else None,
            accepted_received_at=counted.received_at if counted else None,
            accepted_at=counted.decided_at if counted else None,
            first_accepted_received_at=standing.first_accepted_received_at,
            outcome=standing.outcome,
            timeliness=standing.timeliness,
            days_late=standing.days_late,
            deadline=standing.deadline,
            excused=standing.excused,
        )


@dataclass(frozen=True)
class PopulationSite:
    row: str
    site: str
    protected_area: str | None
    year: int | None
    count: int | None
    method: str | None
    method_label: Translated | None
    trend: str | None
    trend_label: Translated | None


@dataclass(frozen=True)
class StatePopulation:
    state: StateRef
    sites: tuple[PopulationSite, ...]
    sites_total: int
    national_total: int | None
    national_trend: str | None
    national_trend_label: Translated | None
    previous_total: int | None
    change: int | None

    @property
    def totals_differ(self) -> bool:
        return self.national_total is not None and self.national_total != self.sites_total


@dataclass(frozen=True)
class PopulationSummary:
    states: tuple[StatePopulation, ...]
    reported_total: int
    sites_total: int
    previous_cycle_id: int | None
    previous_period: str | None
    previous_total: int | None
    change: int | None
    # Totals over the states that reported a national total in both cycles.
    comparable_states: tuple[str, ...]
    comparable_previous_total: int | None
    comparable_change: int | None
    # States whose national total is in only one of the two cycles.
    new_states: tuple[str, ...]
    missing_states: tuple[str, ...]


@dataclass(frozen=True)
class StatusCounts:
    """Cell counts of a state × activity matrix (cells of states with an accepted return)."""

    by_status: Mapping[str, int]
    not_reported: int

    @property
    def applicable(self) -> int:
        return sum(n for status, n in self.by_status.items() if status != NOT_APPLICABLE)

    @property
    def done(self) -> int:
        return sum(self.by_status.get(s, 0) for s in DONE)

    @property
    def started(self) -> int:
        return sum(self.by_status.get(s, 0) for s in STARTED)

    @property
    def counted(self) -> int:
        """Every cell but those a State reported as not applicable: a cell left empty counts
        against the shares, not for them (it is not known to be done)."""
        return self.applicable + self.not_reported

    @property
    def completion_share(self) -> float | None:
        """Completed or ongoing, as a share of the counted cells (unreported ones included)."""
        return self.done / self.counted if self.counted else None

    @property
    def implementation_share(self) -> float | None:
        """Completed, ongoing or in progress, as a share of the counted cells."""
        return self.started / self.counted if self.counted else None

    @property
    def unreported_share(self) -> float | None:
        """The counted cells left empty: stated beside the shares."""
        return self.not_reported / self.counted if self.counted else None


@dataclass(frozen=True)
class ActivityLine:
    code: str
    label: Translated
    issue_code: str | None
    issue_title: Translated | None
    subheading: Translated | None
    priority: str | None
    priority_source: str | None
    statuses: Mapping[str, str | None]  # state code -> status value (None: left empty)
    counts: StatusCounts


@dataclass(frozen=True)
class ActivityGroup:
    code: str
    title: Translated
    lines: tuple[ActivityLine, ...]
    counts: StatusCounts


@dataclass(frozen=True)
class ActivityMatrix:
    field_key: str
    label: Translated
    states: tuple[StateRef, ...]  # states with an accepted return
    statuses: tuple[tuple[str, Translated], ...]  # the status choices, in form order
    groups: tuple[ActivityGroup, ...]
    by_priority: tuple[tuple[str, StatusCounts], ...]
    total: StatusCounts


@dataclass(frozen=True)
class ThreatLine:
    value: str
    label: Translated
    severities: Mapping[str, str | None]


@dataclass(frozen=True)
class ThreatTable:
    field_key: str
    label: Translated
    states: tuple[StateRef, ...]
    severities: tuple[tuple[str, Translated], ...]
    lines: tuple[ThreatLine, ...]


@dataclass(frozen=True)
class Proposal:
    state: StateRef
    row: str
    text: str
    term: str | None
    term_label: Translated | None
    rationale: str | None


@dataclass(frozen=True)
class Narrative:
    """Free text from a return, attributed to its state and to the question it answers."""

    state: StateRef
    field_key: str
    field_label: Translated
    row_key: str
    row_label: Translated | None
    column_key: str
    column_label: Translated | None
    text: str


@dataclass(frozen=True)
class CarriedForward:
    state: StateRef
    field_key: str
    field_label: Translated
    cells: int


@dataclass(frozen=True)
class DataQuality:
    warnings: tuple[DataWarning, ...]
    carried_forward: tuple[CarriedForward, ...]
    reviewed: tuple[StateReturn, ...] = ()  # accepted by the Secretariat after review


@dataclass(frozen=True)
class CycleCounts:
    participants: int
    requested: int
    received: int
    accepted: int
    on_time: int
    late: int
    refused: int
    pending: int
    not_received: int
    correction_requested: int = 0
    excused: int = 0


@dataclass(frozen=True)
class FocalPoint:
    """An enabled focal point in the address book: national (no species) or for one species.

    ``name``, ``person`` and ``email`` are personal data: the progress summary prints them
    only where the Secretariat publishes them (``Settings.publish_focal_points``)."""

    state: StateRef
    species_code: str | None
    name: Translated
    person: str | None
    email: str


@dataclass(frozen=True)
class FocalPoints:
    """Who is designated (CAMI programme of work 4.1.2 and 4.1.3), for the summary's annex:
    every species of the instrument and every participating state, designated or not."""

    by_species: tuple[tuple[SpeciesRef, tuple[FocalPoint, ...]], ...]
    national: tuple[tuple[StateRef, tuple[FocalPoint, ...]], ...]


@dataclass(frozen=True)
class ConsolidatedCycle:
    """Everything the reports and exports of one cycle say."""

    cycle: CycleInfo
    generated_at: dt.datetime  # from the data (latest decision), so renders are reproducible
    counts: CycleCounts
    states: tuple[SubmissionStatus, ...]
    returns: tuple[StateReturn, ...]
    population: PopulationSummary | None
    activities: tuple[ActivityMatrix, ...]
    threats: tuple[ThreatTable, ...]
    proposals: tuple[Proposal, ...]
    narratives: tuple[Narrative, ...]
    data_quality: DataQuality
    species: tuple[SpeciesRef, ...] = field(default=())
    # The Secretariat's actions on the cycle (mou.accounts.audit), exported with it.
    audit: tuple[dict[str, Any], ...] = field(default=())
    # Only for an instrument with a programme of work (CAMI, whose 4.1.2 and 4.1.3 ask for them).
    focal_points: FocalPoints | None = None

    def status_of(self, state_code: str) -> SubmissionStatus:
        for status in self.states:
            if status.state.code == state_code:
                return status
        raise KeyError(state_code)

    def return_of(self, state_code: str) -> StateReturn | None:
        for returned in self.returns:
            if returned.state.code == state_code:
                return returned
